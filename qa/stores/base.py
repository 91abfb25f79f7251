"""What every passage store offers, and what both engines share (errors, chunking signature, document metadata).

Two engines implement `PassageStore`: FAISS + bm25s files (`faiss_store.py`, the default) and Milvus
(`milvus_store.py`, a Lite file or a server). The retriever only sees an `IndexView`: chunks by
position, `dense_search` and `sparse_search` returning positions, the manifest and the extracted texts.
"""

from __future__ import annotations

import re
import time
from functools import cached_property
from typing import Callable, Hashable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from ..chunking import CHUNKER_VERSION
from ..settings import Settings
from ..text import normalize
from ..types import Chunk, Document

FORMAT_VERSION = 1
LAYOUT_VERSION = 1  # chunks carry page/section since this version
from ..settings import STORES  # noqa: F401
Progress = Callable[[float, str], None]


class IndexError_(RuntimeError):
    """Base for index problems whose message tells the user what to do."""


class IndexMissingError(IndexError_):
    pass


class IndexCorruptError(IndexError_):
    pass


class ModelMismatchError(IndexError_):
    pass


def chunking_signature(settings: Settings) -> dict:
    """The settings that change chunk boundaries: a change forces re-chunking every document."""
    return {
        "chunker_version": CHUNKER_VERSION,
        "tiktoken_encoding": settings.tiktoken_encoding,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap_tokens": settings.chunk_overlap_tokens,
        "min_sentence_chars": settings.min_sentence_chars,
        "max_sentence_chars": settings.max_sentence_chars,
        "layout": LAYOUT_VERSION,
    }


def document_meta(doc: Document, previous: dict | None = None) -> dict:
    """The manifest entry of one document (`added_at` survives re-indexing)."""
    return {"hash": doc.content_hash, "title": doc.title, "script": doc.script, "source": doc.source,
            "chars": len(doc.text), "kind": doc.kind, "pages": len(doc.pages), "file_hash": doc.file_hash,
            "added_at": (previous or {}).get("added_at") or time.strftime("%Y-%m-%d %H:%M:%S")}


def model_mismatch(built: str, wanted: str) -> ModelMismatchError:
    return ModelMismatchError(
        f"the index was built with embedding model {built!r} but the current setting is "
        f"{wanted!r}; rebuild it with `qa index --rebuild` (or set QA_EMBEDDING_MODEL back)")


@runtime_checkable
class PassageStore(Protocol):
    """Passages with their vectors and BM25 terms. Keys are whatever the engine uses to name a passage
    (FAISS: its position; Milvus: a deterministic int64 from document id, content hash and offsets)."""

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> list[Hashable]:
        """Store (upsert) passages with precomputed, L2-normalized vectors; nothing is embedded here."""
        ...

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        """Remove every passage of these documents (and their manifest entries); returns passages removed."""
        ...

    def dense_search(self, vector: np.ndarray, k: int) -> list[tuple[Hashable, float]]:
        """(key, inner product) pairs, best first."""
        ...

    def sparse_search(self, query: str, k: int) -> list[tuple[Hashable, float]]:
        """(key, BM25 score) pairs, best first; `query` is raw text (alias expansion already applied)."""
        ...

    def count(self) -> int:
        """Passages stored."""
        ...

    def read_manifest(self) -> dict:
        """{"model", "dim", "chunking", "documents": {doc_id: meta}, ...} as stored now."""
        ...


class IndexView:
    """What retrieval and answering read from an index, whatever the engine.

    Subclasses provide `manifest`, `chunks` (position = the id searches return), `texts` (doc_id ->
    extracted Document), `dense_search(vector, k)` and `sparse_search(query, k)`.
    """

    manifest: dict
    chunks: list[Chunk]
    texts: dict[str, Document]
    store_name = "faiss"

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def documents(self) -> dict[str, dict]:
        return self.manifest["documents"]

    @cached_property
    def normalized_text(self) -> str:
        """All chunk text, normalized and without whitespace: tells whether the corpus mentions a term at all."""
        return re.sub(r"\s+", "", normalize("\n".join(c.text for c in self.chunks)))

    @cached_property
    def _normalized_by_document(self) -> dict[str, str]:
        parts: dict[str, list[str]] = {}
        for c in self.chunks:
            parts.setdefault(c.doc_id, []).append(c.text)
        return {d: re.sub(r"\s+", "", normalize("\n".join(texts))) for d, texts in parts.items()}

    def normalized_text_without(self, doc_id: str | None) -> str:
        """normalized_text as if `doc_id` were not indexed (evaluation's answer-removed setting)."""
        if doc_id is None or doc_id not in self._normalized_by_document:
            return self.normalized_text
        return "".join(t for d, t in self._normalized_by_document.items() if d != doc_id)

    def title(self, doc_id: str) -> str:
        return self.documents.get(doc_id, {}).get("title", doc_id)

    def count(self) -> int:
        return len(self.chunks)

    def status(self) -> dict:
        return {
            "documents": len(self.documents),
            "chunks": len(self.chunks),
            "model": self.model,
            "built_at": self.manifest.get("built_at", ""),
            "build_seconds": self.manifest.get("build_seconds"),
            "store": self.store_name,
        }
