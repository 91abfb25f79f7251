"""Validation of a reader on held-out questions: closed span F1/EM and a calibrated refusal threshold.

closed: the question's own paragraph is given (all its chunks); the reader picks the chunk it
  finds most likely to answer and quotes its best span. Scored with CMRC 2018's char F1/EM.
answer removed: the same question over the chunks of its paragraph that do not contain a gold
  answer plus the chunks of the next paragraph; the reader should find nothing.
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


def validate(model: ReaderModel, rs: ReadingSet, bank: StateBank, cut: ReadingSet | None = None) -> dict:
    paragraphs = list(rs.paragraph_chunks)
    next_paragraph = {p: paragraphs[(i + 1) % len(paragraphs)] for i, p in enumerate(paragraphs)}
    f1s, ems, pos, negs, cut_pos, cut_negs = [], [], [], [], [], []
    for q in rs.questions.values():
        if not q.answers:
            continue
        gold = rs.paragraph_chunks[q.paragraph]
        golds = [normalize(a) for a in q.answers]
        removed = [k for k in gold if not any(g in normalize(rs.chunks[k].text) for g in golds)]
        removed += [k for k in rs.paragraph_chunks[next_paragraph[q.paragraph]]
                    if not any(g in normalize(rs.chunks[k].text) for g in golds)]
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
