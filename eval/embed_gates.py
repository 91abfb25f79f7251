"""Retrieval quality gate for an embedding backend: recall on the seed set and on XQuAD en->zh, per backend.

    python eval/embed_gates.py [--data ../shared/evaldata] [--backends torch,onnx,torch-bf16,onnx-int8] [--out eval/results]

The same questions and relevance as `qa eval` (eval/run_benchmarks.sh): the seed set over the built-in
corpus (a passage is relevant when it holds an evidence string), XQuAD zh paragraphs with the English
questions paired by id, the seeded sample of 200 (relevant = a passage of the question's paragraph).
Only retrieval runs here (BM25, dense, hybrid RRF; the reader does not change the retrieval order when it
does not rerank, the default), so a backend is checked in minutes. Each backend embeds everything itself
(no vector cache). Writes embed-gates.{json,md}. Measured numbers only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = {"BM25 (jieba)": "sparse", "dense (e5)": "dense", "hybrid (RRF)": "hybrid"}
KEYS = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr")


def recall(service, questions, source=None) -> dict:
    from qa.evaluation.metrics import EvalRecord, evaluate
    from qa.pipeline import QuestionError, clean_question
    from qa.retriever import HybridRetriever

    out = {}
    retriever = HybridRetriever(service.index, service.embedder, service.aliases, service.settings)
    for label, mode in MODES.items():
        records = []
        for q in questions:
            try:
                text = clean_question(q.question, service.settings)
            except QuestionError:
                records.append(EvalRecord(q, [], "", True, 0.0, [] if source else None))
                continue
            query = service.retrieval_query(text)
            hits = retriever.retrieve(query, 10, mode=mode)
            relevant = [h.chunk.doc_id == source[q.id] for h in hits] if source else None
            records.append(EvalRecord(q, [h.chunk.text for h in hits], "", False, 0.0, relevant))
        overall = evaluate(records, (1, 3, 5, 10))
        out[label] = {k: round(float(overall[k]), 4) for k in KEYS if k in overall} | {"n": overall.get("n")}
    return out


def run_backend(backend: str, data: Path) -> dict:
    from qa.embedding import get_embedder
    from qa.evaluation.datasets import limit_questions, load_squad
    from qa.evaluation.questions import load_questions
    from qa.pipeline import QAService
    from qa.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="qa-gates-"))
    # "onnx-int8" / "torch-bf16": int8 or bfloat16 passages (queries stay float32, qa/embedding.py)
    engine, _, precision = backend.partition("-")
    precision = {"int8": "int8", "bf16": "bfloat16", "": "float32"}[precision]
    settings = load_settings(index_dir=tmp / "seed-index", reader="heuristic", embedding_backend=engine,
                             embedding_precision=precision)
    embedder = get_embedder(settings)
    result = {"backend": embedder.backend}
    service = QAService(settings, embedder=embedder)
    t = time.perf_counter()
    service.reindex(rebuild=True)
    result["seed_index_s"] = round(time.perf_counter() - t, 1)
    result["seed"] = recall(service, load_questions(ROOT / "eval" / "questions.jsonl"))
    squad = load_squad(data / "xquad" / "xquad.zh.json", data / "xquad" / "xquad.en.json")
    questions = limit_questions(squad.questions, 200, 0)
    settings = settings.with_overrides(corpus_dir=tmp / "corpus", index_dir=tmp / "xquad-index")
    service = QAService(settings, embedder=embedder)
    t = time.perf_counter()
    service.index_documents(squad.documents, persist=False)
    result["xquad_index_s"] = round(time.perf_counter() - t, 1)
    result["xquad-en-zh"] = recall(service, questions, squad.source)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "evaldata"))
    ap.add_argument("--backends", default="torch,onnx,torch-bf16,onnx-int8")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results"))
    args = ap.parse_args()
    report = {"command": "python eval/embed_gates.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "loadavg_start": [round(x, 2) for x in os.getloadavg()], "backends": {}}
    for backend in args.backends.split(","):
        report["backends"][backend] = run_backend(backend, Path(args.data))
        print(json.dumps(report["backends"][backend]), flush=True)
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    lines = ["# Embedding backends: retrieval quality gate", "", f"Command: `{report['command']}`. Date: {report['date']}. "
             f"Load average at start {report['loadavg_start']}, at end {report['loadavg_end']}.", "",
             "| set | system | backend | " + " | ".join(KEYS) + " |", "| --- | --- | --- |" + " ---: |" * len(KEYS)]
    for run in ("seed", "xquad-en-zh"):
        for label in MODES:
            for backend, r in report["backends"].items():
                row = r[run][label]
                lines.append(f"| {run} | {label} | {r['backend']} | " + " | ".join(f"{row.get(k, float('nan')):.3f}" for k in KEYS) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "embed-gates.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "embed-gates.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
