"""Real passages and queries for eval/bench_scale.py, embedded once and cached.

    python eval/scale_data.py [--data ../shared] [--max-passages N] [--deadline-s S]

Passages: every paragraph of ../shared/evaldata and ../shared/traindata, chunked with the
project chunker (qa/chunking.py, as build_index does), identical texts removed. Chinese sets
come first (XQuAD zh, DRCD dev, CMRC 2018 dev/trial/train), then English (XQuAD en, SQuAD 2.0
dev half, SQuAD 1.1 train), so a capped run keeps the Chinese text. Vectors are
`encode_documents(fold_script(text))` with the bundled embedder, written in shards so an
interrupted run resumes where it stopped. Queries: XQuAD zh and DRCD dev questions (seeded
sample), `encode_queries(fold_script(q))`.

Cache: <cache_dir>/scale/ (passages.jsonl, shards/*.npy, queries.jsonl, queries.npy, embedding.json: the
backend that made the vectors; a different backend embeds everything again).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.settings import load_settings  # noqa: E402

SOURCES = [  # (label, path relative to ../shared), in priority order
    ("xquad-zh", "evaldata/xquad/xquad.zh.json"),
    ("drcd-dev", "evaldata/drcd/DRCD_dev.json"),
    ("cmrc2018-dev", "evaldata/cmrc2018/cmrc2018_dev.squad.json"),
    ("cmrc2018-trial", "traindata/cmrc2018/cmrc2018_trial.squad.json"),
    ("cmrc2018-train", "traindata/cmrc2018/cmrc2018_train.squad.json"),
    ("xquad-en", "evaldata/xquad/xquad.en.json"),
    ("squad2-dev-half", "traindata/squad2/squad2-dev-half.noxquad.json"),
    ("squad1.1-train", "traindata/squad1/squad1.1-train.explorer.json.gz"),
]
SHARD = 512


def cache_dir() -> Path:
    return Path(load_settings().cache_dir) / "scale"


def read_squad(path: Path) -> list[dict]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return json.loads(raw.decode("utf-8"))["data"]


def chunk_all(shared: Path) -> tuple[list[dict], dict]:
    """All paragraphs -> chunks (project chunker), deduplicated by exact text, in SOURCES order."""
    from qa.chunking import chunk_document, token_counter
    from qa.types import Document

    settings = load_settings()
    count = token_counter(settings)
    seen: set[str] = set()
    rows: list[dict] = []
    stats: dict = {}
    for label, rel in SOURCES:
        paragraphs = chunks = dups = 0
        for article in read_squad(shared / rel):
            title = str(article.get("title", "") or "untitled")
            for para in article.get("paragraphs", []):
                context = str(para.get("context", ""))
                if not context.strip():
                    continue
                paragraphs += 1
                doc = Document(doc_id=f"{label}:{title}#{paragraphs}", text=context, title=title)
                for c in chunk_document(doc, settings, count):
                    chunks += 1
                    if c.text in seen:
                        dups += 1
                        continue
                    seen.add(c.text)
                    rows.append({"id": len(rows), "source": label, "doc_id": c.doc_id, "text": c.text})
        stats[label] = {"paragraphs": paragraphs, "chunks": chunks, "duplicates_removed": dups}
    return rows, stats


def queries(shared: Path, n: int, seed: int = 0) -> list[dict]:
    out = []
    for label, rel in SOURCES[:2]:  # XQuAD zh, DRCD dev
        qs = [{"source": label, "id": str(qa["id"]), "question": str(qa["question"]).strip()}
              for a in read_squad(shared / rel) for p in a["paragraphs"] for qa in p["qas"] if str(qa["question"]).strip()]
        out += random.Random(seed).sample(qs, n // 2)
    return out


def embedding_backend() -> str:
    """The embedding backend that made the cached vectors (embedding.json), or "unrecorded"."""
    try:
        return json.loads((cache_dir() / "embedding.json").read_text())["backend"]
    except (OSError, ValueError, KeyError):
        return "unrecorded"


def load_cached(limit: int | None = None) -> tuple[list[dict], np.ndarray, list[dict], np.ndarray]:
    """(passages with vectors, their vectors, queries, query vectors) from the cache; only embedded passages."""
    d = cache_dir()
    shards = sorted((d / "shards").glob("*.npy"))
    vectors = np.vstack([np.load(s) for s in shards]) if shards else np.zeros((0, 384), np.float32)
    if limit is not None:
        vectors = vectors[:limit]
    rows = []
    with open(d / "passages.jsonl", encoding="utf-8") as f:
        for line in f:
            if len(rows) >= len(vectors):
                break
            rows.append(json.loads(line))
    qrows = [json.loads(line) for line in (d / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    return rows, vectors.astype(np.float32), qrows, np.load(d / "queries.npy").astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--max-passages", type=int, default=None, help="embed at most this many passages (in priority order)")
    ap.add_argument("--deadline-s", type=float, default=None, help="stop embedding after this many seconds (resumable)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    d = cache_dir()
    (d / "shards").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if not (d / "passages.jsonl").exists():
        rows, stats = chunk_all(args.data)
        tmp = d / "passages.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.rename(d / "passages.jsonl")
        (d / "chunk_stats.json").write_text(json.dumps({"sources": stats, "passages": len(rows),
                                                        "chunk_seconds": round(time.perf_counter() - started, 1)}, indent=1))
        print(f"chunked: {len(rows)} passages in {time.perf_counter() - started:.1f}s {stats}", flush=True)
    rows = [json.loads(line) for line in (d / "passages.jsonl").read_text(encoding="utf-8").splitlines()]

    from qa.embedding import get_embedder
    from qa.text import fold_script

    settings = load_settings(embedding_batch_size=args.batch)
    embedder = get_embedder(settings)
    embedder.batch_size = args.batch
    meta = d / "embedding.json"  # vectors of one backend only (torch-bf16, onnx, ...): another one starts over
    want = {"model": embedder.model_id, "backend": embedder.backend}
    got = json.loads(meta.read_text()) if meta.exists() else {"backend": "unrecorded"}
    if got != want:
        old = sorted((d / "shards").glob("*.npy")) + [d / "queries.npy", d / "embed_log.jsonl"]
        if any(path.exists() for path in old):
            print(f"cached vectors were made by {got.get('backend')}, not {embedder.backend}: embedding again", flush=True)
        for path in old:
            path.unlink(missing_ok=True)
        meta.write_text(json.dumps(want) + "\n")
    if not (d / "queries.npy").exists():
        qs = queries(args.data, args.queries)
        (d / "queries.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in qs), encoding="utf-8")
        np.save(d / "queries.npy", embedder.encode_queries([fold_script(q["question"]) for q in qs]))
        print(f"queries: {len(qs)} embedded", flush=True)

    target = len(rows) if args.max_passages is None else min(len(rows), args.max_passages)
    log = d / "embed_log.jsonl"
    t0 = time.perf_counter()
    done_here = 0
    for start in range(0, target, SHARD):
        path = d / "shards" / f"{start // SHARD:05d}.npy"
        if path.exists():
            continue
        if args.deadline_s is not None and time.perf_counter() - started > args.deadline_s:
            print("deadline reached; rerun to resume", flush=True)
            break
        batch = rows[start : min(start + SHARD, target)]
        s = time.perf_counter()
        vecs = embedder.encode_documents([fold_script(r["text"]) for r in batch])
        np.save(str(path) + ".tmp.npy", vecs)
        Path(str(path) + ".tmp.npy").rename(path)
        done_here += len(batch)
        rate = done_here / (time.perf_counter() - t0)
        rec = {"shard": start // SHARD, "backend": embedder.backend, "n": len(batch), "seconds": round(time.perf_counter() - s, 2),
               "passages_per_s_cumulative": round(rate, 2), "embedded_total": start + len(batch), "of": target}
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
