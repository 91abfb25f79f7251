"""Arguments of `qa eval` (kept apart so the CLI parser stays importable without heavy modules)."""

from __future__ import annotations

import argparse


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--questions", default=None, help="question set in JSONL (default: eval/questions.jsonl)")
    p.add_argument("--squad", default=None, help="SQuAD-format file: index its paragraphs and evaluate on its questions")
    p.add_argument("--questions-from", default=None,
                   help="with --squad: take the questions from this SQuAD file instead (paired by question id; cross-lingual)")
    p.add_argument("--k", default="1,3,5,10", help="cut-offs for recall@k, comma-separated")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N questions")
    p.add_argument("--baselines", action="store_true", help="also run BM25-only and dense-only retrieval")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--out", default=None, help="results folder (default: eval/results/)")
    p.add_argument("--name", default=None, help="name of the run in the results folder")
