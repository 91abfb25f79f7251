"""The answer verifier: its concepts, its features on hand-computed cases, its model file and its training maths."""

import json
import math

import numpy as np
import pytest

from conftest import REPO
from qa.aliases import AliasLexicon
from qa.types import Answer, Chunk, Citation, Hit
from qa.verifier import (DEFAULT_ENGLISH_VERIFIER, DEFAULT_VERIFIER, FEATURES, AnswerVerifier, Concepts, VerifierSet,
                         evidence_features, load_verifier, question_concepts)


def test_concepts_are_alias_groups_and_content_words_with_entities_apart():
    aliases = AliasLexicon(entities=(("01.AI", "零一万物", "零一萬物"),))
    concepts = question_concepts("零一万物2024年的营收是多少？", aliases)
    assert {"01.ai", "零一万物"} <= concepts.all[0] and concepts.entities == [concepts.all[0]]
    assert {"营收"} in concepts.all and {"2024"} in concepts.all
    assert len(concepts.checkable) == len(concepts.all) and concepts.all[0] not in concepts.non_entities
    english = question_concepts("What is the revenue of 01.AI?", aliases)
    assert {"revenue"} in english.all and english.checkable == [english.all[0]]  # English words cannot be checked


def _answer(sentence: str, passage: str, confidence: float = 0.9, span_probability: float | None = 0.7):
    chunk = Chunk(doc_id="d", chunk_id=0, start=0, end=len(passage), text=passage)
    hit = Hit(chunk, 1.0)
    if span_probability is not None:
        hit.span, hit.reader_score = (0, 2), span_probability
    citation = Citation(doc="d", start=0, end=len(sentence), text=sentence, score=confidence)
    return Answer(question="q", text=sentence, abstained=False, citations=[citation], hits=[hit], confidence=confidence), [hit]


def test_features_on_a_hand_computed_case():
    concepts = Concepts(all=[{"商汤"}, {"营收"}, {"2024"}], entities=[{"商汤"}])
    answer, hits = _answer("商汤在2024年发布了新模型。", "商汤在2024年发布了新模型。另一句话。")
    f = evidence_features("商汤2024年的营收是多少？", answer, hits, concepts, corpus_text="商汤在2024年发布了新模型。")
    assert f["sentence_coverage"] == pytest.approx(2 / 3) and f["answer_coverage"] == pytest.approx(2 / 3)
    assert f["passage_coverage"] == pytest.approx(2 / 3)
    assert f["unknown_share"] == pytest.approx(1 / 3)  # 营收 is nowhere in the corpus
    assert f["attribute_sentence"] == pytest.approx(1 / 2)  # of 营收 and 2024 (商汤 is the entity), 2024 is there
    assert f["attribute_passages"] == pytest.approx(1 / 2)
    assert f["quantity_mismatch"] == 0.0  # "多少" asked, and the sentence has a number (2024)
    assert f["entity_in_sentence"] == 1.0 and f["span_probability"] == 0.7 and f["evidence"] == 0.9
    assert f["checkable"] == pytest.approx(3 / 6)
    assert set(f) == set(FEATURES)


def test_a_quantity_question_over_a_sentence_without_numbers_is_a_mismatch():
    concepts = Concepts(all=[{"员工"}], entities=[])
    answer, hits = _answer("公司员工很多。", "公司员工很多。", span_probability=None)
    f = evidence_features("公司有多少员工？", answer, hits, concepts, corpus_text=None)
    assert f["quantity_mismatch"] == 1.0 and f["span_probability"] == 0.5 and f["unknown_share"] == 0.0


def test_verifier_probability_is_the_logistic_of_standardized_features_and_survives_a_round_trip(tmp_path):
    n = len(FEATURES)
    verifier = AnswerVerifier(weights=(2.0,) + (0.0,) * (n - 1), bias=-1.0, mean=(0.5,) + (0.0,) * (n - 1),
                              scale=(0.25,) + (1.0,) * (n - 1), threshold=0.4, provenance={"trained_on": "test"})
    features = dict.fromkeys(FEATURES, 0.0) | {"evidence": 1.0}
    assert verifier.probability(features) == pytest.approx(1 / (1 + math.exp(-(-1.0 + 2.0 * (1.0 - 0.5) / 0.25))))
    verifier.save(tmp_path / "v.json")
    assert AnswerVerifier.load(tmp_path / "v.json") == verifier


def test_a_verifier_file_for_other_features_is_refused_with_a_message(tmp_path):
    raw = json.loads(DEFAULT_VERIFIER.read_text(encoding="utf-8"))
    raw["features"] = raw["features"][:-1]
    (tmp_path / "old.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match="qa train-verifier"):
        AnswerVerifier.load(tmp_path / "old.json")


def test_the_shipped_verifier_was_trained_and_calibrated_on_public_data_only():
    verifier = AnswerVerifier.load(DEFAULT_VERIFIER)
    assert 0.0 < verifier.threshold < 1.0
    trained = verifier.provenance["trained_on"]
    assert set(trained) == {"cmrc-train", "drcd-train"} and verifier.provenance["calibrated_on"]["set"] == "cmrc-dev"
    files = json.dumps([verifier.provenance["trained_on"], verifier.provenance["calibrated_on"]]).lower()
    assert "xquad" not in files and "questions.jsonl" not in files and "cmrc2018_dev" in files
    # on its calibration split it separates answered from answer-removed questions well above chance
    assert verifier.provenance["calibration"]["balanced_accuracy"] >= 0.75
    assert verifier.languages == ("zh-Hans", "zh-Hant")  # no English question over Chinese text was trained on
    cut = verifier.provenance.get("cut")
    if cut is not None:  # a cut chosen again (qa train-verifier --cut-on) was chosen on the dev set, never the test set
        assert cut["set"] == "dev_questions.jsonl" and cut["threshold"] == pytest.approx(verifier.threshold, abs=1e-4)
        assert cut["replaces"] != cut["threshold"] and cut["answerable"] + cut["unanswerable"] == cut["questions"]


def test_logistic_fit_separates_a_separable_toy_set():
    from qa.training.verifier import fit_logistic

    x = np.array([[0.0], [0.1], [0.2], [0.8], [0.9], [1.0]])
    y = np.array([0, 0, 0, 1, 1, 1], dtype=float)
    w, b, mean, scale = fit_logistic(x, y, l2=0.1)
    p = 1 / (1 + np.exp(-(((x - mean) / scale) @ w + b)))
    assert w[0] > 0 and (p[:3] < 0.5).all() and (p[3:] > 0.5).all()
    bounded, *_ = fit_logistic(x, y, l2=0.1, signs=[-1])  # a weight held at <= 0 cannot follow the data
    assert bounded[0] == pytest.approx(0.0, abs=1e-6)


def test_the_pipeline_withdraws_an_answer_below_the_cut_and_keeps_the_passages(built_service, tmp_path):
    from conftest import clone_service

    from qa.messages import NOT_FOUND

    question = "阶跃星辰的创始人是谁？"
    assert not built_service.ask(question).abstained
    strict = clone_service(built_service, tmp_path / "strict", verifier_threshold=1.0)
    answer = strict.ask(question)
    assert answer.abstained and not answer.citations and answer.hits
    assert answer.text.startswith(NOT_FOUND["zh-Hans"]) and "answer verifier" in answer.notice
    assert set(answer.verification) == set(FEATURES) and 0.0 <= answer.confidence < 1.0
    off = clone_service(built_service, tmp_path / "off", answer_verifier=False)
    unchecked = off.ask(question)
    assert not unchecked.abstained and "answer_coverage" not in unchecked.verification


def test_the_cut_chosen_again_on_product_questions_separates_them_and_is_recorded(built_service, tmp_path):
    """`qa train-verifier --cut-on FILE`: the cut with the best balanced accuracy on that file's questions (the ones
    the verifier judges), saved with the cut it replaces; choosing again keeps the original cut as "replaces"."""
    from conftest import clone_service

    from qa.training.verifier import cut_on_questions

    rows = [json.loads(line) for line in (REPO / "eval" / "dev_questions.jsonl").read_text(encoding="utf-8").splitlines()]
    picked = [r for r in rows if r["id"] in {"dev-hans-001", "dev-hant-002", "dev-hans-019", "dev-hant-020", "dev-en-001"}]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in picked), encoding="utf-8")
    path = tmp_path / "verifier.json"
    path.write_bytes(DEFAULT_VERIFIER.read_bytes())
    shipped = AnswerVerifier.load(path)
    # the calibrated cut: the threshold, or the one a recorded cut replaced (the shipped cut was chosen on the dev set)
    original = shipped.provenance.get("cut", {}).get("replaces", shipped.threshold)
    service = clone_service(built_service, tmp_path / "svc")
    cut = cut_on_questions(path, questions, service)
    assert (cut["questions"], cut["answerable"], cut["unanswerable"]) == (4, 2, 2)  # the English question is not judged
    saved = AnswerVerifier.load(path)
    assert saved.threshold == pytest.approx(cut["threshold"], abs=1e-4) and saved.provenance["cut"] == cut
    assert cut["replaces"] == pytest.approx(original, abs=1e-4)
    assert cut["balanced_accuracy"] == pytest.approx(
        ((1 - cut["refused_answerable"] / 2) + cut["refused_unanswerable"] / 2) / 2, abs=1e-4)
    assert cut["balanced_accuracy"] >= 0.75  # one founding year and one founder answered, two questions refused
    assert service.verifier.models[0] == AnswerVerifier.load(DEFAULT_VERIFIER)  # the service's own verifier is back
    again = cut_on_questions(path, questions, service)
    assert again["replaces"] == pytest.approx(original, abs=1e-4)


def _toy(threshold: float, languages: tuple[str, ...]) -> AnswerVerifier:
    n = len(FEATURES)
    return AnswerVerifier((1.0,) + (0.0,) * (n - 1), 0.0, (0.0,) * n, (1.0,) * n, threshold, languages)


def test_each_question_is_judged_by_the_verifier_of_its_script(tmp_path):
    chinese, english = _toy(0.4, ("zh-Hans", "zh-Hant")), _toy(0.6, ("en",))
    both = VerifierSet((chinese, english))
    assert both.for_question("零一万物为什么放弃预训练？") is chinese
    assert both.for_question("零一萬物為什麼放棄預訓練？") is chinese
    assert both.for_question("why did 01.AI give up pretraining?") is english
    assert VerifierSet((chinese,)).for_question("why did 01.AI give up pretraining?") is None
    alone = VerifierSet.of(english)
    assert alone.for_question("阶跃星辰的创始人是谁？") is None and alone.models == (english,) and VerifierSet.of(both) is both
    assert "English (en) questions below P(answered) 0.60" == english.describe()
    chinese.save(tmp_path / "zh.json")
    english.save(tmp_path / "en.json")
    from qa.settings import load_settings

    loaded = load_verifier(load_settings(verifier_path=f"{tmp_path / 'zh.json'},{tmp_path / 'en.json'}", verifier_threshold=0.5))
    assert [m.languages for m in loaded.models] == [chinese.languages, english.languages]
    assert {m.threshold for m in loaded.models} == {0.5}  # the settings' cut overrides every model's
    with pytest.raises(FileNotFoundError, match="qa train-verifier"):
        load_verifier(load_settings(verifier_path=str(tmp_path / "missing.json")))


def test_the_shipped_english_verifier_was_fitted_on_translated_cmrc_questions_only():
    english = AnswerVerifier.load(DEFAULT_ENGLISH_VERIFIER)
    assert english.languages == ("en",) and 0.0 < english.threshold < 1.0
    assert set(english.provenance["trained_on"]) == {"cmrc-train-en"}
    assert english.provenance["calibrated_on"]["set"] == "cmrc-dev-en"
    files = json.dumps([english.provenance["trained_on"], english.provenance["calibrated_on"]]).lower()
    assert "xquad" not in files and "questions.jsonl" not in files
    # above chance, and above the evidence-score cut on the same translated questions (0.60, MODEL_CARD.md)
    assert english.provenance["calibration"]["balanced_accuracy"] >= 0.62
    from qa.settings import load_settings

    assert load_verifier(load_settings(verifier_path="", english_verifier=False)).languages == ("zh-Hans", "zh-Hant")
    assert load_verifier(load_settings(verifier_path="", english_verifier=True)).languages == ("zh-Hans", "zh-Hant", "en")


def test_the_translations_are_english_questions_of_the_verifier_paragraphs():
    """qa/training/translated/: English questions covering the paragraphs the verifier asks over (CMRC 2018 train:
    the first 400; dev: the first 120), and one question of every CMRC train paragraph for the reader."""
    import re

    from qa.evaluation.datasets import load_squad
    from qa.settings import PROJECT_ROOT
    from qa.training.verifier import ENGLISH_CALIBRATION_SET, ENGLISH_TRAIN_SETS, translations_for

    shared = PROJECT_ROOT.parent / "shared"
    for name, (rel, paragraphs, *_rest) in [*ENGLISH_TRAIN_SETS.items(), (ENGLISH_CALIBRATION_SET[0], ENGLISH_CALIBRATION_SET[1:])]:
        data = load_squad(shared / rel, None, paragraphs)
        translations = translations_for(name)
        assert all(t.endswith("?") and not re.search(r"[\u3400-\u9fff]", t) for t in translations.values())
        ours = [qid for qid in translations if qid in data.source]
        assert len({data.source[qid] for qid in ours}) == paragraphs  # every paragraph is asked about
    everything = load_squad(shared / ENGLISH_TRAIN_SETS["cmrc-train-en"][0], None, None)  # translate-train: all of them
    train = translations_for("cmrc-train-en")
    assert set(train) <= set(everything.source) and len({everything.source[q] for q in train}) == len(train) == 2403


def test_english_questions_keep_the_evidence_cut_unless_the_english_verifier_is_on(built_service, tmp_path):
    from conftest import clone_service

    question = "why did 01.AI give up pretraining?"
    strict = clone_service(built_service, tmp_path / "strict", verifier_threshold=1.0, abstain_threshold=5.0)
    answer = strict.ask(question)
    assert answer.abstained and "evidence score" in answer.notice and "answer_coverage" not in answer.verification
    english = clone_service(built_service, tmp_path / "en", english_verifier=True, verifier_threshold=1.0,
                            abstain_threshold=0.0)
    answer = english.ask(question)
    assert answer.abstained and "answer verifier" in answer.notice and set(answer.verification) == set(FEATURES)
    lenient = clone_service(built_service, tmp_path / "lenient", english_verifier=True, verifier_threshold=0.0)
    answer = lenient.ask(question)
    assert not answer.abstained and 0.0 < answer.confidence < 1.0 and "answer_coverage" in answer.verification


def test_collecting_english_examples_asks_the_translations_over_the_chinese_paragraphs():
    """`qa train-verifier --language en`, in small: the translated questions of the first CMRC 2018 dev paragraphs,
    asked open, with their paragraph removed and with their answer sentence cut out."""
    from qa.settings import PROJECT_ROOT
    from qa.training.verifier import ENGLISH_CALIBRATION_SET, collect, translations_for

    name, rel, _ = ENGLISH_CALIBRATION_SET
    translations = translations_for(name)
    examples, info = collect(name, PROJECT_ROOT.parent / "shared" / rel, 3, None, max_questions=4, progress=False,
                             translations=translations)
    assert info["language"] == "en" and info["questions"] == 4
    assert {ex.qid for ex in examples} <= set(translations)
    assert {ex.setting for ex in examples} >= {"open", "removed"}
    assert all(set(ex.features) == set(FEATURES) for ex in examples)
    assert all(ex.label == 0 for ex in examples if ex.setting != "open")
