"""One question against many passages: the reader's probability and best span for each."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .decode import best_spans, ranked_spans
from .encoder import EncodedText
from .model import ReaderModel


@dataclass
class PassageReading:
    probability: float  # that this passage answers the question
    start: int  # best span, character offsets into the passage text given to the encoder
    end: int
    span_score: float  # start + end logit of that span
    free_score: float = float("-inf")  # the best span score anywhere in the passage (equals span_score without a window)
    runners_up: list[tuple[int, int, float]] = field(default_factory=list)  # the next best spans (start, end, score) in the window


def pad_states(items: list[np.ndarray], hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in items)
    out = torch.zeros(len(items), width, hidden)
    mask = torch.zeros(len(items), width, dtype=torch.bool)
    for i, x in enumerate(items):
        out[i, : len(x)] = torch.from_numpy(x.astype(np.float32))
        mask[i, : len(x)] = True
    return out, mask


def answer_mask(passages: list[EncodedText], width: int) -> torch.Tensor:
    """Tokens an answer may start or end on: those of the passage text (not <s>, prefix, </s>, padding)."""
    mask = torch.zeros(len(passages), width, dtype=torch.bool)
    for i, p in enumerate(passages):
        mask[i, : len(p.starts)] = torch.from_numpy(p.starts >= 0)
    return mask


@torch.inference_mode()
def read_passages(model: ReaderModel, question: EncodedText, passages: list[EncodedText],
                  windows: list[tuple[int, int] | None] | None = None, runners_up: int = 0) -> list[PassageReading]:
    """`windows`: per passage, an optional [start, end) character range the span must lie in (a sentence).
    `runners_up`: also return that many next best spans, for a caller that may reject the best one.

    Each passage is read alone, unpadded, so that its reading does not depend on what else is asked for in
    the same call: a batch would pad it to its neighbours' length and, with the opt-in int8 layers, quantize it
    with their activation scale (measured on 4 corpus passages: int8 batched vs alone moved scores by up to
    0.13 logits and 3 of 4 spans; float32 by 5e-7). On 2 CPU cores reading alone costs no more than a batch."""
    hidden = model.config["hidden"]
    q, qm = pad_states([question.states], hidden)  # the same question states for every passage
    return [_read_one(model, q, qm, enc, window, runners_up, hidden)
            for enc, window in zip(passages, windows or [None] * len(passages))]


def _read_one(model: ReaderModel, q: torch.Tensor, qm: torch.Tensor, enc: EncodedText,
              window: tuple[int, int] | None, runners_up: int, hidden: int) -> PassageReading:
    """One (question, passage) pair, as a batch of one."""
    p, pm = pad_states([enc.states], hidden)
    start, end, answerable, null = model(q, qm, p, pm)
    valid = answer_mask([enc], p.shape[1])
    neg = torch.finfo(start.dtype).min
    _, _, free = best_spans(start.masked_fill(~valid, neg), end.masked_fill(~valid, neg))
    if model.config.get("null_slot"):
        # P(answer) = sigmoid(best span score - no-answer score), over the whole passage (not the window).
        probability = float(torch.sigmoid(free - null.sum(dim=-1))[0])
    else:
        probability = float(torch.sigmoid(answerable)[0])
    if window is not None:
        inside = torch.from_numpy((enc.starts >= window[0]) & (enc.ends <= window[1]) & (enc.starts >= 0))
        if bool(inside.any()):
            valid[0, : len(enc.starts)] &= inside
    s_idx, e_idx, score = ranked_spans(start.masked_fill(~valid, neg), end.masked_fill(~valid, neg), 1 + runners_up)
    spans = [(int(enc.starts[s]), int(max(enc.ends[e], enc.starts[s])), float(v))
             for s, e, v in zip(s_idx[0].tolist(), e_idx[0].tolist(), score[0].tolist())
             if enc.starts[s] >= 0 and enc.ends[e] >= 0 and v > neg / 2]
    if not spans:  # a passage with no text tokens
        return PassageReading(probability, 0, 0, float("-inf"))
    (span_start, span_end, span_score), rest = spans[0], spans[1:]
    return PassageReading(probability, span_start, span_end, span_score, float(free[0]), rest)
