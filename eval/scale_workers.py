"""The scale benchmark's workers (eval/bench_scale.py): each builds or queries one engine and size in its own
process and prints `RESULT <json>`."""

from __future__ import annotations

import gc
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from scale_common import (  # noqa: E402
    CANDIDATES, K, PeakRss, _faiss_variants, disk_bytes, faiss_dense, faiss_save, faiss_variants, load_data, make_chunks, measure, memoize_tokenizer, milvus_reindex, milvus_store, milvus_variants, recall_at_k, rss_bytes, set_faiss_params, timed_cpu)


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
        from qa.sparse import SparseIndex

        restore_tokenizer = memoize_tokenizer()
        sparse, bm25_s, bm25_cpu = timed_cpu(SparseIndex, [c.text for c in chunks])
        restore_tokenizer()
        result.update(bm25_build_s=round(bm25_s, 2), bm25_build_cpu_s=round(bm25_cpu, 2), bm25_saved=True)
        for variant in faiss_variants(args.size, args.faiss_kinds):
            folder = out_dir / variant["name"]
            with PeakRss() as peak:
                (dense, info), dense_s, dense_cpu = timed_cpu(faiss_dense, variant, vectors)
                _, save_s, save_cpu = timed_cpu(faiss_save, chunks, dense, folder, sparse)
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
    variants = milvus_variants(args.size, args.milvus_kinds)
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
        # the app's load: checksums, chunks.jsonl, dense index, the saved BM25 index
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
