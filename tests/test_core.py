"""The pipeline on the built-in corpus: offsets, scripts, fusion, answers, abstention, index life cycle."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, clone_service
from qa.chunking import chunk_documents
from qa.fusion import reciprocal_rank_fusion
from qa.loader import DocumentError, decode_bytes, document_from_bytes, load_corpus
from qa.pipeline import QuestionError
from qa.settings import load_settings
from qa.store import ModelMismatchError, load_index
from qa.text import has_word_chars, normalize, split_sentences

ONE_AI_QUESTIONS = [
    "why did 01.AI give up pretraining?",
    "零一万物为什么放弃预训练？",
    "零一萬物為什麼放棄預訓練？",
]


@pytest.fixture(scope="module")
def corpus_docs():
    docs, problems = load_corpus(REPO / "corpus")
    assert problems == []
    return {d.doc_id: d for d in docs}


def test_every_chunk_and_sentence_is_an_exact_slice_of_its_document(corpus_docs):
    chunks = chunk_documents(corpus_docs.values(), load_settings())
    assert len(chunks) > 20
    for chunk in chunks:
        original = corpus_docs[chunk.doc_id].text
        assert chunk.text == original[chunk.start : chunk.end]
        assert chunk.sentences[0].start == chunk.start and chunk.sentences[-1].end == chunk.end
        for s in chunk.sentences:
            assert original[s.start : s.end].strip() == original[s.start : s.end]


def test_chunks_fit_the_token_budget_and_the_embedding_model(corpus_docs, embedder):
    settings = load_settings()
    chunks = chunk_documents(corpus_docs.values(), settings)
    from qa.chunking import token_counter

    count = token_counter(settings)
    assert max(count(c.text) for c in chunks) <= settings.chunk_tokens + 60  # one long sentence may overflow a little
    assert max(embedder.count_tokens(c.text) for c in chunks) < 500


def test_transcript_lines_are_merged_into_sentences_not_fragments(corpus_docs):
    doc = corpus_docs["china-llm-startups-overview-transcript.txt"]
    sentences = split_sentences(doc.text)
    lengths = [s.end - s.start for s in sentences]
    assert doc.text.count("\n") > 250  # one subtitle per line
    assert len(sentences) < doc.text.count("\n") / 1.5
    assert sum(lengths) / len(lengths) > 20


def test_script_normalization_folds_traditional_and_width():
    assert normalize("零一萬物預訓練團隊") == normalize("零一万物预训练团队") == "零一万物预训练团队"
    assert normalize("ＡＢＣ，１２３") == "abc,123"


@pytest.mark.parametrize("text, words", [("🙂🙂", False), ("？！…", False), ("👍 -- ##", False), ("Kimi?", True),
                                         ("零一万物", True), ("2024", True), ("Москва?", True), ("いつ？", True)])
def test_a_word_is_a_letter_or_digit_in_any_script(text, words):
    assert has_word_chars(text) is words


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    ids = [i for i, _ in fused]
    assert ids[0] == 1  # ranks 1 and 2
    assert ids[1] == 3  # ranks 3 and 1
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert set(ids) == {1, 2, 3, 4}
    weighted = reciprocal_rank_fusion([[1, 2], [2, 1]], k=60, weights=[2.0, 1.0])
    assert weighted[0][0] == 1


@pytest.mark.parametrize("question", ONE_AI_QUESTIONS)
def test_01ai_pretraining_question_cites_the_tongyi_passage(built_service, corpus_docs, question):
    answer = built_service.ask(question)
    assert not answer.abstained
    cited = " ".join(normalize(c.text) for c in answer.citations)
    assert "通义" in cited or "不再追求训练超级大模型" in cited, answer.text
    for c in answer.citations:
        assert corpus_docs[c.doc].text[c.start : c.end] == c.text
    for h in answer.hits:
        assert corpus_docs[h.chunk.doc_id].text[h.chunk.start : h.chunk.end] == h.chunk.text


def test_off_topic_question_abstains(built_service):
    answer = built_service.ask("What is the boiling point of water on Mars in Fahrenheit?")
    assert answer.abstained
    assert answer.citations == []
    assert "not found" in answer.text.lower()


def test_abstention_follows_the_threshold(built_service, tmp_path):
    strict = clone_service(built_service, tmp_path, abstain_threshold=5.0, verifier_threshold=1.0)
    for reader in ("heuristic", "neural"):  # the heuristic reader's own cut; the neural reader's answer verifier
        answer = strict.ask(ONE_AI_QUESTIONS[0], reader=reader)
        assert answer.abstained and answer.citations == [], reader
        assert answer.hits  # retrieval still happened; the evidence was judged too weak


def test_follow_up_question_uses_the_conversation(built_service):
    query = built_service.retrieval_query("and Baichuan?", ["why did 01.AI give up pretraining?"])
    assert "Baichuan" in query and "pretraining" in query and "01.AI" not in query
    answer = built_service.ask("and Baichuan?", history=["why did 01.AI give up pretraining?"])
    assert not answer.abstained
    assert any("百川" in c.text for c in answer.citations)


@pytest.mark.parametrize("previous, follow_up, standalone", [
    ("why did 01.AI give up pretraining?", "and Baichuan?", "why did Baichuan give up pretraining?"),
    ("零一萬物為什麼放棄預訓練？", "那百川呢？", "百川為什麼放棄預訓練？"),
    ("阶跃星辰的创始人是谁？", "那MiniMax呢？", "MiniMax的创始人是谁？"),
    ("How did Yi models yield returns?", "and Baichuan?", "How did Baichuan models yield returns?"),
])
def test_a_follow_up_naming_only_an_entity_swaps_it_into_the_last_question(built_service, previous, follow_up,
                                                                         standalone):
    # Latin names match as whole words: "Yi" is swapped, "yield" is left alone
    assert built_service.retrieval_query(follow_up, [previous]) == standalone


def test_a_follow_up_asking_more_keeps_its_own_words(built_service):
    query = built_service.retrieval_query("百川智能的融资情况呢？", ["why did 01.AI give up pretraining?"])
    assert query == "why did give up pretraining? 百川智能的融资情况呢？"


def test_the_chinese_follow_up_of_the_readme_is_answered_from_baichuan(built_service):
    answer = built_service.ask("那百川呢？", history=["零一萬物為什麼放棄預訓練？"])
    assert not answer.abstained
    assert "百川" in answer.citations[0].text


@pytest.mark.parametrize("question, follows", [
    ("百川呢？", True),  # short remainder beside an ending cue
    ("那百川智能怎么样？", True),  # leading cue
    ("百川智能的融资情况呢？", True),  # a known name beside an ending cue
    ("今天北京天气怎么样？", False),  # ends like a follow-up but names its own topic
    ("Where is Baichuan headquartered?", False),
    ("Who founded MiniMax?", False),  # three words, but it names its own subject
    ("Baichuan?", True),  # only a name: the same question about it
    ("How much?", True),  # too short to stand alone
])
def test_follow_up_cues(built_service, question, follows):
    previous = "why did 01.AI give up pretraining?"
    query = built_service.retrieval_query(question, [previous])
    assert (query != question) is follows, query


@pytest.mark.parametrize("bad", ["", "   \n\t ", "\x00\x01"])
def test_empty_questions_get_a_clear_error(built_service, bad):
    with pytest.raises(QuestionError, match="type a question"):
        built_service.ask(bad)


def test_huge_question_gets_a_clear_error(built_service):
    with pytest.raises(QuestionError, match="too long"):
        built_service.ask("零一万物" * 25_000)


def test_gbk_big5_and_utf16_files_decode_and_binary_is_refused():
    simplified, traditional = "零一万物的预训练团队加入了阿里。", "零一萬物的預訓練團隊加入了阿里。"
    assert decode_bytes(simplified.encode("gbk")) == simplified
    assert decode_bytes(traditional.encode("big5")) == traditional
    assert decode_bytes(traditional.encode("utf-16")) == traditional
    with pytest.raises(DocumentError, match="binary"):
        document_from_bytes("x.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DocumentError, match="empty"):
        document_from_bytes("x.txt", b"  \n ")


def test_incremental_reindex_embeds_only_changed_documents(built_service, tmp_path):
    service = clone_service(built_service, tmp_path)
    before = {c.doc_id: c.text for c in service.index.chunks}
    unchanged = service.reindex()
    assert (unchanged.embedded_chunks, unchanged.reused_documents) == (0, 2)

    (service.settings.corpus_dir / "new-company.txt").write_text("星河智算成立于2031年，总部位于苏州。", encoding="utf-8")
    added = service.reindex()
    assert (added.reused_documents, added.embedded_documents, added.embedded_chunks) == (2, 1, 1)
    assert {c.doc_id: c.text for c in service.index.chunks if c.doc_id in before} == before

    reloaded = load_index(service.settings.index_dir, service.settings)
    assert len(reloaded.chunks) == len(service.index.chunks)
    assert "星河智算" in service.ask("星河智算成立于哪一年？").text


def test_index_built_with_another_model_is_refused(built_service, tmp_path):
    service = clone_service(built_service, tmp_path)
    other = service.settings.with_overrides(embedding_model="BAAI/bge-m3")
    with pytest.raises(ModelMismatchError, match="rebuild"):
        load_index(service.settings.index_dir, other)


def test_cli_ask_json_has_the_documented_shape(built_service):
    settings = built_service.settings
    out = subprocess.run(
        [sys.executable, "-m", "qa.cli", "--corpus", str(settings.corpus_dir), "--index-dir", str(settings.index_dir),
         "ask", "--json", "why did 01.AI give up pretraining?"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"answer", "abstained", "citations", "hits"}
    assert data["citations"] and not data["abstained"]
    for item in data["citations"] + data["hits"]:
        assert set(item) >= {"doc", "start", "end", "text", "score"}
        text = (settings.corpus_dir / item["doc"]).read_text(encoding="utf-8")
        assert text[item["start"] : item["end"]] == item["text"]


def test_cli_rejects_empty_question_with_exit_code_2(built_service):
    settings = built_service.settings
    out = subprocess.run(
        [sys.executable, "-m", "qa.cli", "--corpus", str(settings.corpus_dir), "--index-dir", str(settings.index_dir), "ask", "  "],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert out.returncode == 2
    assert "type a question" in out.stderr


def test_open_notices_a_corpus_changed_behind_its_back(built_service, tmp_path):
    from qa.pipeline import QAService

    service = clone_service(built_service, tmp_path)
    (service.settings.corpus_dir / "late-arrival.txt").write_text("晨曦模型公司于2032年在杭州成立。", encoding="utf-8")
    reopened = QAService.open(service.settings)
    assert any("re-indexed 1 documents" in m for m in reopened.messages)
    assert "late-arrival.txt" in reopened.index.documents
    again = QAService.open(service.settings)
    assert again.messages == []


def test_question_about_a_year_the_documents_never_mention_abstains(built_service):
    answer = built_service.ask("What was OpenAI's revenue in 2030?")
    assert answer.abstained and "2030" in answer.notice
    assert not built_service.ask("How many winning bids did Zhipu AI have in 2024?").abstained
