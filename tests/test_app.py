"""The Gradio app: rendering helpers, handlers, and the served app under concurrent load."""

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qa.app import (EXAMPLES, Handlers, answer_html, highlight, link_markers, sources_html,
                    status_html)
from qa.types import Answer, Chunk, Citation, Hit

from conftest import make_service, serve

ROOT = Path(__file__).resolve().parents[1]


def _final(gen):
    """Last yielded tuple of a streaming handler."""
    out = None
    for out in gen:
        pass
    return out


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


# ------------------------------------------------------------------ pure helpers

def test_highlight_escapes_and_marks():
    text = "before <b>x</b> cited & quoted after"
    out = highlight(text, text.index("cited"), text.index(" after"))
    assert "<b>" not in out and "&lt;b&gt;" in out
    assert "<mark>cited &amp; quoted</mark>" in out


def test_link_markers_only_links_existing_citations():
    out = link_markers("a [1] b [2] c [7]", 2)
    assert 'href="#src-1"' in out and 'href="#src-2"' in out
    assert 'href="#src-7"' not in out and "[7]" in out


def test_sources_html_escapes_untrusted_documents():
    doc = "evil.txt"
    text = "開頭。<script>alert('x')</script>的句子被引用。結尾<img src=x onerror=alert(1)>。"
    sentence = "<script>alert('x')</script>的句子被引用。"
    start = text.index(sentence)
    chunk = Chunk(chunk_id=0, doc_id=doc, start=0, end=len(text), text=text)
    citation = Citation(doc=doc, start=start, end=start + len(sentence), text=sentence, score=0.9,
                        title="<i>title</i>", chunk_id=0)
    answer = Answer(question="<b>q</b>", text=f"{sentence} [1]", abstained=False, citations=[citation],
                    hits=[Hit(chunk, 1.0)])
    for html in (sources_html(answer), answer_html(answer)):
        assert "<script" not in html and "<img" not in html and "<i>" not in html and "<b>q" not in html
    panel = sources_html(answer)
    assert "&lt;script&gt;" in panel and 'id="src-1"' in panel
    marked = re.search(r"<mark>(.*?)</mark>", panel).group(1)
    assert marked == "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;的句子被引用。"
    assert 'href="#src-1"' in answer_html(answer)


def test_sources_highlight_the_cited_sentence(built_service):
    answer = built_service.ask(EXAMPLES[0])
    assert not answer.abstained and answer.citations
    handlers = Handlers(built_service)
    panel = sources_html(answer, handlers.corpus, handlers.scripts())
    cards = re.findall(r'<div class="src-card[^"]*" id="src-(\d+)"', panel)
    assert cards == [str(n) for n in range(1, len(answer.citations) + 1)]
    marks = [_text(m) for m in re.findall(r"<mark>(.*?)</mark>", panel, flags=re.S)]
    for c in answer.citations:
        flat = re.sub(r"\s*\n\s*", " ", c.text)
        assert flat in marks  # the card passage highlights exactly the cited sentence
        assert f"chars {c.start}–{c.end}" in panel
    assert "<details>" in panel and "wider context" in panel  # corpus context one click away
    assert "零一萬物" in panel or "通義" in panel  # original (Traditional) script, not folded
    assert "zh-Hant" in panel


def test_abstention_is_rendered_as_such(built_service):
    answer = built_service.ask("What is the capital of France?")
    assert answer.abstained and not answer.citations
    bubble = answer_html(answer)
    assert 'class="qa-abstain"' in bubble and "Not found in the documents" in bubble
    assert 'href="#src-' not in bubble
    panel = sources_html(answer)
    assert "src-card" not in panel and "nothing is cited" in panel


def test_status_line(built_service):
    line = status_html(built_service.status())
    st = built_service.status()
    assert f"<b>{st['documents']}</b> documents" in line and f"<b>{st['chunks']}</b> passages" in line
    assert st["model"] in line and "last build" in line


# ------------------------------------------------------------------ handlers

def test_respond_streams_answer_sources_and_history(built_service):
    h = Handlers(built_service)
    outputs = list(h.respond(EXAMPLES[1], "extractive", 5, None))
    assert len(outputs) >= 3  # the question first, then partial answers, then the final one
    chat, _, panel, meta, conv = outputs[-1]
    assert chat[0]["role"] == "user" and chat[-1]["role"] == "assistant"
    assert 'href="#src-1"' in chat[-1]["content"] and "src-card" in panel
    assert "extractive" in meta
    assert conv["asked"] == [EXAMPLES[1]]
    chat2, *_, conv2 = _final(h.respond("那階躍星辰呢？", "extractive", 5, conv))
    assert conv2["asked"] == [EXAMPLES[1], "那階躍星辰呢？"] and len(chat2) == 4
    assert 'href="#src-' not in chat2[1]["content"]  # the earlier answer no longer links to the new panel
    assert "stale" in chat2[1]["content"]


def test_settings_say_what_decided_the_last_answer(built_service):
    h = Handlers(built_service)
    assert "answer verifier abstains on Chinese (zh-Hans / zh-Hant) questions below P(answered) 0." in h.reader_info()
    *_, conv = _final(h.respond("今天北京天气怎么样？", "extractive", 5, None))
    line = _text(h.reader_info(conv))
    assert "(P(answered); abstained)" in line  # a Chinese question: the verifier's probability, and it refused
    *_, conv = _final(h.respond("why did 01.AI give up pretraining?", "extractive", 5, None))
    assert "(evidence score; answered)" in _text(h.reader_info(conv))  # English: the evidence score's cut


@pytest.mark.parametrize("question,expected", [("   ", "Please type a question"), ("問" * 5000, "too long")])
def test_respond_rejects_bad_questions(built_service, question, expected):
    chat, *_ = _final(Handlers(built_service).respond(question, "extractive", 5, None))
    assert 'class="qa-error"' in chat[-1]["content"] and expected in chat[-1]["content"]


def test_respond_survives_unexpected_errors(built_service, monkeypatch):
    h = Handlers(built_service)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")
        yield  # pragma: no cover

    monkeypatch.setattr(built_service, "ask_stream", boom)
    chat, *_ = _final(h.respond(EXAMPLES[0], "extractive", 5, None))
    assert "something went wrong" in chat[-1]["content"] and "RuntimeError" in chat[-1]["content"]
    assert _final(h.ask(EXAMPLES[0]))["error"].startswith("internal error")


def test_llm_mode_without_llm_falls_back_with_notice(built_service):
    if built_service.llm_configured:
        pytest.skip("an LLM is configured here")
    *_, meta, _ = _final(Handlers(built_service).respond(EXAMPLES[0], "llm", 5, None))
    assert "fallback" in meta and "No LLM is configured" in meta


def test_upload_adds_good_files_and_rejects_bad_ones(tmp_path, embedder):
    service = make_service(tmp_path, embedder)
    h = Handlers(service)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    good = uploads / "xinghe.txt"
    good.write_text("星河智算是一家虚构的公司，2031年成立于苏州，专门研究量子推理芯片。", encoding="utf-8")
    binary = uploads / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02binary\x00" * 50)
    empty = uploads / "empty.md"
    empty.write_bytes(b"")
    wrong = uploads / "slides.pptx"
    wrong.write_bytes(b"PK\x03\x04")
    before = service.status()["documents"]
    report, status, cleared = h.upload([str(binary), str(empty), str(wrong)])
    assert report.count("Not added") == 3 and "binary" in report and "empty" in report and "unsupported" in report
    assert service.status()["documents"] == before and f"<b>{before}</b> documents" in status
    report, status, cleared = h.upload([str(good)])
    assert "Added xinghe.txt" in report and cleared is None
    assert service.status()["documents"] == before + 1 and f"<b>{before + 1}</b> documents" in status
    final = _final(h.ask("星河智算是哪一年在哪里成立的？"))
    assert final.get("citations") and final["citations"][0]["doc"] == "xinghe.txt"


# ------------------------------------------------------------------ the served app

@pytest.fixture(scope="module")
def served(built_service):
    with serve(built_service) as url:
        yield url


def test_ten_simultaneous_questions_all_answered(served):
    from gradio_client import Client

    client = Client(served, verbose=False, download_files=False)
    questions = [EXAMPLES[i % 3] for i in range(10)]
    jobs = [client.submit(q, "extractive", 5, api_name="/respond") for q in questions]
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda job: job.result(timeout=300), jobs))
    assert len(results) == 10
    for q, (chat, _, panel, meta) in zip(questions, results):
        bubble = chat[-1]["content"]
        bubble = bubble[0]["text"] if isinstance(bubble, list) else bubble
        assert 'href="#src-1"' in bubble, bubble
        assert 'id="src-1"' in panel and "<mark>" in panel


def test_load_script_short_run(served):
    sys.path.insert(0, str(ROOT / "eval"))
    from bench_load import run_load

    report = run_load(served, users=5, duration=8)
    assert report["failed"] == 0, report["errors"]
    assert report["answered"] >= 5
    assert report["latency_s"]["p95"] is not None
