"""Benchmark of the core pipeline on the built-in corpus: index build, passages/s, query latency, peak RSS.

    python eval/bench_pipeline.py [--questions eval/questions.jsonl] [--json]

Builds a fresh index of corpus/ in a temporary folder (the embedding model is loaded first and
timed separately), then asks every question of the seed set once. Prints measured numbers only.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", default=str(ROOT / "eval" / "questions.jsonl"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    settings = load_settings(index_dir=Path(tempfile.mkdtemp(prefix="qa-bench-")))
    embedder = get_embedder(settings)
    embedder.encode_queries(["warm-up"])
    model_load_s = time.perf_counter() - started

    service = QAService(settings, embedder=embedder)
    report = service.reindex(rebuild=True)
    questions = load_questions(args.questions)
    latencies = []
    for q in questions:
        t = time.perf_counter()
        service.ask(q.question)
        latencies.append(time.perf_counter() - t)
    lat = np.array(latencies)
    result = {
        "documents": report.documents,
        "chunks": report.chunks,
        "model_load_s": round(model_load_s, 2),
        "index_build_s": report.seconds,
        "passages_per_s": round(report.embedded_chunks / report.seconds, 2),
        "questions": len(questions),
        "query_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
        "query_p95_ms": round(float(np.percentile(lat, 95)) * 1000, 1),
        "query_max_ms": round(float(lat.max()) * 1000, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
