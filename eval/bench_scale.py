"""Scale benchmark: FAISS + bm25s files vs Milvus Lite at 10k / 100k / 1M passages.

    python eval/scale_data.py                      # once: chunk + embed the real passages (cached)
    python eval/bench_scale.py [--sizes 10000 100000 1000000] [--engines faiss milvus] [--queries 200]

Writes eval/results/scale.json and eval/results/scale.md.

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
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

RESULTS = ROOT / "eval" / "results"
SIGMA = 0.02  # per-dimension noise of synthetic vectors (before renormalizing)
SEED = 0
K = 10
CANDIDATES = 30


# ------------------------------------------------------------------ helpers (tested in tests/test_bench_scale.py)

def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int = K) -> float:
    """Mean over queries of |approx top k ∩ exact top k| / k (ids; -1 = no result)."""
    approx, exact = np.asarray(approx)[:, :k], np.asarray(exact)[:, :k]
    hits = [len(set(a[a >= 0].tolist()) & set(e[e >= 0].tolist())) for a, e in zip(approx, exact)]
    return float(np.mean(hits) / k) if hits else float("nan")


def perturb(base: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic vectors: base + N(0, sigma^2) per dimension, renormalized to unit length."""
    out = base.astype(np.float32) + rng.normal(0.0, sigma, size=base.shape).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def corpus_vectors(real: np.ndarray, n: int, sigma: float = SIGMA, seed: int = SEED,
                   block: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, source) for n passages: the real ones first, then synthetic perturbations.

    source[i] is the real passage whose text row i carries (== i for real rows)."""
    n_real = min(n, len(real))
    rng = np.random.default_rng(seed)
    source = np.concatenate([np.arange(n_real), rng.integers(0, len(real), size=n - n_real)]).astype(np.int64)
    vectors = np.empty((n, real.shape[1]), np.float32)
    vectors[:n_real] = real[:n_real]
    for start in range(n_real, n, block):
        end = min(n, start + block)
        vectors[start:end] = perturb(real[source[start:end]], sigma, rng)
    return vectors, source


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2)}


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """Samples this process's RSS every 50 ms while active."""

    def __enter__(self):
        self.peak, self._stop = rss_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def disk_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(fn, *args, **kwargs):
    s = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - s


# ------------------------------------------------------------------ data

def load_data(n: int, real_limit: int | None = None):
    """(texts, vectors, source, queries, query_vectors, n_real) for n passages."""
    import scale_data

    rows, real, qrows, qvecs = scale_data.load_cached(real_limit)
    vectors, source = corpus_vectors(real, n)
    real_texts = [r["text"] for r in rows]
    texts = [real_texts[s] for s in source]  # synthetic rows share the string object of their source
    return texts, vectors, source, qrows, qvecs, min(n, len(real))


@lru_cache(maxsize=None)
def _cached_tokens(text: str) -> tuple:
    from qa.text import tokenize

    return tuple(tokenize(text))


def memoize_tokenizer() -> None:
    """Synthetic rows repeat real texts: tokenize each distinct text once (qa.sparse uses qa.text.tokenize)."""
    import qa.sparse

    qa.sparse.tokenize = lambda text: list(_cached_tokens(text))


# ------------------------------------------------------------------ engines

def faiss_variants(n: int) -> list[dict]:
    nlist = max(16, int(round(math.sqrt(n))))
    return [
        {"name": "flat", "kind": "flat", "search": [{}]},
        {"name": "hnsw32", "kind": "hnsw", "M": 32, "efConstruction": 40,
         "search": [{"efSearch": e} for e in (16, 64, 128)]},
        {"name": f"ivf{nlist}", "kind": "ivf", "nlist": nlist, "search": [{"nprobe": p} for p in (4, 16, 64) if p < nlist]},
    ]


def milvus_variants(n: int) -> list[dict]:
    nlist = max(16, int(round(math.sqrt(n))))
    return [
        {"name": "FLAT", "kind": "FLAT", "params": {}, "search": [{}]},
        {"name": "HNSW", "kind": "HNSW", "params": {"M": 32, "efConstruction": 40},
         "search": [{"ef": e} for e in (16, 64, 128)]},
        {"name": "IVF_FLAT", "kind": "IVF_FLAT", "params": {"nlist": nlist},
         "search": [{"nprobe": p} for p in (4, 16, 64) if p < nlist]},
    ]


def faiss_build(variant: dict, vectors: np.ndarray, path: Path) -> dict:
    import faiss

    d = vectors.shape[1]
    info = {}
    if variant["kind"] == "flat":
        index = faiss.IndexFlatIP(d)
    elif variant["kind"] == "hnsw":
        index = faiss.IndexHNSWFlat(d, variant["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = variant["efConstruction"]
    else:
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, variant["nlist"], faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(SEED).choice(len(vectors), size=min(len(vectors), 40 * variant["nlist"]), replace=False)
        _, info["train_s"] = timed(index.train, vectors[np.sort(sample)])
        info["train_vectors"] = len(sample)
    index.add(vectors)
    faiss.write_index(index, str(path))
    return info


def faiss_open(variant: dict, path: Path):
    import faiss

    index = faiss.read_index(str(path))

    def search(qvecs: np.ndarray, k: int, params: dict):
        if "efSearch" in params:
            index.hnsw.efSearch = params["efSearch"]
        if "nprobe" in params:
            index.nprobe = params["nprobe"]
        _, ids = index.search(qvecs, k)
        return ids

    return index, search


MILVUS_COLLECTION = "passages"


def milvus_client(path: Path):
    from pymilvus import MilvusClient

    return MilvusClient(str(path))


def milvus_create(client, dim: int, variant: dict) -> None:
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("text", DataType.VARCHAR, max_length=16384, enable_analyzer=True,
                     analyzer_params={"tokenizer": "jieba"})
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                 output_field_names=["sparse"]))
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type=variant["kind"], metric_type="IP", params=variant["params"])
    params.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(MILVUS_COLLECTION, schema=schema, index_params=params)


def milvus_reindex(client, variant: dict) -> None:
    client.release_collection(MILVUS_COLLECTION)
    client.drop_index(MILVUS_COLLECTION, "vector")
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type=variant["kind"], metric_type="IP", params=variant["params"])
    client.create_index(MILVUS_COLLECTION, params)
    client.load_collection(MILVUS_COLLECTION)


# ------------------------------------------------------------------ workers (one subprocess each)

def worker_build(args) -> dict:
    out_dir = Path(args.workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_rss = rss_bytes()
    texts, vectors, source, qrows, qvecs, n_real = load_data(args.size, args.real)
    data_rss = rss_bytes()
    result = {"engine": args.engine, "size": args.size, "real": n_real, "synthetic": args.size - n_real,
              "rss_python_bytes": base_rss, "rss_with_data_bytes": data_rss, "variants": {}}
    import faiss

    result["faiss_threads"] = faiss.omp_get_max_threads()
    exact_path = out_dir.parent / f"exact-{args.size}.npy"
    if not exact_path.exists():
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        _, gt = exact.search(qvecs, CANDIDATES)
        np.save(exact_path, gt)
        del exact
        gc.collect()
    if args.engine == "faiss":
        for variant in faiss_variants(args.size):
            path = out_dir / f"dense-{variant['name']}.faiss"
            with PeakRss() as peak:
                info, seconds = timed(faiss_build, variant, vectors, path)
            result["variants"][variant["name"]] = {**info, "build_s": round(seconds, 2), "peak_rss_bytes": peak.peak,
                                                   "disk_bytes": disk_bytes(path)}
            print(json.dumps({variant["name"]: result["variants"][variant["name"]]}), flush=True)
            gc.collect()
        # sparse: qa.sparse.SparseIndex (bm25s over jieba tokens), as the app builds it at load time
        memoize_tokenizer()
        distinct = len({id(t) for t in texts})
        with PeakRss() as peak:
            _, tok_s = timed(lambda: [_cached_tokens(t) for t in dict.fromkeys(texts)])
            from qa.sparse import SparseIndex

            _, bm25_s = timed(SparseIndex, texts)
        result["sparse"] = {"tokenize_s": round(tok_s, 2), "distinct_texts": distinct,
                            "tokenize_passages_per_s": round(distinct / tok_s, 1), "bm25_index_s": round(bm25_s, 2),
                            "peak_rss_bytes": peak.peak}
    else:
        from pymilvus import MilvusClient  # noqa: F401

        variants = milvus_variants(args.size)
        db = out_dir / "milvus.db"
        shutil.rmtree(db, ignore_errors=True)
        client = milvus_client(db)
        milvus_create(client, vectors.shape[1], variants[0])
        batch = args.milvus_batch
        deadline = time.perf_counter() + args.milvus_insert_limit_s
        inserted = 0
        with PeakRss() as peak:
            started = time.perf_counter()
            for start in range(0, args.size, batch):
                end = min(args.size, start + batch)
                client.insert(MILVUS_COLLECTION, [{"id": i, "vector": vectors[i].tolist(), "text": texts[i]}
                                                  for i in range(start, end)])
                inserted = end
                if inserted % (batch * 20) == 0:
                    print(json.dumps({"inserted": inserted, "s": round(time.perf_counter() - started, 1)}), flush=True)
                if time.perf_counter() > deadline and inserted < args.size:
                    break
            insert_s = time.perf_counter() - started
            if inserted < args.size:
                result["not_run"] = (f"insert stopped after {args.milvus_insert_limit_s:.0f} s at {inserted} rows "
                                     f"({inserted / insert_s:.0f} rows/s)")
                result["insert"] = {"rows": inserted, "seconds": round(insert_s, 1), "rows_per_s": round(inserted / insert_s, 1)}
                client.close()
                return result
            _, flush_s = timed(client.flush, MILVUS_COLLECTION)
            _, load_s = timed(client.load_collection, MILVUS_COLLECTION)
        result["insert"] = {"rows": inserted, "seconds": round(insert_s, 1), "rows_per_s": round(inserted / insert_s, 1),
                            "flush_s": round(flush_s, 1), "first_load_s": round(load_s, 1), "batch": batch,
                            "peak_rss_bytes": peak.peak}
        result["variants"][variants[0]["name"]] = {"build_s": round(insert_s + flush_s + load_s, 2),
                                                   "peak_rss_bytes": peak.peak, "disk_bytes": disk_bytes(db)}
        client.release_collection(MILVUS_COLLECTION)
        shutil.copytree(db, out_dir / f"milvus-{variants[0]['name']}.db")
        for variant in variants[1:]:
            with PeakRss() as peak:
                _, seconds = timed(milvus_reindex, client, variant)
            result["variants"][variant["name"]] = {"index_build_s": round(seconds, 2),
                                                   "build_s": round(insert_s + flush_s + seconds, 2),
                                                   "peak_rss_bytes": peak.peak, "disk_bytes": disk_bytes(db)}
            client.release_collection(MILVUS_COLLECTION)
            shutil.copytree(db, out_dir / f"milvus-{variant['name']}.db")
            print(json.dumps({variant["name"]: result["variants"][variant["name"]]}), flush=True)
        client.close()
        shutil.rmtree(db, ignore_errors=True)
    return result


def worker_query(args) -> dict:
    from qa.fusion import reciprocal_rank_fusion
    from qa.settings import load_settings

    settings = load_settings()
    out_dir = Path(args.workdir)
    import scale_data

    _, _, qrows, qvecs = scale_data.load_cached(limit=0)
    qvecs, qrows = qvecs[: args.queries], qrows[: args.queries]
    questions = [q["question"] for q in qrows]
    exact = np.load(out_dir.parent / f"exact-{args.size}.npy")[: len(qvecs)]
    gc.collect()
    base_rss = rss_bytes()
    result = {"engine": args.engine, "size": args.size, "variant": args.variant, "queries": len(qvecs),
              "rss_before_load_bytes": base_rss}

    def measure(fn, items):
        for x in items:  # warm
            fn(x)
        ms, outs = [], []
        for x in items:
            s = time.perf_counter()
            outs.append(fn(x))
            ms.append((time.perf_counter() - s) * 1000)
        return outs, percentiles(ms)

    def fuse(d_ids, s_ids):
        return reciprocal_rank_fusion([list(d_ids), list(s_ids)], k=settings.rrf_k,
                                      weights=[settings.dense_weight, settings.sparse_weight])[:K]

    if args.engine == "faiss":
        variant = next(v for v in faiss_variants(args.size) if v["name"] == args.variant)
        (index, search), load_s = timed(faiss_open, variant, out_dir / f"dense-{variant['name']}.faiss")
        result["load_s"] = round(load_s, 2)
        result["rss_dense_bytes"] = rss_bytes() - base_rss
        runs = []
        for params in variant["search"]:
            ids, lat = measure(lambda q: search(q.reshape(1, -1), CANDIDATES, params)[0], list(qvecs))
            runs.append({"params": params, "dense": lat, "recall_at_10": round(recall_at_k(np.array(ids), exact), 4),
                         "_ids": ids})
        if args.sparse:
            texts, _, _, _, _, _ = load_data(args.size, args.real)  # texts only; vectors are dropped below
            gc.collect()
            memoize_tokenizer()
            before = rss_bytes()
            from qa.sparse import SparseIndex

            sparse, sparse_s = timed(SparseIndex, texts)
            result["sparse_build_s"] = round(sparse_s, 2)
            result["rss_sparse_bytes"] = rss_bytes() - before
            s_ids, result["sparse"] = measure(lambda q: [i for i, _ in sparse.search(q, CANDIDATES)], questions)
            for run in runs:
                # hybrid latency = dense search + sparse search + fusion, per query
                _, run["hybrid"] = measure(
                    lambda i: fuse(search(qvecs[i].reshape(1, -1), CANDIDATES, run["params"])[0],
                                   [j for j, _ in sparse.search(questions[i], CANDIDATES)]), range(len(qvecs)))
    else:
        variant = next(v for v in milvus_variants(args.size) if v["name"] == args.variant)
        client, connect_s = timed(milvus_client, out_dir / f"milvus-{variant['name']}.db")
        _, load_s = timed(client.load_collection, MILVUS_COLLECTION)
        result["load_s"] = round(connect_s + load_s, 2)
        result["rss_loaded_bytes"] = rss_bytes() - base_rss

        def dense(q, params):
            r = client.search(MILVUS_COLLECTION, data=[q.tolist()], anns_field="vector", limit=CANDIDATES,
                              output_fields=["id"], search_params={"metric_type": "IP", "params": params})
            return [h["id"] for h in r[0]]

        def sparse(text):
            r = client.search(MILVUS_COLLECTION, data=[text], anns_field="sparse", limit=CANDIDATES,
                              output_fields=["id"], search_params={"metric_type": "BM25", "params": {}})
            return [h["id"] for h in r[0]]

        runs = []
        for params in variant["search"]:
            ids, lat = measure(lambda q: dense(q, params), list(qvecs))
            padded = np.array([(x + [-1] * CANDIDATES)[:CANDIDATES] for x in ids])
            runs.append({"params": params, "dense": lat, "recall_at_10": round(recall_at_k(padded, exact), 4), "_ids": ids})
        if args.sparse:
            _, result["sparse"] = measure(sparse, questions)
            for run in runs:
                _, run["hybrid"] = measure(lambda i: fuse(dense(qvecs[i], run["params"]), sparse(questions[i])),
                                           range(len(qvecs)))
        client.close()
    for run in runs:
        run.pop("_ids")
    result["runs"] = runs
    result["rss_after_queries_bytes"] = rss_bytes() - base_rss
    return result


# ------------------------------------------------------------------ driver

def run_worker(argv: list[str], log: Path, timeout: float) -> dict | None:
    cmd = [sys.executable, str(Path(__file__).resolve())] + argv
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(argv)}\n")
        f.flush()
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, timeout=timeout,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        except subprocess.TimeoutExpired:
            f.write(f"timeout after {timeout} s\n")
            return {"error": f"timeout after {timeout:.0f} s"}
        f.write(proc.stdout)
        f.write(f"[exit {proc.returncode} after {time.perf_counter() - started:.1f} s]\n")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": f"worker failed (exit {proc.returncode}); see {log}"}
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
    ap.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    ap.add_argument("--keep", action="store_true", help="keep the built indexes in --workdir")
    # worker mode
    ap.add_argument("--worker", choices=["build", "query"])
    ap.add_argument("--engine")
    ap.add_argument("--size", type=int)
    ap.add_argument("--variant")
    ap.add_argument("--sparse", action="store_true")
    ap.add_argument("--real", type=int, default=None, help="use at most this many real passages (default: all embedded)")
    args = ap.parse_args()

    if args.worker:
        result = worker_build(args) if args.worker == "build" else worker_query(args)
        print("RESULT " + json.dumps(result), flush=True)
        return

    import scale_data

    rows, real, _, qvecs = scale_data.load_cached(args.real)
    args.real = len(real)  # pinned for every worker
    stats = json.loads((scale_data.cache_dir() / "chunk_stats.json").read_text())
    report = {"command": "python eval/bench_scale.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
              "load_average_start": os.getloadavg(),
              "data": {"real_passages_embedded": len(real), "real_passages_chunked": stats["passages"],
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

    for size in args.sizes:
        for engine in args.engines:
            wd = args.workdir / f"{engine}-{size}"
            started = time.perf_counter()
            build = run_worker(["--worker", "build", "--engine", engine, "--size", str(size), "--workdir", str(wd), "--real", str(args.real),
                                "--milvus-batch", str(args.milvus_batch),
                                "--milvus-insert-limit-s", str(args.milvus_insert_limit_s)], log, args.timeout)
            entry = {"engine": engine, "size": size, "build": build, "queries": [],
                     "load_average": os.getloadavg()}
            report["runs"].append(entry)
            save()
            if build.get("error") or build.get("not_run"):
                continue
            variants = faiss_variants(size) if engine == "faiss" else milvus_variants(size)
            for i, variant in enumerate(variants):
                q = run_worker(["--worker", "query", "--engine", engine, "--size", str(size), "--workdir", str(wd),
                                "--variant", variant["name"], "--queries", str(args.queries), "--real", str(args.real)] + (["--sparse"] if i == 0 else []),
                               log, args.timeout)
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


def _mb(b) -> str:
    return "–" if b is None else f"{b / 2**20:,.0f}"


def markdown(r: dict) -> str:
    d = r["data"]
    m = r["machine"]
    lines = ["# Scale benchmark: FAISS + bm25s vs Milvus Lite", "",
             f"Date {r['date']}. Command: `{r['command']}`. Machine: {m['cpus']} cores ({m['arch']}), "
             f"{m.get('memory_gib')} GiB RAM, shared with other jobs (load average at start "
             f"{', '.join(f'{x:.1f}' for x in r['load_average_start'])}"
             + (f"; at end {', '.join(f'{x:.1f}' for x in r['load_average_end'])}" if r.get("load_average_end") else "")
             + f"). Python {m['python']}, faiss {m['faiss']}, milvus-lite {m['milvus-lite']}, pymilvus {m['pymilvus']}, "
             f"bm25s {m['bm25s']}.", "",
             f"Real passages: {d['real_passages_embedded']:,} embedded (of {d['real_passages_chunked']:,} chunks of all "
             f"paragraphs of ../shared/evaldata and ../shared/traindata; Chinese sets first). Rows past that are "
             f"**synthetic**: a real vector + N(0, {d['synthetic_sigma']}²) per dimension, renormalized (mean cosine to "
             f"its source {d['synthetic_cosine_to_source_mean']}; for comparison the median cosine of a real passage to its "
             f"nearest other real passage is {d['real_nearest_neighbour_cosine_median']}), carrying the source's text. "
             f"{d['queries']} real questions (XQuAD zh + DRCD dev), vectors precomputed.", ""]
    lines += ["| engine | passages (synthetic) | dense index | build s | peak RSS MB (build) | RSS MB (loaded) | disk MB | "
              "search params | recall@10 | dense p50/p95 ms | sparse p50/p95 ms | hybrid p50/p95 ms |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for run in r["runs"]:
        b = run["build"] or {}
        label = f"{run['size']:,} ({b.get('synthetic', run['size']):,})" if "synthetic" in b else f"{run['size']:,}"
        if b.get("error") or b.get("not_run"):
            lines.append(f"| {run['engine']} | {label} | – | not run: {b.get('error') or b.get('not_run')} | | | | | | | | |")
            continue
        for q in run["queries"]:
            if not q or q.get("error"):
                lines.append(f"| {run['engine']} | {label} | ? | query worker failed: {(q or {}).get('error')} | | | | | | | | |")
                continue
            v = b["variants"].get(q["variant"], {})
            sparse_q = next((x for x in run["queries"] if x and x.get("sparse")), {})
            loaded = q.get("rss_dense_bytes", q.get("rss_loaded_bytes"))
            for j, rr in enumerate(q["runs"]):
                params = ", ".join(f"{k}={val}" for k, val in rr["params"].items()) or "exact"
                sp = sparse_q.get("sparse") or {}
                hy = rr.get("hybrid")
                lines.append(
                    f"| {run['engine']} | {label} | {q['variant']} | {v.get('build_s', '–') if j == 0 else ''} | "
                    f"{_mb(v.get('peak_rss_bytes')) if j == 0 else ''} | {_mb(loaded) if j == 0 else ''} | "
                    f"{_mb(v.get('disk_bytes')) if j == 0 else ''} | {params} | {rr['recall_at_10']:.3f} | "
                    f"{rr['dense']['p50_ms']} / {rr['dense']['p95_ms']} | "
                    f"{(str(sp['p50_ms']) + ' / ' + str(sp['p95_ms'])) if sp and j == 0 and q is sparse_q else ''} | "
                    f"{(str(hy['p50_ms']) + ' / ' + str(hy['p95_ms'])) if hy else ''} |")
    lines += ["", "Sparse (BM25) builds:", ""]
    for run in r["runs"]:
        b = run["build"] or {}
        if b.get("sparse"):
            s = b["sparse"]
            sq = next((x for x in run["queries"] if x and x.get("sparse_build_s") is not None), {})
            lines.append(f"- faiss engine, {run['size']:,}: qa.sparse.SparseIndex (bm25s) index {s['bm25_index_s']} s over "
                         f"{s['distinct_texts']:,} distinct texts tokenized in {s['tokenize_s']} s "
                         f"({s['tokenize_passages_per_s']} passages/s with jieba); rebuilt at every load "
                         f"({sq.get('sparse_build_s')} s, +{_mb(sq.get('rss_sparse_bytes'))} MB RSS in the query process).")
        if b.get("insert"):
            s = b["insert"]
            lines.append(f"- milvus, {run['size']:,}: insert {s['rows']:,} rows in {s['seconds']} s ({s['rows_per_s']} rows/s, "
                         f"batches of {s.get('batch')}; jieba BM25 analysis at insert), flush {s.get('flush_s')} s, "
                         f"first load {s.get('first_load_s')} s.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
