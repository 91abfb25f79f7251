"""From start/end logits to the best answer span of each passage."""

from __future__ import annotations

import torch

MAX_ANSWER_TOKENS = 48  # "why"/"how" answers are clauses; CMRC answers rarely pass 30 tokens


def best_spans(start: torch.Tensor, end: torch.Tensor, max_tokens: int = MAX_ANSWER_TOKENS):
    """start, end: [B, T] logits (invalid positions already very negative).

    Returns (start_index [B], end_index [B], score [B]) maximizing start[i] + end[j], i <= j < i + max_tokens.
    """
    t = start.shape[1]
    pair = start[:, :, None] + end[:, None, :]
    idx = torch.arange(t)
    band = (idx[None, :] >= idx[:, None]) & (idx[None, :] < idx[:, None] + max_tokens)
    pair = pair.masked_fill(~band[None], torch.finfo(pair.dtype).min)
    flat = pair.reshape(pair.shape[0], -1)
    score, arg = flat.max(dim=1)
    return arg // t, arg % t, score
