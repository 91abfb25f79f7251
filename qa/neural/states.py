"""Passage states for the reader, computed once: at index time inside the embedding pass, or on demand.

`StatefulEmbedder` wraps the bundled e5 embedder for indexing. One forward pass gives both the
retrieval vector (mean-pooled last layer, as sentence-transformers computes it) and the lower-layer
states the reader needs, so indexing with the reader costs no second pass.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch

from ..fast_embed import STATE_LAYER
from .encoder import MAX_PASSAGE_TOKENS, PASSAGE_PREFIX


class StateCache:
    """folded passage text -> (token ids, float16 states), least recently used out past `max_tokens`."""

    def __init__(self, max_tokens: int = 2_000_000):
        self.max_tokens = max_tokens
        self.tokens = 0
        self._items: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str):
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, ids: np.ndarray, states: np.ndarray) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (ids, states)
            self.tokens += len(ids)
            while self.tokens > self.max_tokens and self._items:
                _, (old_ids, _) = self._items.popitem(last=False)
                self.tokens -= len(old_ids)

    def __len__(self) -> int:
        return len(self._items)


class StatefulEmbedder:
    """An Embedder (qa/protocols.py) for indexing: document vectors plus reader states in one pass.

    Queries and token counting go to the wrapped embedder unchanged.
    """

    def __init__(self, embedder, cache: StateCache, layer: int):
        self.inner, self.cache, self.layer = embedder, cache, layer
        self.model_id, self.dim, self.max_tokens = embedder.model_id, embedder.dim, embedder.max_tokens
        self.backend = getattr(embedder, "backend", "")
        self.batch_size = getattr(embedder, "batch_size", 16)
        st = embedder.model
        self.bert, self.tokenizer = st[0].auto_model, st.tokenizer

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_queries(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    @torch.inference_mode()
    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """`texts` are already script-folded (as build_index passes them)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        runner = getattr(self.inner, "runner", None)
        if runner is not None and self.layer == STATE_LAYER:  # the fast path (qa/fast_embed.py): sorted batches
            vectors, kept = runner.encode([PASSAGE_PREFIX + t for t in texts], MAX_PASSAGE_TOKENS,
                                          self.batch_size, states=True)
            for text, (ids, states) in zip(texts, kept):
                self.cache.put(text, ids, states)
            return vectors
        enc = self.tokenizer([PASSAGE_PREFIX + t for t in texts], truncation=True, max_length=MAX_PASSAGE_TOKENS,
                             padding=True, return_tensors="pt")
        out = self.bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)
        lower = out.hidden_states[self.layer]
        for i, text in enumerate(texts):
            n = int(enc["attention_mask"][i].sum())
            self.cache.put(text, enc["input_ids"][i, :n].numpy().astype(np.int32), lower[i, :n].to(torch.float16).numpy())
        return vectors
