"""Does the reader give the same readings under another CPU code path? Read 20 corpus windows with 3 questions,
write the spans and scores to a file; `--compare` says how far two such files differ.

One machine cannot be another CPU, but it can take other kernel paths: ATEN_CPU_CAPABILITY=default (torch's
scalar kernels), MKL_ENABLE_INSTRUCTIONS=SSE4_2 / AVX (MKL's older GEMM paths), 1 or 2 threads. A path whose
readings stay the same under all of them is one we can promise on other x86 CPUs.

    python eval/reader_numerics.py --out /tmp/r-native.json
    ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 python eval/reader_numerics.py --out /tmp/r-sse.json
    python eval/reader_numerics.py --compare /tmp/r-native.json /tmp/r-sse.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

QUESTIONS = ["零一万物为什么放弃预训练？", "阶跃星辰的创始人是谁？", "Who founded MiniMax?"]


def windows(corpus_dir: Path) -> list[str]:
    """20 windows of 150 to 390 characters (the same as tests/test_neural_parts.py)."""
    text = "".join((corpus_dir / name).read_text(encoding="utf-8")
                   for name in ("six-tigers-survival-suspense.txt", "china-llm-startups-overview-transcript.txt"))
    return [text[i * 300 : i * 300 + 150 + (i * 37) % 240] for i in range(20)]


def readings(int8: bool, threads: int) -> list[dict]:
    import torch

    from qa.embedding import get_embedder
    from qa.neural.encoder import LowerEncoder
    from qa.neural.reader import DEFAULT_WEIGHTS, load_model
    from qa.neural.reading import read_passages
    from qa.settings import load_settings

    torch.set_num_threads(threads)
    settings = load_settings()
    model = load_model(DEFAULT_WEIGHTS, int8)
    lower = LowerEncoder.from_embedder(get_embedder(settings), model.config["lower_layers"])
    passages = lower.encode(windows(settings.corpus_dir), "passage")
    rows = []
    for question in QUESTIONS:
        q = lower.encode([question], "query")[0]
        for n, r in enumerate(read_passages(model, q, passages)):
            rows.append({"question": question, "passage": n, "start": r.start, "end": r.end,
                         "span_score": float(r.span_score), "probability": float(r.probability)})
    return rows


def compare(a: list[dict], b: list[dict]) -> dict:
    same_span = sum((x["start"], x["end"]) == (y["start"], y["end"]) for x, y in zip(a, b))
    return {"readings": len(a), "same_span": same_span,
            "max_span_score_diff": max(abs(x["span_score"] - y["span_score"]) for x, y in zip(a, b)),
            "max_probability_diff": max(abs(x["probability"] - y["probability"]) for x, y in zip(a, b))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--int8", action="store_true", help="the opt-in int8 reading layers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = ap.parse_args()
    if args.compare:
        a, b = (json.loads(p.read_text())["readings"] for p in args.compare)
        print(json.dumps(compare(a, b)))
        return
    env = {k: os.environ.get(k, "") for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")}
    out = {"int8": args.int8, "threads": args.threads, "env": env, "readings": readings(args.int8, args.threads)}
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=1))
    print(f"{len(out['readings'])} readings -> {args.out}")


if __name__ == "__main__":
    main()
