"""Load test of the chat app through its HTTP API (the streaming `/ask` endpoint of qa/app.py).

    python eval/bench_load.py                      # start the app in-process, 20 users for 60 s
    python eval/bench_load.py --url http://127.0.0.1:7860 --users 10 --duration 30
    python eval/bench_load.py --url http://127.0.0.1:7860 --examples   # TTFT / total per example question

N simulated users each ask questions back to back (the app's example questions plus a few
more) until the time is up; requests still running at the deadline are waited for. Prints one
JSON object: answered / failed counts, latency and time-to-first-token percentiles, throughput.
A request counts as answered when the stream completes with a final payload that either cites
sources or abstains explicitly; anything else (HTTP error, error event, error payload) is a failure.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUESTIONS = [
    "why did 01.AI give up pretraining?",
    "零一万物为什么放弃预训练？",
    "階躍星辰和智譜AI會繼續做預訓練嗎？",
    "李开复说一次预训练要花多少钱？",
    "Which companies are called the six tigers?",
    "月之暗面的 Kimi 有什么特点？",
]


def ask_once(client: httpx.Client, url: str, question: str, history=None, mode: str = "extractive",
             top_k: int = 0, timeout: float = 120.0) -> dict:
    """One streamed question: returns {ok, ttft, total, payload|error}. Never raises."""
    started = time.perf_counter()
    ttft = None
    final = None
    try:
        r = client.post(f"{url}/gradio_api/call/ask", json={"data": [question, history or [], mode, top_k]}, timeout=timeout)
        r.raise_for_status()
        event_id = r.json()["event_id"]
        event = None
        with client.stream("GET", f"{url}/gradio_api/call/ask/{event_id}", timeout=timeout) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    if event == "error":
                        return {"ok": False, "error": f"error event: {line[5:].strip()[:200]}",
                                "total": time.perf_counter() - started}
                    if event not in ("generating", "complete"):
                        continue
                    data = json.loads(line[5:])
                    payload = data[0] if isinstance(data, list) and data else None
                    if isinstance(payload, dict):
                        if ttft is None and (payload.get("text") or payload.get("done")):
                            ttft = time.perf_counter() - started
                        if payload.get("done"):
                            final = payload
                    if event == "complete":
                        break
    except Exception as exc:  # network errors, timeouts, bad JSON
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "total": time.perf_counter() - started}
    total = time.perf_counter() - started
    if final is None:
        return {"ok": False, "error": "stream ended without a final answer", "total": total}
    if final.get("error"):
        return {"ok": False, "error": final["error"], "total": total}
    if not (final.get("citations") or final.get("abstained")):
        return {"ok": False, "error": "answer without citations that does not abstain", "total": total}
    return {"ok": True, "ttft": ttft if ttft is not None else total, "total": total, "payload": final}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(q / 100 * (len(values) - 1))))
    return round(values[k], 3)


def run_load(url: str, users: int = 20, duration: float = 60.0, questions: list[str] | None = None) -> dict:
    questions = questions or QUESTIONS
    url = url.rstrip("/")
    results: list[dict] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    started = time.perf_counter()

    def user(n: int) -> None:
        with httpx.Client() as client:
            i = n
            while time.monotonic() < deadline:
                result = ask_once(client, url, questions[i % len(questions)])
                i += 1
                with lock:
                    results.append(result)

    threads = [threading.Thread(target=user, args=(n,), daemon=True) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    ok = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    totals = [r["total"] for r in ok]
    ttfts = [r["ttft"] for r in ok]
    return {
        "url": url, "users": users, "duration_s": duration, "elapsed_s": round(elapsed, 2),
        "answered": len(ok), "failed": len(failed),
        "abstained": sum(1 for r in ok if r["payload"].get("abstained")),
        "latency_s": {"p50": _pct(totals, 50), "p95": _pct(totals, 95), "max": _pct(totals, 100),
                      "mean": round(statistics.fmean(totals), 3) if totals else None},
        "ttft_s": {"p50": _pct(ttfts, 50), "p95": _pct(ttfts, 95)},
        "throughput_qps": round(len(ok) / elapsed, 3) if elapsed else None,
        "errors": sorted({r["error"] for r in failed})[:5],
    }


def time_examples(url: str, questions: list[str] | None = None) -> list[dict]:
    """Time to first token and to the full answer, one question at a time."""
    out = []
    with httpx.Client() as client:
        for q in questions or QUESTIONS[:3]:
            r = ask_once(client, url.rstrip("/"), q)
            out.append({"question": q, "ok": r["ok"], "ttft_s": round(r.get("ttft") or r["total"], 3),
                        "total_s": round(r["total"], 3),
                        "citations": len(r.get("payload", {}).get("citations", [])) if r["ok"] else 0,
                        **({"error": r["error"]} if not r["ok"] else {})})
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local_app():
    """Open the configured index (building it if missing) and serve the app on a free local port."""
    from qa.app import build_app
    from qa.pipeline import QAService
    from qa.settings import load_settings

    service = QAService.open(load_settings())
    demo = build_app(service)
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return demo, f"http://127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running app (default: start one in-process on a free port)")
    parser.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--examples", action="store_true",
                        help="instead of load: time the three example questions one by one (after one warm-up)")
    args = parser.parse_args(argv)
    demo = None
    url = args.url
    if not url:
        demo, url = start_local_app()
    try:
        if args.examples:
            with httpx.Client() as client:
                ask_once(client, url.rstrip("/"), "warm-up: 月之暗面")
            report = {"url": url, "examples": time_examples(url)}
            failed = sum(not r["ok"] for r in report["examples"])
        else:
            report = run_load(url, args.users, args.duration)
            failed = report["failed"]
        print(json.dumps(report, ensure_ascii=False, indent=1))
    finally:
        if demo is not None:
            demo.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
