"""Arguments of `qa eval` (kept apart so the CLI parser stays importable without heavy modules)."""

from __future__ import annotations

import argparse
import re

DEFAULT_WEIGHTS = (0.5, 1.0, 1.5, 2.0)
EXIT_USAGE = 2


class UsageError(ValueError):
    """A bad `qa eval` invocation; the message is printed and the exit status is 2."""


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--questions", default=None, help="question set in JSONL (default: eval/questions.jsonl)")
    p.add_argument("--squad", default=None, help="SQuAD-format file: index its paragraphs and evaluate on its questions")
    p.add_argument("--questions-from", default=None,
                   help="with --squad: take the questions from this SQuAD file instead (paired by question id; cross-lingual), "
                        "or from a JSONL file of hand translations (qa/training/translated/*.jsonl)")
    p.add_argument("--k", default="1,3,5,10", help="cut-offs for recall@k, comma-separated")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate only N questions: the first N, or a seeded sample with --sample-seed")
    p.add_argument("--sample-seed", type=int, default=None,
                   help="with --limit: take a reproducible random sample of N questions (kept in file order)")
    p.add_argument("--baselines", action="store_true",
                   help="also run BM25-only and dense-only retrieval (and plain hybrid when the reader reranks)")
    p.add_argument("--readers", default=None,
                   help="comma-separated readers, one 'hybrid + <reader>' system each, e.g. heuristic,neural "
                        "(default: the configured reader)")
    p.add_argument("--settings", default="closed,open,removed",
                   help="with --squad: closed (gold paragraph given), open (end to end), removed (answer's paragraph "
                        "left out: abstaining is right); comma-separated")
    p.add_argument("--articles", default=None,
                   help="with --squad: a file of article ids (one per line); only their paragraphs are indexed "
                        "(the DRCD validation part: qa/training/drcd_validation_articles.txt)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--out", default=None, help="results folder (default: eval/results/)")
    p.add_argument("--name", default=None, help="name of the run in the results folder")
    p.add_argument("--paragraphs", type=int, default=None,
                   help="with --squad: index only the first N paragraphs (and ask only their questions)")
    p.add_argument("--no-embedding-cache", action="store_true",
                   help="with --squad: do not reuse passage/sentence vectors cached on disk by earlier runs")
    p.add_argument("--calibrate", action="store_true",
                   help="sweep abstain_threshold and the dense RRF weight on the seed set; write calibration.md/.png")
    p.add_argument("--weights", default=None, help="with --calibrate: dense_weight grid (default 0.5,1,1.5,2; sparse 1)")
    p.add_argument("--combine", nargs="+", default=None, metavar="RESULT_JSON",
                   help="combine result JSON files of earlier runs into one table and plot (benchmarks.md)")


def parse_ks(text: str | None) -> list[int]:
    try:
        ks = sorted({int(part) for part in str(text or "1,3,5,10").split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise UsageError(f"--k needs cut-offs >= 1, got {text!r}")
    return ks


def parse_readers(text: str | None, default: str) -> list[str]:
    """--readers: distinct reader names in the given order (default: the configured reader)."""
    from ..settings import READERS

    names = list(dict.fromkeys(part.strip() for part in str(text or default).split(",") if part.strip()))
    unknown = [n for n in names if n not in READERS]
    if not names or unknown:
        raise UsageError(f"--readers takes names from {', '.join(READERS)}, got {text!r}")
    return names


def parse_weights(text: str | None) -> list[float]:
    if not text:
        return list(DEFAULT_WEIGHTS)
    try:
        weights = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--weights must be comma-separated numbers, got {text!r}") from None
    if not weights or any(w < 0 for w in weights):
        raise UsageError(f"--weights needs non-negative numbers, got {text!r}")
    return weights


def slug(text: str) -> str:
    return re.sub(r"[^\w.\-]+", "-", text).strip("-") or "run"
