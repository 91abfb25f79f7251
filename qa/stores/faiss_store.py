"""The default store: chunks + FAISS (dense) + BM25 (bm25s, saved with the build) in files under index/.

A build is written to `index/builds/<id>/` and becomes active when `index/CURRENT` is
replaced atomically, so a crash mid-build leaves the previous index usable. The manifest
records the embedding model and chunking settings (an index is never queried with another
model) and a sha256 per file (a corrupted or truncated file is detected at load).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np
from tqdm import tqdm

from ..chunking import chunk_document, token_counter
from ..layout import annotate_chunks, document_from_dict, document_to_dict
from ..loader import file_sha256
from ..protocols import Embedder
from ..settings import Settings
from ..sparse import SparseIndex
from ..text import fold_script
from ..types import Chunk, Document
from .base import (FORMAT_VERSION, IndexCorruptError, IndexError_, IndexMissingError, IndexView,  # noqa: F401
                   ModelMismatchError, Progress, chunking_signature, document_meta, model_mismatch)

log = logging.getLogger(__name__)

CHUNKS_FILE, DENSE_FILE, MANIFEST_FILE, CURRENT_FILE = "chunks.jsonl", "dense.faiss", "manifest.json", "CURRENT"
BM25_DIR = "bm25"  # the saved bm25s index (qa/sparse.py), with the tokenizer's signature
DOCUMENTS_FILE = "documents.jsonl"  # the extracted text and layout of every document: citations stay checkable


@dataclass
class SearchIndex(IndexView):
    """Everything retrieval needs, in memory (a PassageStore whose keys are positions)."""

    manifest: dict
    chunks: list[Chunk]
    dense: faiss.Index
    texts: dict[str, Document] = field(default_factory=dict)  # doc_id -> extracted document (text, pages, headings)
    sparse: SparseIndex | None = None  # None: built from the chunks' texts

    def __post_init__(self):
        if self.sparse is None or self.sparse.size != len(self.chunks):
            self.sparse = SparseIndex([c.text for c in self.chunks])

    def dense_search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.dense.ntotal == 0:
            return []
        scores, ids = self.dense.search(np.ascontiguousarray(query_vector.reshape(1, -1), dtype=np.float32), min(k, self.dense.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def vectors(self) -> np.ndarray:
        return self.dense.reconstruct_n(0, self.dense.ntotal) if self.dense.ntotal else np.zeros((0, self.dense.d), np.float32)

    def sparse_search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self.sparse.search(query, k)

    def read_manifest(self) -> dict:
        return self.manifest

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> list[int]:
        """Append passages with precomputed vectors (in memory; `save_index` persists). BM25 is rebuilt."""
        first = len(self.chunks)
        self.chunks.extend(chunks)
        if len(chunks):
            self.dense.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.sparse = SparseIndex([c.text for c in self.chunks])
        self.__dict__.pop("normalized_text", None)
        self.__dict__.pop("_normalized_by_document", None)
        return list(range(first, len(self.chunks)))

    def delete_documents(self, doc_ids) -> int:
        """Drop these documents' passages (in memory; positions of later passages shift)."""
        gone = set(doc_ids)
        keep = [i for i, c in enumerate(self.chunks) if c.doc_id not in gone]
        removed = len(self.chunks) - len(keep)
        vectors = self.vectors()[keep] if keep else np.zeros((0, self.dense.d), np.float32)
        self.chunks = [Chunk.from_dict({**self.chunks[i].to_dict(), "chunk_id": n}) for n, i in enumerate(keep)]
        self.dense = _emptied(self.dense)
        if len(vectors):
            self.dense.add(vectors)
        for doc_id in gone:
            self.manifest["documents"].pop(doc_id, None)
            self.texts.pop(doc_id, None)
        self.sparse = SparseIndex([c.text for c in self.chunks])
        self.__dict__.pop("normalized_text", None)
        self.__dict__.pop("_normalized_by_document", None)
        return removed


def _emptied(dense: faiss.Index) -> faiss.Index:
    """An empty index of the same kind: an IVF index keeps its trained centroids, nprobe and direct map."""
    if isinstance(dense, faiss.IndexIVF):
        fresh = faiss.clone_index(dense)
        fresh.reset()
        fresh.nprobe = dense.nprobe
        return fresh
    return faiss.IndexFlatIP(dense.d)


# ---------------------------------------------------------------- building

def build_index(documents: list[Document], settings: Settings, embedder: Embedder, previous: SearchIndex | None = None,
                progress: Progress | None = None) -> tuple[SearchIndex, dict]:
    """Chunk and embed documents, reusing chunks and vectors of unchanged ones from `previous`.

    Returns the in-memory index and stats {"reused_documents", "embedded_documents", "embedded_chunks"}.
    """
    started = time.perf_counter()
    signature = chunking_signature(settings)
    backend = getattr(embedder, "backend", "")
    reusable = (previous is not None and previous.model == embedder.model_id and previous.manifest.get("chunking") == signature
                and previous.manifest.get("embedding_backend", backend) == backend)  # no mixing of fp32 and int8 vectors
    old_vectors = previous.vectors() if reusable else None
    old_by_doc: dict[str, list[int]] = {}
    if reusable:
        for i, c in enumerate(previous.chunks):
            old_by_doc.setdefault(c.doc_id, []).append(i)

    count = token_counter(settings)
    chunks: list[Chunk] = []
    vectors: list[np.ndarray | None] = []
    to_embed: list[int] = []
    doc_meta: dict[str, dict] = {}
    stats = {"reused_documents": 0, "embedded_documents": 0, "embedded_chunks": 0}
    for doc in documents:
        old = previous.documents.get(doc.doc_id) if reusable else None
        if old and old.get("hash") == doc.content_hash and doc.doc_id in old_by_doc:
            for i in old_by_doc[doc.doc_id]:
                c = previous.chunks[i]
                chunks.append(Chunk.from_dict({**c.to_dict(), "chunk_id": len(chunks)}))
                vectors.append(old_vectors[i])
            stats["reused_documents"] += 1
        else:
            new_chunks = chunk_document(doc, settings, count, first_chunk_id=len(chunks))
            annotate_chunks(new_chunks, doc)
            for c in new_chunks:
                to_embed.append(len(chunks))
                chunks.append(c)
                vectors.append(None)
            stats["embedded_documents"] += 1
        doc_meta[doc.doc_id] = document_meta(doc, previous.documents.get(doc.doc_id) if previous else None)

    _embed_missing(chunks, vectors, to_embed, settings, embedder, progress)
    stats["embedded_chunks"] = len(to_embed)
    matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, embedder.dim), np.float32)
    dense = make_dense_index(matrix, settings)
    manifest = {
        "format": FORMAT_VERSION,
        "model": embedder.model_id,
        "dim": embedder.dim,
        "embedding_backend": backend,
        "chunking": signature,
        "documents": doc_meta,
        "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_seconds": round(time.perf_counter() - started, 3),
        "stats": stats,
    }
    if progress:
        progress(1.0, f"indexed {len(documents)} documents, {len(chunks)} chunks")
    return SearchIndex(manifest=manifest, chunks=chunks, dense=dense, texts={d.doc_id: d for d in documents}), stats


DENSE_INDEXES = ("flat", "ivf")


def make_dense_index(matrix: np.ndarray, settings: Settings) -> faiss.Index:
    """Exact `IndexFlatIP`; or, with `dense_index="ivf"` and at least `ivf_min_passages` vectors, an
    `IndexIVFFlat` (nlist = sqrt(N), trained on a seeded sample of 40 * nlist vectors, direct map kept so
    `vectors()` still works, `ivf_nprobe` lists searched). Measured in eval/results/scale.md."""
    if settings.dense_index not in DENSE_INDEXES:
        raise ValueError(f"unknown dense_index {settings.dense_index!r}; choose one of {', '.join(DENSE_INDEXES)}")
    n, d = matrix.shape
    if settings.dense_index == "ivf" and n >= max(1, settings.ivf_min_passages):
        nlist = max(1, int(round(math.sqrt(n))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False)
        index.train(np.ascontiguousarray(matrix[np.sort(sample)]))
        index.add(np.ascontiguousarray(matrix))
        index.make_direct_map()
        index.nprobe = settings.ivf_nprobe
        return index
    index = faiss.IndexFlatIP(d)
    if n:
        index.add(np.ascontiguousarray(matrix))
    return index


def _embed_missing(chunks, vectors, to_embed, settings: Settings, embedder: Embedder, progress: Progress | None) -> None:
    batch = max(1, settings.embedding_batch_size)
    # Longest first (the first batch shows the memory peak early), similar lengths together so that a batch pads
    # little; vectors go back to their chunks by index.
    texts = {i: fold_script(chunks[i].text) for i in to_embed}
    to_embed = sorted(to_embed, key=lambda i: -len(texts[i]))
    with tqdm(total=len(to_embed), desc="embedding passages", unit="passage", disable=not to_embed) as bar:
        for start in range(0, len(to_embed), batch):
            ids = to_embed[start : start + batch]
            embedded = embedder.encode_documents([texts[i] for i in ids])
            for i, vec in zip(ids, embedded):
                vectors[i] = vec
            bar.update(len(ids))
            if progress:
                progress(min(start + batch, len(to_embed)) / len(to_embed), "embedding passages")


# ---------------------------------------------------------------- persistence

def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_index(index: SearchIndex, index_dir: Path) -> Path:
    """Write a new build folder, then switch CURRENT to it atomically; old builds are removed after."""
    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    tmp = builds / (build_id + ".tmp")
    tmp.mkdir()
    _fsync_write(tmp / CHUNKS_FILE, "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in index.chunks).encode("utf-8"))
    faiss.write_index(index.dense, str(tmp / DENSE_FILE))
    _fsync_write(tmp / DOCUMENTS_FILE, "".join(json.dumps(document_to_dict(d), ensure_ascii=False) + "\n"
                                               for d in index.texts.values()).encode("utf-8"))
    names = [CHUNKS_FILE, DENSE_FILE, DOCUMENTS_FILE]
    names += [f"{BM25_DIR}/{name}" for name in index.sparse.save(tmp / BM25_DIR)]  # loads in ~1 s instead of re-tokenizing
    manifest = {**index.manifest, "files": {name: file_sha256(tmp / name) for name in names}}
    _fsync_write(tmp / MANIFEST_FILE, json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
    final = builds / build_id
    os.rename(tmp, final)
    pointer_tmp = index_dir / (CURRENT_FILE + ".tmp")
    _fsync_write(pointer_tmp, build_id.encode())
    os.replace(pointer_tmp, index_dir / CURRENT_FILE)
    index.manifest = manifest
    for old in builds.iterdir():
        if old.name != build_id:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_index(index_dir: Path, settings: Settings) -> SearchIndex:
    """Load and verify the active build; raises IndexMissingError, IndexCorruptError or ModelMismatchError."""
    pointer = index_dir / CURRENT_FILE
    if not pointer.exists():
        raise IndexMissingError(f"no index in {index_dir}; build it with `qa index`")
    try:
        build_id = pointer.read_text(encoding="utf-8").strip()
    except (OSError, ValueError) as exc:  # e.g. garbage bytes: UnicodeDecodeError
        raise IndexCorruptError(f"index pointer {pointer} is unreadable ({type(exc).__name__})") from exc
    if not build_id or build_id != Path(build_id).name or build_id.startswith("."):
        raise IndexCorruptError(f"index pointer {pointer} is corrupted (it names no build: {build_id[:40]!r})")
    build = index_dir / "builds" / build_id
    try:
        manifest = json.loads((build / MANIFEST_FILE).read_text(encoding="utf-8"))
        for name, digest in manifest["files"].items():
            if file_sha256(build / name) != digest:
                raise IndexCorruptError(f"index file {build / name} is corrupted (checksum mismatch)")
        chunks = [Chunk.from_dict(json.loads(line)) for line in (build / CHUNKS_FILE).read_text(encoding="utf-8").splitlines()]
        dense = faiss.read_index(str(build / DENSE_FILE))
        if isinstance(dense, faiss.IndexIVF):  # nprobe is a search setting, not stored in the file
            dense.nprobe = settings.ivf_nprobe
        texts = {}
        if DOCUMENTS_FILE in manifest["files"]:
            docs = (document_from_dict(json.loads(line)) for line in (build / DOCUMENTS_FILE).read_text(encoding="utf-8").splitlines())
            texts = {d.doc_id: d for d in docs}
    except IndexCorruptError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexCorruptError(f"index in {build} is unreadable ({type(exc).__name__}: {exc})") from exc
    if manifest.get("format") != FORMAT_VERSION or dense.ntotal != len(chunks):
        raise IndexCorruptError(f"index in {build} is inconsistent or from another version")
    if manifest["model"] != settings.embedding_model:
        raise model_mismatch(manifest["model"], settings.embedding_model)
    # A build without a saved BM25 index (older builds), or one made by another tokenizer: rebuilt from the texts.
    sparse = SparseIndex.load(build / BM25_DIR, len(chunks)) if any(n.startswith(BM25_DIR + "/") for n in manifest["files"]) else None
    return SearchIndex(manifest=manifest, chunks=chunks, dense=dense, texts=texts, sparse=sparse)
