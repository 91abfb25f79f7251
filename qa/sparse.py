"""BM25 over jieba tokens of script-normalized text (bm25s does the scoring)."""

from __future__ import annotations

import logging
import re

import bm25s
import jieba
import numpy as np

from .text import normalize

jieba.setLogLevel(logging.WARNING)
logging.getLogger("bm25s").setLevel(logging.WARNING)

_KEEP = re.compile(r"[0-9a-z\u4e00-\u9fff]")
# Function words that match everywhere and only add noise to BM25.
STOPWORDS = frozenset(
    "的 了 是 在 和 与 也 都 就 而 及 着 或 一个 这 那 之 为 对 从 把 被 让 给 上 中 下 我们 他们 它们 "
    "什么 为什么 怎么 如何 哪些 哪个 吗 呢 吧 啊 多少 谁 哪 哪里 哪家 哪款 哪一年 一年 几 几家 几个 时候 什么样 怎样 "
    "多久 多长 多长时间 长时间 叫 名字 分别 是否 曾 认为 有 会 the a an of to in on and or is are was were be been "
    "what why how which who whom did does do with for by as at from that this it its up has have had will would "
    "can could should about into their they them there than then so not no yes when where much many".split()
)


def tokenize(text: str) -> list[str]:
    """jieba search-mode tokens of the normalized text, without punctuation and stopwords."""
    folded = normalize(text)
    return [t for t in (w.strip() for w in jieba.cut_for_search(folded)) if t and _KEEP.search(t) and t not in STOPWORDS]


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
