"""Real documents: PDFs in both scripts (running header and footer, lines broken mid-sentence),
a scanned page, Word, HTML around an article, EPUB; bad files of every kind.

The documents are made here (eval/make_docs.py) and go through the real extractors, the real
embedding model and the real index.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest

from qa.ingest import extract_document
from qa.ingest.pdf_text import clean_pages, join_lines, running_lines, strip_page_furniture
from qa.loader import DocumentError
from qa.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "eval"))
import make_docs  # noqa: E402

SETTINGS = load_settings()


# ------------------------------------------------------------------ PDF text rules

def test_running_headers_footers_and_page_numbers_are_dropped():
    body = [["第一页的正文，", "继续。", "结束。"], ["第二页开始了，", "这一页很短。"], ["第三页", "继续。", "完。"]]
    pages = [["年度报告 · 内部资料", *lines, f"第 {n} 页"] for n, lines in enumerate(body, 1)]
    running = running_lines(pages)
    assert running == {"年度报告·内部资料", "第#页"}  # repeated at the same place; digits ignored
    assert strip_page_furniture(pages[1], running) == body[1]
    for number in ("12", "- 12 -", "— 3 —", "第 12 页", "第12页 共40页", "Page 3 of 10", "3/10", "iv"):
        assert strip_page_furniture(["正文。", number], set()) == ["正文。"], number
    assert strip_page_furniture(["2031年成立。", "正文。"], set()) == ["2031年成立。", "正文。"]  # not a page number


def test_broken_lines_are_joined_without_spaces_between_cjk():
    lines = ["星河智算是一家虚构的人工智能公司，总部位", "于苏州工业园区，全角标点：，。！半角:,.!", "都照原样保留。",
             "The company makes low power chips for", "cameras and robots.", "短标题", "下一段的第一行，写到这里正好也是二十个字",
             "结束。"]
    assert join_lines(lines) == ["星河智算是一家虚构的人工智能公司，总部位于苏州工业园区，全角标点：，。！半角:,.!都照原样保留。",
                                 "The company makes low power chips for cameras and robots.", "短标题",
                                 "下一段的第一行，写到这里正好也是二十个字结束。"]


def test_a_single_page_keeps_its_first_and_last_lines():
    line = "一行写满了二十六个字的正文，句子在这里被版面折断"
    assert clean_pages([f"标题\n{line}\n结束。\n12"]) == [["标题", line + "结束。"]]


@pytest.mark.parametrize("make,pages,header", [(make_docs.hans_pdf, make_docs.HANS_PAGES, make_docs.HANS_HEADER),
                                              (make_docs.hant_pdf, make_docs.HANT_PAGES, make_docs.HANT_HEADER)])
def test_chinese_pdfs_are_extracted_exactly_page_by_page(make, pages, header):
    doc = extract_document("report.pdf", make(), SETTINGS)
    assert len(doc.pages) == len(pages) and doc.kind == "pdf"
    bounds = doc.pages + [len(doc.text) + 2]
    for n, paragraphs in enumerate(pages, 1):
        page_text = doc.text[bounds[n - 1] : bounds[n] - 2]
        # exactly what was written: lines joined with no space, nothing lost, no header, footer or page number
        assert page_text.replace("\n\n", "") == "".join(paragraphs), n
        assert page_text.startswith(paragraphs[0]) and doc.text[bounds[n] - 2 : bounds[n]] in ("\n\n", "")
    assert header not in doc.text and "页" not in doc.text and "—" not in doc.text
    assert doc.script == ("zh-Hans" if make is make_docs.hans_pdf else "zh-Hant")


def test_a_hyphen_at_the_end_of_a_line_is_kept():
    """PDFium reports a line-ending hyphen as U+FFFE and glues the lines; the hyphen is written, so it stays."""
    import pypdfium2

    data = make_docs.pdf_bytes([["二叠纪末期大灭绝-三叠纪随后开始。"], ["第二页。"]], header="页眉", width=9)
    assert "\ufffe" in pypdfium2.PdfDocument(data)[0].get_textpage().get_text_range()
    doc = extract_document("h.pdf", data, SETTINGS)
    assert doc.text == "二叠纪末期大灭绝-三叠纪随后开始。\n\n第二页。"


def test_word_html_and_epub_keep_their_headings():
    docx = extract_document("robots.docx", make_docs.docx_bytes(), SETTINGS)
    assert [h.text for h in docx.headings] == ["青松机器人公司介绍", "公司简介", "研发团队", "财务状况"]
    for h in docx.headings:
        assert docx.text[h.start : h.start + len(h.text)] == h.text
    assert "一百五十名工程师" in docx.text and docx.kind == "docx"

    page = extract_document("gull.html", make_docs.html_bytes(), SETTINGS)
    assert page.title == "海鸥航运的故事"
    assert [h.text for h in page.headings] == ["海鸥航运的故事", "创立", "新能源船队"]
    assert "最初只有两艘二手货船，主要往返于宁波和釜山之间。" in page.text  # markup line break inside a sentence
    for junk in ("首页", "登录注册", "热门文章", "笔记本电脑", "版权所有", "ICP", "tracking", "不要索引"):
        assert junk not in page.text, junk

    book = extract_document("book.epub", make_docs.epub_bytes(), SETTINGS)
    assert book.title == "石榴出版社简史" and [h.text for h in book.headings] == ["第一章 石榴出版社", "第二章 代表作品"]
    assert "《长安月》" in book.text


# ------------------------------------------------------------------ scanned pages

@pytest.fixture(scope="module")
def scan():
    if not make_docs.NOTO_CJK.exists():
        pytest.skip("needs Debian's fonts-noto-cjk to draw the scanned page (.ci/run installs it)")
    return make_docs.scanned_pdf()


def test_scanned_page_is_ocred(scan):
    from qa.ingest import ocr

    if ocr.engine() is None:  # rapidocr-onnxruntime has no wheel for Python >= 3.13
        with pytest.raises(DocumentError, match="page 1 has no text layer .*no OCR engine is installed"):
            extract_document("scan.pdf", scan, SETTINGS)
        return
    doc = extract_document("scan.pdf", scan, SETTINGS)
    assert doc.text == "".join(make_docs.SCAN_LINES)  # lines joined into one sentence run, no spaces
    assert doc.pages == [0]


def test_scanned_page_is_refused_when_ocr_is_off(scan):
    with pytest.raises(DocumentError, match=r"scan.pdf: page 1 has no text layer .*OCR is turned off"):
        extract_document("scan.pdf", scan, SETTINGS.with_overrides(ocr=False))


def test_ocr_downloads_nothing(scan, tmp_path):
    """The OCR models ship in the wheel: OCR works in a network namespace without any network."""
    import subprocess

    from qa.ingest import ocr

    if ocr.engine() is None:
        pytest.skip("no OCR engine on this Python (rapidocr-onnxruntime needs Python < 3.13)")
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode:
        pytest.skip("unshare -n (a process without network) is not available here")
    (tmp_path / "scan.pdf").write_bytes(scan)
    code = ("import sys; from qa.ingest import extract_document; from qa.settings import load_settings; "
            f"print(extract_document('scan.pdf', open(sys.argv[1], 'rb').read(), load_settings()).text)")
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", code, str(tmp_path / "scan.pdf")], capture_output=True,
                         text=True, cwd=REPO, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "蓝鲸数据" in out.stdout


# ------------------------------------------------------------------ bad files

def _corrupt_pdf() -> bytes:
    data = make_docs.hans_pdf()
    return data[: len(data) // 3]


BAD_FILES = [
    ("secret.pdf", lambda: make_docs.pdf_bytes([["机密。"]], encrypt="pw"), "encrypted (password-protected)"),
    ("broken.pdf", _corrupt_pdf, "not a readable PDF"),
    ("huge.pdf", lambda: make_docs.many_pages_pdf(2000), "too many pages (2,000; the limit is 1,000)"),
    ("bomb.docx", make_docs.zip_bomb_docx, "zip bomb"),
    ("notazip.docx", lambda: "这其实是一个文本文件。".encode("utf-8"), "the extension says .docx but the content is plain text"),
    ("truncated.docx", lambda: make_docs.docx_bytes()[:500], "not a valid zip archive"),
    ("menu-only.html", lambda: b"<html><body><nav><a href='/'>home</a></nav><script>x=1</script></body></html>",
     "no main text"),
    ("empty.html", lambda: b"", "empty"),
    ("report.docx", make_docs.hans_pdf, "the extension says .docx but the content is a PDF"),
    ("notes.pdf", make_docs.docx_bytes, "the extension says .pdf but the content is a Word document"),
    ("photo.txt", lambda: b"\x89PNG\r\n\x1a\n" + bytes(200), "the extension says .txt but the content is an image"),
    ("book.epub", lambda: make_docs.html_bytes(), "the extension says .epub but the content is an HTML page"),
    ("legacy.doc", lambda: b"\xd0\xcf\x11\xe0" + bytes(100), "unsupported file type"),
]


@pytest.mark.parametrize("name,make,words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_get_a_specific_message(name, make, words):
    with pytest.raises(DocumentError) as info:
        extract_document(name, make(), SETTINGS)
    message = str(info.value)
    assert message.startswith(name + ":") and words in message, message
    assert len(message) < 300


def test_limits_come_from_settings():
    small = SETTINGS.with_overrides(max_pages=3, max_document_bytes=1_000, max_decompressed_bytes=100_000)
    with pytest.raises(DocumentError, match="too many pages .4; the limit is 3"):
        extract_document("r.pdf", make_docs.hans_pdf(), small.with_overrides(max_document_bytes=10**7))
    with pytest.raises(DocumentError, match="too large"):
        extract_document("r.pdf", make_docs.hans_pdf(), small)
    with pytest.raises(DocumentError, match="zip bomb.*unpack"):
        extract_document("bomb.docx", make_docs.zip_bomb_docx(2_000_000), small.with_overrides(max_document_bytes=10**7))
