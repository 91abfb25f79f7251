"""Benchmark of the pipeline on the built-in corpus, per reader: index build, passages/s, answer latency, RSS.

    python eval/bench_pipeline.py [--questions eval/questions.jsonl] [--readers heuristic,neural] [--json]

For each reader, builds a fresh index of corpus/ in a temporary folder (the neural reader's indexing
pass also keeps its passage states, in memory: nothing more on disk), asks one warm-up question, then
asks every question of the seed set once (warm: models loaded, passage states computed at index time).
Writes eval/results/pipeline.{json,md}. Prints measured numbers only.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.embedding import get_embedder  # noqa: E402
from qa.evaluation.questions import load_questions  # noqa: E402
from qa.pipeline import QAService  # noqa: E402
from qa.settings import load_settings  # noqa: E402


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def bench(reader: str, questions, embedder) -> dict:
    settings = load_settings(index_dir=Path(tempfile.mkdtemp(prefix="qa-bench-")), reader=reader)
    service = QAService(settings, embedder=embedder)
    service.reader_for(reader)  # load the reader's weights before timing the build
    report = service.reindex(rebuild=True)
    service.ask("warm-up question: 零一万物是谁创立的？")
    latencies = []
    for q in questions:
        t = time.perf_counter()
        service.ask(q.question)
        latencies.append(time.perf_counter() - t)
    lat = np.array(latencies)
    return {
        "reader": reader,
        "documents": report.documents,
        "chunks": report.chunks,
        "index_build_s": report.seconds,
        "passages_per_s": round(report.embedded_chunks / report.seconds, 2),
        "index_bytes_on_disk": _dir_size(settings.index_dir),
        "questions": len(questions),
        "answer_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
        "answer_p95_ms": round(float(np.percentile(lat, 95)) * 1000, 1),
        "answer_max_ms": round(float(lat.max()) * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", default=str(ROOT / "eval" / "questions.jsonl"))
    parser.add_argument("--readers", default="heuristic,neural")
    parser.add_argument("--out", default=str(ROOT / "eval" / "results"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    started = time.perf_counter()
    settings = load_settings()
    embedder = get_embedder(settings)
    embedder.encode_queries(["warm-up"])
    model_load_s = time.perf_counter() - started
    questions = load_questions(args.questions)
    runs = [bench(r.strip(), questions, embedder) for r in args.readers.split(",") if r.strip()]
    result = {"model_load_s": round(model_load_s, 2), "torch_threads": torch.get_num_threads(), "runs": runs,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    keys = list(runs[0])
    lines = ["# Pipeline benchmark (built-in corpus, seed questions, warm)", "",
             f"`python eval/bench_pipeline.py`; {result['torch_threads']} torch threads; model load "
             f"{result['model_load_s']} s; peak RSS {result['peak_rss_mb']} MB (the whole run).", "",
             "| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in runs]
    (out / "pipeline.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1) if args.json else "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
