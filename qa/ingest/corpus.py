"""The corpus folder (recursive) as Documents, re-extracting only files whose bytes changed.

Extraction of a PDF or an OCR'd scan costs far more than hashing its bytes, so a file whose
sha256 matches an already extracted document (kept with the index, or extracted moments ago
by an upload) is not extracted again.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..loader import load_metadata
from ..settings import Settings
from ..types import Document
from . import SUPPORTED_SUFFIXES, extract_document, file_hash, size_limit
from .errors import DocumentError

log = logging.getLogger(__name__)


def iter_corpus_files(corpus_dir: Path) -> list[Path]:
    """Supported files under corpus_dir, recursively, skipping hidden files and folders."""
    found = []
    for path in corpus_dir.rglob("*"):
        rel = path.relative_to(corpus_dir)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in SUPPORTED_SUFFIXES:
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(corpus_dir).as_posix())


def doc_id_of(path: Path, corpus_dir: Path) -> str:
    return path.relative_to(corpus_dir).as_posix()


def load_documents(settings: Settings, cache: dict[str, Document] | None = None) -> tuple[list[Document], list[str]]:
    """All readable documents of the corpus folder, plus one message per file that was refused.

    `cache` maps a file's sha256 to its extracted Document (any doc_id): hits skip extraction.
    """
    corpus_dir = settings.corpus_dir
    if not corpus_dir.is_dir():
        raise DocumentError(f"corpus folder not found: {corpus_dir}")
    metadata = load_metadata(corpus_dir)
    cache = cache or {}
    documents, problems = [], []
    for path in iter_corpus_files(corpus_dir):
        doc_id = doc_id_of(path, corpus_dir)
        try:
            limit = size_limit(doc_id, settings)
            size = path.stat().st_size
            if size > limit:
                raise DocumentError(f"{doc_id}: too large ({size:,} bytes; the limit is {limit:,})")
            data = path.read_bytes()
            meta = metadata.get(doc_id) or {}
            cached = cache.get(file_hash(data))
            if cached is not None:
                documents.append(_renamed(cached, doc_id, meta))
            else:
                documents.append(extract_document(doc_id, data, settings, meta))
        except (DocumentError, OSError) as exc:
            problems.append(str(exc))
            log.warning("skipped %s", exc)
    return documents, problems


def _renamed(doc: Document, doc_id: str, meta: dict) -> Document:
    if doc.doc_id == doc_id and not meta:
        return doc
    title = meta.get("title") or (doc.title if doc.doc_id == doc_id or doc.title != Path(doc.doc_id).stem else Path(doc_id).stem)
    return dataclasses.replace(doc, doc_id=doc_id, title=title, script=meta.get("script") or doc.script,
                               source=meta.get("source", doc.source))


def extraction_cache(*sources) -> dict[str, Document]:
    """file sha256 -> Document, from index texts (dict doc_id -> Document) and fresh extractions."""
    cache: dict[str, Document] = {}
    for source in sources:
        for doc in (source or {}).values():
            if doc.file_hash:
                cache[doc.file_hash] = doc
    return cache
