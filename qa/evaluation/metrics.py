"""Retrieval and answer metrics over per-question records, as small classes (FlashRAG-evaluator style).

Every metric has a `name` and `score(records) -> float`: the mean over the records it applies to, or
float("nan") when none apply. `evaluate` / `evaluate_by_slice` gather them into JSON-safe dicts (NaN -> None).

Relevance: a retrieved passage is relevant to a question when it contains any of the question's
evidence strings, both compared with `normalize_for_match` (Traditional/Simplified and width folded,
whitespace dropped). Retrieval metrics apply to answerable questions that have evidence.
A record may instead carry `relevant` (one bool per retrieved passage, judged by the caller, e.g.
"the passage comes from the question's source paragraph" for SQuAD-style benchmarks); when given,
it overrides the substring test.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Protocol, Sequence

import numpy as np

from .questions import EvalQuestion, normalize_for_match


@dataclass
class EvalRecord:
    question: EvalQuestion
    retrieved: list[str]  # ranked passage texts, best first
    answer: str
    abstained: bool
    latency_s: float
    relevant: list[bool] | None = None  # optional per-passage relevance; overrides the evidence substring test
    passage_ids: list[str] = field(default_factory=list)  # "doc_id:start-end" per retrieved passage (records.jsonl)
    span: tuple[str, int, int] | None = None  # (doc, start, end) of the reader's answer span, if it marked one
    confidence: float | None = None  # the reader's best score
    short_answer: str | None = None  # the reader's answer span text, when it marks one: span metrics score it


class Metric(Protocol):
    name: str

    def score(self, records: list[EvalRecord]) -> float: ...


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else float("nan")


def contains_evidence(passage: str, evidence: Sequence[str]) -> bool:
    """True when `passage` contains any evidence string (script/width/case/whitespace-insensitive)."""
    norm_passage = normalize_for_match(passage)
    return any(norm_ev and norm_ev in norm_passage for norm_ev in (normalize_for_match(e) for e in evidence))


def first_relevant_rank(record: EvalRecord, k: int | None = None) -> int | None:
    """1-based rank of the first retrieved passage containing evidence (within top-k), or None."""
    passages = record.retrieved if k is None else record.retrieved[:k]
    for rank, passage in enumerate(passages, 1):
        if record.relevant is not None:
            if rank <= len(record.relevant) and record.relevant[rank - 1]:
                return rank
        elif contains_evidence(passage, record.question.evidence):
            return rank
    return None


def _retrieval_records(records: Sequence[EvalRecord]) -> list[EvalRecord]:
    return [r for r in records if r.question.answerable and r.question.evidence]


class RecallAtK:
    """Share of answerable questions with evidence in any of the top-k passages (hit rate)."""

    def __init__(self, k: int):
        if k < 1:
            raise ValueError("k must be >= 1")
        self.k = k
        self.name = f"recall@{k}"

    def score(self, records: list[EvalRecord]) -> float:
        return _mean(1.0 if first_relevant_rank(r, self.k) else 0.0 for r in _retrieval_records(records))


class MRR:
    """Mean reciprocal rank of the first passage containing evidence (0 when none); answerable only."""

    name = "mrr"

    def score(self, records: list[EvalRecord]) -> float:
        values = []
        for r in _retrieval_records(records):
            rank = first_relevant_rank(r)
            values.append(1.0 / rank if rank else 0.0)
        return _mean(values)


class NDCGAtK:
    """nDCG@k with binary relevance (passage contains evidence).

    Choice: each question asks for one fact, so the ideal ranking holds ONE relevant passage at rank 1
    (IDCG = 1) and only the first relevant passage earns gain; further passages repeating the evidence
    (overlapping chunks, the same fact in the other document) add nothing. nDCG@k is then
    1 / log2(1 + rank of the first relevant passage) when that rank <= k, else 0 -- always in [0, 1],
    and never penalizing a ranking for retrieving a duplicate below the first hit.
    """

    def __init__(self, k: int = 10):
        if k < 1:
            raise ValueError("k must be >= 1")
        self.k = k
        self.name = f"ndcg@{k}"

    def score(self, records: list[EvalRecord]) -> float:
        values = []
        for r in _retrieval_records(records):
            rank = first_relevant_rank(r, self.k)
            values.append(1.0 / math.log2(1 + rank) if rank else 0.0)
        return _mean(values)


def answer_is_correct(record: EvalRecord) -> bool | None:
    """Keyword judgement; None when the question gives nothing to judge an answer by."""
    q = record.question
    if not q.answerable:
        return record.abstained
    targets = q.answer_keywords or q.gold_answers
    if not targets:
        return None
    if record.abstained:
        return False
    answer = normalize_for_match(record.answer or "")
    return any(normalize_for_match(t) and normalize_for_match(t) in answer for t in targets)


class AnswerAccuracy:
    """Answerable: not abstained and the answer contains any keyword (else any gold answer), normalized.
    Unanswerable: correct when abstained. Answerable questions with neither keywords nor gold answers are skipped."""

    name = "answer_accuracy"

    def score(self, records: list[EvalRecord]) -> float:
        verdicts = [answer_is_correct(r) for r in records]
        return _mean(1.0 if v else 0.0 for v in verdicts if v is not None)


# --- CMRC 2018 official evaluation (cmrc2018_evaluate.py, v5) ------------------------------------------
# The official script lowercases, strips, drops the punctuation in `sp_char`, splits CJK characters
# one by one and other runs with nltk.word_tokenize, then takes the longest common *substring* (not
# subsequence) of the two token lists: p = lcs/len(pred), r = lcs/len(gold), max F1 over gold answers.
# EM compares the punctuation-stripped strings. Differences here (documented, deliberate):
#   * besides the official `sp_char`, every Unicode punctuation character (category P*) and all
#     whitespace is removed -- our corpus writes ASCII commas inside Chinese text;
#   * non-CJK runs are split with a regex (words / single symbols) instead of nltk.word_tokenize;
#   * CJK = U+3400-U+9FFF and U+F900-U+FAFF (the official regex covers U+4E00-U+9FA5).
_CMRC_SP_CHAR = set(
    "-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』"
)  # the official list (its two-character "……" can never match a single character)
_CJK_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def _is_removed(char: str) -> bool:
    return char in _CMRC_SP_CHAR or char.isspace() or unicodedata.category(char).startswith("P")


def cmrc_remove_punctuation(text: str) -> str:
    return "".join(c for c in str(text).lower().strip() if not _is_removed(c))


def cmrc_segment(text: str) -> list[str]:
    """CJK characters one by one; other runs as word tokens; punctuation and whitespace removed."""
    out: list[str] = []
    run = ""
    for char in str(text).lower().strip():
        if _is_removed(char):
            if char.isspace():
                run += " "
            continue
        if _CJK_RE.match(char):
            if run.strip():
                out.extend(_TOKEN_RE.findall(run))
            run = ""
            out.append(char)
        else:
            run += char
    if run.strip():
        out.extend(_TOKEN_RE.findall(run))
    return out


def _longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for i in range(len(a)):
        cur = [0] * (len(b) + 1)
        for j in range(len(b)):
            if a[i] == b[j]:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def cmrc_f1(prediction: str, gold_answers: Sequence[str]) -> float:
    scores = [0.0]
    pred = cmrc_segment(prediction)
    for gold in gold_answers:
        ref = cmrc_segment(gold)
        lcs = _longest_common_substring(ref, pred)
        if lcs == 0:
            continue
        precision, recall = lcs / len(pred), lcs / len(ref)
        scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def cmrc_em(prediction: str, gold_answers: Sequence[str]) -> float:
    pred = cmrc_remove_punctuation(prediction)
    return 1.0 if any(cmrc_remove_punctuation(g) == pred for g in gold_answers) else 0.0


class _SpanMetric:
    """Mean of a span score over questions with gold_answers; an abstention scores 0.

    The prediction is the record's short answer (the reader's bold span) when it has one, else the
    whole answer text (the heuristic reader quotes whole sentences)."""

    name = ""

    @staticmethod
    def compare(prediction: str, gold_answers: Sequence[str]) -> float:
        raise NotImplementedError

    def score(self, records: list[EvalRecord]) -> float:
        return _mean(
            0.0 if r.abstained else self.compare(r.short_answer if r.short_answer is not None else (r.answer or ""),
                                                 r.question.gold_answers)
            for r in records
            if r.question.gold_answers
        )


class CharF1(_SpanMetric):
    """CMRC 2018 character F1 (see above)."""

    name = "char_f1"
    compare = staticmethod(cmrc_f1)


class ExactMatch(_SpanMetric):
    """CMRC 2018 exact match after punctuation/whitespace removal."""

    name = "exact_match"
    compare = staticmethod(cmrc_em)


class RefusalPrecision:
    """Of the abstentions, the share on unanswerable questions (positive class = should abstain)."""

    name = "refusal_precision"

    def score(self, records: list[EvalRecord]) -> float:
        return _mean(0.0 if r.question.answerable else 1.0 for r in records if r.abstained)


class RefusalRecall:
    """Of the unanswerable questions, the share the system abstained on."""

    name = "refusal_recall"

    def score(self, records: list[EvalRecord]) -> float:
        return _mean(1.0 if r.abstained else 0.0 for r in records if not r.question.answerable)


class LatencyPercentile:
    """p-th percentile of latency_s in seconds (linear interpolation, numpy default); NaN latencies skipped."""

    def __init__(self, p: float):
        if not 0 <= p <= 100:
            raise ValueError("p must be in [0, 100]")
        self.p = p
        self.name = f"latency_p{p:g}_s"

    def score(self, records: list[EvalRecord]) -> float:
        values = [float(r.latency_s) for r in records if r.latency_s is not None and not math.isnan(r.latency_s)]
        return float(np.percentile(values, self.p)) if values else float("nan")


def _json_safe(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def default_metrics(ks: Sequence[int] = (1, 3, 5, 10)) -> list[Metric]:
    return [
        *(RecallAtK(k) for k in ks),
        MRR(),
        NDCGAtK(10),
        AnswerAccuracy(),
        CharF1(),
        ExactMatch(),
        RefusalPrecision(),
        RefusalRecall(),
        LatencyPercentile(50),
        LatencyPercentile(95),
    ]


def per_record(record: EvalRecord, ks: Sequence[int] = (1, 3, 5, 10)) -> dict:
    """Every metric that applies to one record (None where it does not), for records.jsonl."""
    out = {m.name: _json_safe(m.score([record])) for m in default_metrics(ks) if not isinstance(m, LatencyPercentile)}
    out["latency_s"] = _json_safe(float(record.latency_s))
    return out


def evaluate(records: Sequence[EvalRecord], ks: Sequence[int] = (1, 3, 5, 10)) -> dict:
    """{"n", "recall@k"..., "mrr", "ndcg@10", "answer_accuracy", "char_f1", "exact_match",
    "refusal_precision", "refusal_recall", "latency_p50_s", "latency_p95_s"}; NaN reported as None."""
    records = list(records)
    result: dict = {"n": len(records)}
    for metric in default_metrics(ks):
        result[metric.name] = _json_safe(metric.score(records))
    return result


def evaluate_by_slice(records: Sequence[EvalRecord], ks: Sequence[int] = (1, 3, 5, 10)) -> dict[str, dict]:
    """{"overall": evaluate(all), "<lang>": evaluate(records of that question language), ...}."""
    records = list(records)
    out = {"overall": evaluate(records, ks)}
    for lang in sorted({r.question.lang for r in records}):
        out[lang] = evaluate([r for r in records if r.question.lang == lang], ks)
    return out
