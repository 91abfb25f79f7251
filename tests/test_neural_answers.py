"""The trained reader answering on the built-in corpus: cited spans, refusals, and pinned results."""

import pytest

from qa.messages import NOT_FOUND

WHY_01AI = ["why did 01.AI give up pretraining?", "零一万物为什么放弃预训练？", "零一萬物為什麼放棄預訓練？"]


def ask(service, question):
    return service.ask(question, reader="neural")


@pytest.mark.parametrize("question", WHY_01AI)
def test_01ai_question_cites_the_01ai_passage_with_its_bold_span_inside_the_sentence(built_service, question):
    answer = ask(built_service, question)
    assert not answer.abstained, answer.notice
    first = answer.citations[0]
    assert first.doc == "six-tigers-survival-suspense.txt"
    assert "零一萬物" in first.text or "李開復" in first.text
    assert first.span_start is not None and first.start <= first.span_start < first.span_end <= first.end
    span = first.text[first.span_start - first.start : first.span_end - first.start]
    assert f"**{span.strip()}**" in answer.text.replace("\n", " ") or "**" in answer.text
    verifier = built_service.verifier.for_question(question)
    assert answer.reader == "neural"
    if verifier is not None:  # Chinese: the answer verifier judged it, and its inputs travel with the answer
        assert answer.confidence >= verifier.threshold and answer.verification["answer_coverage"] > 0
    else:  # English: outside the verifier's training languages, the evidence score's cut applies
        assert answer.confidence >= built_service.settings.abstain_threshold and "answer_coverage" not in answer.verification


@pytest.mark.parametrize("question, script", [("今天北京天气怎么样？", "zh-Hans"), ("北京明天會下雨嗎？", "zh-Hant"),
                                              ("Where is Baichuan headquartered?", "en")])
def test_questions_the_documents_do_not_cover_are_refused_in_their_language(built_service, question, script):
    try:
        answer = ask(built_service, question)
    except Exception as exc:  # a question with no words may be rejected before reading, with a message
        assert "question" in str(exc).lower()
        return
    assert answer.abstained, (answer.text, answer.confidence)
    assert answer.text.startswith(NOT_FOUND[script])
    assert answer.hits, "the closest passages stay visible as possibly related"
    assert not answer.citations


def test_an_english_question_about_something_the_documents_never_mention_says_what_they_do_not_mention(built_service):
    # no rendering of "headquartered" (总部 is not among CC-CEDICT's; 司令部, 本部... are) occurs in the corpus
    answer = ask(built_service, "Where is Baichuan headquartered?")
    assert answer.abstained and "never mention 'headquartered'" in answer.notice
    kept = ask(built_service, "Who founded StepFun?")  # every word rendered somewhere: read as before
    assert not kept.abstained and "姜大昕" in kept.citations[0].text


@pytest.mark.parametrize("question", ["🙂🙂", "？？？", "👍 !!"])
def test_questions_without_a_single_word_are_not_found_without_possibly_related_passages(built_service, question):
    answer = ask(built_service, question)
    assert answer.abstained and answer.text == NOT_FOUND["en"]
    assert answer.notice.startswith("the question has no words to look up")
    assert not answer.hits and not answer.citations


def test_the_reader_vetoes_the_heuristic_answer_below_its_threshold(built_service, tmp_path):
    from conftest import clone_service

    # the model's own veto, without the answer verifier (which would set the confidence afterwards)
    strict = clone_service(built_service, tmp_path / "strict", reader_verify=True, reader_threshold=1.01, answer_verifier=False)
    answer = ask(strict, WHY_01AI[0])
    assert answer.abstained and not answer.citations and answer.hits
    assert answer.text.startswith(NOT_FOUND["en"]) and "below the threshold 1.01" in answer.notice
    assert 0.0 <= answer.confidence < 1.01
    lenient = clone_service(built_service, tmp_path / "lenient", reader_verify=True, reader_threshold=0.0, answer_verifier=False)
    kept = ask(lenient, WHY_01AI[0])
    assert not kept.abstained and kept.citations == ask(built_service, WHY_01AI[0]).citations
    assert kept.confidence == pytest.approx(answer.confidence)  # the veto's confidence: the model's best probability


def test_the_bold_span_is_never_just_the_subject_the_question_names(built_service):
    # "Who founded MiniMax?": the cited sentence says when MiniMax was founded. With the 3-layer reader the model's
    # best span was "MiniMax" itself (the runners-up rule then took the next one; its cases are unit-tested in
    # tests/test_neural_parts.py); whatever the reader, the bold span is never only the name the question gives
    from qa.neural.reader import _echoes_question

    first = ask(built_service, "Who founded MiniMax?").citations[0]
    assert first.span_text and "".join(first.span_text.split()).lower() != "minimax"
    assert not _echoes_question(first.span_text, "Who founded MiniMax?", [{"minimax"}])
    assert first.start <= first.span_start < first.span_end <= first.end


def test_the_cited_sentence_where_the_reader_finds_the_best_span_comes_first(built_service, tmp_path):
    from conftest import clone_service

    # a validation question (eval/dev_questions.jsonl, dev-en-001): the reader's best span is in the cited sentence
    # that names the founder, and that sentence comes first
    question = "Who founded StepFun, and what made him realize a new era was coming?"
    heuristic_order = ask(clone_service(built_service, tmp_path / "off", span_sentence_choice=False, span_free_choice=False), question)
    reader_order = ask(clone_service(built_service, tmp_path / "on", span_free_choice=False), question)
    # what must hold on any CPU: the reader leads with the sentence naming the founder and bolds the name inside it.
    # The heuristic used to lead with the start-up list sentence; since a "who" question's doer (创始人) counts for
    # its verb (qa/verifier._with_doers) it leads with the founder's sentence too, so both orders agree here
    assert "姜大昕" in heuristic_order.citations[0].text
    first = reader_order.citations[0]
    assert "姜大昕" in first.span_text and first.start <= first.span_start < first.span_end <= first.end
    assert first.span_text not in question
    assert {(c.doc, c.start) for c in reader_order.citations} == {(c.doc, c.start) for c in heuristic_order.citations}


def test_a_sentence_without_the_asked_entity_never_overtakes_one_that_names_it(built_service, tmp_path):
    from conftest import clone_service

    from qa.verifier import names_an_entity

    # "Who founded StepFun?": the passage holds Moonshot's founder (杨植麟创立月之暗面) just before StepFun's. The
    # one-epoch reader's best span is 杨植麟; settings.span_keep_entity keeps the sentence naming 阶跃星辰 first
    question = "Who founded StepFun?"
    unguarded = ask(clone_service(built_service, tmp_path / "free", span_keep_entity=False), question)
    guarded = ask(built_service, question)
    assert "阶跃星辰" not in unguarded.citations[0].text  # what the guard is for: without it another company leads
    assert "阶跃星辰" in guarded.citations[0].text and "姜大昕" in guarded.citations[0].span_text
    assert names_an_entity("而阶跃星辰的创始人姜大昕", [{"阶跃星辰", "stepfun"}])
    assert not names_an_entity("杨植麟创立月之暗面的时候", [{"阶跃星辰", "stepfun"}])
    assert names_an_entity("任何句子", [])  # a question naming no entity constrains nothing


# Known miss of issue 20 (2026-12-07, the one-epoch reader): its best span for this question is "聚焦医疗领域" in the
# cited sentence, so the free choice keeps that sentence and the reason is not quoted. The 5-layer reader quoted it.
@pytest.mark.xfail(strict=True, reason="known miss of issue 20: the one-epoch reader's best span for the Baichuan why "
                   "question is in the cited sentence (聚焦医疗领域), so the reason sentence is not quoted; strict")
def test_the_reader_quotes_the_sentence_holding_its_answer_when_the_heuristic_cited_another(built_service, tmp_path):
    from conftest import clone_service

    # a validation question (eval/dev_questions.jsonl, dev-hans-005): the heuristic cites sentences saying that
    # Baichuan turned to medicine; the reason (a doctor's work demands the most intelligence) sits in a sentence it
    # does not cite, where the model's best span lies
    question = "百川智能为什么要把重心转到医疗上？"
    heuristic_only = ask(clone_service(built_service, tmp_path / "off", span_free_choice=False), question)
    assert not any("智力" in c.text for c in heuristic_only.citations)
    answer = ask(built_service, question)
    assert not answer.abstained, answer.notice
    first = answer.citations[0]
    assert "智力" in first.text and first.start <= first.span_start < first.span_end <= first.end
    text = (built_service.settings.corpus_dir / first.doc).read_text(encoding="utf-8")
    assert text[first.start : first.end] == first.text and text[first.span_start : first.span_end] == first.span_text


@pytest.mark.parametrize("question", ["MiniMax的创始人是谁？", "MiniMax的創始人是誰？",
                                      "Who founded MiniMax?"])  # English: the doer's 创始人 counts for "founded"
def test_who_founded_minimax_cites_and_bolds_the_founder(built_service, question):
    from qa.text import fold_script

    answer = ask(built_service, question)
    assert not answer.abstained, answer.notice
    first = answer.citations[0]
    assert "闫俊杰" in fold_script(first.span_text or "") and first.start <= first.span_start < first.span_end <= first.end


# The reason 01.AI gave up pretraining, as the corpus states it: pretraining burns money (one run costs three to four
# million US dollars), a start-up cannot build a 100,000-GPU cluster, so handing the teams over was "a pragmatic choice".
REASONS = ("燒錢", "成本", "10萬卡", "务实", "務實")


@pytest.mark.parametrize("question", WHY_01AI)
def test_the_01ai_why_question_cites_the_sentence_that_gives_the_reason(built_service, question):
    answer = ask(built_service, question)
    assert not answer.abstained, answer.notice
    assert any(any(r in c.text for r in REASONS) for c in answer.citations), [c.text for c in answer.citations]


def test_json_citations_carry_the_span_offsets(built_service):
    payload = ask(built_service, WHY_01AI[0]).to_json_dict()
    first = payload["citations"][0]
    text = (built_service.settings.corpus_dir / first["doc"]).read_text(encoding="utf-8")
    assert text[first["start"] : first["end"]] == first["text"]
    assert text[first["span_start"] : first["span_end"]] == first["span_text"]
    assert payload["reader"] == "neural" and first["span_text"]


def test_the_heuristic_reader_stays_available_as_the_baseline(built_service):
    answer = built_service.ask(WHY_01AI[1], reader="heuristic")
    assert answer.reader == "heuristic" and not answer.abstained and answer.citations


# Pinned on the built-in corpus with the shipped weights, on the default float32 path (the same spans on any x86
# CPU; on the opt-in int8 path, whose kernels differ between CPUs, only within its tolerance). A change in jieba, bm25s, faiss, torch, the reader's
# or the verifier's weights that moves retrieval, the confidence or the span shows up here first. Confidence:
# the answer verifier's P(answered) for Chinese questions, the evidence score for English ones.
PINNED = [
    # English: the evidence score of the English query encoder's vector (qa/crosslingual.py; 0.937 with e5's own)
    ("why did 01.AI give up pretraining?", ("china-llm-startups-overview-transcript.txt", 2628), 1.006, 1205,
     "聚焦在預訓練團隊及Infra團隊,其中大部分預訓練算法團隊加入通義團隊,Infra團隊加入阿里雲,成爲阿里員工"),
    ("阶跃星辰的创始人是谁？", ("china-llm-startups-overview-transcript.txt", 889), 0.891, 1038, "姜大昕"),
    ("MiniMax的创始人是谁？", ("china-llm-startups-overview-transcript.txt", 1707), 0.874, 1725, "閆俊傑"),
    ("百川智能为什么要把重心转到医疗上？", ("china-llm-startups-overview-transcript.txt", 2300), 0.382, 2386,
     "聚焦医疗领域"),
]


@pytest.mark.parametrize("question, top_hit, confidence, sentence_start, span", PINNED)
def test_pinned_top_passage_confidence_and_span(built_service, question, top_hit, confidence, sentence_start, span):
    answer = ask(built_service, question)
    assert (answer.hits[0].chunk.doc_id, answer.hits[0].chunk.start) == top_hit
    # The confidences are float32's; the opt-in int8 path (QA_READER_INT8=1) moves the reader's probabilities by up
    # to 0.023 (eval/reader_numerics.py: 60 readings), so there only the passage, sentence and span stay pinned.
    tolerance = 0.03 if built_service.settings.reader_int8 else 0.002
    assert round(answer.confidence, 3) == pytest.approx(confidence, abs=tolerance)
    assert answer.citations[0].start == sentence_start
    assert answer.citations[0].span_text == span
