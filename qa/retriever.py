"""Hybrid retrieval: dense (inner product) + BM25 with alias expansion, fused by RRF; any store (qa/stores)."""

from __future__ import annotations

from collections.abc import Collection

from .aliases import AliasLexicon
from .dedup import unique_hits
from .fusion import reciprocal_rank_fusion
from .loader import detect_script
from .protocols import Embedder
from .settings import Settings
from .stores.base import IndexView
from .text import fold_script
from .types import Hit

MODES = ("hybrid", "dense", "sparse")
# With a document filter each retriever looks this much deeper (at least FILTER_DEPTH passages, at most the whole
# index), so that passages of the chosen documents are found even when others rank above them.
FILTER_WIDENING = 10
FILTER_DEPTH = 1000


class HybridRetriever:
    def __init__(self, index: IndexView, embedder: Embedder, aliases: AliasLexicon, settings: Settings):
        self.index, self.embedder, self.aliases, self.settings = index, embedder, aliases, settings

    def embed_query(self, query: str):
        return self.embedder.encode_queries([fold_script(query)])[0]

    def sparse_query(self, query: str) -> str:
        """The BM25 query: the question, its entities' aliases and, for an English question, its dictionary terms
        (qa/dictionary.py: CC-CEDICT read backwards, romanized names matched to the corpus's words)."""
        english = self.settings.english_dictionary and detect_script(query) == "en"
        if english:  # "Who founded X?" also asks for X's founder (创始人)
            from .dictionary import doer_spellings, expand

            query = " ".join([query, *doer_spellings(query, self.aliases)])
        expanded = self.aliases.expand(query)
        if english:
            known = [name for group in self.aliases.groups_in(query) for name in group]
            expanded = expand(expanded, self.index, known)
        return expanded

    def retrieve(self, query: str, top_k: int | None = None, mode: str = "hybrid", query_vector=None,
                 documents: Collection[str] | None = None) -> list[Hit]:
        """Top-k chunks for the query. `mode` selects a baseline: "dense" or "sparse" alone.

        `documents`: only passages of these doc ids (filtered before fusion and de-duplication, so a passage
        is not dropped as the copy of one from a document that was not asked for).
        """
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; choose one of {MODES}")
        k = top_k or self.settings.top_k
        n = self.settings.candidates
        if documents is not None:
            n = min(self.index.count(), max(FILTER_WIDENING * n, FILTER_DEPTH))
        dense = sparse = []
        if mode in ("hybrid", "dense"):
            vector = self.embed_query(query) if query_vector is None else query_vector
            dense = self.index.dense_search(vector, n)
        if mode in ("hybrid", "sparse"):
            sparse = self.index.sparse_search(self.sparse_query(query), n)
        if documents is not None:
            wanted = set(documents)
            dense = [(i, s) for i, s in dense if self.index.chunks[i].doc_id in wanted]
            sparse = [(i, s) for i, s in sparse if self.index.chunks[i].doc_id in wanted]
        if mode == "dense":
            return self._unique([Hit(self.index.chunks[i], s, dense_rank=r) for r, (i, s) in enumerate(dense, 1)], k)
        if mode == "sparse":
            return self._unique([Hit(self.index.chunks[i], s, sparse_rank=r) for r, (i, s) in enumerate(sparse, 1)], k)
        dense_ranks = {i: r for r, (i, _) in enumerate(dense, 1)}
        sparse_ranks = {i: r for r, (i, _) in enumerate(sparse, 1)}
        fused = reciprocal_rank_fusion([[i for i, _ in dense], [i for i, _ in sparse]], k=self.settings.rrf_k,
                                       weights=[self.settings.dense_weight, self.settings.sparse_weight])
        return self._unique([Hit(self.index.chunks[i], score, dense_ranks.get(i), sparse_ranks.get(i)) for i, score in fused], k)

    def _unique(self, hits: list[Hit], k: int) -> list[Hit]:
        """Top k without two copies of one passage (e.g. the same article in both scripts)."""
        return unique_hits(hits, k, self.settings.passage_duplicate_threshold)
