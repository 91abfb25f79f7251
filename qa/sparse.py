"""BM25 over jieba tokens of script-normalized text (bm25s does the scoring; tokens from qa/text.py)."""

from __future__ import annotations

import logging

import bm25s
import numpy as np

from .text import tokenize

logging.getLogger("bm25s").setLevel(logging.WARNING)


class SparseIndex:
    """A BM25 index over chunk texts; cheap enough to rebuild at load time, so never persisted."""

    def __init__(self, texts: list[str]):
        self.size = len(texts)
        self._bm25 = bm25s.BM25()
        if texts:
            self._bm25.index([tokenize(t) or ["\u2205"] for t in texts], show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        tokens = tokenize(query)
        if not tokens or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        vocab = self._bm25.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        scores = self.scores(query)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in order if scores[i] > 0]
