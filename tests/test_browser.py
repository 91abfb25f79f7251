"""The app in a real (headless) Chromium: ask, read the sources, upload good and bad files.

Needs Chromium: /usr/bin/chromium or the path in QA_CHROMIUM; skipped with a reason otherwise.
Screenshots go to test-artifacts/ (git-ignored) for a human to look at.
"""

import os
import re
from pathlib import Path

import pytest

from conftest import make_service, serve

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("QA_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ANSWER_TIMEOUT_MS = 180_000  # the first question on a cold, shared 2-core machine can take a while

if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (install chromium or set QA_CHROMIUM to its path)", allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, embedder):
    service = make_service(tmp_path_factory.mktemp("browser"), embedder)  # private corpus: uploads land there
    with serve(service) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
        page = context.new_page()
        page.goto(app_url, wait_until="domcontentloaded")  # gradio keeps a connection open: never "networkidle"
        page.wait_for_selector("#question textarea", timeout=60_000)
        yield page
        context.close()
        browser.close()


def _ask(page, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    # Done when the sources panel belongs to this question and the last bubble stopped streaming.
    page.wait_for_function(
        """(q) => {
            const head = document.querySelector('#sources-panel .src-header');
            const bubbles = document.querySelectorAll('#chat .qa-answer, #chat .qa-abstain, #chat .qa-error');
            const last = bubbles[bubbles.length - 1];
            return head && head.textContent.includes(q) && last && !last.textContent.includes('▍');
        }""",
        arg=question, timeout=ANSWER_TIMEOUT_MS)


def _last_answer(page) -> str:
    return page.locator("#chat .qa-answer").last.inner_text()


def _document_count(page) -> int:
    text = page.locator("#index-status").inner_text()
    return int(re.search(r"(\d+)\s*documents", text).group(1))


def test_ask_shows_cited_answer_and_highlighted_source(page):
    _ask(page, "why did 01.AI give up pretraining?")
    answer = _last_answer(page)
    assert len(answer) > 20 and "[1]" in answer
    marker = page.locator("#chat .qa-answer a.cite").first
    assert marker.get_attribute("href") == "#src-1"
    card = page.locator("#sources-panel #src-1")
    assert card.is_visible()
    marked = page.locator("#sources-panel mark").all_inner_texts()
    assert marked and any("零一萬物" in m or "通義" in m or "李開復" in m for m in marked), marked
    # The trained reader's answer span: bold in the answer, and marked inside the highlighted sentence.
    bold = page.locator("#chat .qa-answer strong.qa-span").last
    assert bold.is_visible() and bold.inner_text().strip()
    inside = page.locator("#sources-panel #src-1 mark strong.qa-span")
    assert inside.count() >= 1 and inside.first.inner_text().strip() in " ".join(marked)
    # The settings show the reader's confidence for the last answer.
    page.locator("#settings").get_by_text("Settings").first.click()
    page.wait_for_selector("#reader-confidence-value", timeout=10_000)
    # English question: the evidence score (cosine + 0.2 x the share of question concepts mentioned: up to 1.2; with
    # the English query encoder this one scores 1.01), named next to the value; Chinese: the verifier's P(answered)
    assert 0.0 <= float(page.locator("#reader-confidence-value").inner_text()) <= 1.2
    assert "evidence score" in page.locator("#reader-info").inner_text()
    page.screenshot(path=str(ARTIFACTS / "browser-1-answer.png"), full_page=True)
    # The marker jumps to its card, in the same tab.
    pages_before = len(page.context.pages)
    marker.click()
    page.wait_for_timeout(800)
    assert len(page.context.pages) == pages_before
    assert card.evaluate("el => { const r = el.getBoundingClientRect(); return r.top < window.innerHeight && r.bottom > 0; }")
    # The wider context is one click away.
    card.locator("summary").click()
    assert card.locator(".src-context mark").is_visible()
    card.screenshot(path=str(ARTIFACTS / "browser-1-source-card.png"))


def test_uploaded_document_is_searchable(page, tmp_path):
    doc = tmp_path / "xinghe-zhisuan.txt"
    doc.write_text("星河智算是一家虚构的人工智能公司。星河智算于2031年在苏州成立，创始团队来自苏州大学，"
                   "主要研发用于量子推理的低功耗芯片。", encoding="utf-8")
    before = _document_count(page)
    page.locator("#upload input[type=file]").set_input_files(str(doc))
    page.wait_for_selector("#upload-report", timeout=ANSWER_TIMEOUT_MS)
    assert "Added xinghe-zhisuan.txt" in page.locator("#upload-report").inner_text()
    page.wait_for_function(f"() => /\\b{before + 1}\\s*documents/.test(document.querySelector('#index-status').innerText)",
                           timeout=30_000)
    _ask(page, "星河智算是哪一年在哪里成立的？")
    assert "2031" in _last_answer(page)
    cited_docs = page.locator("#sources-panel .src-card").evaluate_all("els => els.map(e => e.dataset.doc)")
    assert "xinghe-zhisuan.txt" in cited_docs
    page.screenshot(path=str(ARTIFACTS / "browser-2-upload-answer.png"), full_page=True)


def test_binary_upload_is_rejected_and_index_unchanged(page, tmp_path):
    blob = tmp_path / "image-dump.txt"
    blob.write_bytes(bytes(range(256)) * 20)
    before = _document_count(page)
    page.locator("#upload input[type=file]").set_input_files(str(blob))
    page.wait_for_function("() => { const r = document.querySelector('#upload-report');"
                           " return r && r.innerText.includes('image-dump.txt'); }", timeout=60_000)
    report = page.locator("#upload-report").inner_text()
    assert "Not added" in report and "binary" in report
    assert _document_count(page) == before
    page.screenshot(path=str(ARTIFACTS / "browser-3-bad-upload.png"), full_page=True)


def test_uploaded_pdf_is_cited_by_page(page, tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "eval"))
    import make_docs

    pdf = tmp_path / "xinghe-2033.pdf"
    pdf.write_bytes(make_docs.hans_pdf())  # 4 pages; the funding round is on page 3
    page.locator("#upload input[type=file]").set_input_files(str(pdf))
    page.wait_for_function("() => { const r = document.querySelector('#upload-report');"
                           " return r && r.innerText.includes('xinghe-2033.pdf'); }", timeout=ANSWER_TIMEOUT_MS)
    assert "Added xinghe-2033.pdf" in page.locator("#upload-report").inner_text()
    _ask(page, "星河智算的B轮融资由谁领投？")
    assert "苏州创新基金" in _last_answer(page)
    card = page.locator("#sources-panel #src-1")
    assert card.get_attribute("data-doc") == "xinghe-2033.pdf"
    assert "p. 3" in card.locator(".src-meta").inner_text()
    card.screenshot(path=str(ARTIFACTS / "browser-4-pdf-page-card.png"))
    page.screenshot(path=str(ARTIFACTS / "browser-4-pdf-answer.png"), full_page=True)
