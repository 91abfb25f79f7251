"""Passage stores: FAISS + bm25s files (default) or Milvus; `open_index` picks by `Settings.store`."""
