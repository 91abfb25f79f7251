"""The scale benchmark's report (eval/bench_scale.py): results JSON -> markdown table."""

from __future__ import annotations

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
            f"- {p['date']}: `{p['command']}`" + (f" ({p['only_engine']} runs only)" if p.get("only_engine") else "")
            + (f" (load average at start {', '.join(f'{x:.1f}' for x in p['load_average_start'])}"
                                                  if p.get("load_average_start") else "")
            + (f", at end {', '.join(f'{x:.1f}' for x in p['load_average_end'])})" if p.get("load_average_end")
               else (")" if p.get("load_average_start") else ""))
            for p in r["parts"]) + "\n"
    else:
        runs_text = f"Command: `{r['command']}`."
    largest = max((run["size"] for run in r["runs"]), default=0)
    copies = max(0, -(-largest // max(1, d["real_passages_embedded"])) - 1)  # ceil(largest / real) - 1
    lines = ["# Scale benchmark: FAISS + bm25s vs Milvus Lite", "", runs_text, "",
             f"Date {r['date']}. Machine: {m['cpus']} cores ({m['arch']}), "
             f"{m.get('memory_gib')} GiB RAM (load average at start "
             f"{', '.join(f'{x:.1f}' for x in r['load_average_start'])}"
             + (f"; at end {', '.join(f'{x:.1f}' for x in r['load_average_end'])}" if r.get("load_average_end") else "")
             + f"). Python {m['python']}, faiss {m['faiss']}, milvus-lite {m['milvus-lite']}, pymilvus {m['pymilvus']}, "
             f"bm25s {m['bm25s']}.", "",
             f"Real passages: {d['real_passages_embedded']:,} embedded (of {d['real_passages_chunked']:,} chunks of all "
             f"paragraphs of ../shared/evaldata and ../shared/traindata; Chinese sets first; vectors by the "
             f"`{d.get('embedding_backend', 'unrecorded')}` embedding backend). Rows past that are "
             f"**synthetic**: a real vector + N(0, {d['synthetic_sigma']}²) per dimension, renormalized (mean cosine to "
             f"its source {d['synthetic_cosine_to_source_mean']}; for comparison the median cosine of a real passage to its "
             f"nearest other real passage is {d['real_nearest_neighbour_cosine_median']}), carrying the source's text. "
             f"{d['queries']} real questions (XQuAD zh + DRCD dev), vectors precomputed.", "",
             "Notes: every worker is single-threaded (OMP_NUM_THREADS=1); CPU ms/s are process CPU time "
             "(all threads, so Milvus Lite's in-process server counts); where wall time is far above CPU time, other "
             "work was competing for the cores (see the load averages). "
             "Recall@10 is approximate dense top 10 vs exact top 10 on the same vectors; with synthetic rows each real "
             f"passage has up to ~{copies} noisy copies, so the exact top 10 is decided among near-ties and these "
             "recalls are probably pessimistic for real text. Synthetic rows repeat real texts, so BM25 builds tokenize "
             "only the distinct texts (jieba once per text); bm25s indexing and Milvus upserts still handle every row. "
             f"Milvus Lite {m['milvus-lite']} is an engine run in-process (pymilvus talks gRPC to a server thread), not a "
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
                bm25 = "BM25 (bm25s) loaded from the build" if b.get("bm25_saved") else "BM25 (bm25s) rebuilt from the texts"
                what = (f"qa.stores.faiss_store.load_index: checksums, chunks.jsonl, dense index, {bm25}"
                        if run["engine"] == "faiss" else "MilvusStore open + load_collection")
                lines.append(f"- {_engine(run)} {q['variant']}, {run['size']:,}: load {q['load_s']} s wall, "
                             f"{q.get('load_cpu_s')} s CPU ({what}); "
                             f"RSS +{_mb(q['rss_loaded_bytes'])} MB after load, +{_mb(q['rss_after_queries_bytes'])} MB after the queries.")
        if b.get("bm25_build_s") is not None:
            lines.append(f"- {_engine(run)}, {run['size']:,}: BM25 index (qa.sparse.SparseIndex) built once for all "
                         f"variants in {b['bm25_build_s']} s wall, {b.get('bm25_build_cpu_s')} s CPU (jieba once per "
                         f"distinct text), and saved with each build (in its build s and disk MB).")
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

