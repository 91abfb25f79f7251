"""An on-disk cache of passage and sentence vectors for evaluation runs (SQuAD sets are embedded once)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from ..protocols import Embedder
from ..settings import Settings
from .args import slug


class CachingEmbedder:
    """Wraps an Embedder: document/sentence vectors are computed once per text and kept on disk.

    Passages and reader sentences (`encode_documents`) are cached on disk; query vectors only in
    memory, so each question's text is embedded once per process and shared by the retrieval modes
    (the first mode run pays for it). It is an Embedder (qa/protocols.py) itself.
    """

    def __init__(self, inner: Embedder, path: Path | None):
        self.inner, self.path = inner, path
        self._vectors: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}
        self._dirty = False
        self._signature = json.dumps([inner.model_id, getattr(inner, "document_prompt", ""), int(inner.dim)]
                                     + ([inner.backend] if getattr(inner, "backend", "torch") != "torch" else []))
        if path is not None and path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    if str(data["signature"]) == self._signature:
                        self._vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
            except (OSError, ValueError, KeyError) as exc:
                print(f"note: ignoring unreadable embedding cache {path}: {exc}", file=sys.stderr)

    # the rest of the Embedder protocol comes from the wrapped embedder
    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._queries))
        if missing:
            for text, vec in zip(missing, self.inner.encode_queries(missing)):
                self._queries[text] = np.asarray(vec, dtype=np.float32)
        if not texts:
            return self.inner.encode_queries([])
        return np.vstack([self._queries[t] for t in texts]).astype(np.float32)

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return self.inner.encode_documents([])
        keys = [self._key(t) for t in texts]
        missing = {}
        for key, text in zip(keys, texts):
            if key not in self._vectors:
                missing.setdefault(key, text)
        if missing:
            vectors = self.inner.encode_documents(list(missing.values()), show_progress=show_progress)
            for key, vec in zip(missing, vectors):
                self._vectors[key] = np.asarray(vec, dtype=np.float32)
            self._dirty = True
        return np.vstack([self._vectors[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self._vectors)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, signature=np.array(self._signature), keys=np.array(keys),
                 vectors=np.vstack([self._vectors[k] for k in keys]).astype(np.float32))
        os.replace(tmp, self.path)
        self._dirty = False


def embedding_cache_path(settings: Settings, backend: str = "torch") -> Path:
    """One file per model and resolved backend (the embedder's `backend`, e.g. "torch-bf16"), never mixed."""
    suffix = "" if backend == "torch" else f".{slug(backend)}"
    return Path(settings.cache_dir) / "eval-embeddings" / f"{slug(settings.embedding_model)}{suffix}.npz"
