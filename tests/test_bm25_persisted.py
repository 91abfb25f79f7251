"""The FAISS store saves its BM25 index with each build, so a start loads it instead of tokenizing every passage
again (47 s at 100k passages, eval/results/scale.md); a build from another tokenizer, or an older build, is rebuilt."""

import json

import numpy as np

import qa.sparse
from qa.settings import load_settings
from qa.sparse import SIGNATURE_FILE, SparseIndex
from qa.stores.faiss_store import CURRENT_FILE, SearchIndex, load_index, make_dense_index, save_index
from qa.types import Chunk

TEXTS = ["智谱AI完成新一轮30亿元人民币融资。", "零一萬物將不再追求訓練超級大模型。", "月之暗面的Kimi智能助手用户增长很快。",
         "百川智能发布了医疗大模型。", "Paris is the capital of France."]
QUESTIONS = ["智谱融资多少", "零一万物 超级大模型", "Kimi 用户", "医疗", "capital of France"]


def _save(tmp_path):
    settings = load_settings(index_dir=tmp_path)
    vectors = np.eye(len(TEXTS), 8, dtype=np.float32)
    chunks = [Chunk(chunk_id=i, doc_id=f"d{i}", start=0, end=len(t), text=t) for i, t in enumerate(TEXTS)]
    index = SearchIndex(manifest={"format": 1, "model": settings.embedding_model, "dim": 8, "chunking": {}, "documents": {}},
                        chunks=chunks, dense=make_dense_index(vectors, settings))
    save_index(index, tmp_path)
    return index, settings


def _build_dir(tmp_path):
    return tmp_path / "builds" / (tmp_path / CURRENT_FILE).read_text().strip()


def test_a_loaded_index_answers_bm25_from_the_saved_files_without_tokenizing_the_passages(tmp_path, monkeypatch):
    built, settings = _save(tmp_path)
    manifest = json.loads((_build_dir(tmp_path) / "manifest.json").read_text())
    assert "bm25/params.index.json" in manifest["files"] and f"bm25/{SIGNATURE_FILE}" in manifest["files"]  # checksummed
    calls = []
    original = qa.sparse.tokenize
    monkeypatch.setattr(qa.sparse, "tokenize", lambda text: calls.append(text) or original(text))
    loaded = load_index(tmp_path, settings)
    assert calls == []  # nothing re-tokenized at load
    for q in QUESTIONS:
        assert loaded.sparse_search(q, 3) == built.sparse_search(q, 3)
        assert loaded.sparse_search(q, 1)[0][0] == QUESTIONS.index(q)
    assert set(calls) == set(QUESTIONS)  # only the questions were tokenized


def test_a_saved_bm25_index_from_another_tokenizer_or_size_is_rebuilt(tmp_path, monkeypatch):
    _, settings = _save(tmp_path)
    folder = _build_dir(tmp_path) / "bm25"
    assert SparseIndex.load(folder, len(TEXTS)) is not None
    assert SparseIndex.load(folder, len(TEXTS) + 1) is None  # not these passages
    monkeypatch.setattr(qa.sparse, "tokenizer_signature", lambda: "tokenize v999")
    assert SparseIndex.load(folder, len(TEXTS)) is None
    loaded = load_index(tmp_path, settings)  # falls back to tokenizing the texts: same answers
    assert loaded.sparse_search("capital of France", 1)[0][0] == 4
