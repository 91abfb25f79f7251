"""The two seams of the pipeline, as Protocols: what an embedder and a reader must offer.

`qa.embedding.Embedder` (sentence-transformers) and the eval's `CachingEmbedder` are Embedders;
`qa.reader.HeuristicReader` and the trained reader (`qa.neural.reader`) are Readers.
`QAService.ask` (qa/pipeline.py) drives a Reader: retrieve -> checks -> rerank -> read.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np

from .types import Answer, Hit


class ReaderUnavailableError(RuntimeError):
    """The requested reader cannot be loaded (unknown name, or qa.neural.reader missing); the message says what to do."""


@runtime_checkable
class Embedder(Protocol):
    model_id: str  # recorded in the index manifest; a different model means re-embedding
    dim: int
    max_tokens: int  # the model's max sequence length

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """L2-normalized float32 vectors, one row per text (query prompt applied)."""
        ...

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """L2-normalized float32 vectors, one row per text (document prompt applied)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` (special tokens included, no prompt, no truncation)."""
        ...


@runtime_checkable
class Reader(Protocol):
    name: str  # "heuristic" | "neural"
    reranks: bool  # True: QAService.ask retrieves max(top_k, reader_candidates) hits and calls rerank()

    def rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        """The same hits, best first, each with hit.reader_score set (None allowed for readers that do not rerank)."""
        ...

    def read(self, question: str, hits: list[Hit], query_vector: np.ndarray,
             titles: Callable[[str], str] | None = None) -> Answer:
        """A cited answer from the hits, or an abstention; Answer.confidence = the reader's best score."""
        ...
