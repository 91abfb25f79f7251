"""`qa eval --calibrate`: sweep abstain_threshold and the dense RRF weight on the seed set only.

A private service that never abstains reads each question once per weight; the reader's best score
(`Answer.confidence`) and answer are kept, and the threshold is swept offline over the cuts between
observed scores.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..settings import settings_from_args
from .args import UsageError, parse_ks, parse_weights, slug
from .cache import CachingEmbedder
from .datasets import DEFAULT_QUESTIONS, read_question_set
from .metrics import EvalRecord, answer_is_correct, evaluate_by_slice
from .questions import EvalQuestion
from .report import DEFAULT_OUT, fmt
from .run import answer_text, open_current


@dataclass
class _Probe:
    question: EvalQuestion
    best: float  # the reader's confidence (-inf: nothing to read, or a check abstained: always abstains)
    answer: str
    retrieved: list[str]


def _refusal_f1(records: list[EvalRecord]) -> float:
    tp = sum(1 for r in records if r.abstained and not r.question.answerable)
    fp = sum(1 for r in records if r.abstained and r.question.answerable)
    fn = sum(1 for r in records if not r.abstained and not r.question.answerable)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _records_at(probes: list[_Probe], threshold: float) -> list[EvalRecord]:
    out = []
    for p in probes:
        abstained = p.best < threshold
        out.append(EvalRecord(p.question, p.retrieved, "" if abstained else p.answer, abstained, float("nan")))
    return out


def _sweep(probes: list[_Probe]) -> list[dict]:
    """Accuracy and refusal F1 at thresholds between consecutive best scores (decisions change only there)."""
    scores = sorted({p.best for p in probes if math.isfinite(p.best)})
    if not scores:
        return []
    cuts = [scores[0] - 0.01] + [(a + b) / 2 for a, b in zip(scores, scores[1:])] + [scores[-1] + 0.01]
    rows = []
    for t in cuts:
        recs = _records_at(probes, t)
        verdicts = [answer_is_correct(r) for r in recs]
        judged = [v for v in verdicts if v is not None]
        rows.append({"threshold": round(t, 4), "answer_accuracy": sum(judged) / len(judged) if judged else float("nan"),
                     "refusal_f1": _refusal_f1(recs), "abstained": sum(r.abstained for r in recs)})
    return rows


def _best_row(rows: list[dict]) -> dict:
    top = max((r["answer_accuracy"], r["refusal_f1"]) for r in rows)
    tied = [r for r in rows if (r["answer_accuracy"], r["refusal_f1"]) == top]
    return tied[(len(tied) - 1) // 2]  # the middle of the tied thresholds: furthest from both edges


def run_calibration(args, service=None) -> int:
    from ..pipeline import QAService

    if getattr(args, "squad", None):
        raise UsageError("--calibrate tunes on the seed question set only, never on a public benchmark")
    path = Path(args.questions) if args.questions else DEFAULT_QUESTIONS
    questions = read_question_set(path)
    if args.limit is not None:
        questions = questions[: max(0, args.limit)]
    if not questions:
        raise UsageError(f"{path}: no questions to calibrate on")
    weights = parse_weights(getattr(args, "weights", None))
    ks = parse_ks(args.k)
    started = time.perf_counter()
    if service is None:
        service = open_current(settings_from_args(args))
    base = service.settings
    # a private service over the same index and embedder: it never abstains, so the reader's best
    # score and answer are read once per question and weight, and the threshold is swept offline
    # (its embedder memoizes query and sentence vectors in memory, shared by all weights)
    probe_service = QAService(base.with_overrides(abstain_threshold=-math.inf), index=service.index,
                              embedder=CachingEmbedder(service.embedder, None))
    per_weight = []
    for w in weights:
        probe_service.settings = base.with_overrides(abstain_threshold=-math.inf, dense_weight=w)
        probes = [_probe(probe_service, q, max(max(ks), 10)) for q in questions]
        retrieval = evaluate_by_slice(_records_at(probes, -math.inf), ks)["overall"]
        rows = _sweep(probes)
        best = _best_row(rows) if rows else {"threshold": base.abstain_threshold, "answer_accuracy": float("nan"),
                                             "refusal_f1": 0.0, "abstained": 0}
        current = _records_at(probes, base.abstain_threshold)
        cur_verdicts = [v for v in (answer_is_correct(r) for r in current) if v is not None]
        per_weight.append({"dense_weight": w, "sparse_weight": base.sparse_weight, "rows": rows, "best": best,
                           "recall@5": retrieval.get("recall@5"), "mrr": retrieval.get("mrr"),
                           "at_current_threshold": {"answer_accuracy": sum(cur_verdicts) / len(cur_verdicts)
                                                    if cur_verdicts else None, "refusal_f1": _refusal_f1(current)},
                           "scores": [{"id": p.question.id, "answerable": p.question.answerable,
                                       "best": None if not math.isfinite(p.best) else round(p.best, 4)} for p in probes]})
        print(f"dense_weight {w}: best threshold {best['threshold']:.3f} -> accuracy {best['answer_accuracy']:.3f}, "
              f"refusal F1 {best['refusal_f1']:.3f}; recall@5 {retrieval.get('recall@5')}, MRR {retrieval.get('mrr')}",
              file=sys.stderr)
    chosen = max(per_weight, key=lambda r: (r["best"]["answer_accuracy"], r["best"]["refusal_f1"], r["mrr"] or 0,
                                            -abs(r["dense_weight"] - base.dense_weight)))
    out_dir = Path(args.out) if args.out else DEFAULT_OUT
    name = slug(args.name or "calibration")
    payload = {
        "name": name, "questions_file": str(path), "questions": len(questions),
        "current": {"abstain_threshold": base.abstain_threshold, "dense_weight": base.dense_weight,
                    "sparse_weight": base.sparse_weight},
        "best": {"abstain_threshold": round(chosen["best"]["threshold"], 3), "dense_weight": chosen["dense_weight"],
                 "sparse_weight": chosen["sparse_weight"], "answer_accuracy": chosen["best"]["answer_accuracy"],
                 "refusal_f1": chosen["best"]["refusal_f1"], "recall@5": chosen["recall@5"], "mrr": chosen["mrr"]},
        "weights": per_weight, "elapsed_s": round(time.perf_counter() - started, 1),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    md = _calibration_markdown(payload)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(md, encoding="utf-8")
    (out_dir / f"{name}.json").write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    _plot_calibration(payload, out_dir / f"{name}.png")
    if getattr(args, "json", False):
        print(md, file=sys.stderr)
        print(json.dumps({k: v for k, v in payload.items() if k != "weights"}, ensure_ascii=False, indent=2))
    else:
        print(md)
    return 0


def _probe(service, question: EvalQuestion, top_k: int) -> _Probe:
    """Ask once with a service that never abstains: Answer.confidence is the reader's best score."""
    from ..pipeline import QuestionError

    try:
        answer = service.ask(question.question, top_k=top_k, retrieval_mode="hybrid")
    except QuestionError:
        return _Probe(question, -math.inf, "", [])
    best = answer.confidence if not answer.abstained else -math.inf
    return _Probe(question, float(best), answer_text(answer.text), [h.chunk.text for h in answer.hits])


def _calibration_markdown(payload: dict) -> str:
    best, cur = payload["best"], payload["current"]
    lines = [f"# Calibration on `{Path(payload['questions_file']).name}` ({payload['questions']} questions)", "",
             "Tuned on the seed set only (never on the public benchmarks). The reader's best sentence score is "
             "computed once per question and RRF weight, then abstain_threshold is swept over the cuts between "
             "observed scores; the best setting maximizes answer accuracy, ties broken by refusal F1, then MRR; "
             "among tied thresholds the middle one is kept.", "",
             f"**Best: abstain_threshold = {best['abstain_threshold']}, dense_weight = {best['dense_weight']} "
             f"(sparse_weight {best['sparse_weight']})** → answer accuracy {best['answer_accuracy']:.3f}, "
             f"refusal F1 {best['refusal_f1']:.3f}, recall@5 {fmt(best['recall@5'])}, MRR {fmt(best['mrr'])}", "",
             f"Current settings: abstain_threshold {cur['abstain_threshold']}, dense_weight {cur['dense_weight']}, "
             f"sparse_weight {cur['sparse_weight']}.", "",
             "| dense_weight | recall@5 | MRR | best threshold | accuracy | refusal F1 | accuracy @ current threshold |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in payload["weights"]:
        lines.append(f"| {r['dense_weight']} | {fmt(r['recall@5'])} | {fmt(r['mrr'])} | {r['best']['threshold']:.3f} | "
                     f"{r['best']['answer_accuracy']:.3f} | {r['best']['refusal_f1']:.3f} | "
                     f"{fmt(r['at_current_threshold']['answer_accuracy'])} |")
    chosen = next(r for r in payload["weights"] if r["dense_weight"] == best["dense_weight"])
    lines += ["", f"Threshold curve at dense_weight {best['dense_weight']} (every 4th cut shown):", "",
              "| threshold | accuracy | refusal F1 | abstained |", "| ---: | ---: | ---: | ---: |"]
    rows = chosen["rows"]
    shown = rows[::4] + ([rows[-1]] if rows and (len(rows) - 1) % 4 else [])
    for row in shown:
        lines.append(f"| {row['threshold']:.3f} | {row['answer_accuracy']:.3f} | {row['refusal_f1']:.3f} | {row['abstained']} |")
    return "\n".join(lines) + "\n"


def _plot_calibration(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    for r in payload["weights"]:
        xs = [row["threshold"] for row in r["rows"]]
        left.plot(xs, [row["answer_accuracy"] for row in r["rows"]], label=f"accuracy, dense_weight {r['dense_weight']}")
    chosen = next(r for r in payload["weights"] if r["dense_weight"] == payload["best"]["dense_weight"])
    left.plot([row["threshold"] for row in chosen["rows"]], [row["refusal_f1"] for row in chosen["rows"]], "k--",
              label=f"refusal F1, dense_weight {chosen['dense_weight']}")
    left.axvline(payload["best"]["abstain_threshold"], color="red", alpha=0.5, label="chosen threshold")
    left.axvline(payload["current"]["abstain_threshold"], color="grey", alpha=0.5, linestyle=":", label="current threshold")
    left.set(xlabel="abstain_threshold", ylabel="score", title="threshold sweep (seed set)", ylim=(0, 1.02))
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    ans = [s["best"] for s in chosen["scores"] if s["answerable"] and s["best"] is not None]
    una = [s["best"] for s in chosen["scores"] if not s["answerable"] and s["best"] is not None]
    right.hist([ans, una], bins=20, label=["answerable", "unanswerable"], color=["tab:green", "tab:red"])
    right.axvline(payload["best"]["abstain_threshold"], color="red", alpha=0.5)
    right.set(xlabel="best sentence score", ylabel="questions", title="best-score distribution")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
