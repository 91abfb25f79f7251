"""Adding, removing and listing documents: files or whole folders, with duplicates and refusals reported.

`DocumentLibrary(service)` works on the service's corpus folder and index:

* `add_files([(name, bytes), ...])` extracts each file (refusals carry a reason), skips files
  whose text is already indexed (unchanged, or the same text under another name), flags near
  duplicates (`qa/dedup.py`), writes the accepted files into the corpus and re-indexes once:
  only new or changed documents are embedded. If indexing fails, the corpus is restored.
* `add_paths([...])` does the same for files and folders on disk (folders recursively).
* `remove(doc_id)` deletes a document's file and its passages; `list()` describes each document.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .dedup import find_duplicate
from .ingest import SUPPORTED_SUFFIXES, extract_document, size_limit
from .ingest.corpus import iter_corpus_files
from .loader import DocumentError, load_metadata

Progress = Callable[[float, str], None]


@dataclass
class AddOutcome:
    name: str
    status: str  # "added", "replaced", "skipped", "refused"
    reason: str = ""
    duplicate_of: str = ""
    similarity: float | None = None

    @property
    def line(self) -> str:
        text = {"added": "added", "replaced": "replaced the earlier version of", "skipped": "skipped",
                "refused": "refused"}[self.status] + f" {self.name}"
        return text + (f": {self.reason}" if self.reason else "")


@dataclass
class AddReport:
    outcomes: list[AddOutcome] = field(default_factory=list)
    embedded_chunks: int = 0
    chunks: int = 0
    documents: int = 0
    seconds: float = 0.0
    index: object | None = None  # the pipeline's IndexReport of the re-index, when there was one

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def summary(self) -> str:
        added = self.count("added") + self.count("replaced")
        return (f"{added} added, {self.count('skipped')} skipped, {self.count('refused')} refused; "
                f"{self.embedded_chunks} new passages embedded ({self.documents} documents, {self.chunks} passages in the index)")


@dataclass
class DocumentInfo:
    doc_id: str
    title: str
    kind: str
    pages: int
    passages: int
    chars: int
    added_at: str


def safe_relative_name(name: str) -> str:
    """A corpus-relative path: every component sanitized, no traversal, no hidden parts."""
    from .pipeline import safe_file_name

    parts = [p for p in str(name).replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if not parts:
        raise DocumentError(f"{name!r}: not a usable file name")
    return "/".join(safe_file_name(p) for p in parts)


class DocumentLibrary:
    def __init__(self, service):
        self.service = service
        self.settings = service.settings

    # ------------------------------------------------------------ adding
    def add_paths(self, paths: Iterable[str | Path], progress: Progress | None = None) -> AddReport:
        """Files are added under their own name, folders recursively under the folder's name."""
        files: list[tuple[str, Path]] = []
        refused: list[AddOutcome] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                root = path.resolve()
                for f in sorted(p for p in root.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.relative_to(root).parts)):
                    if f.suffix.lower() in SUPPORTED_SUFFIXES:
                        files.append((f"{root.name}/{f.relative_to(root).as_posix()}", f))
                    else:
                        refused.append(AddOutcome(f"{root.name}/{f.relative_to(root).as_posix()}", "skipped",
                                                  f"unsupported file type {f.suffix or '(none)'}"))
            elif path.is_file():
                files.append((path.name, path))
            else:
                refused.append(AddOutcome(str(raw), "refused", "no such file or folder"))
        report = self.add_files(((name, f) for name, f in files), progress, total=len(files))
        report.outcomes = refused + report.outcomes
        return report

    def add_files(self, files: Iterable[tuple[str, bytes | Path]], progress: Progress | None = None,
                  total: int | None = None) -> AddReport:
        started = time.perf_counter()
        service, settings = self.service, self.settings
        report = AddReport()
        accepted: list[tuple[str, bytes, AddOutcome]] = []
        index = service.index
        indexed = {d: doc.text for d, doc in (index.texts if index is not None else {}).items()}
        by_hash = {meta.get("hash"): d for d, meta in (index.documents if index is not None else {}).items()}
        metadata = load_metadata(settings.corpus_dir)
        for n, (raw_name, source) in enumerate(files, 1):
            if progress:
                progress((n - 1) / max(1, total or n), f"reading {raw_name}")
            try:
                name = safe_relative_name(raw_name)
                data = self._read(raw_name, source)
                doc = extract_document(name, data, settings, metadata.get(name))
            except (DocumentError, OSError) as exc:
                report.outcomes.append(AddOutcome(str(raw_name), "refused", _reason(exc, raw_name)))
                continue
            same = by_hash.get(doc.content_hash)
            if same is not None:
                why = "unchanged, already indexed" if same == name else f"the same text as {same}, already indexed"
                report.outcomes.append(AddOutcome(name, "skipped", why, duplicate_of="" if same == name else same, similarity=1.0))
                continue
            others = {d: t for d, t in indexed.items() if d != name}
            dup = find_duplicate(doc.text, others, settings.duplicate_threshold)
            replacing = (settings.corpus_dir / name).exists()
            outcome = AddOutcome(name, "replaced" if replacing else "added")
            if dup is not None:
                outcome.duplicate_of, outcome.similarity = dup.doc_id, dup.similarity
                outcome.reason = (f"duplicates {dup.doc_id} ({'the same text' if dup.identical else 'near-identical'}"
                                  f", similarity {dup.similarity:.2f}); answers will show one copy of each passage")
            service.extracted_cache[doc.file_hash] = doc
            accepted.append((name, data, outcome))
            report.outcomes.append(outcome)
            indexed[name], by_hash[doc.content_hash] = doc.text, name
        if accepted:
            self._write_and_index(accepted, report, progress)
        elif index is not None:
            report.documents, report.chunks = len(index.documents), len(index.chunks)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _read(self, name: str, source: bytes | Path) -> bytes:
        if isinstance(source, (bytes, bytearray)):
            return bytes(source)
        limit = size_limit(str(name), self.settings)
        size = os.path.getsize(source)
        if size > limit:
            raise DocumentError(f"{name}: too large ({size:,} bytes; the limit is {limit:,})")
        return Path(source).read_bytes()

    def _write_and_index(self, accepted, report: AddReport, progress: Progress | None) -> None:
        corpus = self.settings.corpus_dir.resolve()
        backups: list[tuple[Path, bytes | None]] = []
        with self.service._lock:
            try:
                for name, data, _ in accepted:
                    target = (corpus / name).resolve()
                    if corpus not in target.parents:
                        raise DocumentError(f"{name!r}: not a usable file name")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    backups.append((target, target.read_bytes() if target.exists() else None))
                    tmp = target.parent / f".upload-{uuid.uuid4().hex}.tmp"
                    tmp.write_bytes(data)
                    os.replace(tmp, target)
                index_report = self.service.reindex(progress=progress)
            except BaseException:
                for target, old in reversed(backups):  # put the corpus back as it was; the index was not switched
                    if old is None:
                        target.unlink(missing_ok=True)
                    else:
                        target.write_bytes(old)
                raise
        report.embedded_chunks, report.chunks, report.documents = (index_report.embedded_chunks, index_report.chunks,
                                                                   index_report.documents)
        report.index = index_report

    # ------------------------------------------------------------ removing and listing
    def remove(self, doc_id: str):
        """Delete the document's file from the corpus and its passages from the index."""
        corpus = self.settings.corpus_dir.resolve()
        target = (corpus / doc_id).resolve()
        if corpus not in target.parents or not target.is_file():
            known = ", ".join(sorted(self.service.index.documents)[:10]) if self.service.index else ""
            raise DocumentError(f"{doc_id}: no such document in the corpus" + (f" (documents: {known}…)" if known else ""))
        with self.service._lock:
            data = target.read_bytes()
            target.unlink()
            try:
                report = self.service.reindex()
            except BaseException:
                target.write_bytes(data)
                raise
            parent = target.parent
            while parent != corpus and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        return report

    def list(self) -> list[DocumentInfo]:
        index = self.service.index
        if index is None:
            return []
        passages: dict[str, int] = {}
        for chunk in index.chunks:
            passages[chunk.doc_id] = passages.get(chunk.doc_id, 0) + 1
        return [DocumentInfo(doc_id, meta.get("title", doc_id), meta.get("kind") or Path(doc_id).suffix.lstrip("."),
                             meta.get("pages", 0), passages.get(doc_id, 0), meta.get("chars", 0), meta.get("added_at", ""))
                for doc_id, meta in sorted(index.documents.items())]

    def files(self) -> list[str]:
        corpus = self.settings.corpus_dir
        return [p.relative_to(corpus).as_posix() for p in iter_corpus_files(corpus)]


def _reason(exc: Exception, name: str) -> str:
    text = str(exc)
    for prefix in (f"{name}: ", f"{Path(str(name)).name}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text
