"""English refusal: how often English questions over Chinese passages are refused when their paragraph is gone,
and how often when it is there (issue 21's target: recall >= 0.7 with at most 10 % of answerable ones refused).

For each question of a SQuAD-format set asked in English (`--questions-from`), twice: `open` (its paragraph indexed)
and `removed` (its paragraph left out: refusing is right). Per question it records the pipeline's own decision and
the signals a refusal rule could use: the evidence score (settings.abstain_threshold cuts it for English), the
neural reader's best probability over the top `--passages` hits ("answers the question"), and the verifier's
P(answered) when one judges English. It then sweeps the reader-probability cut, alone and on top of the evidence cut.

    python eval/english_refusal.py --squad ../shared/evaldata/cmrc2018/cmrc2018_dev.squad.json \
        --questions-from qa/training/translated/cmrc2018_dev.en.jsonl --paragraphs 120 --name english-refusal-cmrc-dev

Run it on a validation set to choose a cut (say so), and once on a test set to report it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def reader_probability(neural, question: str, hits, passages: int) -> float:
    from qa.neural.reading import read_passages

    top = hits[:passages]
    if not top:
        return 0.0
    q = neural.lower.encode([question], "query")[0]
    return float(max(r.probability for r in read_passages(neural.model, q, neural._passages(top))))


def coverages(service, question: str, answer) -> dict:
    """qa/coverage.py: the share of the question's English units that the cited sentences / top passages cover."""
    from qa.coverage import coverage, question_units

    units = question_units(question, service.aliases, service.current_index())
    cited = " ".join(c.text for c in answer.citations)
    top = " ".join(h.chunk.text for h in answer.hits[:3])
    return {"units": len(units), "cited_coverage": coverage(units, cited), "cited_coverage_known": coverage(units, cited, True),
            "top_coverage": coverage(units, top), "top_coverage_known": coverage(units, top, True)}


def collect(service, data, questions, passages: int) -> list[dict]:
    neural = service.reader_for("neural")
    rows = []
    for n, question in enumerate(questions, 1):
        for setting in ("open", "removed"):
            exclude = data.source[question.id] if setting == "removed" else None
            answer = service.ask(question.question, reader="neural", exclude_doc=exclude)
            rows.append({"id": question.id, "setting": setting, "abstained": bool(answer.abstained),
                         "confidence": float(answer.confidence),
                         "reader_probability": reader_probability(neural, question.question, answer.hits, passages),
                         **coverages(service, question.question, answer)})
        if n % 20 == 0:
            print(f"{n}/{len(questions)} questions", file=sys.stderr, flush=True)
    return rows


def rates(refused_open: np.ndarray, refused_removed: np.ndarray) -> dict:
    return {"refusal_recall": round(float(refused_removed.mean()), 4),
            "false_refusals": round(float(refused_open.mean()), 4)}


def sweep(rows: list[dict]) -> dict:
    """Refusal recall on `removed` and false-refusal rate on `open`, for the pipeline as it is and for reader cuts."""
    o = [r for r in rows if r["setting"] == "open"]
    m = [r for r in rows if r["setting"] == "removed"]
    po, pm = np.array([r["reader_probability"] for r in o]), np.array([r["reader_probability"] for r in m])
    ao, am = np.array([r["abstained"] for r in o]), np.array([r["abstained"] for r in m])
    out = {"pipeline": rates(ao, am), "reader_cut": [], "pipeline_or_reader_cut": []}
    for cut in np.round(np.arange(0.05, 0.96, 0.05), 2):
        out["reader_cut"].append({"cut": float(cut), **rates(po < cut, pm < cut)})
        out["pipeline_or_reader_cut"].append({"cut": float(cut), **rates(ao | (po < cut), am | (pm < cut))})
    from qa.training.validate import auc  # probability of "answered": open questions positive, removed negative

    out["reader_auc"] = round(float(auc(list(po), list(pm))), 4)
    out["signals"] = {}  # every recorded score alone: AUC and the best recall with at most 10 % refused wrongly
    for key in ("confidence", "reader_probability", "cited_coverage", "top_coverage"):
        so, sm = np.array([r[key] for r in o]), np.array([r[key] for r in m])
        curve = [{"cut": float(c), **rates(so < c, sm < c)} for c in np.unique(np.concatenate([so, sm, [np.inf]]))]
        out["signals"][key] = {"auc": round(float(auc(list(so), list(sm))), 4), "best": best_within(curve, 0.10)}
    return out


def best_within(curve: list[dict], max_false: float) -> dict | None:
    ok = [c for c in curve if c["false_refusals"] <= max_false]
    return max(ok, key=lambda c: c["refusal_recall"]) if ok else None


def markdown(name: str, meta: dict, result: dict) -> str:
    lines = [f"# {name}", "", *[f"- {k}: {v}" for k, v in meta.items()], "",
             f"- pipeline as configured: refusal recall {result['pipeline']['refusal_recall']:.3f}, "
             f"answerable questions refused {result['pipeline']['false_refusals']:.3f}",
             f"- reader probability (best of the top passages) as a score of \"answered\": AUC {result['reader_auc']:.3f}",
             "", "| reader cut | recall (reader alone) | refused answerable (reader alone) | recall (pipeline or reader) "
             "| refused answerable (pipeline or reader) |", "| ---: | ---: | ---: | ---: | ---: |"]
    for a, b in zip(result["reader_cut"], result["pipeline_or_reader_cut"]):
        lines.append(f"| {a['cut']:.2f} | {a['refusal_recall']:.3f} | {a['false_refusals']:.3f} | "
                     f"{b['refusal_recall']:.3f} | {b['false_refusals']:.3f} |")
    lines += ["", "Each signal alone (evidence score = the English cut's input; coverage = qa/coverage.py's share of the "
              "question's English units that the cited sentences / top 3 passages render):", "",
              "| signal | AUC | best recall, at most 10 % refused wrongly | cut |", "| --- | ---: | ---: | ---: |"]
    for key, sig in result.get("signals", {}).items():
        b = sig["best"] or {"refusal_recall": 0.0, "cut": float("nan")}
        lines.append(f"| {key} | {sig['auc']:.3f} | {b['refusal_recall']:.3f} | {b['cut']:.3f} |")
    for key, label in (("reader_cut", "reader alone"), ("pipeline_or_reader_cut", "pipeline or reader")):
        best = best_within(result[key], 0.10)
        lines.append("")
        lines.append(f"- best {label} with at most 10 % of answerable questions refused: " + (
            f"cut {best['cut']:.2f}, recall {best['refusal_recall']:.3f} ({best['false_refusals']:.3f} refused)"
            if best else "none"))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--squad", required=True)
    p.add_argument("--questions-from", required=True)
    p.add_argument("--paragraphs", type=int, default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--sample-seed", type=int, default=None)
    p.add_argument("--passages", type=int, default=5, help="top hits whose best reader probability is the score")
    p.add_argument("--out", default=str(ROOT / "eval" / "results"))
    p.add_argument("--name", default="english-refusal")
    args = p.parse_args(argv)

    from qa.embedding import get_embedder
    from qa.evaluation.datasets import limit_questions, load_squad
    from qa.pipeline import QAService
    from qa.settings import load_settings

    data = load_squad(args.squad, args.questions_from, args.paragraphs)
    questions = limit_questions(data.questions, args.limit, args.sample_seed)
    tmp = Path(tempfile.mkdtemp(prefix="qa-refusal-"))
    started = time.time()
    try:
        settings = load_settings(corpus_dir=tmp / "corpus", index_dir=tmp / "index")
        service = QAService(settings, embedder=get_embedder(settings))
        service.index_documents(data.documents, persist=False)
        rows = collect(service, data, questions, args.passages)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = sweep(rows)
    meta = {"data": f"`{Path(args.squad).name}`, questions from `{Path(args.questions_from).name}`",
            "questions": len(questions), "paragraphs indexed": len(data.documents),
            "English query encoder": settings.english_query_encoder or "shipped",
            "English dictionary route": settings.english_dictionary,
            "abstain_threshold (evidence score, English)": settings.abstain_threshold,
            "seconds": round(time.time() - started, 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "result": result, "rows": rows}, indent=1) + "\n",
                                           encoding="utf-8")
    (out / f"{args.name}.md").write_text(markdown(args.name, meta, result), encoding="utf-8")
    print(markdown(args.name, meta, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
