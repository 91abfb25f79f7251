"""Documents of every format in a real index: answers cite the right page or heading, the
extracted text is kept with the index, adding stays incremental, duplicates are caught across
scripts, bad files change nothing; the CLI's add/list/remove/chat and the app's upload/delete.
"""

import io
import json
import sys
from pathlib import Path

import pytest

from conftest import clone_service
from qa import cli
from qa.documents import DocumentLibrary
from qa.loader import DocumentError
from qa.store import CURRENT_FILE, load_index

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "eval"))
import make_docs  # noqa: E402


def can_ocr() -> bool:
    from qa.ingest import ocr

    return make_docs.NOTO_CJK.exists() and ocr.engine() is not None

# question, document, page, section
QUESTIONS = [
    ("星河智算的B轮融资由谁领投？", "reports/xinghe-2033.pdf", 3, ""),
    ("月光生物計劃在哪裡興建第二座工廠？", "reports/moonlight.pdf", 3, ""),
    ("青松机器人的研发团队由多少名工程师组成？", "reports/qingsong.docx", None, "研发团队"),
    ("海鸥航运订购了多少艘以甲醇为燃料的货船？", "reports/gull-shipping.html", None, "新能源船队"),
    ("石榴出版社最畅销的图书是什么？", "reports/pomegranate.epub", None, "第二章 代表作品"),
]


def write_folder(root: Path, scan: bool = True) -> Path:
    folder = root / "reports"
    folder.mkdir(parents=True)
    (folder / "xinghe-2033.pdf").write_bytes(make_docs.hans_pdf())
    (folder / "moonlight.pdf").write_bytes(make_docs.hant_pdf())
    (folder / "qingsong.docx").write_bytes(make_docs.docx_bytes())
    (folder / "gull-shipping.html").write_bytes(make_docs.html_bytes())
    (folder / "pomegranate.epub").write_bytes(make_docs.epub_bytes())
    if scan and can_ocr():
        (folder / "scan.pdf").write_bytes(make_docs.scanned_pdf())
    (folder / "slides.pptx").write_bytes(b"PK\x03\x04")
    return folder


@pytest.fixture(scope="module")
def library(built_service, tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    service = clone_service(built_service, root / "svc")
    before = len(service.index.chunks)
    report = DocumentLibrary(service).add_paths([write_folder(root / "in")])
    return service, report, before


def test_a_folder_is_added_recursively_with_a_summary(library):
    service, report, before = library
    added = {o.name for o in report.outcomes if o.status == "added"}
    expected = {q[1] for q in QUESTIONS} | ({"reports/scan.pdf"} if can_ocr() else set())
    assert added == expected
    assert [o.line for o in report.outcomes if o.status != "added"] == ["skipped reports/slides.pptx: unsupported file type .pptx"]
    assert report.embedded_chunks == len(service.index.chunks) - before  # only the new documents were embedded
    assert "added, 1 skipped, 0 refused" in report.summary


@pytest.mark.parametrize("question,doc,page,section", QUESTIONS, ids=[q[1] for q in QUESTIONS])
def test_answers_cite_the_right_page_or_heading(library, question, doc, page, section):
    service, _, _ = library
    answer = service.ask(question)
    assert not answer.abstained, answer.notice
    first = answer.citations[0]
    assert first.doc == doc and first.page == page and first.section == section, (first, answer.text)
    extracted = service.index.texts[doc].text
    for c in answer.citations:  # the cited text is exactly the extracted text at the offsets
        assert service.index.texts[c.doc].text[c.start : c.end] == c.text
    data = answer.to_json_dict()["citations"][0]
    assert data["page"] == page and data["section"] == section
    assert extracted[data["start"] : data["end"]] == data["text"]


def test_scanned_page_is_answered_after_ocr(library):
    if not can_ocr():
        pytest.skip("needs fonts-noto-cjk to draw the scanned page and an OCR engine (Python < 3.13)")
    service, _, _ = library
    answer = service.ask("蓝鲸数据的总部在哪里？")
    assert not answer.abstained and answer.citations[0].doc == "reports/scan.pdf" and answer.citations[0].page == 1
    assert "成都" in answer.text


def test_extracted_text_is_kept_with_the_index(library):
    service, _, _ = library
    reloaded = load_index(service.settings.index_dir, service.settings)
    assert reloaded.texts.keys() == service.index.texts.keys()
    pdf = reloaded.texts["reports/xinghe-2033.pdf"]
    assert pdf.pages == service.index.texts["reports/xinghe-2033.pdf"].pages and len(pdf.pages) == 4
    for chunk in reloaded.chunks:  # every passage is checkable against the kept text
        assert reloaded.texts[chunk.doc_id].text[chunk.start : chunk.end] == chunk.text
    by_page = {c.page for c in reloaded.chunks if c.doc_id == "reports/xinghe-2033.pdf"}
    assert by_page <= {1, 2, 3, 4} and 1 in by_page


def test_reindexing_extracts_and_embeds_nothing_unchanged(library, monkeypatch, tmp_path):
    service, _, _ = library
    import qa.documents
    import qa.ingest.corpus as corpus

    extracted = []
    real = corpus.extract_document
    for module in (corpus, qa.documents):
        monkeypatch.setattr(module, "extract_document", lambda name, *a, **k: extracted.append(name) or real(name, *a, **k))
    report = service.reindex()
    assert report.embedded_chunks == 0 and extracted == []
    assert not service.index_is_stale()
    (tmp_path / "extra.docx").write_bytes(make_docs.docx_bytes([(1, "附录"), (None, "青松机器人在二零三四年开设了成都分公司。")]))
    added = DocumentLibrary(service).add_paths([tmp_path / "extra.docx"])
    assert [o.status for o in added.outcomes] == ["added"] and extracted == ["extra.docx"]  # extracted once
    assert 0 < added.embedded_chunks <= 2  # only the new file's passages
    DocumentLibrary(service).remove("extra.docx")
    assert "extra.docx" not in service.index.documents


def test_list_and_remove(library, tmp_path):
    service, _, _ = library
    rows = {r.doc_id: r for r in DocumentLibrary(service).list()}
    pdf = rows["reports/xinghe-2033.pdf"]
    assert pdf.kind == "pdf" and pdf.pages == 4 and pdf.passages >= 1 and pdf.added_at
    assert rows["reports/qingsong.docx"].kind == "docx" and rows["reports/qingsong.docx"].pages == 0
    with pytest.raises(DocumentError, match="no such document"):
        DocumentLibrary(service).remove("../corpus-escape.txt")


# ------------------------------------------------------------------ duplicates

def test_same_article_in_both_scripts_is_detected_and_retrieved_once(built_service, tmp_path):
    service = clone_service(built_service, tmp_path / "svc")
    library = DocumentLibrary(service)
    hans = make_docs.ARTICLE_HANS
    hant = make_docs.to_traditional(hans)
    assert hans != hant
    first = library.add_files([("whale-song.txt", hans.encode())])
    assert first.outcomes[0].status == "added" and not first.outcomes[0].duplicate_of
    second = library.add_files([("鯨歌科技.txt", hant.encode())])
    outcome = second.outcomes[0]
    assert outcome.status == "added" and outcome.duplicate_of == "whale-song.txt", outcome
    assert outcome.similarity >= service.settings.duplicate_threshold and "duplicates whale-song.txt" in outcome.reason
    # re-saved with small edits: still a duplicate; the very same text again: skipped
    edited = hans.replace("二十多个", "三十多个").replace("十万段", "十二万段") + "本文有少量修改。"
    third = library.add_files([("whale-song-v2.md", edited.encode()), ("copy.txt", hans.encode())])
    assert third.outcomes[0].duplicate_of in ("whale-song.txt", "鯨歌科技.txt")
    assert third.outcomes[1].status == "skipped" and "the same text as whale-song.txt" in third.outcomes[1].reason
    # retrieval never returns two copies of one passage (it would without the filter)
    from qa.dedup import overlap, shingles
    from qa.retriever import HybridRetriever

    def copies(hits):
        return [(a.chunk.doc_id, b.chunk.doc_id) for i, a in enumerate(hits) for b in hits[i + 1 :]
                if overlap(shingles(a.chunk.text), shingles(b.chunk.text)) >= 0.6]

    unfiltered = HybridRetriever(service.index, service.embedder, service.aliases,
                                 service.settings.with_overrides(passage_duplicate_threshold=1.01))
    for question in ("鲸歌科技的监听系统部署在哪里？", "鯨歌科技每年捐出多少利潤？"):
        assert copies(unfiltered.retrieve(question, 5))  # the index does hold copies
        answer = service.ask(question, top_k=5)
        assert len(answer.hits) == 5 and copies(answer.hits) == [], [(h.chunk.doc_id, h.chunk.text[:20]) for h in answer.hits]
        # answered from the article (its first citation may be the sentence that says where, without the name)
        assert not answer.abstained and "鲸歌" in answer.text.replace("鯨歌", "鲸歌")
        assert answer.citations[0].doc in ("whale-song.txt", "鯨歌科技.txt", "whale-song-v2.md")
    # unrelated documents are not duplicates of each other
    from qa.dedup import similarity

    texts = [d.text for d in service.index.texts.values() if d.doc_id.endswith("-transcript.txt") or "tigers" in d.doc_id]
    assert len(texts) == 2 and similarity(*texts) < service.settings.duplicate_threshold


def test_duplicate_upload_message_names_the_original(built_service, tmp_path):
    service = clone_service(built_service, tmp_path / "svc")
    original = (service.settings.corpus_dir / "six-tigers-survival-suspense.txt").read_text(encoding="utf-8")
    report = service.add_document("tigers-simplified.txt", make_docs.to_simplified(original).encode())
    assert "duplicates six-tigers-survival-suspense.txt" in report.message
    with pytest.raises(DocumentError, match="the same text as six-tigers-survival-suspense.txt"):
        service.add_document("tigers-again.txt", original.encode())


# ------------------------------------------------------------------ bad files leave everything as it was

def test_bad_files_change_nothing_and_good_ones_in_the_same_batch_are_added(built_service, tmp_path):
    service = clone_service(built_service, tmp_path / "svc")
    corpus, index_dir = service.settings.corpus_dir, service.settings.index_dir
    files_before, status_before = sorted(p.name for p in corpus.iterdir()), service.status()
    current = (index_dir / CURRENT_FILE).read_text()
    bad = [("secret.pdf", make_docs.pdf_bytes([["机密。"]], encrypt="pw")), ("bomb.docx", make_docs.zip_bomb_docx()),
           ("lies.pdf", make_docs.docx_bytes()), ("huge.pdf", make_docs.many_pages_pdf(2000)),
           ("menu.html", b"<html><body><nav>home</nav></body></html>")]
    report = DocumentLibrary(service).add_files(bad)
    assert [o.status for o in report.outcomes] == ["refused"] * len(bad)
    assert sorted(p.name for p in corpus.iterdir()) == files_before and service.status() == status_before
    assert (index_dir / CURRENT_FILE).read_text() == current
    mixed = DocumentLibrary(service).add_files(bad[:2] + [("qingsong.docx", make_docs.docx_bytes())])
    assert [o.status for o in mixed.outcomes] == ["refused", "refused", "added"]
    assert service.status()["documents"] == status_before["documents"] + 1
    assert not service.ask("李开复说一次预训练的成本是多少？").abstained  # what was there still answers


def test_failed_indexing_restores_the_corpus(built_service, tmp_path, monkeypatch):
    service = clone_service(built_service, tmp_path / "svc")
    files_before = sorted(p.name for p in service.settings.corpus_dir.iterdir())

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(service, "reindex", crash)
    with pytest.raises(RuntimeError):
        DocumentLibrary(service).add_files([("qingsong.docx", make_docs.docx_bytes())])
    assert sorted(p.name for p in service.settings.corpus_dir.iterdir()) == files_before


# ------------------------------------------------------------------ command line

def _cli(service, *args) -> list[str]:
    s = service.settings
    return ["--corpus", str(s.corpus_dir), "--index-dir", str(s.index_dir), *args]


def test_cli_add_list_ask_remove(built_service, tmp_path, capsys):
    service = clone_service(built_service, tmp_path / "svc")
    folder = write_folder(tmp_path / "in", scan=False)
    (folder / "secret.pdf").write_bytes(make_docs.pdf_bytes([["机密。"]], encrypt="pw"))
    assert cli.main(_cli(service, "add", str(folder), str(tmp_path / "missing.pdf"))) == 0
    out, err = capsys.readouterr()
    assert "added reports/xinghe-2033.pdf" in out and "skipped reports/slides.pptx: unsupported file type" in out
    assert "refused reports/secret.pdf: the PDF is encrypted" in err and "missing.pdf: no such file or folder" in err
    assert "5 added, 1 skipped, 2 refused" in out

    assert cli.main(_cli(service, "list", "--json")) == 0
    rows = {r["doc_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["reports/xinghe-2033.pdf"]["pages"] == 4 and rows["reports/xinghe-2033.pdf"]["passages"] >= 1

    assert cli.main(_cli(service, "ask", "--json", "星河智算的B轮融资由谁领投？")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["citations"][0]["page"] == 3 and data["citations"][0]["doc"] == "reports/xinghe-2033.pdf"
    assert all("page" in h and "section" in h for h in data["hits"])
    assert cli.main(_cli(service, "ask", "青松机器人的研发团队由多少名工程师组成？")) == 0
    assert "§ 研发团队" in capsys.readouterr().out

    assert cli.main(_cli(service, "remove", "reports/qingsong.docx")) == 0
    assert "removed reports/qingsong.docx" in capsys.readouterr().out
    assert not (service.settings.corpus_dir / "reports/qingsong.docx").exists()
    assert cli.main(_cli(service, "remove", "nope.pdf")) == 2
    assert "no such document" in capsys.readouterr().err


def test_chat_keeps_the_model_and_the_conversation(built_service):
    from qa.chat import run_chat

    out = io.StringIO()
    run_chat(built_service, io.StringIO("why did 01.AI give up pretraining?\nand Baichuan?\n/new\n/json\n阶跃星辰的创始人是谁？\n/quit\n"), out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("qa chat: 2 documents")
    assert sum(line.startswith("  [1]") for line in lines) == 2  # two answers with citations
    assert "(new conversation)" in lines
    assert json.loads(lines[-1])["citations"]


# ------------------------------------------------------------------ the app

def test_app_uploads_every_format_lists_and_deletes(built_service, tmp_path):
    import re

    from qa.app import Handlers, sources_html

    service = clone_service(built_service, tmp_path / "svc")
    h = Handlers(service)
    folder = write_folder(tmp_path / "in", scan=False)
    bad = tmp_path / "in" / "bomb.docx"
    bad.write_bytes(make_docs.zip_bomb_docx())
    paths = [str(p) for p in sorted(folder.iterdir())] + [str(bad)]
    report, status, cleared = h.upload(paths)
    for name in ("xinghe-2033.pdf", "moonlight.pdf", "qingsong.docx", "gull-shipping.html", "pomegranate.epub"):
        assert f"Added {name}" in report, report
    assert "Not added: bomb.docx: refused as a possible zip bomb" in report
    assert "Not added: slides.pptx: unsupported file type" in report
    table, dropdown = h.documents_view()
    assert "xinghe-2033.pdf</td><td>pdf</td><td>4</td>" in table and "xinghe-2033.pdf" in dropdown["choices"]

    answer = service.ask("星河智算的B轮融资由谁领投？")
    panel = sources_html(answer, h.corpus, h.scripts())
    assert re.search(r'<span class="src-where" data-page="3">p\. 3</span>', panel)
    assert "wider context" in panel  # the context comes from the extracted PDF text
    docx_panel = sources_html(service.ask("青松机器人的研发团队由多少名工程师组成？"), h.corpus, h.scripts())
    assert "§ 研发团队" in docx_panel

    message, status, table, dropdown = h.delete("xinghe-2033.pdf")
    assert "Deleted xinghe-2033.pdf" in message and "xinghe-2033.pdf" not in table
    assert "xinghe-2033.pdf" not in service.index.documents
    message, *_ = h.delete("xinghe-2033.pdf")
    assert "no such document" in message


def test_server_address_honours_gradio_variables():
    from qa.app import server_address
    from qa.settings import load_settings

    s = load_settings()
    assert server_address(s, environ={}) == ("127.0.0.1", 7860)
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8080"}
    assert server_address(s, environ=env) == ("0.0.0.0", 8080)
    assert server_address(s.with_overrides(host="127.0.0.2", port=9000), environ={**env, "QA_HOST": "x", "QA_PORT": "9000"}) == ("127.0.0.2", 9000)
    assert server_address(s, "127.0.0.3", 9100, environ=env) == ("127.0.0.3", 9100)


def test_app_py_serves_on_gradio_server_port(built_service, tmp_path):
    """`GRADIO_SERVER_PORT=N python app.py` serves on N (it used to stay on 7860)."""
    import os
    import socket
    import subprocess
    import time
    import urllib.request

    service = clone_service(built_service, tmp_path / "svc")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "GRADIO_"))}
    env.update(GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", QA_CORPUS_DIR=str(service.settings.corpus_dir),
               QA_INDEX_DIR=str(service.settings.index_dir), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline, body = time.time() + 240, ""
        while time.time() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode("utf-8", "replace")
                break
            except OSError:
                time.sleep(1)
        assert "文档问答" in body, proc.stdout.read() if proc.poll() is not None else "not serving"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
