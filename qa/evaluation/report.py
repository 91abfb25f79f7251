"""Reporting `qa eval` runs: markdown tables, the results JSON, per-question records, plots; `--combine`."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..settings import PROJECT_ROOT, Settings
from .args import UsageError, slug
from .datasets import SEED_RELEVANCE, SQUAD_RELEVANCE
from .metrics import EvalRecord
from .run import display_order, system_label, write_records

DEFAULT_OUT = PROJECT_ROOT / "eval" / "results"
COLORS = {"sparse": "tab:orange", "dense": "tab:blue", "hybrid": "tab:green", "hybrid+heuristic": "tab:olive",
          "hybrid+neural": "tab:purple"}
_SECRETS = {"llm_api_key", "api_key"}


def settings_record(settings: Settings) -> dict:
    """Every setting behind the numbers: asdict(settings) without paths and secrets."""
    return {k: v for k, v in asdict(settings).items() if k not in _SECRETS and not isinstance(v, Path)}


COLUMNS = [("n", "n"), ("mrr", "MRR"), ("ndcg@10", "nDCG@10"), ("answer_accuracy", "acc"), ("char_f1", "char-F1"),
           ("exact_match", "EM"), ("refusal_precision", "ref-P"), ("refusal_recall", "ref-R"),
           ("latency_p50_s", "p50 s"), ("latency_p95_s", "p95 s")]


def fmt(value, key: str = "") -> str:
    if value is None:
        return "–"
    if key == "n":
        return str(int(value))
    if key.startswith("latency"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown_table(systems: dict[str, dict], ks: Sequence[int]) -> str:
    keys = [("n", "n")] + [(f"recall@{k}", f"R@{k}") for k in ks] + COLUMNS[1:]
    lines = ["| system | slice | " + " | ".join(label for _, label in keys) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in keys) + " |"]
    for mode, result in systems.items():
        for slice_name, metrics in [("overall", result["overall"]), *sorted(result["by_lang"].items())]:
            if slice_name != "overall" and len(result["by_lang"]) == 1:
                continue  # a one-language set: the language row repeats the overall row
            lines.append(f"| {system_label(mode)} | {slice_name} | "
                         + " | ".join(fmt(metrics.get(key), key) for key, _ in keys) + " |")
    return "\n".join(lines)


def plot_results(systems: dict[str, dict], ks: Sequence[int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = COLORS
    styles = ["-", "--", ":", "-."]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    slice_names: list[str] = []
    for result in systems.values():
        for name in ["overall", *sorted(result["by_lang"])]:
            if name not in slice_names:
                slice_names.append(name)
    if len(slice_names) == 2:  # one language: its curve is the overall curve
        slice_names = ["overall"]
    for mode, result in systems.items():
        for s, name in enumerate(slice_names):
            metrics = result["overall"] if name == "overall" else result["by_lang"].get(name)
            if not metrics:
                continue
            ys = [metrics.get(f"recall@{k}") for k in ks]
            if all(y is None for y in ys):
                continue
            left.plot(ks, [np.nan if y is None else y for y in ys], styles[s % len(styles)], marker="o",
                      color=colors.get(mode), label=f"{system_label(mode)} · {name}",
                      linewidth=2.2 if name == "overall" else 1.2)
    left.set(xlabel="k (passages)", ylabel="recall@k", title="retrieval: recall@k", ylim=(0, 1.02), xticks=list(ks))
    left.grid(alpha=0.3)
    left.legend(fontsize=7, loc="lower right")
    width = 0.8 / max(1, len(systems))
    x = np.arange(len(slice_names))
    for i, (mode, result) in enumerate(systems.items()):
        values = []
        for name in slice_names:
            metrics = result["overall"] if name == "overall" else result["by_lang"].get(name, {})
            values.append(metrics.get("answer_accuracy") or 0.0)
        bars = right.bar(x + (i - (len(systems) - 1) / 2) * width, values, width, color=colors.get(mode),
                         label=system_label(mode))
        right.bar_label(bars, fmt="%.2f", fontsize=7)
    right.set(xticks=x, xticklabels=slice_names, ylim=(0, 1.05), ylabel="answer accuracy", title="answers: accuracy")
    right.grid(axis="y", alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out_dir: Path, name: str, payload: dict, table: str, header: list[str], ks: Sequence[int],
                  records: dict[str, list[EvalRecord]] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{name}.md"
    md.write_text("\n".join([f"# {payload['title']}", "", *header, "", table, ""]), encoding="utf-8")
    js = out_dir / f"{name}.json"
    js.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    png = out_dir / f"{name}.png"
    plot_results(payload["systems"], ks, png, payload["title"])
    files = [md, js, png]
    if records is not None:
        files.append(write_records(out_dir / f"{name}.records.jsonl", records, ks))
    return files


def make_payload(name: str, title: str, systems: dict[str, dict], settings: Settings, dataset: dict, elapsed: float,
                 top_k_retrieved: int, readers: Sequence[str]) -> dict:
    """The results JSON: the main system's overall metrics at the top, every system under "systems"."""
    main_key = next((k for k in systems if k.startswith("hybrid+")), "hybrid" if "hybrid" in systems else next(iter(systems)))
    main = systems[main_key]
    return {
        **main["overall"],
        "by_lang": main["by_lang"],
        "name": name,
        "title": title,
        "system": main_key,
        "systems": systems,
        "readers": list(readers),
        "dataset": dataset,
        "settings": {**settings_record(settings), "top_k_retrieved": top_k_retrieved},
        "elapsed_s": round(elapsed, 1),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def emit(args, payload: dict, table: str, header: list[str], ks, out_dir: Path, name: str,
         records: dict[str, list[EvalRecord]] | None = None) -> None:
    files = write_outputs(out_dir, name, payload, table, header, ks, records)
    report = "\n".join([*header, "", table, "", "wrote " + ", ".join(str(f) for f in files)])
    if getattr(args, "json", False):
        print(report, file=sys.stderr)
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print(report)


def settings_line(settings: Settings, readers: Sequence[str]) -> str:
    return (f"- settings: model `{settings.embedding_model}`, readers {', '.join(readers)} "
            f"(reranking readers read {settings.reader_candidates} fused passages), abstain_threshold "
            f"{settings.abstain_threshold}, RRF weights dense {settings.dense_weight} / sparse {settings.sparse_weight} "
            f"(k={settings.rrf_k}), chunks of {settings.chunk_tokens} tokens; every setting is in the JSON" + verifier_note(settings, readers))


def verifier_note(settings: Settings, readers: Sequence[str]) -> str:
    """What decides the neural reader's abstentions, and on what its cut was calibrated."""
    if "neural" not in readers or not settings.answer_verifier:
        return ""
    from ..verifier import load_verifier

    try:
        verifier = load_verifier(settings)
    except (OSError, ValueError):
        return ""
    judged = "; ".join(m.describe() + _trained_on(m) for m in verifier.models)
    return (f"\n- abstention, neural reader: the answer verifier (qa/verifier.py) abstains on {judged}; other "
            f"questions keep the evidence-score cut abstain_threshold "
            f"{settings.abstain_threshold}, which was calibrated on the seed set (`qa eval --calibrate`)")


def _trained_on(model) -> str:
    """" (trained on cmrc-train, drcd-train; cut chosen on cmrc-dev)": where the model and its cut come from."""
    sets = model.provenance.get("trained_on", {})
    cut = model.provenance.get("cut", {}).get("set") or model.provenance.get("calibrated_on", {}).get("set")
    parts = ([f"trained on {', '.join(sets)}"] if sets else []) + ([f"cut chosen on {cut}"] if cut else [])
    return f" ({'; '.join(parts)})" if parts else ""


# ------------------------------------------------------------------ combining benchmark results

def run_combine(args) -> int:
    results = []
    for item in args.combine:
        try:
            results.append(json.loads(Path(item).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{item}: unreadable result file ({exc})") from None
    name = slug(args.name or "benchmarks")
    keys = [("recall@1", "R@1"), ("recall@5", "R@5"), ("recall@10", "R@10"), ("mrr", "MRR"),
            ("answer_accuracy", "acc"), ("char_f1", "char-F1"), ("exact_match", "EM"), ("latency_p50_s", "p50 s")]
    lines = ["# Benchmarks", "",
             "Each row: one dataset sample × one system (retrieval, + reader), same questions and index. Relevance on the public "
             f"SQuAD-format sets: {SQUAD_RELEVANCE}; on the seed set: {SEED_RELEVANCE}. Answer accuracy: the quoted "
             "answer contains a gold span / keyword; char-F1 and EM: CMRC 2018 official style. Sources and licences: "
             "XQuAD (CC BY-SA 4.0), DRCD (CC BY-SA 3.0), CMRC 2018 (CC BY-SA 4.0).", "",
             "| dataset | sample | system | n | " + " | ".join(label for _, label in keys) + " |",
             "| --- | --- | --- | ---: | " + " | ".join("---:" for _ in keys) + " |"]
    for res in results:
        ds = res.get("dataset", {})
        if ds.get("kind") == "squad":
            sample = (f"{ds.get('paragraphs_indexed')}/{ds.get('paragraphs_total')} paragraphs "
                      f"({ds.get('chunks')} passages), {ds.get('questions')} q")
        else:
            sample = f"{ds.get('documents')} docs ({ds.get('chunks')} passages), {ds.get('questions')} q"
        for mode in display_order(res["systems"]):
            sys_result = res["systems"][mode]
            m = sys_result["overall"]
            lines.append(f"| {res['name']} | {sample} | {system_label(mode)} | {fmt(m.get('n'), 'n')} | "
                         + " | ".join(fmt(m.get(k), k) for k, _ in keys) + " |")
    out_dir = Path(args.out) if args.out else DEFAULT_OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    md = "\n".join(lines) + "\n"
    (out_dir / f"{name}.md").write_text(md, encoding="utf-8")
    combined = {"name": name, "results": {r["name"]: {"dataset": r.get("dataset"), "systems": {
        mode: s["overall"] for mode, s in r["systems"].items()}} for r in results}}
    (out_dir / f"{name}.json").write_text(json.dumps(combined, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    _plot_combined(results, out_dir / f"{name}.png")
    if getattr(args, "json", False):
        print(md, file=sys.stderr)
        print(json.dumps(combined, ensure_ascii=False, indent=2))
    else:
        print(md)
    return 0


def _plot_combined(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = COLORS
    names = [r["name"] for r in results]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (key, label) in zip(axes, [("recall@5", "recall@5"), ("mrr", "MRR"), ("answer_accuracy", "answer accuracy")]):
        modes = display_order(dict.fromkeys(m for r in results for m in r["systems"]))
        width = 0.8 / max(1, len(modes))
        for i, mode in enumerate(modes):
            values = [(r["systems"].get(mode, {}).get("overall", {}).get(key) or 0.0) for r in results]
            bars = ax.bar(x + (i - (len(modes) - 1) / 2) * width, values, width, color=colors.get(mode),
                          label=system_label(mode))
            ax.bar_label(bars, fmt="%.2f", fontsize=6)
        ax.set(xticks=x, ylim=(0, 1.05), title=label)
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
