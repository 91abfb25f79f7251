"""The English query encoder (qa/crosslingual.py, trained by `qa train-retriever`): English questions move toward
their Chinese wording; Chinese questions keep e5's own vectors exactly."""

import numpy as np
import pytest

from qa.crosslingual import DEFAULT_QUERY_ENCODER, read_meta

# English questions and their Chinese wording, about the built-in corpus (not training data)
PAIRS = [
    ("Who founded StepFun?", "阶跃星辰的创始人是谁？"),
    ("why did 01.AI give up pretraining?", "零一万物为什么放弃预训练？"),
    ("How much did Zhipu raise?", "智谱融资了多少钱？"),
    ("Who is the founder of MiniMax?", "MiniMax的创始人是谁？"),
    ("Which company did Baichuan's co-founder leave?", "百川的联合创始人离开了哪家公司？"),
]

pytestmark = pytest.mark.skipif(not DEFAULT_QUERY_ENCODER.exists(), reason="no shipped English query encoder")


def test_the_shipped_encoder_says_how_it_was_trained_and_validated():
    meta = read_meta(DEFAULT_QUERY_ENCODER)
    assert meta["device"] in ("cpu", "cuda") and meta["step"] > 0
    before, after = meta["baseline"]["en"], meta["validation"]["en"]
    assert after["mrr@10"] > before["mrr@10"]  # the kept step beat e5 itself on the translated CMRC dev questions


def test_chinese_questions_keep_e5s_own_vectors_bit_for_bit(embedder):
    assert embedder.english_query_runner is not None
    chinese = [zh for _, zh in PAIRS] + ["零一萬物為什麼放棄預訓練？"]
    np.testing.assert_array_equal(embedder.encode_queries(chinese), embedder.encode_queries(chinese, crosslingual=False))


def test_english_questions_land_closer_to_their_chinese_wording(embedder):
    english, chinese = [en for en, _ in PAIRS], [zh for _, zh in PAIRS]
    target = embedder.encode_queries(chinese, crosslingual=False)
    before = np.sum(embedder.encode_queries(english, crosslingual=False) * target, axis=1)
    after = np.sum(embedder.encode_queries(english) * target, axis=1)
    print("\ncosine to the Chinese wording, e5 -> trained:", np.round(before, 3), np.round(after, 3))
    assert after.mean() > before.mean() + 0.02
    assert (after > before).sum() >= len(PAIRS) - 1


def test_a_mixed_batch_gives_each_question_the_vector_it_gets_alone(embedder):
    batch = ["阶跃星辰的创始人是谁？", "Who founded StepFun?", "智谱融资了多少钱？"]
    together = embedder.encode_queries(batch)
    alone = np.vstack([embedder.encode_queries([q]) for q in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("question, must_contain", [
    ("Who founded StepFun?", "姜大昕"),  # "founded" also asks for the founder (创始人): qa/dictionary.agent_nouns
    ("Who is the founder of StepFun?", "姜大昕"),
    ("why did 01.AI give up pretraining?", "零一"),
])
def test_english_questions_retrieve_the_passage_that_answers_them_first(built_service, question, must_contain):
    from qa.retriever import HybridRetriever
    from qa.text import normalize

    index = built_service.current_index()
    hits = HybridRetriever(index, built_service.embedder, built_service.aliases, built_service.settings).retrieve(question)
    assert normalize(must_contain) in normalize(hits[0].chunk.text), hits[0].chunk.text[:80]
