"""Metrics on tiny hand-made cases whose values were computed by hand."""

import json
import math

import pytest

from qa.evaluation.metrics import (
    MRR,
    AnswerAccuracy,
    CharF1,
    EvalRecord,
    ExactMatch,
    LatencyPercentile,
    NDCGAtK,
    RecallAtK,
    RefusalPrecision,
    RefusalRecall,
    cmrc_f1,
    contains_evidence,
    evaluate,
    evaluate_by_slice,
)
from qa.evaluation.questions import EvalQuestion, normalize_for_match


def q(qid, answerable=True, evidence=("EV",), keywords=("KW",), gold=(), lang="en"):
    return EvalQuestion(
        id=qid,
        lang=lang,
        question=f"question {qid}",
        answerable=answerable,
        evidence=list(evidence) if answerable else [],
        answer_keywords=list(keywords) if answerable else [],
        gold_answers=list(gold),
    )


def rec(question, retrieved=(), answer="", abstained=False, latency=1.0):
    return EvalRecord(question=question, retrieved=list(retrieved), answer=answer, abstained=abstained, latency_s=latency)


@pytest.fixture
def three():
    """Evidence at rank 1, rank 2, and nowhere in the top 3."""
    return [
        rec(q("a", evidence=["零一萬物"]), ["零一万物将不再追求训练超级大模型", "x", "y"]),
        rec(q("b", evidence=["通義團隊"]), ["无关段落", "大部分预训练算法团队加入通义团队", "z"]),
        rec(q("c", evidence=["三四百萬美元"]), ["无关", "也无关", "还是无关"]),
    ]


def test_recall_at_k(three):
    assert RecallAtK(1).score(three) == pytest.approx(1 / 3)
    assert RecallAtK(2).score(three) == pytest.approx(2 / 3)
    assert RecallAtK(3).score(three) == pytest.approx(2 / 3)
    assert RecallAtK(5).name == "recall@5"


def test_mrr(three):
    assert MRR().score(three) == pytest.approx((1 + 1 / 2 + 0) / 3)


def test_ndcg_counts_only_first_relevant(three):
    assert NDCGAtK(10).score(three) == pytest.approx((1 + 1 / math.log2(3) + 0) / 3)
    assert NDCGAtK(1).score(three) == pytest.approx(1 / 3)
    # a second relevant passage below the first neither raises nor lowers the score
    dup = [rec(q("d", evidence=["ABC"]), ["abc 1", "abc 2"])]
    assert NDCGAtK(10).score(dup) == pytest.approx(1.0)


def test_retrieval_metrics_skip_unanswerable(three):
    records = three + [rec(q("u", answerable=False), ["零一万物"])]
    assert RecallAtK(1).score(records) == pytest.approx(1 / 3)
    assert math.isnan(MRR().score([rec(q("u", answerable=False), ["x"])]))


def test_traditional_simplified_fullwidth_match():
    assert contains_evidence("据报道，零一万物将……", ["零一萬物"])
    assert contains_evidence("ＧＬＭ－３ Ｔｕｒｂｏ 模型", ["GLM-3 Turbo"])
    assert contains_evidence("成立于 2019 年 6 月", ["2019年6月"])
    assert not contains_evidence("百川智能", ["零一萬物"])
    assert normalize_for_match("零一萬物 ＡＩ") == "零一万物ai"


def test_answer_accuracy():
    records = [
        rec(q("a", keywords=["通義"]), answer="大部分团队加入通义团队"),  # correct (t2s)
        rec(q("b", keywords=["30億"]), answer="完成了３０亿元融资"),  # correct (full width)
        rec(q("c", keywords=["通义"]), answer="加入通义", abstained=True),  # abstained -> wrong
        rec(q("d", keywords=["字节"]), answer="加入了阿里"),  # wrong keyword
        rec(q("u", answerable=False), answer="", abstained=True),  # correct refusal
        rec(q("v", answerable=False), answer="胡说"),  # answered the unanswerable -> wrong
    ]
    assert AnswerAccuracy().score(records) == pytest.approx(3 / 6)


def test_answer_accuracy_falls_back_to_gold_answers():
    question = q("g", keywords=[], gold=["天安门广场"])
    assert AnswerAccuracy().score([rec(question, answer="在天安門廣場举行")]) == 1.0
    assert AnswerAccuracy().score([rec(question, answer="在北京")]) == 0.0


def test_cmrc_char_f1_known_pair():
    # LCS("天安门广场", "北京天安门") = "天安门" = 3 chars -> p = 3/5, r = 3/5, F1 = 0.6
    assert cmrc_f1("北京天安门", ["天安门广场"]) == pytest.approx(0.6)
    # max over gold answers; punctuation and whitespace ignored
    assert cmrc_f1("天安门 广场。", ["故宫", "天安门广场"]) == pytest.approx(1.0)
    # longest common SUBSTRING, not subsequence: "天门" is not contiguous in "天安门"
    assert cmrc_f1("天门", ["天安门"]) == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert cmrc_f1("abc", ["天安门"]) == 0.0


def test_char_f1_and_exact_match_records():
    records = [
        rec(q("a", gold=["天安门广场"]), answer="北京天安门"),  # F1 0.6, EM 0
        rec(q("b", gold=["天安门广场"]), answer="天安门广场，"),  # F1 1, EM 1 (punctuation removed)
        rec(q("c", gold=["天安门广场"]), answer="天安门广场", abstained=True),  # abstained -> 0
        rec(q("d"), answer="no gold answers: not counted"),
    ]
    assert CharF1().score(records) == pytest.approx((0.6 + 1 + 0) / 3)
    assert ExactMatch().score(records) == pytest.approx(1 / 3)
    assert math.isnan(CharF1().score(records[3:]))


def test_refusal_precision_recall():
    records = [
        rec(q("u1", answerable=False), abstained=True),  # TP
        rec(q("u2", answerable=False), abstained=False),  # FN
        rec(q("u3", answerable=False), abstained=True),  # TP
        rec(q("a1"), abstained=True),  # FP
        rec(q("a2"), abstained=True),  # FP
        rec(q("a3"), abstained=False),  # TN
    ]
    assert RefusalPrecision().score(records) == pytest.approx(2 / 4)
    assert RefusalRecall().score(records) == pytest.approx(2 / 3)
    assert math.isnan(RefusalPrecision().score(records[-1:]))


def test_latency_percentiles():
    records = [rec(q(str(i)), latency=float(i)) for i in range(1, 11)]  # 1..10 s
    assert LatencyPercentile(50).score(records) == pytest.approx(5.5)
    assert LatencyPercentile(95).score(records) == pytest.approx(9.55)
    assert LatencyPercentile(95).name == "latency_p95_s"


def test_evaluate_keys_and_json_safety(three):
    result = evaluate(three, ks=(1, 3))
    assert set(result) == {
        "n", "recall@1", "recall@3", "mrr", "ndcg@10", "answer_accuracy", "char_f1", "exact_match",
        "refusal_precision", "refusal_recall", "latency_p50_s", "latency_p95_s",
    }
    assert result["n"] == 3
    assert result["recall@1"] == pytest.approx(1 / 3)
    assert result["char_f1"] is None  # no gold answers -> NaN -> None
    assert result["refusal_recall"] is None
    json.dumps(result, allow_nan=False)


def test_evaluate_by_slice(three):
    records = three + [rec(q("h", evidence=["智譜"], lang="zh-Hant"), ["智谱AI"], abstained=True)]
    sliced = evaluate_by_slice(records, ks=(1,))
    assert set(sliced) == {"overall", "en", "zh-Hant"}
    assert sliced["overall"]["n"] == 4
    assert sliced["zh-Hant"]["recall@1"] == 1.0
    assert sliced["en"]["recall@1"] == pytest.approx(1 / 3)
    assert sliced["zh-Hant"]["refusal_precision"] == 0.0
    json.dumps(sliced, allow_nan=False)
