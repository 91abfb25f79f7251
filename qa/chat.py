"""`qa chat`: an interactive session that loads the model and the index once.

`qa ask` is a one-shot command and pays the model load (6-10 s) every time; in `qa chat` only
the first question does. Follow-up questions reuse the conversation, as in the app.
Commands: `/new` starts a new conversation, `/json` toggles JSON output, `/quit` (or Ctrl-D) leaves.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

HISTORY_TURNS = 5


def citation_line(n: int, c) -> str:
    where = [f"p. {c.page}"] if c.page else []
    if c.section:
        where.append(f"§ {c.section}")
    where.append(f"chars {c.start}-{c.end}")
    return f"  [{n}] {c.title or c.doc} ({c.doc}) {', '.join(where)} (score {c.score:.3f})"


def run_chat(service, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, top_k: int | None = None,
             mode: str = "extractive", as_json: bool = False) -> int:
    from .pipeline import QuestionError

    interactive = stdin.isatty()
    history: list[str] = []
    started = time.perf_counter()
    service.embedder.encode_queries(["warm-up"])  # load the model before the first prompt, not after it
    loaded = time.perf_counter() - started
    print(f"qa chat: {service.status()['documents']} documents, model ready in {loaded:.1f}s. "
          "Ask a question; /new, /json, /quit.", file=stdout, flush=True)
    while True:
        if interactive:
            print("? ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            return 0
        question = line.strip()
        if not question:
            continue
        if question in ("/quit", "/exit", "/q"):
            return 0
        if question == "/new":
            history.clear()
            print("(new conversation)", file=stdout, flush=True)
            continue
        if question == "/json":
            as_json = not as_json
            continue
        started = time.perf_counter()
        try:
            answer = None
            for _, final in service.ask_stream(question, history=history[-HISTORY_TURNS:], top_k=top_k, answer_mode=mode):
                answer = final or answer
        except QuestionError as exc:
            print(f"error: {exc}", file=stdout, flush=True)
            continue
        history.append(question)
        if as_json:
            print(json.dumps(answer.to_json_dict(), ensure_ascii=False), file=stdout, flush=True)
            continue
        print(answer.text, file=stdout)
        if answer.english:
            print(answer.english, file=stdout)
        for n, c in enumerate(answer.citations, 1):
            print(citation_line(n, c), file=stdout)
        print(f"({answer.mode}, {time.perf_counter() - started:.2f}s)", file=stdout, flush=True)
