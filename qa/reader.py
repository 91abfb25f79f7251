"""Extractive reader: quotes the best sentences of the top chunks verbatim, or abstains.

A sentence's score mixes its embedding similarity to the question with the share of the
question's terms (alias-expanded, script-normalized) it contains. The best score also decides
abstention: below `abstain_threshold` (calibrated on eval/questions.jsonl) the reader says the
answer is not in the documents instead of quoting something weak.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .aliases import AliasLexicon
from .loader import detect_script
from .settings import Settings
from .sparse import tokenize
from .text import fold_script
from .types import Answer, Citation, Hit

LEXICAL_WEIGHT = 0.15

NOT_FOUND = {
    "en": "Not found in the documents: none of the indexed passages answers this question.",
    "zh-Hans": "文档中未找到答案：检索到的段落都不能回答这个问题。",
    "zh-Hant": "文件中未找到答案：檢索到的段落都不能回答這個問題。",
}


@dataclass
class ScoredSentence:
    doc: str
    start: int
    end: int
    text: str
    score: float
    chunk_id: int
    title: str = ""


def not_found_message(question: str) -> str:
    return NOT_FOUND.get(detect_script(question), NOT_FOUND["en"])


def display(text: str) -> str:
    """Subtitle line breaks read better as spaces inside an answer."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


class ExtractiveReader:
    def __init__(self, embedder, aliases: AliasLexicon, settings: Settings, cache_size: int = 50_000):
        self.embedder, self.aliases, self.settings = embedder, aliases, settings
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def _sentence_vectors(self, keys: list[tuple], texts: list[str]) -> np.ndarray:
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        if missing:
            vectors = self.embedder.encode_documents([fold_script(texts[i]) for i in missing])
            for i, vec in zip(missing, vectors):
                self._cache[keys[i]] = vec
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return np.vstack([self._cache[key] for key in keys])

    def score_sentences(self, question: str, hits: list[Hit], query_vector: np.ndarray, titles=None) -> list[ScoredSentence]:
        candidates, seen = [], set()
        for hit in hits[: self.settings.reader_chunks]:
            chunk = hit.chunk
            for s in chunk.sentences:
                key = (chunk.doc_id, s.start, s.end)
                if key not in seen:
                    seen.add(key)
                    candidates.append((key, chunk.text[s.start - chunk.start : s.end - chunk.start], chunk.chunk_id))
        if not candidates:
            return []
        vectors = self._sentence_vectors([c[0] for c in candidates], [c[1] for c in candidates])
        dense = vectors @ query_vector.astype(np.float32)
        question_terms = set(tokenize(question))
        alias_terms = set(tokenize(" ".join(self.aliases.expansions(question))))
        scored = []
        for (key, text, chunk_id), cos in zip(candidates, dense):
            terms = set(tokenize(text))
            overlap = len(question_terms & terms) + min(len(alias_terms & terms), 2)
            lexical = min(1.0, overlap / max(1, len(question_terms)))
            scored.append(ScoredSentence(key[0], key[1], key[2], text, float(cos) + LEXICAL_WEIGHT * lexical, chunk_id,
                                         titles(key[0]) if titles else ""))
        scored.sort(key=lambda s: -s.score)
        return scored

    def read(self, question: str, hits: list[Hit], query_vector: np.ndarray, titles=None) -> Answer:
        scored = self.score_sentences(question, hits, query_vector, titles)
        if not scored or scored[0].score < self.settings.abstain_threshold:
            best = scored[0].score if scored else 0.0
            return Answer(question=question, text=not_found_message(question), abstained=True, hits=hits,
                          notice=f"best evidence score {best:.3f} is below the threshold {self.settings.abstain_threshold:.3f}")
        best = scored[0].score
        chosen = [s for s in scored if s.score >= best - self.settings.answer_margin][: self.settings.answer_sentences]
        citations = [Citation(doc=s.doc, start=s.start, end=s.end, text=s.text, score=s.score, title=s.title, chunk_id=s.chunk_id)
                     for s in chosen]
        text = " ".join(f"{display(c.text)} [{n}]" for n, c in enumerate(citations, 1))
        return Answer(question=question, text=text, abstained=False, citations=citations, hits=hits)
