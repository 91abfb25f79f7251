"""Embedding (ingestion) benchmark: the current path against the faster CPU paths, in one run.

    python eval/bench_embed.py [--data ../shared/evaldata] [--paragraphs 1000] [--explore-passages N]
                               [--gates-before DIR --gates-after DIR]

Passages: the first `--paragraphs` paragraphs of DRCD dev (Traditional), chunked with the project's
chunker exactly as `build_index` does, script-folded; the embedder adds the "passage: " prompt.
Each variant runs in its own process (model load, one warm-up passage, then the timed embedding of
all passages), so its peak RSS is its own: ru_maxrss of that process, model included.

Variants:
- current / current + reader states: what `build_index` did before this benchmark: sentence-transformers'
  encode (plain Embedder), or the neural reader's StatefulEmbedder (its own torch pass), called with 16
  passages at a time in document order.
- torch sorted: the same BertModel through qa/fast_embed.py's TorchRunner; all passages sorted by length
  (qa/store.py `_embed_missing`), then 16 at a time, each batch padded to its longest passage.
- torch bf16: as torch sorted, on a bfloat16 copy of the encoder (word-embedding rows looked up in float32 and
  cast): the default on a CPU with native bf16 (AVX512-BF16/AMX).
- torch int8: as torch sorted, on a copy with torch.ao.quantization.quantize_dynamic on every nn.Linear.
- onnx fp32 / onnx int8 / onnx int8 all MatMuls / onnx int8 per-tensor: ONNX Runtime on the exported graph
  (qa/fast_embed.py; fp32: eager attention fused by onnxruntime's BERT optimizer), sorted batches. int8 = onnxruntime.quantization.quantize_dynamic: "onnx int8" (the
  product's recipe) has per-channel int8 weights in every MatMul but the FFN down-projections; "all MatMuls"
  quantizes those too; "per-tensor" quantizes all MatMuls with one scale per weight tensor.
- "+ states": also the layer-9 hidden states the neural reader caches (the indexing path by default).

Quality: cosine of each variant's vectors against `current` (min, mean); for "+ states" variants, the
per-token cosine and the largest absolute difference of the states against `current + reader states`.
`--explore-passages N` limits the variants that are not candidates for the default to the first N
passages (to keep one run short on a loaded machine); the table says how many passages each variant ran.
`--gates-before/--gates-after`: folders holding `qa eval` results (seed.json, xquad-en-zh.json) made with
QA_EMBEDDING_BACKEND=torch / the new default: their recall rows are copied into the report.
Writes eval/results/embed.{json,md}. Measured numbers only.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CANDIDATES = ("current", "current + reader states", "torch bf16", "torch bf16 + reader states", "onnx fp32",
              "onnx fp32 + reader states", "onnx int8", "onnx int8 + reader states")
VARIANTS = ("current", "torch bf16", "onnx fp32", "onnx int8", "current + reader states", "torch bf16 + reader states",
            "onnx fp32 + reader states", "onnx int8 + reader states", "torch sorted",
            "onnx fp32", "torch int8", "onnx int8 all MatMuls", "onnx int8 per-tensor", "onnx fp32 + reader states",
            "onnx int8 all MatMuls + reader states")
STATE_SAMPLE = 300  # passages whose reader states are compared


def passages(data_dir: Path, paragraphs: int):
    from qa.chunking import chunk_document, token_counter
    from qa.evaluation.datasets import load_squad
    from qa.settings import load_settings
    from qa.layout import annotate_chunks

    settings = load_settings()
    docs = load_squad(data_dir / "drcd" / "DRCD_dev.json", paragraphs=paragraphs).documents
    count = token_counter(settings)
    chunks = []
    for doc in docs:
        new = chunk_document(doc, settings, count, first_chunk_id=len(chunks))
        annotate_chunks(new, doc)
        chunks += new
    return docs, chunks


# ---------------------------------------------------------------- child: one variant

def child(args) -> None:
    import torch

    from qa import fast_embed
    from qa.embedding import get_embedder
    from qa.neural.states import StateCache, StatefulEmbedder
    from qa.settings import load_settings
    from qa.stores.faiss_store import _embed_missing
    from qa.text import fold_script

    variant = args.child
    _, chunks = passages(Path(args.data), args.paragraphs)
    if args.limit:
        chunks = chunks[: args.limit]
    started = time.perf_counter()
    settings = load_settings(embedding_backend="torch", embedding_device="cpu")
    base = get_embedder(settings)
    bert, tok = base.model[0].auto_model, base.model.tokenizer
    from qa.embedding import materialize_bundled_model

    model_dir = materialize_bundled_model(settings.cache_dir)
    name = variant.replace(" + reader states", "")
    if name == "current":
        base.runner = None  # sentence-transformers' encode, as before
    elif name == "torch sorted":
        pass
    elif name == "torch bf16":  # the CPU default where bf16 is native (qa/fast_embed.py)
        base.runner = fast_embed.TorchRunner(bert, tok, "cpu", torch.bfloat16)
    elif name == "torch int8":
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(bert), {torch.nn.Linear}, dtype=torch.qint8)
        base.runner = fast_embed.TorchRunner(quantized, tok, "cpu")
    elif name == "onnx fp32":
        base.runner = fast_embed.OnnxRunner(bert, tok, model_dir, int8=False)
    elif name == "onnx int8":
        base.runner = fast_embed.OnnxRunner(bert, tok, model_dir, int8=True)
    elif name == "onnx int8 per-tensor":
        base.runner = fast_embed.OnnxRunner(bert, tok, model_dir, path=args.per_tensor_file)
    elif name == "onnx int8 all MatMuls":
        base.runner = fast_embed.OnnxRunner(bert, tok, model_dir, path=args.per_tensor_file.replace("per-tensor", "all-matmuls"))
    else:
        raise SystemExit(f"unknown variant {variant}")
    base.backend = base.runner.name if base.runner is not None else "torch (sentence-transformers)"
    embedder = base
    cache = None
    if variant.endswith("+ reader states"):
        cache = StateCache(max_tokens=10**9)
        embedder = StatefulEmbedder(base, cache, fast_embed.STATE_LAYER)
    embedder.encode_documents(["預熱"])  # warm-up
    load_s = time.perf_counter() - started
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    settings = load_settings(embedding_batch_size=16)
    texts = [fold_script(c.text) for c in chunks]
    load_before = os.getloadavg()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if name == "current":  # qa/store.py's loop before this change: document order, 16 a call
        vectors = []
        for start in range(0, len(texts), 16):
            vectors.append(embedder.encode_documents(texts[start : start + 16]))
        vectors = np.vstack(vectors)
    else:
        slots = [None] * len(chunks)
        _embed_missing(chunks, slots, list(range(len(chunks))), settings, embedder, None)
        vectors = np.vstack(slots)
    seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    out = {"variant": variant, "backend": getattr(base, "backend", ""), "passages": len(texts), "seconds": seconds,
           "cpu_seconds": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime), "load_s": load_s,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_rss_after_load_mb": rss_loaded,
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "torch_threads": torch.get_num_threads()}
    arrays = {"vectors": vectors.astype(np.float32)}
    if cache is not None:
        got = [cache.get(t) for t in texts[:STATE_SAMPLE]]
        arrays["state_lengths"] = np.array([len(g[0]) for g in got])
        arrays["state_ids"] = np.concatenate([g[0] for g in got])
        arrays["states"] = np.concatenate([g[1] for g in got])
    np.savez(args.out, **arrays)
    Path(args.out + ".json").write_text(json.dumps(out))


# ---------------------------------------------------------------- parent

def run_variant(variant: str, args, limit: int, tmp: Path, per_tensor: Path) -> tuple[dict, dict]:
    out = tmp / (variant.replace(" ", "_").replace("+", "") + ".npz")
    cmd = [sys.executable, __file__, "--child", variant, "--data", str(args.data), "--paragraphs", str(args.paragraphs),
           "--limit", str(limit), "--out", str(out), "--per-tensor-file", str(per_tensor)]
    print(f"== {variant} ({limit or 'all'} passages), load average {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    meta = json.loads(Path(str(out) + ".json").read_text())
    with np.load(out) as data:
        arrays = {k: data[k] for k in data.files}
    print(f"   {meta['passages'] / meta['seconds']:.2f} passages/s", file=sys.stderr, flush=True)
    return meta, arrays


def build_exports() -> dict:
    """Build (or find) the ONNX files before timing anything; time the builds that happen."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from qa import fast_embed
    from qa.embedding import get_embedder, materialize_bundled_model
    from qa.settings import load_settings

    settings = load_settings(embedding_backend="torch", embedding_device="cpu")
    bert = get_embedder(settings).model[0].auto_model
    model_dir = materialize_bundled_model(settings.cache_dir)
    info = {}
    for int8 in (False, True):
        t = time.perf_counter()
        path = fast_embed.onnx_file(bert, model_dir, int8)
        info["int8" if int8 else "fp32"] = {"path": str(path), "bytes": path.stat().st_size,
                                            "build_or_check_s": round(time.perf_counter() - t, 2)}
    per_tensor = Path(tempfile.gettempdir()) / "qa-bench-e5-int8-per-tensor.onnx"
    t = time.perf_counter()
    fused_ops = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # onnxruntime-domain ops in the fused fp32 graph
    quantize_dynamic(info["fp32"]["path"], str(per_tensor), weight_type=QuantType.QInt8, per_channel=False,
                     extra_options=fused_ops)
    info["int8 per-tensor"] = {"path": str(per_tensor), "bytes": per_tensor.stat().st_size,
                               "build_or_check_s": round(time.perf_counter() - t, 2)}
    every = Path(str(per_tensor).replace("per-tensor", "all-matmuls"))
    t = time.perf_counter()
    quantize_dynamic(info["fp32"]["path"], str(every), weight_type=QuantType.QInt8, per_channel=True, extra_options=fused_ops)
    info["int8 all MatMuls (per-channel)"] = {"path": str(every), "bytes": every.stat().st_size,
                                              "build_or_check_s": round(time.perf_counter() - t, 2)}
    return info


def _states_compare(ref: dict, got: dict) -> dict:
    if "states" not in ref or "states" not in got:
        return {}
    if not np.array_equal(ref["state_ids"], got["state_ids"]):
        return {"states_same_tokens": False}
    a, b = ref["states"].astype(np.float32), got["states"].astype(np.float32)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"states_same_tokens": True, "states_min_cos": round(float(cos.min()), 5),
            "states_mean_cos": round(float(cos.mean()), 5), "states_max_abs_diff": round(float(np.abs(a - b).max()), 4),
            "states_passages": int(len(ref["state_lengths"]))}


def gate_rows(folder: Path | None) -> dict:
    """Overall recall rows of `qa eval` results (seed.json, xquad-en-zh.json) in `folder`."""
    if folder is None:
        return {}
    out = {}
    for name in ("seed", "xquad-en-zh"):
        path = Path(folder) / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        rows = {}
        for system, body in data["systems"].items():
            overall = body.get("overall", body) if isinstance(body, dict) else None
            if not isinstance(overall, dict):
                continue
            keep = {k: overall[k] for k in ("R@1", "R@3", "R@5", "R@10", "MRR", "acc", "char_f1", "char-F1", "n")
                    if k in overall}
            if keep:
                rows[system] = keep
        out[name] = rows
    return out


def markdown(r: dict) -> str:
    lines = ["# Embedding (ingestion) benchmark", "",
             f"Command: `{r['command']}`. Date: {r['date']}. Machine: {r['machine']}.",
             f"Load average (1/5/15 min) at start: {r['loadavg_start']}, at end: {r['loadavg_end']} "
             "(all variants ran in this one run, one after another, each in its own process).", "",
             f"Passages: the first {r['paragraphs']} DRCD dev paragraphs chunked as `build_index` does: "
             f"{r['passages_total']} passages, mean {r['mean_passage_chars']} characters. Batch size 16.", "",
             "| variant | backend | passages | passages/s | × current | CPU s / 100 passages | peak RSS MB (after load / end) | min cos | mean cos "
             "| states min cos | states mean cos | states max abs diff |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for v in r["variants"]:
        ref = "current + reader states" if v["variant"].endswith("reader states") else "current"
        lines.append(
            f"| {v['variant']} | {v['backend']} | {v['passages']} | {v['passages_per_s']:.2f} | "
            f"{v['speedup_vs_' + ('stateful' if ref != 'current' else 'current')]:.2f} (vs {ref}) | "
            f"{v['cpu_s_per_100']:.1f} | {v['peak_rss_after_load_mb']:.0f} / {v['peak_rss_mb']:.0f} | {v['min_cos']:.4f} | {v['mean_cos']:.4f} | "
            f"{v.get('states_min_cos', '–')} | {v.get('states_mean_cos', '–')} | {v.get('states_max_abs_diff', '–')} |")
    lines += ["", "× current: the variant's passages/s over its reference's passages/s (the reference ran all passages; "
              "variants limited by `--explore-passages` ran the first N only).", "",
              "ONNX files (built once into the cache dir from the bundled weights):", ""]
    for k, v in r["exports"].items():
        lines.append(f"- {k}: {v['bytes'] / 1e6:.1f} MB, {v['build_or_check_s']} s to build or verify")
    for note in r.get("notes", []):
        lines += ["", note]
    if r.get("gates"):
        lines += ["", "## Quality gates (`qa eval`, recall overall)", ""]
        for side, data in r["gates"].items():
            for run, rows in data.items():
                for system, row in rows.items():
                    lines.append(f"- {side} · {run} · {system}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "evaldata"))
    ap.add_argument("--paragraphs", type=int, default=1000)
    ap.add_argument("--explore-passages", type=int, default=0, help="limit non-candidate variants to this many passages")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--gates-before", default=None)
    ap.add_argument("--gates-after", default=None)
    ap.add_argument("--out", default=str(ROOT / "eval" / "results"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--per-tensor-file", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    start_load = os.getloadavg()
    _, chunks = passages(Path(args.data), args.paragraphs)
    exports = build_exports()
    tmp = Path(tempfile.mkdtemp(prefix="qa-bench-embed-"))
    results, arrays = {}, {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        limit = 0 if variant in CANDIDATES else args.explore_passages
        results[variant], arrays[variant] = run_variant(variant, args, limit, tmp, Path(exports["int8 per-tensor"]["path"]))
    rows = []
    for variant, meta in results.items():
        n = meta["passages"]
        ref_name = "current + reader states" if variant.endswith("reader states") else "current"
        ref, ref_meta = arrays.get("current"), results.get("current")
        cos = np.sum(arrays[variant]["vectors"] * ref["vectors"][:n], axis=1) if ref is not None else np.array([np.nan])
        row = {"variant": variant, "backend": meta["backend"], "passages": n, "seconds": round(meta["seconds"], 2),
               "passages_per_s": round(n / meta["seconds"], 2), "cpu_seconds": round(meta["cpu_seconds"], 1),
               "cpu_s_per_100": round(100 * meta["cpu_seconds"] / n, 2), "peak_rss_mb": round(meta["peak_rss_mb"]),
               "peak_rss_after_load_mb": round(meta["peak_rss_after_load_mb"]),
               "load_s": round(meta["load_s"], 1), "loadavg_before": [round(x, 2) for x in meta["loadavg_before"]],
               "loadavg_after": [round(x, 2) for x in meta["loadavg_after"]],
               "min_cos": round(float(cos.min()), 5), "mean_cos": round(float(cos.mean()), 5)}
        for key, name in (("current", "current"), ("stateful", "current + reader states")):
            rm = results.get(name)
            if rm:  # the reference's rate over its passages, applied to this variant's count
                row[f"speedup_vs_{key}"] = round((n / meta["seconds"]) / (rm["passages"] / rm["seconds"]), 2)
            else:
                row[f"speedup_vs_{key}"] = float("nan")
        if ref_name in arrays:
            row.update(_states_compare(_take(arrays[ref_name], n), arrays[variant]))
        rows.append(row)
    report = {
        "command": "python eval/bench_embed.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"{_versions()}",
        "loadavg_start": [round(x, 2) for x in start_load], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "paragraphs": args.paragraphs, "passages_total": len(chunks),
        "mean_passage_chars": round(float(np.mean([len(c.text) for c in chunks])), 1),
        "explore_passages": args.explore_passages, "exports": exports, "variants": rows,
        "gates": {k: v for k, v in (("before (torch)", gate_rows(args.gates_before)),
                                    ("after (default)", gate_rows(args.gates_after))) if v},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "embed.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "embed.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))


def _take(ref: dict, n: int) -> dict:
    """The reference's states for the passages a limited variant also ran (the first STATE_SAMPLE at most)."""
    if "states" not in ref:
        return ref
    k = min(n, STATE_SAMPLE)
    lengths = ref["state_lengths"][:k]
    t = int(lengths.sum())
    return {"state_lengths": lengths, "state_ids": ref["state_ids"][:t], "states": ref["states"][:t]}


def _versions() -> str:
    import onnxruntime
    import torch

    return f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"


if __name__ == "__main__":
    main()
