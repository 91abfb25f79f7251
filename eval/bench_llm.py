"""Benchmark of the LLM answer mode against a running OpenAI-compatible server (e.g. a small GGUF model).

    python -m llama_cpp.server --model /tmp/models/qwen2.5-coder-0.5b-q4_k_m.gguf --n_threads 2 --n_ctx 4096 --port 8081 &
    python eval/bench_llm.py --llm-base-url http://127.0.0.1:8081/v1 --llm-model qwen2.5-coder-0.5b \
        --label "Qwen2.5-Coder-0.5B, 3 passages" [--subset small|all] [--llm-passages 3] [--llm-context-tokens 1200]

Every question goes through QAService.ask_stream(answer_mode="llm"), as in the app, and is recorded as
  verified   the LLM's answer was kept (mode "llm": at least one citation verified by qa.llm.verify_answer),
  fallback   the extractive answer was shown instead (mode "extractive-fallback"), with the notice saying why,
  abstained  the extractive step abstained, so the LLM was not asked,
with: total seconds (question to final answer), extractive seconds (retrieval + reader, before the LLM request),
TTFT (from sending the LLM request to its first streamed piece: prompt reading + first token), TTFT from the
question, prompt tokens (cl100k as the budget counts them, and the model's own tokenizer via the llama.cpp
server's /extras/tokenize when available; message contents only, without the chat template's few tokens),
and whether the final text contains an answer keyword.

Results are appended (one run per --label) to eval/results/llm-small.json and the table in
eval/results/llm-small.md is rewritten from all runs. Numbers are as measured on this machine, at whatever
load it has: say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import qa.llm as llm_mod  # noqa: E402
from qa.evaluation.questions import load_questions, normalize_for_match  # noqa: E402
from qa.pipeline import QAService  # noqa: E402
from qa.settings import load_settings  # noqa: E402

RESULTS = ROOT / "eval" / "results"

# The fixed subset (--subset small): Simplified and Traditional Chinese answerable questions 1-10, English
# answerable 1-5, and all 10 Chinese unanswerable questions; 35 of the seed set's 107.
SMALL_SUBSET = ([f"hans-{i:03d}" for i in range(1, 11)] + [f"hant-{i:03d}" for i in range(1, 11)]
                + [f"en-{i:03d}" for i in range(1, 6)] + [f"unans-{i:03d}" for i in range(8, 18)])


class Trace:
    """Wraps qa.llm.ChatClient.stream to record when the LLM request was sent, its first piece, and the raw text."""

    def __init__(self):
        self.reset()
        original = llm_mod.ChatClient.stream
        trace = self

        def stream(client, messages, stream=True):
            trace.messages, trace.sent = messages, time.perf_counter()
            for piece in original(client, messages, stream):
                if trace.first is None:
                    trace.first = time.perf_counter()
                trace.raw += piece
                yield piece

        llm_mod.ChatClient.stream = stream

    def reset(self):
        self.messages, self.sent, self.first, self.raw = None, None, None, ""


def model_tokens(base_url: str, model: str, messages: list[dict]) -> int | None:
    """Prompt tokens by the server's own tokenizer (llama-cpp-python's /extras/tokenize), or None."""
    url = base_url.rstrip("/").removesuffix("/v1") + "/extras/tokenize"
    try:
        r = httpx.post(url, json={"input": "\n".join(m["content"] for m in messages), "model": model}, timeout=30,
                       trust_env=False)
        return len(r.json()["tokens"]) if r.status_code == 200 else None
    except Exception:
        return None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return round(values[lo] + (values[hi] - values[lo]) * (k - lo), 2)


def run(args) -> dict:
    questions = load_questions(args.questions)
    if args.subset == "small":
        by_id = {q.id: q for q in questions}
        questions = [by_id[i] for i in SMALL_SUBSET]
    if args.limit:
        questions = questions[: args.limit]
    overrides = dict(llm_base_url=args.llm_base_url, llm_model=args.llm_model)
    if args.llm_timeout_s:
        overrides["llm_timeout_s"] = args.llm_timeout_s
    if args.llm_context_tokens:
        overrides["llm_context_tokens"] = args.llm_context_tokens
    if args.llm_passages is not None:
        overrides["llm_passages"] = args.llm_passages
    settings = load_settings(**overrides)
    service = QAService.open(settings)
    trace = Trace()
    service.ask("零一万物是谁创立的？")  # warm the reader (not timed)
    records = []
    for q in questions:
        trace.reset()
        t0 = time.perf_counter()
        first_shown = None
        final = None
        for partial, answer in service.ask_stream(q.question, answer_mode="llm"):
            if first_shown is None and trace.first is not None:
                first_shown = time.perf_counter()
            if answer is not None:
                final = answer
        total = time.perf_counter() - t0
        outcome = "abstained" if final.abstained else ("verified" if final.mode == "llm" else "fallback")
        keywords = [normalize_for_match(k) for k in q.answer_keywords]
        rec = {
            "id": q.id, "lang": q.lang, "answerable": q.answerable, "outcome": outcome,
            "total_s": round(total, 2),
            "extractive_s": round(trace.sent - t0, 2) if trace.sent else round(total, 2),
            "ttft_s": round(trace.first - trace.sent, 2) if trace.first and trace.sent else None,
            "ttft_from_question_s": round(trace.first - t0, 2) if trace.first else None,
            "prompt_tokens_cl100k": (sum(llm_mod.count_tokens(m["content"], settings) + llm_mod.MESSAGE_OVERHEAD_TOKENS
                                         for m in trace.messages) if trace.messages else None),
            "prompt_tokens_model": model_tokens(args.llm_base_url, args.llm_model, trace.messages) if trace.messages else None,
            "passages": (trace.messages[1]["content"].count("</passage>") if trace.messages else None),
            "keyword_hit": bool(keywords) and any(k in normalize_for_match(final.text) for k in keywords),
            "unsupported": list(final.unsupported),
            "notice": final.notice,
            "llm_raw": trace.raw,
            "final_text": final.text,
        }
        records.append(rec)
        print(f"{q.id:10s} {outcome:9s} total {rec['total_s']:6.2f}s ttft {rec['ttft_s']}s "
              f"tokens {rec['prompt_tokens_cl100k']}/{rec['prompt_tokens_model']}  {trace.raw[:70]!r}", flush=True)
    return summarize(args, settings, records)


def summarize(args, settings, records) -> dict:
    asked = [r for r in records if r["outcome"] != "abstained"]
    verified = [r for r in asked if r["outcome"] == "verified"]
    n = len(asked)
    return {
        "label": args.label,
        "model": args.llm_model,
        "model_file": args.model_file,
        "model_sha256": args.model_sha256,
        "model_package": args.model_package,
        "prompt": args.prompt_name,
        "llm_context_tokens": settings.llm_context_tokens,
        "llm_passages": getattr(settings, "llm_passages", None),
        "subset": args.subset,
        "questions": len(records),
        "llm_asked": n,
        "abstained": len(records) - n,
        "verified": len(verified),
        "fallback": n - len(verified),
        "verified_rate": round(len(verified) / n, 3) if n else None,
        "fallback_rate": round((n - len(verified)) / n, 3) if n else None,
        "verified_with_keyword": sum(r["keyword_hit"] for r in verified if r["answerable"]),
        "verified_on_unanswerable": sum(not r["answerable"] for r in verified),
        "p50_total_s": percentile([r["total_s"] for r in asked], 0.5),
        "p95_total_s": percentile([r["total_s"] for r in asked], 0.95),
        "p50_ttft_s": percentile([r["ttft_s"] for r in asked if r["ttft_s"] is not None], 0.5),
        "p50_ttft_from_question_s": percentile([r["ttft_from_question_s"] for r in asked if r["ttft_from_question_s"]], 0.5),
        "p50_prompt_tokens_cl100k": percentile([r["prompt_tokens_cl100k"] for r in asked if r["prompt_tokens_cl100k"]], 0.5),
        "p50_prompt_tokens_model": percentile([r["prompt_tokens_model"] for r in asked if r["prompt_tokens_model"]], 0.5),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared with other jobs while measured)",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "records": records,
    }


def write(run_result: dict) -> None:
    path = RESULTS / "llm-small.json"
    runs = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    runs = [r for r in runs if r["label"] != run_result["label"]] + [run_result]
    path.write_text(json.dumps(runs, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    lines = [
        "# LLM answer mode with small local models (eval/bench_llm.py)",
        "",
        "Measured on a 2-core machine shared with a training run and a benchmark: times are under that load.",
        "Rates are over the questions the LLM was asked (the extractive step abstained on the others).",
        "verified = the LLM's answer was kept with at least one verified citation; fallback = the extractive answer",
        "was shown instead. TTFT = from sending the request to the first streamed piece (prompt reading + first token).",
        "The prompt budget and format were chosen on these same questions: the numbers describe a set we tuned on.",
        "",
        "| run | prompt | budget | questions (asked) | verified | fallback | verified with keyword | verified on unanswerable "
        "| p50 total s | p50 TTFT s | p50 prompt tokens (cl100k / model) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        budget = f"{r['llm_context_tokens']} tok" + (f", top {r['llm_passages']}" if r.get("llm_passages") else "")
        lines.append(
            f"| {r['label']} | {r['prompt']} | {budget} | {r['questions']} ({r['llm_asked']}) | "
            f"{r['verified']} ({r['verified_rate']:.0%}) | {r['fallback']} ({r['fallback_rate']:.0%}) | "
            f"{r['verified_with_keyword']} | {r['verified_on_unanswerable']} | {r['p50_total_s']} | {r['p50_ttft_s']} | "
            f"{r['p50_prompt_tokens_cl100k']} / {r['p50_prompt_tokens_model']} |")
    lines += ["", "Models:", ""]
    seen = set()
    for r in runs:
        if r["model"] in seen:
            continue
        seen.add(r["model"])
        lines.append(f"- {r['model']}: {r.get('model_package') or '?'}; file {r.get('model_file') or '?'}, "
                     f"sha256 `{r.get('model_sha256') or '?'}`")
    lines += ["", f"Subset `small` = {', '.join(SMALL_SUBSET)}.", ""]
    (RESULTS / "llm-small.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--questions", default=str(ROOT / "eval" / "questions.jsonl"))
    p.add_argument("--subset", choices=["small", "all"], default="small")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--llm-base-url", required=True)
    p.add_argument("--llm-model", required=True)
    p.add_argument("--llm-timeout-s", type=float, default=0.0, help="default: the setting's default")
    p.add_argument("--llm-context-tokens", type=int, default=0, help="default: the setting's default")
    p.add_argument("--llm-passages", type=int, default=None, help="default: the setting's default")
    p.add_argument("--label", required=True)
    p.add_argument("--prompt-name", default="current", help="a name for the prompt version, for the table")
    p.add_argument("--model-file", default="")
    p.add_argument("--model-sha256", default="")
    p.add_argument("--model-package", default="")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    result = run(args)
    print(json.dumps({k: v for k, v in result.items() if k != "records"}, ensure_ascii=False, indent=1))
    if not args.no_write:
        write(result)


if __name__ == "__main__":
    main()
