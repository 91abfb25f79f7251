"""From start/end logits to the best answer span of each passage."""

from __future__ import annotations

import torch

MAX_ANSWER_TOKENS = 48  # "why"/"how" answers are clauses; CMRC answers rarely pass 30 tokens


def _pair_scores(start: torch.Tensor, end: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """[B, T*T] scores start[i] + end[j] of every span i <= j < i + max_tokens (others very negative)."""
    t = start.shape[1]
    pair = start[:, :, None] + end[:, None, :]
    idx = torch.arange(t)
    band = (idx[None, :] >= idx[:, None]) & (idx[None, :] < idx[:, None] + max_tokens)
    return pair.masked_fill(~band[None], torch.finfo(pair.dtype).min).reshape(pair.shape[0], -1)


def best_spans(start: torch.Tensor, end: torch.Tensor, max_tokens: int = MAX_ANSWER_TOKENS):
    """start, end: [B, T] logits (invalid positions already very negative).

    Returns (start_index [B], end_index [B], score [B]) maximizing start[i] + end[j], i <= j < i + max_tokens.
    """
    t = start.shape[1]
    score, arg = _pair_scores(start, end, max_tokens).max(dim=1)
    return arg // t, arg % t, score


def ranked_spans(start: torch.Tensor, end: torch.Tensor, k: int, max_tokens: int = MAX_ANSWER_TOKENS):
    """The k best spans of each row, best first: (start_index [B, k], end_index [B, k], score [B, k])."""
    t = start.shape[1]
    flat = _pair_scores(start, end, max_tokens)
    score, arg = flat.topk(min(k, flat.shape[1]), dim=1)
    return arg // t, arg % t, score
