"""Validation of a reader on held-out questions: closed span F1/EM and a calibrated refusal threshold.

closed: the question's own paragraph is given (all its chunks); the reader picks the chunk it
  finds most likely to answer and quotes its best span. Scored with CMRC 2018's char F1/EM.
answer removed: the same question over the chunks of its paragraph that do not contain a gold
  answer plus the chunks of the next paragraph; the reader should find nothing. The AUC is also given
  per kind of negative, since each fails differently: the same paragraph without the answer, the next
  paragraph of the same article, a paragraph of another article.
The threshold is the cut on the best probability that maximizes accuracy over both kinds
(answer when above, abstain when below), so it is calibrated on validation data only.
sentence removed (when a cut set is given, qa/training/data.answer_sentence_cut): the question over
  its own paragraph with the answer's sentence cut out; reported at that threshold and as an AUC
  against the closed readings, the hardest kind of refusal.
"""

from __future__ import annotations

import numpy as np

from ..evaluation.metrics import cmrc_em, cmrc_f1
from ..neural.model import ReaderModel
from ..neural.reading import read_passages
from ..text import normalize
from .cache import StateBank
from .data import ReadingSet


NEGATIVE_KINDS = ("same_paragraph", "same_article", "other_article")


def validate(model: ReaderModel, rs: ReadingSet, bank: StateBank, cut: ReadingSet | None = None) -> dict:
    paragraphs = list(rs.paragraph_chunks)
    next_paragraph = {p: paragraphs[(i + 1) % len(paragraphs)] for i, p in enumerate(paragraphs)}
    f1s, ems, pos, negs, cut_pos, cut_negs = [], [], [], [], [], []
    by_kind: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in NEGATIVE_KINDS}
    for q in rs.questions.values():
        if not q.answers:
            continue
        gold = rs.paragraph_chunks[q.paragraph]
        golds = [normalize(a) for a in q.answers]
        removed = [k for k in gold if not any(g in normalize(rs.chunks[k].text) for g in golds)]
        kinds = ["same_paragraph"] * len(removed)
        after = next_paragraph[q.paragraph]
        after_kind = "same_article" if rs.paragraph_article.get(after) == rs.paragraph_article.get(q.paragraph) else "other_article"
        if after != q.paragraph:
            more = [k for k in rs.paragraph_chunks[after] if not any(g in normalize(rs.chunks[k].text) for g in golds)]
            removed += more
            kinds += [after_kind] * len(more)
        keys = gold + removed
        readings = read_passages(model, bank.items[f"q:{rs.name}:{q.qid}"], [bank.items[f"p:{rs.name}:{k}"] for k in keys])
        closed = readings[: len(gold)]
        best = max(range(len(closed)), key=lambda i: closed[i].probability)
        chunk = rs.chunks[gold[best]]
        prediction = chunk.text[closed[best].start : closed[best].end]
        f1s.append(cmrc_f1(prediction, q.answers))
        ems.append(cmrc_em(prediction, q.answers))
        pos.append(closed[best].probability)
        if removed:
            negs.append(max(r.probability for r in readings[len(gold) :]))
        for kind in set(kinds):
            by_kind[kind][0].append(closed[best].probability)
            by_kind[kind][1].append(max(r.probability for r, k in zip(readings[len(gold) :], kinds) if k == kind))
        if cut is not None and q.qid in cut.questions:
            key = cut.questions[q.qid].paragraph
            reading = read_passages(model, bank.items[f"q:{rs.name}:{q.qid}"], [bank.items[f"p:{cut.name}:{key}"]])[0]
            cut_pos.append(closed[best].probability)
            cut_negs.append(reading.probability)
    threshold, accuracy = calibrate(pos, negs)
    refused = sum(p < threshold for p in negs)
    wrongly_refused = sum(p < threshold for p in pos)
    return {
        "questions": len(f1s), "closed_f1": round(100 * float(np.mean(f1s)), 2), "closed_em": round(100 * float(np.mean(ems)), 2),
        "threshold": round(threshold, 4), "decision_accuracy": round(accuracy, 4),
        "refusal_recall": round(refused / max(1, len(negs)), 4),
        "refusal_precision": round(refused / max(1, refused + wrongly_refused), 4),
        "removed_questions": len(negs), "removed_auc": round(auc(pos, negs), 4),
        **{f"{kind}_auc": round(auc(*by_kind[kind]), 4) for kind in NEGATIVE_KINDS if by_kind[kind][1]},
        **{f"{kind}_questions": len(by_kind[kind][1]) for kind in NEGATIVE_KINDS},
        **({"sentence_removed_questions": len(cut_negs), "sentence_removed_auc": round(auc(cut_pos, cut_negs), 4),
            "sentence_removed_recall": round(sum(p < threshold for p in cut_negs) / max(1, len(cut_negs)), 4)}
           if cut is not None else {}),
    }


def auc(positives: list[float], negatives: list[float]) -> float:
    """P(a positive scores above a negative), ties counting half; 0.5 when either side is empty."""
    if not positives or not negatives:
        return 0.5
    pos, neg = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def calibrate(positives: list[float], negatives: list[float], balanced: bool = False) -> tuple[float, float]:
    """The probability cut with the best answer/abstain accuracy (midpoint between observed scores).

    balanced: the mean of the answer rate on positives and the abstain rate on negatives, so that the
    larger group does not decide the cut (the answer verifier's rule)."""
    scores = sorted(set(positives) | set(negatives))
    cuts = [0.0] + [(a + b) / 2 for a, b in zip(scores, scores[1:])] + [1.0]
    pos, neg = np.asarray(positives), np.asarray(negatives)
    best = (0.5, -1.0)
    for t in cuts:
        if balanced:
            acc = (float((pos >= t).mean()) + float((neg < t).mean())) / 2
        else:
            acc = (float((pos >= t).sum()) + float((neg < t).sum())) / max(1, len(pos) + len(neg))
        if acc > best[1]:
            best = (t, acc)
    return best
