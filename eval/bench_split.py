"""Where to split e5 between "read apart" and "read together" (issue 20): speed per split, quality from runs.

    python eval/bench_split.py [--splits 1,4,7,9] [--passages 5] [--repeats 5] \
        [--run 7=eval/results/split-runs/l7-step300.json ...] [--out eval/results]

For each split L (`lower_layers`: layers 1..L read the question and each passage apart, the passage's at index
time; layers L+1..12 read them together), measured on this machine:
- ms to answer-read one question against `--passages` corpus passages of about 300 tokens, as the product does
  (the question's lower layers, then the upper layers on question + passage, one passage at a time);
- seconds per training step of 16 items (forward + backward + AdamW on the upper layers; the states of the lower
  layers come from the bank, as in `qa train`).
Closed F1 and answerability AUC come from `qa train --validate` files of runs of the same recipe and step count
(`--run L=file`); splits without a run show speed only. Writes split.{json,md}. Prints measured numbers only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.embedding import get_embedder  # noqa: E402
from qa.neural.encoder import LowerEncoder  # noqa: E402
from qa.neural.model import ReaderModel  # noqa: E402
from qa.neural.reading import read_passages  # noqa: E402
from qa.settings import load_settings  # noqa: E402

QUESTION = "零一万物为什么放弃预训练？"


def corpus_passages(count: int, chars: int = 420) -> list[str]:
    """Consecutive windows of the built-in corpus (about 300 tokens each)."""
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "corpus").glob("*.txt")))
    return [text[i * chars : (i + 1) * chars] for i in range(count)]


def time_reading(bert, tokenizer, split: int, passages: list[str], repeats: int) -> dict:
    lower = LowerEncoder(bert, tokenizer, split)
    model = ReaderModel.from_bert(bert, split).eval()
    encoded = lower.encode(passages, "passage")
    tokens = [len(e.ids) for e in encoded]
    timings = []
    for _ in range(repeats + 1):  # the first one warms up
        t = time.perf_counter()
        with torch.inference_mode():
            q = lower.encode([QUESTION], "query")[0]
            read_passages(model, q, encoded)
        timings.append(time.perf_counter() - t)
    return {"read_ms": round(1000 * float(np.median(timings[1:])), 1), "passage_tokens_mean": round(float(np.mean(tokens)), 1)}


def time_training_step(bert, split: int, batch: int = 16, q_tokens: int = 20, p_tokens: int = 300, steps: int = 3) -> float:
    model = ReaderModel.from_bert(bert, split).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    hidden = model.config["hidden"]
    q, p = torch.randn(batch, q_tokens, hidden), torch.randn(batch, p_tokens, hidden)
    qm, pm = torch.ones(batch, q_tokens, dtype=torch.bool), torch.ones(batch, p_tokens, dtype=torch.bool)
    timings = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        start, end, answerable, _ = model(q, qm, p, pm)
        loss = start.logsumexp(-1).mean() + end.logsumexp(-1).mean() + answerable.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        timings.append(time.perf_counter() - t)
    return round(float(np.median(timings[1:])), 2)


def quality(path: Path) -> dict:
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    validation = report.get("validation", report)
    keep = ("closed_f1", "closed_em", "removed_auc", "other_article_auc", "same_paragraph_auc", "sentence_removed_auc")
    return {name: {k: v[k] for k in keep if k in v} for name, v in validation.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", default="1,4,7,9")
    ap.add_argument("--passages", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run", action="append", default=[], metavar="L=FILE", help="validation json of a run at split L")
    ap.add_argument("--note", default="", help="what the runs were (recipe, steps), for the table")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    embedder = get_embedder(load_settings())
    bert, tokenizer = embedder.model[0].auto_model, embedder.model.tokenizer
    runs = {int(k): quality(Path(v)) for k, v in (r.split("=", 1) for r in args.run)}
    passages = corpus_passages(args.passages)
    rows = []
    for split in [int(s) for s in args.splits.split(",")]:
        row = {"lower_layers": split, "joint_layers": 12 - split,
               **time_reading(bert, tokenizer, split, passages, args.repeats),
               "train_step_s": time_training_step(bert, split), "validation": runs.get(split, {})}
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    result = {"threads": args.threads, "passages": args.passages, "note": args.note, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "split.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    sets = sorted({name for r in rows for name in r["validation"]})
    lines = ["# Where the reader splits e5 (issue 20)", "",
             f"Speed measured by `eval/bench_split.py` on this machine ({args.threads} threads): one question read against "
             f"{args.passages} corpus passages (passage states cached, as at index time), and one training step of 16 items.",
             "Quality: `qa train --validate` on the held-out validation questions (never trained on; each run's threshold "
             "is calibrated there)." + (f" Runs: {args.note}" if args.note else ""), "",
             "| " + " | ".join(["joint from layer", "joint layers", "read ms / question", "train s / step"]
                               + [f"{s} {k}" for s in sets for k in ("closed F1", "other-article AUC")]) + " |",
             "|" + "---:|" * (4 + 2 * len(sets))]
    for r in rows:
        cells = [str(r["validation"].get(s, {}).get(k, "—")) for s in sets for k in ("closed_f1", "other_article_auc")]
        lines.append("| " + " | ".join([str(r["lower_layers"] + 1), str(r["joint_layers"]), str(r["read_ms"]),
                                        str(r["train_step_s"])] + cells) + " |")
    (args.out / "split.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
