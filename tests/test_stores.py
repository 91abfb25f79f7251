"""Both stores (FAISS files, Milvus Lite) answer alike: retrieval, cited answers, add/remove, counts, manifest.

The Milvus index is migrated from the session's FAISS index (its vectors are reused), so the whole
file costs seconds of embedding, not minutes. Milvus-only tests (crash safety, concurrency) follow.
"""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import REPO, clone_service, kill_9_when, milvus_missing, milvus_service
from qa.documents import DocumentLibrary
from qa.pipeline import QAService
from qa.retriever import HybridRetriever
from qa.text import fold_script

QUESTIONS = [json.loads(line)["question"] for line in (REPO / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()]
NEW_DOC = "星河智算成立于2031年，总部位于苏州，创始人是林晓舟。"
needs_milvus = pytest.mark.skipif(milvus_missing() is not None, reason=milvus_missing() or "")


def top5(service, question, mode, vector):
    retriever = HybridRetriever(service.index, service.embedder, service.aliases, service.settings)
    hits = retriever.retrieve(service.retrieval_query(question), 5, mode=mode, query_vector=vector)
    return [(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in hits]


def mutable(engine_service, built_service, tmp_path):
    if engine_service.index.store_name == "milvus":
        return milvus_service(built_service, tmp_path, milvus_refresh_s=0.0)
    return clone_service(built_service, tmp_path)


# ------------------------------------------------------------------ the same suite on both stores

def test_counts_and_manifest(engine_service, built_service):
    index = engine_service.index
    assert index.count() == len(index.chunks) == len(built_service.index.chunks)
    assert set(index.documents) == set(built_service.index.documents)
    for doc_id, meta in index.documents.items():
        assert meta["hash"] == built_service.index.documents[doc_id]["hash"]
    assert index.manifest["model"] == built_service.index.manifest["model"]
    assert index.manifest["chunking"] == built_service.index.manifest["chunking"]
    assert index.read_manifest()["documents"].keys() == index.documents.keys()
    if index.store_name == "milvus":
        assert index.store.count() == len(index.chunks)
        assert index.store.read_manifest()["documents"] == index.documents


def test_retrieval_top5(engine_service):
    for question in ("why did 01.AI give up pretraining?", "零一萬物為什麼放棄預訓練？"):
        hits = engine_service.ask(question, rerank=False).hits
        assert any("通義" in h.chunk.text or "通义" in h.chunk.text for h in hits), question


def test_answers_cite_exact_spans(engine_service):
    answer = engine_service.ask("李开复说一次预训练的成本是多少？")
    assert not answer.abstained and answer.citations
    assert answer.citations[0].doc == "six-tigers-survival-suspense.txt"
    for c in answer.citations:
        assert engine_service.index.texts[c.doc].text[c.start : c.end] == c.text
    for h in answer.hits:
        assert engine_service.index.texts[h.chunk.doc_id].text[h.chunk.start : h.chunk.end] == h.chunk.text


def test_incremental_add_and_remove(engine_service, built_service, tmp_path):
    service = mutable(engine_service, built_service, tmp_path)
    before = service.status()
    report = service.add_document("星河智算.txt", NEW_DOC.encode("utf-8"))
    assert report.embedded_documents == 1 and report.embedded_chunks == 1 and report.reused_documents == before["documents"]
    assert service.status()["chunks"] == before["chunks"] + 1 and service.index.count() == before["chunks"] + 1
    assert "星河智算.txt" in service.index.documents
    answer = service.ask("星河智算的总部在哪里？")
    assert any(c.doc == "星河智算.txt" and "苏州" in c.text for c in answer.citations), answer.text
    reopened = QAService.open(service.settings)
    assert reopened.messages == [] and reopened.status()["chunks"] == before["chunks"] + 1
    DocumentLibrary(service).remove("星河智算.txt")
    assert service.status()["chunks"] == before["chunks"] and service.index.count() == before["chunks"]
    assert "星河智算.txt" not in service.index.documents
    assert all(h.chunk.doc_id != "星河智算.txt" for h in service.ask("星河智算的总部在哪里？").hits)


@needs_milvus
def test_both_stores_rank_the_same_top5(built_service, engine_service):
    """Tie-aware agreement on eval/questions.jsonl (eval/store_agreement.py measures more, with XQuAD)."""
    if engine_service.index.store_name != "milvus":
        pytest.skip("compares the Milvus store with the FAISS one")
    vectors = built_service.embedder.encode_queries([fold_script(built_service.retrieval_query(q)) for q in QUESTIONS])
    same = {mode: sum(top5(built_service, q, mode, v) == top5(engine_service, q, mode, v) for q, v in zip(QUESTIONS, vectors))
            / len(QUESTIONS) for mode in ("dense", "sparse", "hybrid")}
    assert same["dense"] >= 0.98 and same["hybrid"] >= 0.95 and same["sparse"] >= 0.9, same


@needs_milvus
def test_sparse_ranks_agree_after_an_upload(built_service, tmp_path):
    """An upload is a new Milvus Lite segment: the default "weights" mode keeps BM25 exact anyway."""
    faiss, milvus = clone_service(built_service, tmp_path / "f"), milvus_service(built_service, tmp_path / "m")
    text = "星河智算成立于2031年，总部位于苏州。" * 3 + "零一万物和百川智能都曾讨论预训练的成本。"
    for service in (faiss, milvus):
        service.add_document("星河智算.txt", text.encode("utf-8"))
    # Top-5 sets: within them, near-ties (0.1 %) may swap while the average length has moved < 1 %.
    same = sum(set(top5(faiss, q, "sparse", None)) == set(top5(milvus, q, "sparse", None)) for q in QUESTIONS)
    assert same == len(QUESTIONS)


# ------------------------------------------------------------------ Milvus: reopening, crash safety, concurrency

@needs_milvus
def test_reopened_milvus_index_is_loaded_and_answers(engine_service):
    if engine_service.index.store_name != "milvus":
        pytest.skip("Milvus only")
    reopened = QAService.open(engine_service.settings)  # same process: Milvus Lite shares the open file
    assert reopened.messages == [] and reopened.status()["chunks"] == engine_service.status()["chunks"]
    assert not reopened.ask("李开复说一次预训练的成本是多少？").abstained


@needs_milvus
def test_reconcile_removes_passages_of_unrecorded_documents(built_service, tmp_path):
    from qa.types import Chunk

    service = milvus_service(built_service, tmp_path)
    store = service.index.store
    before = store.count()
    orphan = [Chunk(0, "half-done.txt", 0, len(NEW_DOC), NEW_DOC)]
    store.add(orphan, service.embedder.encode_documents([NEW_DOC]), "deadbeef")  # flushed, never recorded
    assert store.count() == before + 1
    assert "half-done.txt" not in QAService.open(service.settings).index.documents  # never shown
    assert store.reconcile() == 1 and store.count() == before
    service.index.store.add(orphan, service.embedder.encode_documents([NEW_DOC]), "deadbeef")
    service.reindex()  # every ingestion reconciles first
    assert store.count() == before


def _qa(settings, *args, **env):
    return [sys.executable, "-m", "qa.cli", "--corpus", str(settings.corpus_dir), "--index-dir", str(settings.index_dir),
            *args], {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), **env}


def _embedded(log_path) -> int:
    """Passages embedded so far, read off the progress bar ("embedding passages:  40%| | 22/54 [...")."""
    counts = re.findall(r"embedding passages:[^\r\n]*?\|\s*(\d+)/\d+", log_path.read_text(errors="replace"))
    return int(counts[-1]) if counts else 0


@needs_milvus
@pytest.mark.slow
def test_kill_9_during_milvus_ingestion_leaves_a_consistent_index(tmp_path, built_service):
    """kill -9 of `qa index --store milvus` mid-embedding; the index opens consistent, a re-run completes it."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in built_service.index.documents:
        (corpus / name).write_text(built_service.index.texts[name].text, encoding="utf-8")
    settings = built_service.settings.with_overrides(corpus_dir=corpus, index_dir=tmp_path / "index", store="milvus",
                                                     reader="heuristic")
    log_path = tmp_path / "index.log"
    cmd, env = _qa(settings, "index", "--store", "milvus", QA_MILVUS_FLUSH_ROWS="8", QA_EMBEDDING_BATCH_SIZE="2",
                   QA_READER="heuristic")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    # kill once a few commits of 8 passages are in (the bar counts embedded passages)
    kill_9_when(proc, log_path, lambda: _embedded(log_path) >= 12)
    from qa.stores.milvus_index import load_milvus_index, sync_milvus
    from qa.stores.milvus_store import MilvusStore

    store = MilvusStore.from_settings(settings)
    index = load_milvus_index(settings, store)  # usable: opens, and shows only recorded documents
    stored = store.chunks()
    recorded = [c for _, c in stored if c.doc_id in index.documents]
    assert len(index.chunks) == len(recorded) < len(built_service.index.chunks), "the kill came too late to test anything"
    for doc_id in index.documents:  # a recorded document has all its passages
        assert sum(c.doc_id == doc_id for c in index.chunks) == sum(c.doc_id == doc_id for c in built_service.index.chunks)
    documents, _ = QAService(settings, embedder=built_service.embedder).load_documents()
    index, stats = sync_milvus(documents, settings, built_service.embedder, store=store)  # the re-run
    assert stats["reused_documents"] == len({c.doc_id for c in recorded})
    keys = [k for k, _ in store.chunks()]
    assert len(keys) == len(set(keys)) == store.count() == len(built_service.index.chunks)  # no duplicates, none missing
    assert sorted((c.doc_id, c.start, c.end) for c in index.chunks) == sorted((c.doc_id, c.start, c.end) for c in built_service.index.chunks)
    service = QAService(settings, index=index, embedder=built_service.embedder)
    assert not service.ask("李开复说一次预训练的成本是多少？").abstained


@needs_milvus
def test_two_services_on_one_milvus_see_each_others_uploads(built_service, tmp_path):
    """In one process two QAService instances share a Milvus Lite file (a server: any processes, see below).
    The other service re-reads the manifest at most every milvus_refresh_s (0.5 s here) before a question."""
    writer = milvus_service(built_service, tmp_path, milvus_refresh_s=0.5, reader="heuristic")
    reader = QAService.open(writer.settings)
    assert reader.messages == [] and not reader.ask("零一万物为什么放弃预训练？").abstained
    writer.add_document("星河智算.txt", NEW_DOC.encode("utf-8"))
    added = time.monotonic()
    while "星河智算.txt" not in reader.current_index().documents:
        assert time.monotonic() - added < 5.0, "the other service never noticed the upload"
        time.sleep(0.02)
    seen = time.monotonic() - added
    print(f"upload visible to the other service after {seen:.2f}s")
    assert seen <= 0.5 + 1.0  # the refresh interval plus one re-read
    answer = reader.ask("星河智算的总部在哪里？")
    assert any(c.doc == "星河智算.txt" and "苏州" in c.text for c in answer.citations), answer.text


@needs_milvus
def test_a_second_process_cannot_open_a_milvus_lite_file(engine_service):
    """Milvus Lite is single-process: it holds an exclusive flock on the .db folder while open, and a second
    process gets pymilvus' "Open local milvus failed" (cause: milvus_lite DataDirLockedError, errno 11)."""
    if engine_service.index.store_name != "milvus":
        pytest.skip("Milvus only")
    cmd, env = _qa(engine_service.settings, "--store", "milvus", "ask", "零一万物为什么放弃预训练？", QA_READER="heuristic")
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "single-process" in out.stderr and "QA_MILVUS_URI" in out.stderr


SERVER = os.environ.get("QA_MILVUS_TEST_URI", "")


@needs_milvus
@pytest.mark.skipif(not SERVER, reason="needs a Milvus server: set QA_MILVUS_TEST_URI=http://host:19530 "
                    "(Milvus Lite is single-process, so two processes need a server)")
def test_two_processes_on_a_milvus_server(built_service, tmp_path):
    prefix = f"qa_test_{os.getpid()}"
    service = milvus_service(built_service, tmp_path, milvus_uri=SERVER, milvus_collection=prefix)
    try:
        settings = service.settings
        cmd, env = _qa(settings, "chat", "--json", QA_STORE="milvus", QA_MILVUS_URI=SERVER,
                       QA_MILVUS_COLLECTION=prefix, QA_READER="heuristic")
        other = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        (settings.corpus_dir / "星河智算.txt").write_text(NEW_DOC, encoding="utf-8")
        service.reindex()
        time.sleep(settings.milvus_refresh_s + 0.5)
        out, _ = other.communicate("星河智算的总部在哪里？\n", timeout=300)
        assert "星河智算.txt" in out
    finally:
        service.index.store.drop()
