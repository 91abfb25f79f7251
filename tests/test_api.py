"""The OpenAI-compatible HTTP API (qa/api.py), through the official `openai` client and plain HTTP, against the
app served on a free localhost port over the built-in corpus."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai", reason="the API tests use the official client: pip install -e .[test]")

from qa.api import LLM_MODEL, MODEL
from qa.app import UnsafeHostError, check_host, launch
from qa.pipeline import QAService

from conftest import clone_service, serve
from llm_server import Reply, ScriptedLLM

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "阶跃星辰的创始人是谁？"  # (the 01.AI why question is a known miss in Chinese: tests/test_neural_answers.py)
FOLLOW_UP = "那MiniMax呢？"
NOT_COVERED = "今天北京天气怎么样？"
KEY = "test-key-3c1f0e"
CITATION_FIELDS = {"n", "doc", "title", "text", "start", "end", "page", "section", "span_start", "span_end", "span_text"}
HIT_FIELDS = {"doc", "title", "text", "start", "end", "page", "section", "score", "reader_score"}


@pytest.fixture(scope="module")
def url(built_service):
    with serve(built_service) as base:
        yield base


@pytest.fixture(scope="module")
def client(url, built_service):
    # Without QA_API_KEY the server takes any key; the client insists on having one.
    key = built_service.settings.api_key or "no-key-needed-on-localhost"
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=300)


def document_text(service, doc: str) -> str:
    return service.index.texts[doc].text


def check_citations(service, text: str, citations: list[dict]) -> None:
    """Every citation is the document's own text at its offsets, numbered as the answer's [n] markers."""
    assert citations, "an answer cites its sources"
    assert [c["n"] for c in citations] == list(range(1, len(citations) + 1))
    assert {int(n) for n in re.findall(r"\[(\d+)\]", text)} == {c["n"] for c in citations}
    for c in citations:
        assert set(c) >= CITATION_FIELDS
        full = document_text(service, c["doc"])
        assert full[c["start"] : c["end"]] == c["text"]
        assert c["title"] == service.index.title(c["doc"])
        if c["span_start"] is not None:
            assert c["start"] <= c["span_start"] < c["span_end"] <= c["end"]
            assert full[c["span_start"] : c["span_end"]] == c["span_text"]
            assert f"**{c['span_text']}**" in text  # the span the answer shows in bold


def error_of(response: httpx.Response, status: int) -> dict:
    """The OpenAI error shape, and nothing like a traceback."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    assert "Traceback" not in response.text
    return body["error"]


# ------------------------------------------------------------------ chat completions

@pytest.fixture(scope="module")
def plain(client):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])


def test_plain_answer_with_checked_citations(plain, built_service):
    assert plain.object == "chat.completion" and plain.model == MODEL
    (choice,) = plain.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    text = choice.message.content
    extra = plain.model_extra
    assert extra["abstained"] is False and extra["mode"] == "extractive"
    check_citations(built_service, text, extra["citations"])
    assert any(c["span_text"] for c in extra["citations"])  # the reader's answer span is given
    assert "姜大昕" in text  # quoted from the corpus, with the founder's name


def test_streamed_answer_is_the_same_answer(client, plain, built_service):
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}], stream=True)
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) > 3, "the answer arrives in several pieces"
    text = "".join(pieces)
    assert text == plain.choices[0].message.content
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert last.model_extra["abstained"] is False
    check_citations(built_service, text, last.model_extra["citations"])
    assert last.model_extra["citations"] == plain.model_extra["citations"]


def test_stream_ends_with_done(url):
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]" and '"citations"' in events[-2]


def test_follow_up_uses_the_previous_turn(client, plain, built_service):
    alone = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": FOLLOW_UP}])
    messages = [{"role": "system", "content": "You answer from the documents."},
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": plain.choices[0].message.content},
                {"role": "user", "content": FOLLOW_UP}]
    follow = client.chat.completions.create(model=MODEL, messages=messages)
    extra = follow.model_extra
    # searched as the last question with MiniMax swapped in, as the chat box does (qa.conversation.rewrite_query)
    assert extra["query"] == "MiniMax的创始人是谁？"
    assert alone.model_extra["query"] == FOLLOW_UP
    text = follow.choices[0].message.content
    assert not extra["abstained"] and "MiniMax" in text and "閆俊傑" in text
    assert text != alone.choices[0].message.content
    check_citations(built_service, text, extra["citations"])


def test_question_the_corpus_does_not_cover_abstains(client):
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": NOT_COVERED}])
    assert answer.model_extra["abstained"] is True and answer.model_extra["citations"] == []
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content  # says so, in words
    stream = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": NOT_COVERED}],
                                                 stream=True))
    assert stream[-1].model_extra["abstained"] is True


def test_llm_model_without_an_llm_falls_back(client, built_service):
    if built_service.llm_configured:
        pytest.skip("an LLM is configured here")
    answer = client.chat.completions.create(model=LLM_MODEL, messages=[{"role": "user", "content": QUESTION}])
    assert answer.model == LLM_MODEL and answer.model_extra["mode"] == "extractive-fallback"
    assert "No LLM is configured" in answer.model_extra["notice"]
    check_citations(built_service, answer.choices[0].message.content, answer.model_extra["citations"])


def test_llm_mode_streams_the_verified_answer(built_service, embedder):
    """With an LLM configured (a scripted OpenAI server, as in test_llm.py), the stream carries the verified text:
    its citation renumbered to [1], never the LLM's raw [n]."""
    fact = "三四百萬美元"
    question = "李开复说一次预训练的成本是多少？"
    with ScriptedLLM() as llm:
        settings = built_service.settings.with_overrides(llm_base_url=llm.base_url, llm_model="scripted-model")
        service = QAService(settings, index=built_service.index, embedder=embedder)  # shares the read-only index
        hits = service.ask(question).hits
        n = next(i for i, h in enumerate(hits, 1) if fact in h.chunk.text)
        llm.script(Reply(f"李开复曾透露，一次预训练的成本约为三四百万美元[{n}]。"))
        with serve(service) as base:
            client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=300)
            assert [m.id for m in client.models.list()] == [MODEL, LLM_MODEL]
            chunks = list(client.chat.completions.create(model=LLM_MODEL, stream=True,
                                                         messages=[{"role": "user", "content": question}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "李开复曾透露，一次预训练的成本约为三四百万美元[1]。"
    extra = chunks[-1].model_extra
    assert extra["mode"] == "llm" and extra["abstained"] is False
    (citation,) = extra["citations"]
    assert fact in citation["text"]
    check_citations(built_service, text, extra["citations"])


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("content,words", [("   ", "Please type a question"), ("問" * 5000, "too long")])
def test_bad_question_is_a_400_in_openai_shape(client, url, content, words):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert caught.value.status_code == 400 and words in caught.value.message
    for stream in (False, True):
        error = error_of(httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
            "model": MODEL, "stream": stream, "messages": [{"role": "user", "content": content}]}), 400)
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_question"
        assert words in error["message"]


@pytest.mark.parametrize("body,words", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"model": "qa-chatbot"}', "'messages'"),
    (b'{"messages": [{"role": "system", "content": "hi"}]}', "no user message"),
    (b'{"messages": ["hello"]}', "messages[0]"),
    (b'{"messages": [{"role": "user", "content": {"x": 1}}]}', "content"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "mode": "poetry"}', "'mode'"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "top_k": 0}', "'top_k'"),
])
def test_malformed_bodies_are_400(url, body, words):
    error = error_of(httpx.post(f"{url}/v1/chat/completions", content=body, timeout=60), 400)
    assert words in error["message"]


def test_unknown_routes_answer_in_openai_shape(url):
    assert "POST /v1/chat/completions" in error_of(httpx.post(f"{url}/v1/completions", json={}), 404)["message"]
    assert error_of(httpx.get(f"{url}/v1/chat/completions"), 405)["code"] == "method_not_allowed"
    assert httpx.get(f"{url}/").status_code == 200  # the chat page is still there


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.code == "model_not_found"


def test_content_as_text_parts(url, plain):
    r = httpx.post(f"{url}/v1/chat/completions", timeout=300, json={
        "model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == plain.choices[0].message.content


@pytest.fixture(scope="module")
def keyed_url(built_service, tmp_path_factory):
    service = clone_service(built_service, tmp_path_factory.mktemp("keyed"), api_key=KEY)
    with serve(service) as base:
        yield base


def test_bad_key_is_401(keyed_url):
    wrong = openai.OpenAI(base_url=f"{keyed_url}/v1", api_key="not-the-key", max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    for path, method in (("/v1/models", "GET"), ("/v1/chat/completions", "POST"), ("/v1/retrieval", "POST")):
        error = error_of(httpx.request(method, keyed_url + path, json={}, timeout=60), 401)  # no key at all
        assert error["code"] == "invalid_api_key"
    right = openai.OpenAI(base_url=f"{keyed_url}/v1", api_key=KEY, max_retries=0, timeout=300)
    assert [m.id for m in right.models.list()] == [MODEL]
    assert not right.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}]
                                             ).model_extra["abstained"]


# ------------------------------------------------------------------ models, retrieval

def test_models(client, url, built_service):
    ids = [m.id for m in client.models.list()]
    assert ids == ([MODEL, LLM_MODEL] if built_service.llm_configured else [MODEL])
    assert client.models.retrieve(MODEL).id == MODEL
    assert httpx.get(f"{url}/v1/models/gpt-4o").status_code == 404


def test_retrieval_hits_are_the_documents_text(url, built_service):
    r = httpx.post(f"{url}/v1/retrieval", json={"query": QUESTION, "top_k": 4}, timeout=300)
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 4 and all(set(h) == HIT_FIELDS for h in hits)
    for h in hits:
        assert document_text(built_service, h["doc"])[h["start"] : h["end"]] == h["text"]
        assert h["title"] == built_service.index.title(h["doc"]) and h["score"] > 0
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert any("零一萬物" in h["text"] or "零一万物" in h["text"] for h in hits)


def test_retrieval_within_chosen_documents(url, built_service):
    docs = sorted(built_service.index.documents)
    for doc in docs:
        r = httpx.post(f"{url}/v1/retrieval", json={"query": QUESTION, "top_k": 3, "documents": [doc]}, timeout=300)
        hits = r.json()["hits"]
        assert hits and {h["doc"] for h in hits} == {doc}
        for h in hits:
            assert document_text(built_service, doc)[h["start"] : h["end"]] == h["text"]
    error = error_of(httpx.post(f"{url}/v1/retrieval", json={"query": QUESTION, "documents": ["nope.txt"]}), 400)
    assert error["code"] == "document_not_found" and "nope.txt" in error["message"]
    error = error_of(httpx.post(f"{url}/v1/retrieval", json={"query": "  "}), 400)
    assert "Please type a question" in error["message"]


# ------------------------------------------------------------------ who may connect

def test_no_key_means_loopback_only(built_service):
    settings = built_service.settings.with_overrides(api_key="")
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_host(settings, host)
    for host in ("0.0.0.0", "192.168.1.20", "::", "myhost.example"):
        with pytest.raises(UnsafeHostError, match="QA_API_KEY"):
            check_host(settings, host)
        check_host(settings.with_overrides(api_key=KEY), host)  # with a key: allowed
    with pytest.raises(UnsafeHostError) as caught:
        launch(settings, host="0.0.0.0", port=1)  # refused before the index is opened or a port is bound
    assert caught.value.code != 0 and "0.0.0.0" in str(caught.value)


def test_app_refuses_to_serve_on_all_interfaces_without_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "GRADIO_"))}
    env.update(QA_HOST="0.0.0.0", QA_INDEX_DIR=str(tmp_path / "index"), QA_CORPUS_DIR=str(tmp_path / "corpus"))
    done = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Refusing to serve on 0.0.0.0" in done.stderr and "QA_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "index").exists()
