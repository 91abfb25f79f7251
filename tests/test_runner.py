"""`qa eval` end to end: small real runs of the seed set and of a tiny hand-made SQuAD file."""

import json

import pytest

from qa.cli import build_parser
from qa.evaluation.runner import ask_record, load_squad, main

pytestmark = pytest.mark.slow

REQUIRED = ("n", "recall@5", "mrr", "answer_accuracy", "refusal_precision", "refusal_recall", "by_lang")

# Three paragraphs on unrelated topics. The third one also contains "竹子", the gold answer of the
# first question, so a passage can contain the answer string without being the source paragraph.
SQUAD = {
    "version": "test",
    "data": [
        {"title": "大熊猫", "paragraphs": [{
            "context": "大熊猫是中国特有的哺乳动物，主要生活在四川、陕西和甘肃的山区森林里。大熊猫的主要食物是竹子，每天要花十几个小时进食。",
            "qas": [{"id": "q1", "question": "大熊猫的主要食物是什么？", "answers": [{"text": "竹子", "answer_start": 43}]}],
        }]},
        {"title": "长城", "paragraphs": [{
            "context": "明长城东起山海关，西至嘉峪关，全长约八千八百公里，是古代重要的军事防御工程。",
            "qas": [{"id": "q2", "question": "明长城西边的终点是哪个关？", "answers": [{"text": "嘉峪关", "answer_start": 11}]}],
        }]},
        {"title": "造纸", "paragraphs": [{
            "context": "东汉的蔡伦改进了造纸术，用树皮、麻头、破布和渔网造纸。后来也有人用竹子做原料造纸。",
            "qas": [{"id": "q3", "question": "谁改进了造纸术？", "answers": [{"text": "蔡伦", "answer_start": 3}]}],
        }]},
    ],
}
EN_QUESTIONS = {
    "version": "test",
    "data": [{"title": "x", "paragraphs": [{"context": "unused", "qas": [
        {"id": "q1", "question": "What do giant pandas mainly eat?", "answers": [{"text": "bamboo", "answer_start": 0}]},
        {"id": "q2", "question": "Which pass is the western end of the Ming Great Wall?", "answers": [{"text": "x", "answer_start": 0}]},
    ]}]}],
}


def _args(*argv):
    return build_parser().parse_args(["eval", *argv])


def _json_out(capsys) -> dict:
    captured = capsys.readouterr()
    return json.loads(captured.out)  # stdout must be pure JSON; the table goes to stderr


@pytest.fixture()
def squad_service(tmp_path, embedder):
    """A private service (a SQuAD run replaces the active index, so never the shared built_service)."""
    from qa.pipeline import QAService
    from qa.settings import load_settings

    settings = load_settings(corpus_dir=tmp_path / "no-corpus", index_dir=tmp_path / "index")
    return QAService(settings, embedder=embedder)


def test_seed_set_limit_12_json(built_service, tmp_path, capsys):
    assert main(_args("--limit", "12", "--json", "--out", str(tmp_path)), service=built_service) == 0
    data = _json_out(capsys)
    for key in REQUIRED:
        assert key in data
    assert data["n"] == 12
    assert data["recall@5"] > 0.5
    assert set(data["by_lang"]) == {"en"}  # the first 12 seed questions are English
    assert data["system"] == "hybrid+neural" and data["readers"] == ["neural"]
    assert data["systems"]["hybrid+neural"]["overall"]["n"] == 12
    for suffix in ("md", "json", "png", "records.jsonl"):
        assert (tmp_path / f"seed.{suffix}").stat().st_size > 0
    assert json.loads((tmp_path / "seed.json").read_text(encoding="utf-8"))["recall@5"] == data["recall@5"]
    assert "| hybrid (RRF) + neural | overall | 12 |" in (tmp_path / "seed.md").read_text(encoding="utf-8")
    # every setting behind the numbers, without paths or secrets
    assert data["settings"]["reader"] == "neural" and data["settings"]["reader_candidates"] == 20
    assert data["settings"]["abstain_threshold"] == built_service.settings.abstain_threshold
    assert not {"llm_api_key", "corpus_dir", "index_dir", "cache_dir"} & set(data["settings"])
    lines = [json.loads(line) for line in (tmp_path / "seed.records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 12 and {line["system"] for line in lines} == {"hybrid+neural"}
    first = lines[0]
    assert set(first) >= {"id", "system", "passages", "answer", "span", "abstained", "confidence", "metrics"}
    assert first["abstained"] or first["span"][1] < first["span"][2]  # the neural reader's span: doc, start, end
    assert all(":" in p and "-" in p for p in first["passages"]) and len(first["passages"]) == 10
    assert {"recall@5", "mrr", "answer_accuracy"} <= set(first["metrics"])
    assert sum(line["metrics"]["recall@5"] or 0 for line in lines) / sum(
        line["metrics"]["recall@5"] is not None for line in lines) == pytest.approx(data["recall@5"])


def test_custom_questions_file(built_service, tmp_path, capsys):
    from qa.settings import PROJECT_ROOT

    seed = [json.loads(line) for line in (PROJECT_ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    picked = [next(q for q in seed if q["lang"] == "zh-Hans" and q["answerable"]),
              next(q for q in seed if q["lang"] == "zh-Hant" and q["answerable"]),
              next(q for q in seed if not q["answerable"])]
    path = tmp_path / "custom.jsonl"
    path.write_text("".join(json.dumps({**q, "id": f"c-{i}"}, ensure_ascii=False) + "\n" for i, q in enumerate(picked)),
                    encoding="utf-8")
    out = tmp_path / "out"
    assert main(_args("--questions", str(path), "--json", "--out", str(out)), service=built_service) == 0
    data = _json_out(capsys)
    assert data["n"] == 3
    assert set(data["by_lang"]) == {"zh-Hans", "zh-Hant", picked[2]["lang"]}
    assert data["dataset"]["questions_file"] == str(path)
    assert (out / "custom.md").exists() and (out / "custom.png").exists()


def test_bad_questions_file_is_a_usage_error(built_service, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "x"}\n', encoding="utf-8")
    assert main(_args("--questions", str(path), "--out", str(tmp_path)), service=built_service) == 2
    assert "missing field" in capsys.readouterr().err


def test_load_squad_documents_and_pairing(tmp_path):
    zh, en = tmp_path / "zh.json", tmp_path / "en.json"
    zh.write_text(json.dumps(SQUAD, ensure_ascii=False), encoding="utf-8")
    en.write_text(json.dumps(EN_QUESTIONS), encoding="utf-8")
    data = load_squad(zh)
    assert [d.doc_id for d in data.documents] == ["大熊猫#0", "长城#1", "造纸#2"]
    assert data.source == {"q1": "大熊猫#0", "q2": "长城#1", "q3": "造纸#2"}
    assert data.questions[0].gold_answers == ["竹子"] and data.questions[0].lang == "zh-Hans"
    paired = load_squad(zh, questions_from=en)
    assert [q.question for q in paired.questions] == ["What do giant pandas mainly eat?",
                                                      "Which pass is the western end of the Ming Great Wall?"]
    assert paired.questions[1].gold_answers == ["嘉峪关"]  # gold answers stay those of the paragraph file
    assert paired.unpaired == 1 and paired.questions[0].lang == "en"
    assert [d.doc_id for d in load_squad(zh, paragraphs=2).documents] == ["大熊猫#0", "长城#1"]


def test_squad_recall_by_source_paragraph(squad_service, tmp_path, capsys):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(SQUAD, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out"
    assert main(_args("--squad", str(path), "--baselines", "--readers", "heuristic", "--settings", "open", "--json",
                      "--out", str(out)), service=squad_service) == 0
    data = _json_out(capsys)
    for key in REQUIRED:
        assert key in data
    assert data["n"] == 3 and set(data["systems"]) == {"sparse", "dense", "hybrid+heuristic"}
    assert data["dataset"]["paragraphs_indexed"] == 3 and data["dataset"]["chunks"] == 3
    # recall@1 recomputed by hand from the hits: the top passage must come from the question's own paragraph
    squad = load_squad(path)
    for mode, key in (("sparse", "sparse"), ("dense", "dense"), ("hybrid", "hybrid+heuristic")):
        tops = [squad_service.ask(q.question, retrieval_mode=mode).hits[0].chunk.doc_id == squad.source[q.id]
                for q in squad.questions]
        assert data["systems"][key]["overall"]["recall@1"] == pytest.approx(sum(tops) / 3)
        assert data["systems"][key]["overall"]["recall@3"] == 1.0  # every paragraph is among 3 passages
    # the distinct keywords make BM25 exact here
    assert data["systems"]["sparse"]["overall"]["recall@1"] == 1.0
    # relevance is by source paragraph, not by answer string: 造纸#2 contains "竹子" but is not relevant to q1
    record = ask_record(squad_service, squad.questions[0], "dense", 3, squad.source["q1"])  # dense ranks all 3
    assert len(record.retrieved) == 3 and any("竹子" in text and "蔡伦" in text for text in record.retrieved)
    for text, relevant in zip(record.retrieved, record.relevant):
        assert relevant == text.startswith("大熊猫")
    for suffix in ("md", "json", "png", "records.jsonl"):
        assert (out / f"tiny.{suffix}").exists()
    assert len((out / "tiny.records.jsonl").read_text(encoding="utf-8").splitlines()) == 9  # 3 questions x 3 systems


def test_squad_limit_and_questions_from(squad_service, tmp_path, capsys):
    zh, en = tmp_path / "zh.json", tmp_path / "en.json"
    zh.write_text(json.dumps(SQUAD, ensure_ascii=False), encoding="utf-8")
    en.write_text(json.dumps(EN_QUESTIONS), encoding="utf-8")
    assert main(_args("--squad", str(zh), "--questions-from", str(en), "--limit", "1", "--json",
                      "--out", str(tmp_path / "out")), service=squad_service) == 0
    data = _json_out(capsys)
    assert data["n"] == 1 and set(data["by_lang"]) == {"en"}
    assert data["dataset"]["unpaired_skipped"] == 1 and data["dataset"]["questions_of_indexed"] == 2
    assert (tmp_path / "out" / "en-on-zh.json").exists()


def test_calibrate_small(built_service, tmp_path, capsys):
    assert main(_args("--calibrate", "--limit", "12", "--weights", "1,2", "--json", "--out", str(tmp_path)),
                service=built_service) == 0
    data = _json_out(capsys)
    assert data["best"]["dense_weight"] in (1.0, 2.0)
    assert 0.0 <= data["best"]["answer_accuracy"] <= 1.0
    assert (tmp_path / "calibration.md").exists() and (tmp_path / "calibration.png").exists()
    assert built_service.settings.abstain_threshold == data["current"]["abstain_threshold"]  # untouched


def test_calibrate_refuses_public_sets(tmp_path, capsys):
    assert main(_args("--calibrate", "--squad", "x.json", "--out", str(tmp_path))) == 2
    assert "never on a public benchmark" in capsys.readouterr().err


def test_unavailable_reader_is_a_usage_error(built_service, tmp_path, capsys, monkeypatch):
    import sys

    import qa.neural

    monkeypatch.setitem(sys.modules, "qa.neural.reader", None)
    monkeypatch.delattr(qa.neural, "reader", raising=False)  # as if the neural reader did not exist
    monkeypatch.setattr(built_service, "_readers", {})  # forget the loaded one
    assert main(_args("--limit", "2", "--readers", "heuristic,neural", "--out", str(tmp_path)),
                service=built_service) == 2
    assert "neural reader is not available" in capsys.readouterr().err
    assert main(_args("--limit", "2", "--readers", "bogus", "--out", str(tmp_path)), service=built_service) == 2
