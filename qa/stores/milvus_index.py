"""Indexing into Milvus, document by document, and the in-memory view the retriever reads.

`sync_milvus` brings the Milvus collections in line with the corpus: removed documents are deleted,
new or changed ones are chunked, embedded, upserted, flushed and only then recorded in the manifest;
unchanged ones are not touched. A kill at any point leaves a usable index that the next run completes.
The extracted text of each document (what citations are checked against) is kept next to the index
in `index/milvus-documents/<doc key>.json`, written before the document is recorded.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..chunking import chunk_document, token_counter
from ..layout import annotate_chunks, document_from_dict, document_to_dict
from ..protocols import Embedder
from ..settings import Settings
from ..text import fold_script, tokenize
from ..types import Chunk, Document
from .base import (FORMAT_VERSION, IndexCorruptError, IndexMissingError, IndexView, Progress, chunking_signature,
                   document_meta, model_mismatch)
from .milvus_store import MilvusStore, doc_key, passage_key, resolve_uri

log = logging.getLogger(__name__)
TEXTS_DIR = "milvus-documents"


@dataclass
class MilvusIndex(IndexView):
    """The manifest, chunks and texts of a Milvus index in memory; searches run in Milvus and are mapped
    back to positions in `chunks` (passages another process added since this view was read are skipped)."""

    store: MilvusStore
    manifest: dict
    chunks: list[Chunk]
    texts: dict[str, Document]
    keys: list[int]
    positions: dict[int, int] = field(init=False)
    _df: Counter | None = field(default=None, init=False, repr=False)
    _token_total: int = field(default=0, init=False, repr=False)
    store_name = "milvus"

    def __post_init__(self):
        self.positions = {key: i for i, key in enumerate(self.keys)}
        self.store.avgdl = self.manifest.get("avgdl") or self.store.avgdl

    def dense_search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        return [(self.positions[key], s) for key, s in self.store.dense_search(vector, k) if key in self.positions]

    def sparse_search(self, query: str, k: int) -> list[tuple[int, float]]:
        idf = self._idf if self.store.sparse_mode == "weights" else None
        return [(self.positions[key], s) for key, s in self.store.sparse_search(query, k, idf) if key in self.positions]

    def _token_counts(self) -> Counter:
        """One jieba pass over this view's passages, kept: document frequencies (the IDF) and the total length
        (the mean passage length that `sync_milvus` compares with the stored weights' `avgdl`)."""
        if self._df is None:
            df, total = Counter(), 0
            for c in self.chunks:
                tokens = tokenize(c.text) or ["\u2205"]
                total += len(tokens)
                df.update(set(tokens))
            self._df, self._token_total = df, total
        return self._df

    def mean_passage_tokens(self) -> float:
        self._token_counts()
        return self._token_total / len(self.chunks) if self.chunks else 0.0

    def _idf(self, token: str) -> float:
        """Lucene IDF over the passages of this view ("weights" mode keeps no statistics in Milvus)."""
        n, df = len(self.chunks), self._token_counts().get(token, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5)) if df else 0.0

    def read_manifest(self) -> dict:
        return self.manifest

    def signature(self) -> dict[str, str]:
        """doc_id -> content hash: what another process compares to notice new or removed documents."""
        return {d: m.get("hash", "") for d, m in self.documents.items()}


def _texts_dir(settings: Settings) -> Path:
    return Path(settings.index_dir) / TEXTS_DIR


def _write_text(settings: Settings, doc: Document) -> None:
    folder = _texts_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{doc_key(doc.doc_id, doc.content_hash)}.json"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document_to_dict(doc), f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _header(settings: Settings, embedder: Embedder) -> dict:
    return {"format": FORMAT_VERSION, "model": embedder.model_id, "dim": embedder.dim,
            "chunking": chunking_signature(settings), "sparse": settings.milvus_sparse,
            "embedding_backend": getattr(embedder, "backend", "")}  # fp32 and int8 vectors are never mixed


def load_milvus_index(settings: Settings, store: MilvusStore | None = None) -> MilvusIndex:
    """Read the manifest, the recorded passages and the extracted texts; raises like `load_index`."""
    store = store or MilvusStore.from_settings(settings)
    if not store.exists():
        raise IndexMissingError(f"no Milvus index at {resolve_uri(settings)}; build it with `qa index --store milvus`")
    manifest = store.read_manifest()
    if "model" not in manifest:
        raise IndexMissingError(f"the Milvus index at {resolve_uri(settings)} is empty; build it with `qa index --store milvus`")
    if manifest.get("format") != FORMAT_VERSION or manifest.get("sparse") != settings.milvus_sparse:
        raise IndexCorruptError(f"the Milvus index at {resolve_uri(settings)} is from another version or sparse mode")
    if manifest["model"] != settings.embedding_model:
        raise model_mismatch(manifest["model"], settings.embedding_model)
    docs = manifest["documents"]
    keys, chunks = [], []
    for key, chunk in store.chunks():  # only passages of recorded document versions (not another process's half-done work)
        meta = docs.get(chunk.doc_id)
        if meta is not None and key == passage_key(chunk.doc_id, meta.get("hash", ""), chunk.start, chunk.end):
            keys.append(key)
            chunks.append(Chunk.from_dict({**chunk.to_dict(), "chunk_id": len(chunks)}))
    texts = {}
    for doc_id, meta in docs.items():
        path = _texts_dir(settings) / f"{doc_key(doc_id, meta.get('hash', ''))}.json"
        try:
            texts[doc_id] = document_from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"extracted text of {doc_id} ({path}) is unreadable ({type(exc).__name__})") from exc
    return MilvusIndex(store=store, manifest=manifest, chunks=chunks, texts=texts, keys=keys)


def sync_milvus(documents: list[Document], settings: Settings, embedder: Embedder, rebuild: bool = False,
                previous: IndexView | None = None, progress: Progress | None = None,
                store: MilvusStore | None = None) -> tuple[MilvusIndex, dict]:
    """Make the Milvus index hold exactly `documents`; returns the new view and the stats of `build_index`.

    `previous` may be a FAISS index of the same model and chunking: its vectors are reused (migration
    without re-embedding). A different model or chunking in the stored header means a full rebuild.
    """
    started = time.perf_counter()
    store = store or MilvusStore.from_settings(settings)
    header = _header(settings, embedder)
    stored = store.read_manifest() if store.exists() else {"documents": {}}
    if rebuild or ("model" in stored and any(stored.get(k, header[k] if k == "embedding_backend" else None) != header[k]
                                                for k in ("model", "dim", "chunking", "sparse", "embedding_backend"))):
        store.drop()
        stored = {"documents": {}}
    store.create(embedder.dim)
    store.reconcile()
    current = stored["documents"]
    wanted = {d.doc_id for d in documents}
    removed = [d for d in current if d not in wanted]
    if removed:
        store.delete_documents(removed)
    todo = [d for d in documents if current.get(d.doc_id, {}).get("hash") != d.content_hash]
    stats = {"reused_documents": len(documents) - len(todo), "embedded_documents": len(todo), "embedded_chunks": 0}

    reusable = (previous is not None and hasattr(previous, "vectors") and previous.model == embedder.model_id
                and previous.manifest.get("chunking") == header["chunking"]
                and previous.manifest.get("embedding_backend", header["embedding_backend"]) == header["embedding_backend"])
    old_vectors = previous.vectors() if reusable else None
    count = token_counter(settings)
    plans = []
    for doc in todo:
        old = previous.documents.get(doc.doc_id) if reusable else None
        if old and old.get("hash") == doc.content_hash:
            rows = [i for i, c in enumerate(previous.chunks) if c.doc_id == doc.doc_id]
            plans.append((doc, [previous.chunks[i] for i in rows], old_vectors[rows]))
        else:
            chunks = chunk_document(doc, settings, count)
            annotate_chunks(chunks, doc)
            plans.append((doc, chunks, None))
    if settings.milvus_sparse == "weights":  # the passage length the stored weights assume, fixed at creation
        avgdl = stored.get("avgdl")
        if not avgdl:  # a new collection: the first upload's mean
            lengths = [len(tokenize(c.text) or "x") for _, chunks, _ in plans for c in chunks]
            avgdl = sum(lengths) / len(lengths) if lengths else 1.0
        header["avgdl"] = store.avgdl = avgdl
    store.write_header(header)
    total = sum(len(c) for _, c, v in plans if v is None)
    batch = max(1, settings.embedding_batch_size)
    pending: list[Document] = []  # upserted, not yet flushed and recorded
    pending_rows = 0
    with tqdm(total=total, desc="embedding passages", unit="passage", disable=not total) as bar:
        for n, (doc, chunks, vectors) in enumerate(plans):
            if vectors is None:
                parts = []
                for start in range(0, len(chunks), batch):
                    parts.append(embedder.encode_documents([fold_script(c.text) for c in chunks[start : start + batch]]))
                    bar.update(min(batch, len(chunks) - start))
                    stats["embedded_chunks"] += min(batch, len(chunks) - start)
                    if progress and total:
                        progress(min(1.0, stats["embedded_chunks"] / total), "embedding passages")
                vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dim), np.float32)
            _write_text(settings, doc)
            store.add(chunks, vectors, doc.content_hash, flush=False)
            pending.append(doc)
            pending_rows += len(chunks)
            if pending_rows >= settings.milvus_flush_rows or n == len(plans) - 1:
                _commit(store, pending, current)
                pending, pending_rows = [], 0
    store.write_header({**header, "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "build_seconds": round(time.perf_counter() - started, 3), "stats": stats})
    _remove_stale_texts(settings, store)
    if progress:
        progress(1.0, f"indexed {len(documents)} documents")
    index = load_milvus_index(settings, store)
    if settings.milvus_sparse == "weights" and index.chunks:
        avgdl = index.mean_passage_tokens()  # the same pass gives the IDF the first question needs
        if store.avgdl is None or abs(avgdl - store.avgdl) > settings.milvus_reweight_drift * store.avgdl:  # uploads moved the average
            store.reweight(avgdl)
            store.write_header({**{k: v for k, v in index.manifest.items() if k != "documents"}, "avgdl": avgdl})
            index = load_milvus_index(settings, store)
    return index, stats


def _commit(store: MilvusStore, docs: list[Document], current: dict) -> None:
    """Flush the upserted passages, then record their documents, then drop replaced versions.

    One flush per batch, not per document: Milvus Lite keeps BM25 statistics per segment (one per flush).
    """
    store.flush()
    store.record_documents({d.doc_id: document_meta(d, current.get(d.doc_id)) for d in docs})
    for d in docs:
        old_hash = current.get(d.doc_id, {}).get("hash")
        if old_hash is not None and old_hash != d.content_hash:
            store.delete_version(d.doc_id, old_hash)


def _remove_stale_texts(settings: Settings, store: MilvusStore) -> None:
    keep = {f"{doc_key(d, m.get('hash', ''))}.json" for d, m in store.read_manifest()["documents"].items()}
    folder = _texts_dir(settings)
    for path in folder.iterdir() if folder.exists() else []:
        if path.name not in keep:
            path.unlink(missing_ok=True)
