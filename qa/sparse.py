"""BM25 over jieba tokens of script-normalized text (bm25s does the scoring; tokens from qa/text.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import bm25s
import numpy as np

from .text import tokenize, tokenizer_signature

logging.getLogger("bm25s").setLevel(logging.WARNING)

SIGNATURE_FILE = "tokenizer.json"


class SparseIndex:
    """A BM25 index over chunk texts. Built from the texts, or loaded from a saved index (`save`/`load`): at 100k
    passages, tokenizing every text again took 47 s of each start (eval/results/scale.md), loading takes ~1 s."""

    def __init__(self, texts: list[str]):
        self.size = len(texts)
        self._bm25 = bm25s.BM25()
        if texts:
            self._bm25.index([tokenize(t) or ["\u2205"] for t in texts], show_progress=False)

    def save(self, folder: Path) -> list[str]:
        """Write the index (bm25s' own files: scores matrix, vocabulary, parameters) and the tokenizer's signature
        into `folder`; returns the file names written. An empty index writes nothing (it is rebuilt for free)."""
        if self.size == 0:
            return []
        folder.mkdir(parents=True, exist_ok=True)
        self._bm25.save(str(folder), show_progress=False)
        (folder / SIGNATURE_FILE).write_text(json.dumps({"tokenizer": tokenizer_signature(), "size": self.size}) + "\n",
                                             encoding="utf-8")
        return sorted(p.name for p in folder.iterdir() if p.is_file())

    @classmethod
    def load(cls, folder: Path, size: int) -> "SparseIndex | None":
        """The saved index, or None when it is missing, was made by another tokenizer, or holds another number of
        passages (then the caller rebuilds it from the texts)."""
        try:
            meta = json.loads((folder / SIGNATURE_FILE).read_text(encoding="utf-8"))
            if meta.get("tokenizer") != tokenizer_signature() or meta.get("size") != size:
                return None
            bm25 = bm25s.BM25.load(str(folder), mmap=False, show_progress=False)
        except (OSError, ValueError, KeyError):
            return None
        index = cls([])
        index.size, index._bm25 = size, bm25
        return index

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
