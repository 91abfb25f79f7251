"""Scale benchmark: FAISS + bm25s files vs Milvus Lite at 10k / 100k / 1M passages.

    python eval/scale_data.py                      # once: chunk + embed the real passages (cached)
    python eval/bench_scale.py [--sizes 10000 100000 1000000] [--engines faiss milvus] [--queries 200]
    python eval/bench_scale.py --micro --sizes 1000000 --faiss-kinds flat ivf   # FAISS + BM25 directly, one process
    python eval/bench_scale.py --merge part1.json part2.json:milvus ... --out eval/results/scale.json

Writes eval/results/scale.json and eval/results/scale.md (--out). The committed results merge several
runs (eval/results/scale-*.json; each keeps its command, date and load averages): see scale.md.

Passages are real public text: the paragraphs of ../shared/evaldata and ../shared/traindata,
chunked with the project chunker and embedded with the bundled embedder (eval/scale_data.py).
Past the number of real passages, rows are SYNTHETIC: the vector of a randomly chosen real
passage plus Gaussian noise (sigma per dimension, then renormalized to unit length) and that
passage's text. Every table row says how many of its passages are synthetic.

Every (engine, size, index) is built in one subprocess and queried in a fresh one (which loads
the saved index from disk), so memory is the RSS of a process that only does that; peak RSS
during the build is sampled from /proc every 50 ms. Latencies are per single query, warm (every
query is run once before timing), query vectors precomputed (embedding the query is not
included). Recall@10 compares the approximate dense top 10 with exact inner-product search
(faiss IndexFlatIP) over the same vectors. Hybrid = RRF (qa/fusion.py, the app's k and
weights) of dense top 30 and sparse top 30, as qa/retriever.py does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from scale_common import FAISS_KINDS, MILVUS_KINDS, RESULTS, SEED, SIGMA, THREADS, faiss_variants, milvus_variants, perturb  # noqa: E402
from scale_report import markdown  # noqa: E402
from scale_workers import worker_build, worker_micro, worker_query  # noqa: E402


# ------------------------------------------------------------------ driver

def run_worker(argv: list[str], log: Path, timeout: float) -> dict | None:
    cmd = [sys.executable, str(Path(__file__).resolve())] + argv
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(argv)}\n")
        f.flush()
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, timeout=timeout,
                                  env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(THREADS),
                                       "MKL_NUM_THREADS": str(THREADS), "OPENBLAS_NUM_THREADS": str(THREADS)})
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            f.write(out + f"timeout after {timeout:.0f} s\n")
            done = {}
            for line in out.splitlines():  # variants a build worker finished before the timeout
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), dict) \
                        and "build_s" in next(iter(obj.values())):
                    done.update(obj)
            partial = [line for line in out.splitlines() if line.startswith("PARTIAL ")]
            if partial:
                return {**json.loads(partial[-1][len("PARTIAL "):]), "error": f"timeout after {timeout:.0f} s"}
            return {"error": f"timeout after {timeout:.0f} s", "variants": done}
        f.write(proc.stdout)
        f.write(f"[exit {proc.returncode} after {time.perf_counter() - started:.1f} s]\n")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        partial = [line for line in proc.stdout.splitlines() if line.startswith("PARTIAL ")]
        out = json.loads(partial[-1][len("PARTIAL "):]) if partial else {}
        return {**out, "error": f"worker failed (exit {proc.returncode}); see {log}"}
    return json.loads(lines[-1][len("RESULT "):])


def machine() -> dict:
    import faiss

    info = {"cpus": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version(),
            "faiss": faiss.__version__}
    for pkg in ("pymilvus", "milvus-lite", "bm25s", "numpy"):
        try:
            from importlib.metadata import version

            info[pkg] = version(pkg)
        except Exception:
            info[pkg] = None
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--engines", nargs="+", default=["faiss", "milvus"])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/qa-bench-scale"))
    ap.add_argument("--milvus-batch", type=int, default=2000)
    ap.add_argument("--milvus-insert-limit-s", type=float, default=1200)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--budget-s", type=float, default=None, help="start no worker after this many seconds; cap timeouts")
    ap.add_argument("--milvus-max-size", type=int, default=None, help="skip Milvus above this size (reason recorded)")
    ap.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    ap.add_argument("--keep", action="store_true", help="keep the built indexes in --workdir")
    # worker mode
    ap.add_argument("--worker", choices=["build", "query", "micro"])
    ap.add_argument("--micro", action="store_true", help="FAISS measured directly (worker_micro), not through the store")
    ap.add_argument("--engine")
    ap.add_argument("--size", type=int)
    ap.add_argument("--variant")
    ap.add_argument("--sparse", action="store_true")
    ap.add_argument("--dense-only", action="store_true", help="measure dense search only (no BM25/hybrid rows)")
    ap.add_argument("--milvus-sparse", default="weights", choices=["tokens", "weights", "jieba"])
    ap.add_argument("--faiss-kinds", nargs="+", default=list(FAISS_KINDS), choices=FAISS_KINDS)
    ap.add_argument("--milvus-kinds", nargs="+", default=list(MILVUS_KINDS), choices=MILVUS_KINDS)
    ap.add_argument("--merge", nargs="+", help="combine the runs of these result files (file.json, or file.json:ENGINE for "
                                                "that engine's runs only) into --out (and .md)")
    ap.add_argument("--real", type=int, default=None, help="use at most this many real passages (default: all embedded)")
    args = ap.parse_args()

    if args.worker:
        result = {"build": worker_build, "query": worker_query, "micro": worker_micro}[args.worker](args)
        print("RESULT " + json.dumps(result), flush=True)
        return
    if args.merge:
        reports = []
        for spec in args.merge:  # "file.json" or "file.json:milvus" (only that engine's runs, said in the report)
            path, _, engine = str(spec).partition(":")
            r = json.loads(Path(path).read_text(encoding="utf-8"))
            if engine:
                r = {**r, "runs": [run for run in r["runs"] if run["engine"] == engine], "only_engine": engine}
            reports.append(r)
        merged = {**reports[0], "command": " ; ".join(r["command"] for r in reports),
                  "runs": sorted((run for r in reports for run in r["runs"]), key=lambda run: (run["size"], run["engine"])),
                  "parts": [{k: r.get(k) for k in ("command", "date", "load_average_start", "load_average_end", "only_engine")}
                            for r in reports]}
        merged.pop("only_engine", None)
        merged["load_average_end"] = reports[-1].get("load_average_end")
        args.out.write_text(json.dumps(merged, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        args.out.with_suffix(".md").write_text(markdown(merged), encoding="utf-8")
        return

    import scale_data

    rows, real, _, qvecs = scale_data.load_cached(args.real)
    args.real = len(real)  # pinned for every worker
    stats = json.loads((scale_data.cache_dir() / "chunk_stats.json").read_text())
    report = {"command": "python eval/bench_scale.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
              "load_average_start": os.getloadavg(),
              "data": {"real_passages_embedded": len(real), "real_passages_chunked": stats["passages"],
                       "embedding_backend": scale_data.embedding_backend(),
                       "chunk_sources": stats["sources"], "queries": min(args.queries, len(qvecs)),
                       "synthetic_sigma": SIGMA, "seed": SEED},
              "runs": []}
    # how close a synthetic vector is to its source (cosine), measured on a sample
    rng = np.random.default_rng(1)
    sample = real[rng.choice(len(real), size=min(2000, len(real)), replace=False)]
    report["data"]["synthetic_cosine_to_source_mean"] = round(float((perturb(sample, SIGMA, rng) * sample).sum(1).mean()), 4)
    report["data"]["real_nearest_neighbour_cosine_median"] = _nn_median(sample, real)
    out = args.out
    log = args.workdir / "bench_scale.log"
    args.workdir.mkdir(parents=True, exist_ok=True)

    def save():
        out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        out.with_suffix(".md").write_text(markdown(report), encoding="utf-8")

    t_start = time.perf_counter()

    def remaining() -> float:
        return args.timeout if args.budget_s is None else min(args.timeout, args.budget_s - (time.perf_counter() - t_start))

    if args.micro:
        for size in args.sizes:
            r = run_worker(["--worker", "micro", "--size", str(size), "--workdir", str(args.workdir / f"micro-{size}"),
                            "--real", str(args.real), "--queries", str(args.queries), "--sparse",
                            "--faiss-kinds", *args.faiss_kinds], log, remaining())
            report["runs"].append({"engine": "faiss (direct)", "size": size, "micro": r, "load_average": os.getloadavg()})
            save()
        report["load_average_end"] = os.getloadavg()
        save()
        return

    for size in args.sizes:
        for engine in args.engines:
            wd = args.workdir / f"{engine}-{size}"
            started = time.perf_counter()
            if engine == "milvus" and args.milvus_max_size is not None and size > args.milvus_max_size:
                rates = [r["build"]["insert"] for r in report["runs"] if r["engine"] == "milvus" and (r["build"] or {}).get("insert")]
                why = f"skipped above {args.milvus_max_size:,} passages"
                if rates:
                    last = rates[-1]
                    why += (f": the last measured Milvus Lite upsert rate, {last['rows_per_s']:,} rows/s wall "
                            f"({last['rows_per_cpu_s']:,} rows per CPU s) at {last['rows']:,} rows, would need "
                            f"{size / last['rows_per_s'] / 60:,.0f} min wall ({size / last['rows_per_cpu_s'] / 60:,.0f} CPU min) "
                            f"for {size:,} rows (projection, not measured)")
                report["runs"].append({"engine": engine, "size": size, "build": {"not_run": why}, "queries": []})
                save()
                continue
            if remaining() < 60:
                report["runs"].append({"engine": engine, "size": size, "build": {"not_run": "time budget of the run exhausted"},
                                       "queries": []})
                save()
                continue
            build = run_worker(["--worker", "build", "--engine", engine, "--size", str(size), "--workdir", str(wd), "--real", str(args.real),
                                "--faiss-kinds", *args.faiss_kinds, "--milvus-kinds", *args.milvus_kinds,
                                "--milvus-sparse", args.milvus_sparse, "--milvus-batch", str(args.milvus_batch),
                                "--milvus-insert-limit-s", str(args.milvus_insert_limit_s)], log, remaining())
            entry = {"engine": engine, "size": size, "build": build, "queries": [],
                     "load_average": os.getloadavg()}
            report["runs"].append(entry)
            save()
            if build.get("not_run") or (build.get("error") and not build.get("variants")):
                continue
            variants = faiss_variants(size, args.faiss_kinds) if engine == "faiss" else milvus_variants(size, args.milvus_kinds)
            variants = [v for v in variants if v["name"] in build.get("variants", {})]  # those built
            for i, variant in enumerate(variants):
                if remaining() < 30:
                    entry["queries"].append({"variant": variant["name"], "error": "not run: time budget of the run exhausted"})
                    continue
                q = run_worker(["--worker", "query", "--engine", engine, "--size", str(size), "--workdir", str(wd),
                                "--variant", variant["name"], "--queries", str(args.queries), "--real", str(args.real),
                                "--milvus-sparse", args.milvus_sparse] + (["--sparse"] if i == 0 and not args.dense_only else []),
                               log, remaining())
                q.setdefault("variant", variant["name"])
                entry["queries"].append(q)
                save()
            entry["wall_s"] = round(time.perf_counter() - started, 1)
            save()
            if not args.keep and engine != "faiss":
                shutil.rmtree(wd, ignore_errors=True)
        if not args.keep:
            for engine in args.engines:
                shutil.rmtree(args.workdir / f"{engine}-{size}", ignore_errors=True)
    report["load_average_end"] = os.getloadavg()
    save()


def _nn_median(sample: np.ndarray, real: np.ndarray) -> float:
    sims = sample @ real.T
    sims[sims > 0.9999] = -1  # the passage itself
    return round(float(np.median(sims.max(1))), 4)


if __name__ == "__main__":
    main()
