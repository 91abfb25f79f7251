"""Heuristic extractive reader: quotes the best sentences of the top chunks verbatim, or abstains.

A sentence's score mixes its embedding similarity to the question with the share of the
question's terms (alias-expanded, script-normalized) it contains. The best score also decides
abstention: below `abstain_threshold` (calibrated on eval/questions.jsonl) the reader says the
answer is not in the documents instead of quoting something weak. It does not rerank: the hits
keep the fused retrieval order. Checks for any reader (numbers the corpus never mentions) run in
the pipeline before it (qa/checks.py).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .aliases import AliasLexicon
from .messages import display, not_found_message
from .protocols import Embedder
from .settings import Settings
from .text import fold_script, normalize
from .types import Answer, Citation, Hit


@dataclass
class ScoredSentence:
    doc: str
    start: int
    end: int
    text: str
    score: float
    chunk_id: int
    title: str = ""


class HeuristicReader:
    """A Reader (qa/protocols.py) without reranking. `corpus_text` returns the normalized text of the
    active corpus (or None), which enables the unknown-term penalty."""

    name = "heuristic"
    reranks = False

    def __init__(self, embedder: Embedder, aliases: AliasLexicon, settings: Settings, cache_size: int = 50_000,
                 corpus_text: Callable[[], str | None] | None = None):
        self.embedder, self.aliases, self.settings = embedder, aliases, settings
        self.corpus_text = corpus_text
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

    def score_sentences(self, question: str, hits: list[Hit], query_vector: np.ndarray,
                        titles: Callable[[str], str] | None = None,
                        corpus_text: str | None = None) -> list[ScoredSentence]:
        """Candidate sentences of the top chunks, best first. `corpus_text` (normalized) enables the unknown-term penalty."""
        candidates, seen = [], set()
        for rank, hit in enumerate(hits[: self.settings.reader_chunks], 1):
            chunk = hit.chunk
            for s in chunk.sentences:
                key = (chunk.doc_id, s.start, s.end)
                if key not in seen:
                    seen.add(key)
                    candidates.append((key, chunk.text[s.start - chunk.start : s.end - chunk.start], chunk.chunk_id, rank))
        if not candidates:
            return []
        vectors = self._sentence_vectors([c[0] for c in candidates], [c[1] for c in candidates])
        dense = vectors @ query_vector.astype(np.float32)
        cfg = self.settings
        concepts, entities = self.question_concepts(question)
        unknown = 0.0
        if corpus_text is not None and concepts:
            # English words never occur in a Chinese corpus; only Chinese terms, numbers and alias groups count
            checkable = [c for c in concepts if any(not a.isascii() or a.isdigit() for a in c)]
            unknown = sum(not any(a in corpus_text for a in c) for c in checkable) / len(concepts)
        scored = []
        for (key, text, chunk_id, rank), cos in zip(candidates, dense):
            folded = normalize(text)
            coverage = sum(any(a in folded for a in c) for c in concepts) / len(concepts) if concepts else 0.0
            penalty = cfg.reader_entity_miss_penalty if entities and not any(any(a in folded for a in e) for e in entities) else 0.0
            score = (float(cos) + cfg.reader_lexical_weight * coverage + cfg.reader_rank_weight / rank
                     - penalty - cfg.reader_unknown_term_penalty * unknown)
            scored.append(ScoredSentence(key[0], key[1], key[2], text, score, chunk_id, titles(key[0]) if titles else ""))
        scored.sort(key=lambda s: -s.score)
        return scored

    def question_concepts(self, question: str) -> tuple[list[set[str]], list[set[str]]]:
        """What an answer sentence should mention: one set of alternative spellings per concept
        (qa/verifier.question_concepts), and the entity concepts among them."""
        from .verifier import question_concepts

        concepts = question_concepts(question, self.aliases)
        return concepts.all, concepts.entities

    def rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        """Identity: the heuristic reader keeps the retrieval order and sets no reader_score."""
        return hits

    def read(self, question: str, hits: list[Hit], query_vector: np.ndarray,
             titles: Callable[[str], str] | None = None) -> Answer:
        corpus_text = self.corpus_text() if self.corpus_text is not None else None
        scored = self.score_sentences(question, hits, query_vector, titles, corpus_text)
        best = scored[0].score if scored else 0.0
        if not scored or best < self.settings.abstain_threshold:
            return Answer(question=question, text=not_found_message(question), abstained=True, hits=hits,
                          notice=f"best evidence score {best:.3f} is below the threshold {self.settings.abstain_threshold:.3f}",
                          confidence=best, reader=self.name)
        chosen = [s for s in scored if s.score >= best - self.settings.answer_margin][: self.settings.answer_sentences]
        citations = [Citation(doc=s.doc, start=s.start, end=s.end, text=s.text, score=s.score, title=s.title, chunk_id=s.chunk_id)
                     for s in chosen]
        text = " ".join(f"{display(c.text)} [{n}]" for n, c in enumerate(citations, 1))
        return Answer(question=question, text=text, abstained=False, citations=citations, hits=hits,
                      confidence=best, reader=self.name)
