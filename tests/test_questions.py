"""The evaluation question sets (the seed test set and the dev validation set): they load, are balanced, and
their evidence is verbatim corpus text."""

import json
from collections import Counter
from pathlib import Path

import pytest

from qa.evaluation.questions import EvalQuestion, load_questions, normalize_for_match

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "eval" / "questions.jsonl"
DEV_QUESTIONS = ROOT / "eval" / "dev_questions.jsonl"
CORPUS = sorted((ROOT / "corpus").glob("*.txt"))


@pytest.fixture(scope="module", params=[QUESTIONS, DEV_QUESTIONS], ids=["seed", "dev"])
def questions(request):
    return load_questions(request.param)


@pytest.fixture(scope="module")
def docs():
    assert CORPUS, "no corpus documents found"
    return [p.read_text(encoding="utf-8") for p in CORPUS]


def test_counts(questions):
    assert len(questions) >= 66
    langs = Counter(q.lang for q in questions)
    assert set(langs) == {"zh-Hans", "zh-Hant", "en"}
    assert min(langs.values()) >= 22
    assert sum(not q.answerable for q in questions) >= 12
    assert all(isinstance(q, EvalQuestion) for q in questions)


def test_the_dev_set_shares_no_question_with_the_seed_set():
    seed, dev = load_questions(QUESTIONS), load_questions(DEV_QUESTIONS)
    assert not {normalize_for_match(q.question) for q in seed} & {normalize_for_match(q.question) for q in dev}
    assert not {q.id for q in seed} & {q.id for q in dev}


def test_ids_unique(questions):
    ids = [q.id for q in questions]
    assert len(ids) == len(set(ids))


def test_answerable_have_evidence_and_keywords(questions):
    for q in questions:
        if q.answerable:
            assert q.evidence, q.id
            assert q.answer_keywords, q.id
        else:
            assert q.evidence == [] and q.answer_keywords == [], q.id


def test_evidence_is_verbatim(questions, docs):
    bad = [(q.id, e) for q in questions if q.answerable for e in q.evidence if not any(e in d for d in docs)]
    assert not bad, f"evidence not found verbatim in the corpus: {bad}"


def test_keywords_occur_in_evidence(questions):
    """An extractive answer quoting the evidence must be able to hit a keyword."""
    bad = []
    for q in questions:
        evidence = [normalize_for_match(e) for e in q.evidence]
        for kw in q.answer_keywords:
            if not any(normalize_for_match(kw) in e for e in evidence):
                bad.append((q.id, kw))
    assert not bad, f"keywords absent from the question's evidence: {bad}"


def _write(tmp_path, lines):
    path = tmp_path / "qs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = {"id": "x-1", "lang": "en", "question": "Q?", "answerable": True, "evidence": ["ev"], "answer_keywords": ["kw"]}


def test_good_file_loads_with_optional_gold(tmp_path):
    path = _write(tmp_path, [json.dumps(GOOD), "", json.dumps({**GOOD, "id": "x-2", "gold_answers": ["g"]})])
    loaded = load_questions(path)
    assert [q.id for q in loaded] == ["x-1", "x-2"]
    assert loaded[0].gold_answers == [] and loaded[1].gold_answers == ["g"]


@pytest.mark.parametrize(
    "bad_line, problem",
    [
        ("{not json", "invalid JSON"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "question"}), "question"),
        (json.dumps({**GOOD, "answerable": "yes"}), "answerable"),
        (json.dumps({**GOOD, "evidence": "ev"}), "evidence"),
        (json.dumps({**GOOD, "answer_keywords": [1]}), "answer_keywords"),
        (json.dumps({**GOOD, "lang": "fr"}), "lang"),
        (json.dumps([GOOD]), "object"),
        (json.dumps({**GOOD, "id": "x-1"}), "duplicate"),
    ],
)
def test_bad_file_names_line(tmp_path, bad_line, problem):
    path = _write(tmp_path, [json.dumps(GOOD), "", bad_line])
    with pytest.raises(ValueError) as info:
        load_questions(path)
    message = str(info.value)
    assert f"{path}:3" in message
    assert problem in message
