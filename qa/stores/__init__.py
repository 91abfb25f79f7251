"""Passage stores: FAISS + bm25s files (default) or Milvus; `open_index` picks one by `Settings.store`."""

from __future__ import annotations

from ..settings import STORES, Settings
from .base import IndexView


def open_index(settings: Settings) -> IndexView:
    """The persisted index of the configured store; raises IndexMissingError, IndexCorruptError or ModelMismatchError."""
    if settings.store == "milvus":
        from .milvus_index import load_milvus_index

        return load_milvus_index(settings)
    if settings.store != "faiss":
        raise ValueError(f"unknown store {settings.store!r}; choose one of {', '.join(STORES)}")
    from .faiss_store import load_index

    return load_index(settings.index_dir, settings)
