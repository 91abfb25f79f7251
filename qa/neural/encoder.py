"""e5's lower layers, run on a question or a passage alone, with token offsets into the original text.

The reader's first stage is the bundled multilingual-e5-small itself: its embeddings and first
`lower_layers` layers read a text on its own ("query: " / "passage: " prefixes, script-folded text,
exactly what the embedder sees), so a passage's states can be computed once, at index time or in a
training cache, and reused for every question.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .align import fold_with_offsets
from .layers import EncoderLayer

QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "
MAX_QUESTION_TOKENS = 64
MAX_PASSAGE_TOKENS = 512


@dataclass
class EncodedText:
    """A text read by the lower layers. `starts`/`ends` are character offsets into the ORIGINAL text,
    -1 for tokens that are not part of it (<s>, the prefix, </s>)."""

    ids: np.ndarray  # int32 [T]
    starts: np.ndarray  # int32 [T]
    ends: np.ndarray  # int32 [T]
    states: np.ndarray  # float16 [T, H]


def tokenize(tokenizer, text: str, prefix: str, max_tokens: int):
    """Token ids and original-text offsets of prefix + fold_script(text)."""
    folded, origin = fold_with_offsets(text)
    enc = tokenizer(prefix + folded, truncation=True, max_length=max_tokens, return_offsets_mapping=True,
                    add_special_tokens=True)
    ids = np.asarray(enc["input_ids"], dtype=np.int32)
    starts = np.full(len(ids), -1, dtype=np.int32)
    ends = np.full(len(ids), -1, dtype=np.int32)
    p = len(prefix)
    for i, (a, b) in enumerate(enc["offset_mapping"]):
        if b <= p or b <= a:  # special tokens (0, 0) and the prefix
            continue
        a, b = max(a, p) - p, b - p
        starts[i], ends[i] = origin[a], origin[b - 1] + 1
    return ids, starts, ends


class LowerEncoder:
    """Runs e5's embeddings (shared with the embedder, not copied) and its first `layers` layers."""

    def __init__(self, bert, tokenizer, layers: int):
        self.tokenizer = tokenizer
        self.layers = layers
        self.embeddings = bert.embeddings
        eps = float(bert.config.layer_norm_eps)
        self.blocks = torch.nn.ModuleList(EncoderLayer.from_bert(layer, eps) for layer in bert.encoder.layer[:layers]).eval()
        self.hidden = int(bert.config.hidden_size)

    @classmethod
    def from_embedder(cls, embedder, layers: int) -> "LowerEncoder":
        st = embedder.model
        return cls(st[0].auto_model, st.tokenizer, layers)

    @torch.inference_mode()
    def run(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids=ids)
        for block in self.blocks:
            x = block(x, mask)
        return x

    def tokenize(self, text: str, kind: str):
        prefix, limit = (QUERY_PREFIX, MAX_QUESTION_TOKENS) if kind == "query" else (PASSAGE_PREFIX, MAX_PASSAGE_TOKENS)
        return tokenize(self.tokenizer, text, prefix, limit)

    @torch.inference_mode()
    def encode(self, texts: list[str], kind: str, batch_size: int = 32) -> list[EncodedText]:
        toks = [self.tokenize(t, kind) for t in texts]
        out: list[EncodedText | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(toks[i][0]))
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            width = max(len(toks[i][0]) for i in idx)
            ids = torch.full((len(idx), width), 1, dtype=torch.long)  # 1 = <pad>
            mask = torch.zeros((len(idx), width), dtype=torch.bool)
            for r, i in enumerate(idx):
                n = len(toks[i][0])
                ids[r, :n] = torch.from_numpy(toks[i][0].astype(np.int64))
                mask[r, :n] = True
            states = self.run(ids, mask)
            for r, i in enumerate(idx):
                n = len(toks[i][0])
                out[i] = EncodedText(toks[i][0], toks[i][1], toks[i][2], states[r, :n].to(torch.float16).numpy())
        return out  # type: ignore[return-value]
