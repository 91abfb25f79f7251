"""The scale benchmark's shared parts (eval/bench_scale.py): constants, measuring helpers, data and engines.

Helpers are tested in tests/test_bench_scale.py.
"""

from __future__ import annotations

import math
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


def _nlist(n: int) -> int:
    return max(16, int(round(math.sqrt(n))))


def faiss_variants(n: int, kinds=FAISS_KINDS) -> list[dict]:
    return [v for v in _faiss_variants(n) if v["kind"] in kinds]


def _faiss_variants(n: int) -> list[dict]:
    nlist = _nlist(n)
    return [
        {"name": "flat", "kind": "flat", "search": [{}]},
        {"name": f"ivf{nlist}", "kind": "ivf", "nlist": nlist, "search": [{"nprobe": p} for p in (4, 16, 64) if p < nlist]},
        {"name": "hnsw32", "kind": "hnsw", "M": 32, "efConstruction": 40,
         "search": [{"efSearch": e} for e in (16, 64, 128)]},
    ]


MILVUS_KINDS = ("FLAT", "HNSW", "IVF_FLAT")


def milvus_variants(n: int, kinds=MILVUS_KINDS) -> list[dict]:
    """FLAT, HNSW, IVF_FLAT as Milvus names them; same M/efConstruction/nlist as the FAISS variants."""
    nlist = _nlist(n)
    return [v for v in [
        {"name": "FLAT", "kind": "FLAT", "params": {}, "search": [{}]},
        {"name": "HNSW", "kind": "HNSW", "params": {"M": 32, "efConstruction": 40},
         "search": [{"ef": e} for e in (16, 64, 128)]},
        {"name": "IVF_FLAT", "kind": "IVF_FLAT", "params": {"nlist": nlist},
         "search": [{"nprobe": p} for p in (4, 16, 64) if p < nlist]},
    ] if v["kind"] in kinds]


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


def faiss_save(chunks, dense, folder: Path, sparse) -> None:
    """qa.stores.faiss_store.save_index of a SearchIndex holding `dense` and the BM25 index `sparse` (built once per
    size, shared by the variants)."""
    from qa.settings import load_settings
    from qa.stores.faiss_store import FORMAT_VERSION, SearchIndex, save_index

    index = object.__new__(SearchIndex)
    index.manifest = {"format": FORMAT_VERSION, "model": load_settings().embedding_model, "dim": dense.d,
                      "chunking": {}, "documents": {}}
    index.chunks, index.dense, index.texts, index.sparse = chunks, dense, {}, sparse
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
