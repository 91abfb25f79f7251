"""The HTTP API: OpenAI-compatible chat completions, a retrieval endpoint, served beside the chat app.

Routes (docs/api.md has the schemas and curl examples):

* ``GET  /v1/models``, ``GET /v1/models/{id}`` - ``qa-chatbot`` (extractive) and, when an LLM is configured,
  ``qa-chatbot-llm``.
* ``POST /v1/chat/completions`` - the OpenAI protocol, so Open WebUI or any OpenAI client can talk to the bot;
  the answer carries [n] markers and the response a top-level ``citations`` array and ``abstained`` flag.
* ``POST /v1/retrieval`` - the passages a query retrieves, with their offsets into the documents.

Why these routes live in the Gradio process, on its port: one thing to start and one index in memory; the app's
launch() hands them to FastAPI (qa.app.build_app). Answers come from the app's own answering code
(qa.app.Handlers.ask), so follow-ups, LLM verification and fallbacks behave exactly as in the chat box.
Errors use OpenAI's shape ``{"error": {"message", "type", "code", "param"}}`` so clients show the message;
no traceback ever leaves the server. When ``settings.api_key`` (QA_API_KEY) is set, every /v1 route requires
``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .pipeline import QAService, QuestionError, clean_question
from .types import Hit

log = logging.getLogger(__name__)

MODEL = "qa-chatbot"  # extractive answers: quoted sentences
LLM_MODEL = "qa-chatbot-llm"  # the configured local LLM, verified, with the extractive fallback
MODES = ("extractive", "llm")
MAX_BODY_BYTES = 2_000_000  # a chat history far beyond any question limit; larger bodies are refused (413)
MAX_TOP_K = 50  # passages per request; more would only slow every other user down


class Answers(Protocol):
    """What the API needs from the app: its service and its answering code (qa.app.Handlers)."""

    service: QAService

    def ask(self, question: str, history: list[str] | None = None, mode: str = "extractive",
            top_k: int = 0) -> Iterator[dict]:
        """Streams {"text", "done": False}, then qa.app.answer_payload(answer) or {"error", "code", "done": True}."""
        ...


class ApiError(Exception):
    """A request the API refuses; becomes an OpenAI-shaped error response with this status."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 kind: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.kind, self.param = status, message, code, kind, param

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        body = {"error": {"message": self.message, "type": self.kind, "code": self.code, "param": self.param}}
        return JSONResponse(body, status_code=self.status, headers=headers)


@dataclass
class ChatRequest:
    """A chat-completions body reduced to what the service takes."""

    model: str
    question: str
    history: list[str]
    mode: str
    stream: bool
    top_k: int


# ------------------------------------------------------------------ request parsing

def check_key(request: Request, api_key: str) -> None:
    """No key configured: everyone who can connect is allowed (loopback only, see qa.app.check_host)."""
    if not api_key:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise ApiError(401, "Incorrect API key provided. Send the server's QA_API_KEY as 'Authorization: Bearer <key>'.",
                       code="invalid_api_key")


async def read_json(request: Request) -> dict:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"The request body is too large ({len(body):,} bytes; the limit is {MAX_BODY_BYTES:,}).",
                       code="request_too_large")
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


def message_text(message: Any, i: int) -> tuple[str, str]:
    """(role, text) of one message; content may be a string or OpenAI's list of {"type": "text"} parts."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise ApiError(400, f"messages[{i}] must be an object with a 'role'.", param=f"messages[{i}]")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return message["role"], content or ""
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return message["role"], "".join(p.get("text") or "" for p in content if p.get("type") == "text")
    raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts.", param=f"messages[{i}].content")


def conversation(messages: Any, settings) -> tuple[str, list[str]]:
    """(question, history): the last user message, and the user messages before it.

    The service's history is the earlier questions (qa.conversation rewrites a follow-up from the last one), as
    the chat box keeps them; assistant and system messages carry nothing it uses. Earlier messages that could
    not have been asked (empty, too long) are left out, as the chat box never answered them either.
    """
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list.", param="messages")
    users = [text for role, text in (message_text(m, i) for i, m in enumerate(messages)) if role == "user"]
    if not users:
        raise ApiError(400, "There is no user message to answer.", code="no_user_message", param="messages")
    try:
        question = clean_question(users[-1], settings)
    except QuestionError as exc:
        raise ApiError(400, str(exc), code="invalid_question", param="messages") from None
    history = []
    for text in users[:-1]:
        try:
            history.append(clean_question(text, settings))
        except QuestionError:
            continue
    return question, history


def positive_int(data: dict, name: str, default: int, limit: int) -> int:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise ApiError(400, f"'{name}' must be an integer from 1 to {limit}.", param=name)
    return value


def chat_request(data: dict, settings) -> ChatRequest:
    """Validate a chat-completions body. `mode` (an extension) wins over the model id's choice."""
    model = data.get("model") or MODEL
    if model not in (MODEL, LLM_MODEL):
        raise ApiError(404, f"The model '{model}' does not exist; use '{MODEL}' or '{LLM_MODEL}'.",
                       code="model_not_found", param="model")
    mode = data.get("mode") or ("llm" if model == LLM_MODEL else "extractive")
    if mode not in MODES:
        raise ApiError(400, f"'mode' must be one of {', '.join(MODES)}.", param="mode")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false.", param="stream")
    question, history = conversation(data.get("messages"), settings)
    top_k = positive_int(data, "top_k", settings.top_k, MAX_TOP_K)
    return ChatRequest(model, question, history, mode, stream, top_k)


# ------------------------------------------------------------------ responses

def answer_fields(payload: dict) -> dict:
    """The top-level extensions of a response: what the app's sources panel and meta line show."""
    return {"citations": payload.get("citations", []), "abstained": bool(payload.get("abstained")),
            "mode": payload.get("mode"), "notice": payload.get("notice", ""), "query": payload.get("query", ""),
            "english": payload.get("english", "")}


def completion(chat: ChatRequest, cid: str, created: int, payload: dict) -> dict:
    return {"id": cid, "object": "chat.completion", "created": created, "model": chat.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": payload["text"]},
                         "finish_reason": "stop", "logprobs": None}],
            **answer_fields(payload)}


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def chunk(chat: ChatRequest, cid: str, created: int, delta: dict, finish: str | None = None, **extra) -> str:
    return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": chat.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra})


def error_event(event: dict) -> dict:
    kind = "invalid_request_error" if event.get("code") == "invalid_question" else "server_error"
    return {"error": {"message": event["error"], "type": kind, "code": event.get("code"), "param": None}}


def stream_events(chat: ChatRequest, cid: str, created: int, first: dict, events: Iterator[dict]) -> Iterator[str]:
    """The answer as chat.completion.chunk events; citations and abstained ride on the last one, then [DONE].

    The service streams growing prefixes of the final text, sent as deltas. LLM answers are sent once verified:
    the final text renumbers the LLM's citations (qa.llm.verify_answer) or falls back to the extractive answer,
    and a stream cannot take back text it has sent.
    """
    sent = ""
    try:
        yield chunk(chat, cid, created, {"role": "assistant", "content": ""})
        event = first
        while True:
            if "error" in event:
                yield sse(error_event(event))
                break
            text = event["text"]
            if event["done"] or chat.mode != "llm":
                # a prefix of the final text, by construction; were it not, the whole text follows what was sent
                extra = text[len(sent):] if text.startswith(sent) else "\n\n" + text
                if extra:
                    yield chunk(chat, cid, created, {"content": extra})
                    sent += extra
            if event["done"]:
                yield chunk(chat, cid, created, {}, "stop", **answer_fields(event))
                break
            event = next(events)
        yield sse("[DONE]")
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def last_event(first: dict, events: Iterator[dict]) -> dict:
    """The final answer (or error) of an answer stream whose first event was already taken."""
    event = first
    while not event.get("done"):
        event = next(events)
    return event


def hit_json(hit: Hit, title: str) -> dict:
    c = hit.chunk
    return {"doc": c.doc_id, "title": title, "text": c.text, "start": c.start, "end": c.end, "page": c.page,
            "section": c.section, "score": round(float(hit.score), 6),
            "reader_score": None if hit.reader_score is None else round(float(hit.reader_score), 6)}


def model_card(model_id: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "qa-chatbot"}


# ------------------------------------------------------------------ the routes

def api_routes(answers: Answers, concurrency: int = 4) -> list[Route]:
    """The /v1 routes, for FastAPI(routes=...) (Gradio's launch(app_kwargs=...)) or any Starlette app.

    Answering is CPU-bound: at most `concurrency` API requests compute at once (the chat box's queue has its own
    limit), the others wait, so a burst of API calls does not starve the app of cores.
    """
    service = answers.service
    started = int(time.time())
    slots = threading.BoundedSemaphore(max(1, concurrency))

    def limited(fn, *args):
        with slots:
            return fn(*args)

    def models() -> list[str]:
        return [MODEL, LLM_MODEL] if service.llm_configured else [MODEL]

    def guarded(handler):
        """Authenticate, run, and turn any failure into an OpenAI-shaped error (never a traceback)."""

        async def endpoint(request: Request) -> Response:
            try:
                check_key(request, service.settings.api_key)
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            except Exception as exc:  # the server must keep running and say something useful
                log.exception("%s %s failed", request.method, request.url.path)
                return ApiError(500, f"Internal error ({type(exc).__name__}); the server is still running.",
                                code="internal_error", kind="server_error").response()

        return endpoint

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [model_card(m, started) for m in models()]})

    async def get_model(request: Request) -> Response:
        model_id = request.path_params["model"]
        if model_id not in (MODEL, LLM_MODEL):
            raise ApiError(404, f"The model '{model_id}' does not exist.", code="model_not_found", param="model")
        return JSONResponse(model_card(model_id, started))

    async def chat_completions(request: Request) -> Response:
        chat = chat_request(await read_json(request), service.settings)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        events = answers.ask(chat.question, chat.history, chat.mode, chat.top_k)
        # The first step does the retrieval and reading: errors found there still get an HTTP status.
        first = await run_in_threadpool(limited, next, events)
        if "error" in first:
            return JSONResponse(error_event(first), status_code=400 if first.get("code") == "invalid_question" else 500)
        if chat.stream:
            return StreamingResponse(stream_events(chat, cid, created, first, events), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        final = await run_in_threadpool(last_event, first, events)
        if "error" in final:
            return JSONResponse(error_event(final), status_code=500)
        return JSONResponse(completion(chat, cid, created, final))

    async def retrieval(request: Request) -> Response:
        data = await read_json(request)
        query = data.get("query")
        if not isinstance(query, str):
            raise ApiError(400, "'query' must be a string.", param="query")
        top_k = positive_int(data, "top_k", service.settings.top_k, MAX_TOP_K)
        documents = data.get("documents")
        if documents is not None:
            if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
                raise ApiError(400, "'documents' must be a list of document ids.", param="documents")
            index = service.current_index()
            unknown = [d for d in documents if index is None or d not in index.documents]
            if unknown:
                raise ApiError(400, f"Unknown document ids: {', '.join(unknown)}.", code="document_not_found",
                               param="documents")
        try:
            hits = await run_in_threadpool(limited, service.retrieve, query, top_k, documents or None)
        except QuestionError as exc:
            raise ApiError(400, str(exc), code="invalid_question", param="query") from None
        index = service.current_index()
        return JSONResponse({"object": "list", "query": query.strip(),
                             "hits": [hit_json(h, index.title(h.chunk.doc_id)) for h in hits]})

    routes = [Route("/v1/models", guarded(list_models), methods=["GET"]),
              Route("/v1/models/{model:path}", guarded(get_model), methods=["GET"]),
              Route("/v1/chat/completions", guarded(chat_completions), methods=["POST"]),
              Route("/v1/retrieval", guarded(retrieval), methods=["POST"])]
    known = {"/v1/models": "GET", "/v1/chat/completions": "POST", "/v1/retrieval": "POST"}

    async def unknown_route(request: Request) -> Response:
        """Anything else under /v1 (a typo, a GET to a POST route): an OpenAI-shaped error that lists the routes."""
        path = request.url.path.rstrip("/")
        listing = ", ".join(f"{method} {route}" for route, method in known.items())
        if path in known:
            raise ApiError(405, f"Use {known[path]} for {path}.", code="method_not_allowed")
        raise ApiError(404, f"There is no {request.method} {path}; the API has {listing}.", code="not_found")

    return routes + [Route("/v1/{rest:path}", guarded(unknown_route),
                           methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])]
