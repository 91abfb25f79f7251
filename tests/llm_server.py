"""A scripted OpenAI chat-completions server on 127.0.0.1 for tests (http.server in a thread).

    with ScriptedLLM() as llm:
        llm.script(Reply("智谱完成了30亿元融资 [1]。"))
        settings = settings.with_overrides(llm_base_url=llm.base_url, llm_model="test")
        ...
        llm.requests[0]["messages"]  # what the client sent

Each request takes the next scripted Reply (the last one repeats). A Reply can stream (SSE, in
small pieces) or not, as the request asks, answer after a delay, fail with an HTTP status, or
send garbage bytes.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if issubclass(sys.exc_info()[0] or Exception, (ConnectionError, TimeoutError)):
            return  # the client gave up (a timeout test): expected
        super().handle_error(request, client_address)


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before the first byte
    garbage: bytes | None = None  # sent as-is with status 200
    piece_chars: int = 3  # streamed piece size
    piece_delay: float = 0.0  # seconds between streamed pieces
    force_stream: bool | None = None  # answer as SSE / JSON regardless of the request
    trickle: bytes | None = None  # sent one byte per piece_delay, never a newline
    keep_open: float = 0.0  # seconds to hold the connection open after [DONE]


def free_port() -> int:
    """A port nothing listens on (bound then closed): connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScriptedLLM:
    def __init__(self):
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self._replies: list[Reply] = [Reply("")]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                with owner._lock:
                    owner.requests.append(body)
                    owner.paths.append(self.path)
                    reply = owner._replies.pop(0) if len(owner._replies) > 1 else owner._replies[0]
                if reply.delay and owner._stop.wait(reply.delay):
                    return
                try:
                    self._answer(body, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): fine

            def _send(self, status: int, ctype: str, data: bytes):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _answer(self, body: dict, reply: Reply):
                if reply.status != 200:
                    self._send(reply.status, "application/json", b'{"error": {"message": "scripted failure"}}')
                    return
                if reply.garbage is not None:
                    self._send(200, "application/json", reply.garbage)
                    return
                if reply.trickle is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for byte in reply.trickle:
                        if owner._stop.wait(reply.piece_delay):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                stream = body.get("stream") if reply.force_stream is None else reply.force_stream
                created = int(time.time())
                if not stream:
                    payload = {"id": "chatcmpl-test", "object": "chat.completion", "created": created,
                               "model": body.get("model", ""),
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": reply.content}}]}
                    self._send(200, "application/json", json.dumps(payload, ensure_ascii=False).encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = [reply.content[i : i + reply.piece_chars] for i in range(0, len(reply.content), reply.piece_chars)]
                first = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.write(b"data: " + json.dumps(first).encode() + b"\n\n")
                for piece in pieces:
                    if reply.piece_delay and owner._stop.wait(reply.piece_delay):
                        return
                    chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": created,
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n")
                    self.wfile.flush()
                last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(b"data: " + json.dumps(last).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                if reply.keep_open:
                    owner._stop.wait(reply.keep_open)
                self.close_connection = True

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def script(self, *replies: Reply) -> "ScriptedLLM":
        with self._lock:
            self._replies = list(replies) or [Reply("")]
        return self

    def __enter__(self) -> "ScriptedLLM":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()  # wakes delayed handlers
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
