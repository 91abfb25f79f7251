"""Scale benchmark: FAISS + bm25s files vs Milvus Lite at 10k / 100k / 1M passages.

    python eval/scale_data.py                      # once: chunk + embed the real passages (cached)
    python eval/bench_scale.py [--sizes 10000 100000 1000000] [--engines faiss milvus] [--queries 200]
    python eval/bench_scale.py --micro --sizes 1000000 --faiss-kinds flat ivf   # FAISS + BM25 directly, one process
    python eval/bench_scale.py --merge part1.json part2.json ... --out eval/results/scale.json

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
THREADS = 1  # OMP/BLAS threads of every worker: on a shared 2-core machine, OpenMP barriers stall badly


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


def percentiles(ms: list[float], cpu_ms: list[float] | None = None) -> dict:
    a = np.asarray(ms)
    out = {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2)}
    if cpu_ms is not None:
        c = np.asarray(cpu_ms)
        out.update({"cpu_p50_ms": round(float(np.percentile(c, 50)), 2), "cpu_p95_ms": round(float(np.percentile(c, 95)), 2)})
    return out


def measure(fn, items, warm=20):
    """Run fn over items after `warm` warm-up calls: outputs, and wall/CPU ms percentiles per call."""
    for x in items[:warm]:
        fn(x)
    ms, cpu, outs = [], [], []
    for x in items:
        s, c = time.perf_counter(), time.process_time()
        outs.append(fn(x))
        ms.append((time.perf_counter() - s) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return outs, percentiles(ms, cpu)


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


def timed_cpu(fn, *args, **kwargs):
    """(result, wall s, CPU s of this process, all threads): CPU time is what a shared machine distorts least."""
    s, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - s, time.process_time() - c


# ------------------------------------------------------------------ data

def load_data(n: int, real_limit: int | None = None):
    """(texts, vectors, source, queries, query_vectors, n_real) for n passages."""
    import scale_data

    rows, real, qrows, qvecs = scale_data.load_cached(real_limit)
    vectors, source = corpus_vectors(real, n)
    real_texts = [r["text"] for r in rows]
    texts = [real_texts[s] for s in source]  # synthetic rows share the string object of their source
    return texts, vectors, source, qrows, qvecs, min(n, len(real))


def memoize_tokenizer():
    """Synthetic rows repeat real texts: tokenize each distinct text once. Both stores tokenize with
    qa.text.tokenize (qa.sparse for bm25s, qa.stores.milvus_store for Milvus' hashed terms)."""
    import qa.sparse
    import qa.stores.milvus_store as ms

    @lru_cache(maxsize=None)
    def tokens(text: str) -> tuple:
        from qa.text import tokenize

        return tuple(tokenize(text))

    saved = (qa.sparse.tokenize, ms.tokenize, ms.hashed_terms)
    qa.sparse.tokenize = lambda text: list(tokens(text))
    ms.tokenize = lambda text: list(tokens(text))
    ms.hashed_terms = lru_cache(maxsize=None)(ms.hashed_terms)

    def restore():  # queries are tokenized afresh, as in the app
        qa.sparse.tokenize, ms.tokenize, ms.hashed_terms = saved

    return restore


def make_chunks(texts: list[str]):
    """One qa.types.Chunk per row (doc_id p<row>, the whole text): unique Milvus keys, ordinary FAISS chunks."""
    from qa.types import Chunk, Sentence

    return [Chunk(chunk_id=i, doc_id=f"p{i}", start=0, end=len(t), text=t, sentences=[Sentence(0, len(t))])
            for i, t in enumerate(texts)]


# ------------------------------------------------------------------ engines (through qa/stores)

FAISS_KINDS = ("flat", "ivf", "hnsw")


def faiss_variants(n: int, kinds=FAISS_KINDS) -> list[dict]:
    return [v for v in _faiss_variants(n) if v["kind"] in kinds]


def _faiss_variants(n: int) -> list[dict]:
    nlist = max(16, int(round(math.sqrt(n))))
    return [
        {"name": "flat", "kind": "flat", "search": [{}]},
        {"name": f"ivf{nlist}", "kind": "ivf", "nlist": nlist, "search": [{"nprobe": p} for p in (4, 16, 64) if p < nlist]},
        {"name": "hnsw32", "kind": "hnsw", "M": 32, "efConstruction": 40,
         "search": [{"efSearch": e} for e in (16, 64, 128)]},
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


def faiss_dense(variant: dict, vectors: np.ndarray) -> tuple:
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
    return index, info


def faiss_save(chunks, dense, folder: Path) -> None:
    """qa.stores.faiss_store.save_index of a SearchIndex holding `dense` (no BM25 built: save never uses it)."""
    from qa.settings import load_settings
    from qa.stores.faiss_store import FORMAT_VERSION, SearchIndex, save_index

    index = object.__new__(SearchIndex)
    index.manifest = {"format": FORMAT_VERSION, "model": load_settings().embedding_model, "dim": dense.d,
                      "chunking": {}, "documents": {}}
    index.chunks, index.dense, index.texts = chunks, dense, {}
    save_index(index, folder)


def set_faiss_params(dense, params: dict) -> None:
    if "efSearch" in params:
        dense.hnsw.efSearch = params["efSearch"]
    if "nprobe" in params:
        dense.nprobe = params["nprobe"]


def milvus_store(path: Path, variant: dict, sparse: str = "weights"):
    import qa.stores.milvus_store as ms

    ms.DENSE_INDEXES[variant["kind"]] = dict(variant["params"])
    return ms.MilvusStore(str(path), prefix="bench", index_type=variant["kind"], sparse=sparse)


def milvus_reindex(store, variant: dict) -> None:
    """Replace the dense index of the passages collection (rows stay)."""
    import qa.stores.milvus_store as ms

    client, name = store.client, store.passages
    client.release_collection(name)
    client.drop_index(name, "vector")
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type=variant["kind"], metric_type="IP", params=variant["params"])
    client.create_index(name, params)
    client.load_collection(name)
    store.index_type = variant["kind"]
    ms.DENSE_INDEXES[variant["kind"]] = dict(variant["params"])


# ------------------------------------------------------------------ workers (one subprocess each)

def exact_ids(out_dir: Path, size: int, vectors: np.ndarray, qvecs: np.ndarray) -> None:
    import faiss

    path = out_dir.parent / f"exact-{size}.npy"
    if not path.exists():
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        _, gt = exact.search(qvecs, CANDIDATES)
        np.save(path, gt)


def copy_db(store, db: Path, to: Path) -> None:
    """A copy of the Milvus Lite folder for the query processes: flushed, released, and after background
    compaction settled (a copy taken during it was once unreadable)."""
    store.client.flush(store.passages)
    store.client.release_collection(store.passages)
    time.sleep(5)
    shutil.copytree(db, to)


def worker_build(args) -> dict:
    import faiss

    out_dir = Path(args.workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_rss = rss_bytes()
    texts, vectors, source, qrows, qvecs, n_real = load_data(args.size, args.real)
    chunks = make_chunks(texts)
    result = {"engine": args.engine, "size": args.size, "real": n_real, "synthetic": args.size - n_real,
              "rss_python_bytes": base_rss, "rss_with_data_bytes": rss_bytes(), "variants": {},
              "faiss_threads": faiss.omp_get_max_threads()}
    exact_ids(out_dir, args.size, vectors, qvecs)
    gc.collect()
    if args.engine == "faiss":
        for variant in faiss_variants(args.size, args.faiss_kinds):
            folder = out_dir / variant["name"]
            with PeakRss() as peak:
                (dense, info), dense_s, dense_cpu = timed_cpu(faiss_dense, variant, vectors)
                _, save_s, save_cpu = timed_cpu(faiss_save, chunks, dense, folder)
            result["variants"][variant["name"]] = {**info, "dense_build_s": round(dense_s, 2), "save_s": round(save_s, 2),
                                                   "build_s": round(dense_s + save_s, 2),
                                                   "build_cpu_s": round(dense_cpu + save_cpu, 2), "peak_rss_bytes": peak.peak,
                                                   "disk_bytes": disk_bytes(folder),
                                                   "dense_file_bytes": disk_bytes(next(folder.glob("builds/*/dense.faiss")))}
            print(json.dumps({variant["name"]: result["variants"][variant["name"]]}), flush=True)
            del dense
            gc.collect()
        return result

    memoize_tokenizer()
    variants = milvus_variants(args.size)
    db = out_dir / "milvus.db"
    shutil.rmtree(db, ignore_errors=True)
    store = milvus_store(db, variants[0], args.milvus_sparse)
    result["milvus_sparse"] = args.milvus_sparse
    store.create(vectors.shape[1])
    batch = args.milvus_batch
    deadline = time.perf_counter() + args.milvus_insert_limit_s
    inserted = 0
    with PeakRss() as peak:
        started, cpu0 = time.perf_counter(), time.process_time()
        for start in range(0, args.size, batch):
            end = min(args.size, start + batch)
            store.add(chunks[start:end], vectors[start:end], "", flush=False, batch=batch)
            inserted = end
            if (inserted // batch) % 10 == 0:
                print(json.dumps({"inserted": inserted, "s": round(time.perf_counter() - started, 1)}), flush=True)
            if time.perf_counter() > deadline and inserted < args.size:
                break
        insert_s, insert_cpu = time.perf_counter() - started, time.process_time() - cpu0
        result["insert"] = {"rows": inserted, "seconds": round(insert_s, 1), "cpu_s": round(insert_cpu, 1),
                            "rows_per_s": round(inserted / insert_s, 1), "rows_per_cpu_s": round(inserted / insert_cpu, 1),
                            "batch": batch}
        if inserted < args.size:
            result["not_run"] = (f"Milvus Lite upsert stopped after {args.milvus_insert_limit_s:.0f} s at {inserted:,} of "
                                 f"{args.size:,} rows ({inserted / insert_s:.0f} rows/s wall, {inserted / insert_cpu:.0f} rows per CPU s)")
            store.close()
            return result
        _, flush_s, flush_cpu = timed_cpu(store.flush)
    result["insert"].update({"flush_s": round(flush_s, 1), "peak_rss_bytes": peak.peak})
    result["variants"][variants[0]["name"]] = {"build_s": round(insert_s + flush_s, 2),
                                               "build_cpu_s": round(insert_cpu + flush_cpu, 2), "peak_rss_bytes": peak.peak,
                                               "disk_bytes": disk_bytes(db)}
    copy_db(store, db, out_dir / f"milvus-{variants[0]['name']}.db")
    for variant in variants[1:]:
        with PeakRss() as peak:
            _, seconds, cpu = timed_cpu(milvus_reindex, store, variant)
        result["variants"][variant["name"]] = {"index_build_s": round(seconds, 2), "index_build_cpu_s": round(cpu, 2),
                                               "build_s": round(insert_s + flush_s + seconds, 2),
                                               "build_cpu_s": round(insert_cpu + flush_cpu + cpu, 2),
                                               "peak_rss_bytes": peak.peak, "disk_bytes": disk_bytes(db)}
        copy_db(store, db, out_dir / f"milvus-{variant['name']}.db")
        print(json.dumps({variant["name"]: result["variants"][variant["name"]]}), flush=True)
    store.close()
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
    restore_tokenizer = memoize_tokenizer()  # for the index load only
    gc.collect()
    base_rss = rss_bytes()
    result = {"engine": args.engine, "size": args.size, "variant": args.variant, "queries": len(qvecs),
              "rss_before_load_bytes": base_rss}

    def fuse(d_ids, s_ids):
        return reciprocal_rank_fusion([list(d_ids), list(s_ids)], k=settings.rrf_k,
                                      weights=[settings.dense_weight, settings.sparse_weight])[:K]

    if args.engine == "faiss":
        from qa.stores.faiss_store import load_index

        variant = next(v for v in _faiss_variants(args.size) if v["name"] == args.variant)
        # the app's load: checksums, chunks.jsonl, dense index, BM25 rebuilt from the chunk texts
        index, load_s, load_cpu = timed_cpu(load_index, out_dir / variant["name"], settings)
        result["load_s"], result["load_cpu_s"] = round(load_s, 2), round(load_cpu, 2)
        result["rss_loaded_bytes"] = rss_bytes() - base_rss
        dense = lambda q: [i for i, _ in index.dense_search(q, CANDIDATES)]  # noqa: E731
        sparse = lambda text: [i for i, _ in index.sparse_search(text, CANDIDATES)]  # noqa: E731
        set_params = lambda params: set_faiss_params(index.dense, params)  # noqa: E731
    else:
        import qa.stores.milvus_store as ms

        variant = next(v for v in milvus_variants(args.size) if v["name"] == args.variant)
        store, connect_s, connect_cpu = timed_cpu(milvus_store, out_dir / f"milvus-{variant['name']}.db", variant,
                                                  args.milvus_sparse)
        _, load_s, load_cpu = timed_cpu(store._load)
        result["load_s"], result["load_cpu_s"] = round(connect_s + load_s, 2), round(connect_cpu + load_cpu, 2)
        result["rss_loaded_bytes"] = rss_bytes() - base_rss
        texts, *_ = load_data(args.size, args.real)
        keys = {ms.passage_key(f"p{i}", "", 0, len(t)): i for i, t in enumerate(texts)}
        idf = None
        result["milvus_sparse"] = store.sparse_mode
        if store.sparse_mode == "weights":  # as MilvusIndex._idf: document frequencies over the passages in memory
            from collections import Counter

            df, df_s, df_cpu = timed_cpu(lambda: Counter(t for x in texts for t in set(ms.tokenize(x) or ["\u2205"])))
            result["idf_table_s"], result["idf_table_cpu_s"] = round(df_s, 2), round(df_cpu, 2)
            n_rows = len(texts)

            def idf(token):
                d = df.get(token, 0)
                return math.log(1 + (n_rows - d + 0.5) / (d + 0.5)) if d else 0.0
        del texts
        gc.collect()
        dense = lambda q: [keys[k] for k, _ in store.dense_search(q, CANDIDATES)]  # noqa: E731
        sparse = lambda text: [keys[k] for k, _ in store.sparse_search(text, CANDIDATES, idf)]  # noqa: E731

        def set_params(params):
            ms.SEARCH_PARAMS[variant["kind"]] = dict(params)

    restore_tokenizer()
    runs = []
    for params in variant["search"]:
        set_params(params)
        ids, lat = measure(dense, list(qvecs))
        padded = np.array([(x + [-1] * CANDIDATES)[:CANDIDATES] for x in ids])
        runs.append({"params": params, "dense": lat, "recall_at_10": round(recall_at_k(padded, exact), 4)})
    if args.sparse:
        _, result["sparse"] = measure(sparse, questions)
        for run in runs:
            set_params(run["params"])
            # hybrid = dense top 30 + sparse top 30 + RRF, per query
            _, run["hybrid"] = measure(lambda i: fuse(dense(qvecs[i]), sparse(questions[i])), list(range(len(qvecs))))
    if args.engine == "milvus":
        store.close()
    result["runs"] = runs
    result["rss_after_queries_bytes"] = rss_bytes() - base_rss
    return result


def worker_micro(args) -> dict:
    """Dense and sparse indexes measured directly (faiss, qa.sparse.SparseIndex) in one process, without the
    store's save/load path (chunks.jsonl, checksums): for sizes where that path does not fit the time."""
    import faiss
    from qa.fusion import reciprocal_rank_fusion
    from qa.settings import load_settings
    from qa.sparse import SparseIndex

    settings = load_settings()
    out_dir = Path(args.workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = rss_bytes()
    (texts, vectors, source, qrows, qvecs, n_real), data_s, data_cpu = timed_cpu(load_data, args.size, args.real)
    qvecs, qrows = qvecs[: args.queries], qrows[: args.queries]
    questions = [q["question"] for q in qrows]
    result = {"engine": "faiss (direct)", "size": args.size, "real": n_real, "synthetic": args.size - n_real,
              "queries": len(qvecs), "data_s": round(data_s, 1), "data_cpu_s": round(data_cpu, 1),
              "rss_data_bytes": rss_bytes() - base, "faiss_threads": faiss.omp_get_max_threads(), "variants": {}}

    def emit():
        print("PARTIAL " + json.dumps(result), flush=True)

    indexes = {}
    for variant in faiss_variants(args.size, args.faiss_kinds):
        before = rss_bytes()
        with PeakRss() as peak:
            (index, info), wall, cpu = timed_cpu(faiss_dense, variant, vectors)
        path = out_dir / f"{variant['name']}.faiss"
        faiss.write_index(index, str(path))
        entry = {**info, "build_s": round(wall, 2), "build_cpu_s": round(cpu, 2), "peak_rss_bytes": peak.peak,
                 "rss_index_bytes": rss_bytes() - before, "disk_bytes": disk_bytes(path), "runs": []}
        path.unlink()
        for params in variant["search"]:
            set_faiss_params(index, params)
            ids, lat = measure(lambda q: index.search(q.reshape(1, -1), CANDIDATES)[1][0], list(qvecs))
            ids = np.array(ids)
            if variant["kind"] == "flat":
                exact = ids
            entry["runs"].append({"params": params, "dense": lat, "recall_at_10": round(recall_at_k(ids, exact), 4)})
        result["variants"][variant["name"]] = entry
        indexes[variant["name"]] = index
        emit()
        if variant["kind"] != "flat":
            del indexes[variant["name"]], index
            gc.collect()
    if "flat" in indexes and args.sparse:
        restore = memoize_tokenizer()
        before = rss_bytes()
        sparse, wall, cpu = timed_cpu(SparseIndex, texts)
        restore()
        result["sparse"] = {"build_s": round(wall, 2), "build_cpu_s": round(cpu, 2), "rss_index_bytes": rss_bytes() - before,
                            "distinct_texts": len(set(texts))}
        emit()
        _, result["sparse"]["query"] = measure(lambda t: sparse.search(t, CANDIDATES), questions)
        flat = indexes["flat"]

        def hybrid(i):
            d = flat.search(qvecs[i].reshape(1, -1), CANDIDATES)[1][0]
            s = [j for j, _ in sparse.search(questions[i], CANDIDATES)]
            return reciprocal_rank_fusion([list(d), s], k=settings.rrf_k,
                                          weights=[settings.dense_weight, settings.sparse_weight])[:K]

        _, result["sparse"]["hybrid_flat"] = measure(hybrid, list(range(len(qvecs))))
        emit()
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
    ap.add_argument("--milvus-sparse", default="weights", choices=["tokens", "weights", "jieba"])
    ap.add_argument("--faiss-kinds", nargs="+", default=list(FAISS_KINDS), choices=FAISS_KINDS)
    ap.add_argument("--merge", type=Path, nargs="+", help="combine the runs of these result files into --out (and .md)")
    ap.add_argument("--real", type=int, default=None, help="use at most this many real passages (default: all embedded)")
    args = ap.parse_args()

    if args.worker:
        result = {"build": worker_build, "query": worker_query, "micro": worker_micro}[args.worker](args)
        print("RESULT " + json.dumps(result), flush=True)
        return
    if args.merge:
        reports = [json.loads(p.read_text(encoding="utf-8")) for p in args.merge]
        merged = {**reports[0], "command": " ; ".join(r["command"] for r in reports),
                  "runs": sorted((run for r in reports for run in r["runs"]), key=lambda run: (run["size"], run["engine"])),
                  "parts": [{k: r.get(k) for k in ("command", "date", "load_average_start", "load_average_end")} for r in reports]}
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
                                "--faiss-kinds", *args.faiss_kinds, "--milvus-sparse", args.milvus_sparse, "--milvus-batch", str(args.milvus_batch),
                                "--milvus-insert-limit-s", str(args.milvus_insert_limit_s)], log, remaining())
            entry = {"engine": engine, "size": size, "build": build, "queries": [],
                     "load_average": os.getloadavg()}
            report["runs"].append(entry)
            save()
            if build.get("not_run") or (build.get("error") and not build.get("variants")):
                continue
            variants = faiss_variants(size, args.faiss_kinds) if engine == "faiss" else milvus_variants(size)
            variants = [v for v in variants if v["name"] in build.get("variants", {})]  # those built
            for i, variant in enumerate(variants):
                if remaining() < 30:
                    entry["queries"].append({"variant": variant["name"], "error": "not run: time budget of the run exhausted"})
                    continue
                q = run_worker(["--worker", "query", "--engine", engine, "--size", str(size), "--workdir", str(wd),
                                "--variant", variant["name"], "--queries", str(args.queries), "--real", str(args.real),
                                "--milvus-sparse", args.milvus_sparse] + (["--sparse"] if i == 0 else []),
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


def _micro_rows(run: dict) -> list[str]:
    m = run["micro"] or {}
    label = f"{run['size']:,} ({m['synthetic']:,})" if "synthetic" in m else f"{run['size']:,}"
    if not m.get("variants"):
        return [f"| faiss (direct) | {label} | – | not run: {m.get('error')} | | | | | | | | |"]
    out = []
    sp = m.get("sparse") or {}
    for name, v in m["variants"].items():
        for j, rr in enumerate(v["runs"]):
            params = ", ".join(f"{k}={val}" for k, val in rr["params"].items()) or "exact"
            first = j == 0
            out.append(f"| faiss (direct) | {label} | {name} | {_build(v) if first else ''} | "
                       f"{_mb(v.get('peak_rss_bytes')) if first else ''} | {'+' + _mb(v.get('rss_index_bytes')) if first else ''} | "
                       f"{_mb(v.get('disk_bytes')) if first else ''} | {params} | {rr['recall_at_10']:.3f} | {_lat(rr['dense'])} | "
                       f"{_lat(sp.get('query')) if name == 'flat' else ''} | {_lat(sp.get('hybrid_flat')) if name == 'flat' else ''} |")
    return out


def _lat(x) -> str:
    if not x:
        return ""
    return f"{x['p50_ms']} / {x['p95_ms']}" + (f" ({x['cpu_p50_ms']})" if "cpu_p50_ms" in x else "")


def _build(v: dict) -> str:
    if "build_s" not in v:
        return "–"
    return f"{v['build_s']}" + (f" ({v['build_cpu_s']})" if "build_cpu_s" in v else "")


def _mb(b) -> str:
    return "–" if b is None else f"{b / 2**20:,.0f}"


def _engine(run: dict) -> str:
    if run["engine"] != "milvus":
        return run["engine"]
    mode = (run.get("build") or {}).get("milvus_sparse") or next(
        (q.get("milvus_sparse") for q in run.get("queries", []) if q and q.get("milvus_sparse")), None)
    return f"milvus (sparse={mode or 'tokens'})" if (run.get("build") or {}).get("variants") else "milvus"


def markdown(r: dict) -> str:
    d = r["data"]
    m = r["machine"]
    if r.get("parts"):
        runs_text = "Runs (merged with `--merge`):\n\n" + "\n".join(
            f"- {p['date']}: `{p['command']}`" + (f" (load average at start {', '.join(f'{x:.1f}' for x in p['load_average_start'])}"
                                                  if p.get("load_average_start") else "")
            + (f", at end {', '.join(f'{x:.1f}' for x in p['load_average_end'])})" if p.get("load_average_end")
               else (")" if p.get("load_average_start") else ""))
            for p in r["parts"]) + "\n"
    else:
        runs_text = f"Command: `{r['command']}`."
    lines = ["# Scale benchmark: FAISS + bm25s vs Milvus Lite", "", runs_text, "",
             f"Date {r['date']}. Machine: {m['cpus']} cores ({m['arch']}), "
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
             f"{d['queries']} real questions (XQuAD zh + DRCD dev), vectors precomputed.", "",
             "Notes: every worker is single-threaded (OMP_NUM_THREADS=1) and niced; CPU ms/s are process CPU time "
             "(all threads, so Milvus Lite's in-process server counts) and are what to compare: on this shared machine "
             "wall time was up to ~40x CPU time while other jobs ran (the 10k rows), close to it later. "
             "Recall@10 is approximate dense top 10 vs exact top 10 on the same vectors; with synthetic rows each real "
             "passage has up to ~490 noisy copies, so the exact top 10 is decided among near-ties and these recalls are "
             "probably pessimistic for real text. Synthetic rows repeat real texts, so BM25 builds tokenize only the "
             "distinct texts (jieba once per text); bm25s indexing and Milvus upserts still handle every row. "
             "Milvus Lite 3.2.2 is a pure-Python engine run in-process (pymilvus talks gRPC to a server thread), not a "
             "Milvus server. `faiss (direct)` rows are measured in one process without the store's save/load path; "
             "`faiss` and `milvus` rows go through qa/stores (FAISS: save_index + load_index in a fresh process; "
             "Milvus: MilvusStore.add, then a fresh process opening the file).", ""]
    lines += ["Latency cells: wall p50 / p95 ms (CPU p50 ms of the process). Build: wall s (CPU s).", "",
              "| engine | passages (synthetic) | dense index | build s | peak RSS MB (build) | RSS MB (loaded) | disk MB | "
              "search params | recall@10 | dense | sparse | hybrid |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for run in r["runs"]:
        if "micro" in run:
            lines += _micro_rows(run)
            continue
        b = run["build"] or {}
        label = f"{run['size']:,} ({b.get('synthetic', run['size']):,})" if "synthetic" in b else f"{run['size']:,}"
        if b.get("error") and b.get("variants"):
            lines.append(f"| {_engine(run)} | {run['size']:,} | (build stopped: {b['error']}; built variants below) | | | | | | | | | |")
        elif b.get("error") or b.get("not_run"):
            lines.append(f"| {_engine(run)} | {label} | – | not run: {b.get('error') or b.get('not_run')} | | | | | | | | |")
            continue
        for q in run["queries"]:
            if not q or q.get("error"):
                lines.append(f"| {_engine(run)} | {label} | ? | query worker failed: {(q or {}).get('error')} | | | | | | | | |")
                continue
            v = b["variants"].get(q["variant"], {})
            sparse_q = next((x for x in run["queries"] if x and x.get("sparse")), {})
            loaded = q.get("rss_loaded_bytes")
            for j, rr in enumerate(q["runs"]):
                params = ", ".join(f"{k}={val}" for k, val in rr["params"].items()) or "exact"
                sp = sparse_q.get("sparse") or {}
                hy = rr.get("hybrid")
                lines.append(
                    f"| {_engine(run)} | {label} | {q['variant']} | {_build(v) if j == 0 else ''} | "
                    f"{_mb(v.get('peak_rss_bytes')) if j == 0 else ''} | {_mb(loaded) if j == 0 else ''} | "
                    f"{_mb(v.get('disk_bytes')) if j == 0 else ''} | {params} | {rr['recall_at_10']:.3f} | "
                    f"{_lat(rr['dense'])} | {_lat(sp) if sp and j == 0 and q is sparse_q else ''} | {_lat(hy)} |")
    lines += ["", "Loading (a fresh process opening the saved index, as the app does) and Milvus inserts:", ""]
    for run in r["runs"]:
        if "micro" in run:
            m = run["micro"]
            sp = m.get("sparse") or {}
            lines.append(f"- faiss (direct), {run['size']:,}: measured in one process without the store's save/load "
                         f"(vectors generated in {m.get('data_s')} s); BM25 (qa.sparse.SparseIndex) built in "
                         f"{sp.get('build_s', '–')} s wall, {sp.get('build_cpu_s', '–')} s CPU over {sp.get('distinct_texts', '–')} "
                         f"distinct texts, +{_mb(sp.get('rss_index_bytes'))} MB RSS"
                         + (f"; stopped: {m['error']}" if m.get("error") else "") + ".")
            continue
        b = run["build"] or {}
        for q in run["queries"]:
            if q and not q.get("error"):
                what = ("qa.stores.faiss_store.load_index: checksums, chunks.jsonl, dense index, BM25 (bm25s) rebuilt"
                        if run["engine"] == "faiss" else "MilvusStore open + load_collection")
                lines.append(f"- {_engine(run)} {q['variant']}, {run['size']:,}: load {q['load_s']} s wall, "
                             f"{q.get('load_cpu_s')} s CPU ({what}); "
                             f"RSS +{_mb(q['rss_loaded_bytes'])} MB after load, +{_mb(q['rss_after_queries_bytes'])} MB after the queries.")
        if b.get("insert"):
            s = b["insert"]
            lines.append(f"- {_engine(run)}, {run['size']:,}: MilvusStore.add of {s['rows']:,} rows in {s['seconds']} s wall, "
                         f"{s.get('cpu_s')} s CPU ({s['rows_per_s']} rows/s wall, {s.get('rows_per_cpu_s')} rows per CPU s; "
                         f"batches of {s.get('batch')}; "
                         + ("BM25 weights computed client-side" if b.get("milvus_sparse") == "weights"
                            else "BM25 terms = our jieba tokens, hashed")
                         + f", tokenized once per distinct text), flush {s.get('flush_s')} s wall."
                         + (f" **{b['not_run']}**." if b.get("not_run") else ""))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
