"""QAService.ask drives any Reader (qa/protocols.py): checks -> rerank -> read, over the real built-in index."""

from __future__ import annotations

import numpy as np
import pytest

from qa.pipeline import QAService, ReaderUnavailableError, make_reader
from qa.protocols import Reader
from qa.types import Answer, Citation, Hit

from conftest import clone_service

QUESTION = "零一万物为什么放弃预训练？"


class ShortestFirstReader:
    """Scores each hit by a fixed rule (shorter chunks first, then by chunk id) and quotes the top one."""

    name = "fixed-rule"
    reranks = True

    def __init__(self):
        self.reranked: list[list[Hit]] = []
        self.read_calls: list[list[Hit]] = []

    @staticmethod
    def rule(hit: Hit) -> float:
        return -(len(hit.chunk.text) + hit.chunk.chunk_id / 1e6)

    def rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        self.reranked.append(list(hits))
        for hit in hits:
            hit.reader_score = self.rule(hit)
        return sorted(hits, key=lambda h: -h.reader_score)

    def read(self, question: str, hits: list[Hit], query_vector: np.ndarray, titles=None) -> Answer:
        self.read_calls.append(list(hits))
        top = hits[0]
        start = top.chunk.start + 2
        citation = Citation(doc=top.chunk.doc_id, start=top.chunk.start, end=top.chunk.end, text=top.chunk.text,
                            score=top.reader_score, span_start=start, span_end=start + 3)
        return Answer(question=question, text=f"{top.chunk.text} [1]", abstained=False, citations=[citation],
                      hits=hits, confidence=top.reader_score, reader=self.name)


@pytest.fixture()
def service(built_service, tmp_path):
    clone = clone_service(built_service, tmp_path, reader_candidates=12)
    clone.install_reader(ShortestFirstReader())
    return clone


def test_fake_reader_implements_the_protocol():
    assert isinstance(ShortestFirstReader(), Reader)


def test_ask_reranks_candidates_with_the_reader(service):
    fake = service.reader_for("fixed-rule")
    answer = service.ask(QUESTION, top_k=3, reader="fixed-rule")
    # the reader saw max(top_k, reader_candidates) fused hits, in fusion order
    assert len(fake.reranked) == 1 and len(fake.reranked[0]) == 12
    fused = [h.chunk.chunk_id for h in service.ask(QUESTION, top_k=12, reader="heuristic").hits]
    assert [h.chunk.chunk_id for h in fake.reranked[0]] == fused
    # the answer keeps the top_k after reranking, in the reader's order, with its scores
    expected = sorted(fake.reranked[0], key=lambda h: -ShortestFirstReader.rule(h))[:3]
    assert [h.chunk.chunk_id for h in answer.hits] == [h.chunk.chunk_id for h in expected]
    assert [h.chunk.chunk_id for h in answer.hits] != fused[:3]  # the rule really changed the order
    assert all(h.reader_score == ShortestFirstReader.rule(h) for h in answer.hits)
    assert [h.chunk.chunk_id for h in fake.read_calls[0]][:3] == [h.chunk.chunk_id for h in answer.hits]
    assert answer.reader == "fixed-rule" and answer.confidence == answer.hits[0].reader_score
    data = answer.to_json_dict()
    assert data["reader"] == "fixed-rule" and data["hits"][0]["reader_score"] is not None
    cited = data["citations"][0]
    assert cited["span_text"] == answer.hits[0].chunk.text[2:5] and cited["span_end"] - cited["span_start"] == 3


def test_settings_reader_selects_the_reader_and_rerank_false_keeps_fusion_order(service):
    service.settings = service.settings.with_overrides(reader="fixed-rule")
    assert service.ask(QUESTION, top_k=3).reader == "fixed-rule"
    plain = service.ask(QUESTION, top_k=3, rerank=False)
    assert all(h.reader_score is None for h in plain.hits)
    assert [h.chunk.chunk_id for h in plain.hits] == [h.chunk.chunk_id for h in
                                                       service.ask(QUESTION, top_k=3, reader="heuristic").hits]


def test_number_check_runs_before_any_reader(service):
    fake = service.reader_for("fixed-rule")
    answer = service.ask("What was 01.AI's revenue in 2087?", reader="fixed-rule")
    assert answer.abstained and "2087" in answer.notice and answer.reader == "fixed-rule"
    assert fake.reranked == [] and fake.read_calls == []


def test_heuristic_reader_is_identity_rerank(built_service):
    answer = built_service.ask(QUESTION, top_k=3, reader="heuristic")
    assert answer.reader == "heuristic" and not answer.abstained
    assert answer.confidence == pytest.approx(answer.citations[0].score)
    assert all(h.reader_score is None and h.span is None for h in answer.hits)
    assert all(c.span_start is None and c.span_text is None for c in answer.citations)
    reader = built_service.reader_for("heuristic")
    assert reader.rerank(QUESTION, answer.hits) is answer.hits


def test_neural_reader_missing_is_a_clear_error(built_service, monkeypatch):
    import sys

    import qa.neural

    monkeypatch.setitem(sys.modules, "qa.neural.reader", None)
    monkeypatch.delattr(qa.neural, "reader", raising=False)
    with pytest.raises(ReaderUnavailableError, match="neural reader is not available"):
        make_reader(built_service.settings.with_overrides(reader="neural"), built_service.embedder, built_service.aliases)
    with pytest.raises(ReaderUnavailableError, match="Unknown reader"):
        make_reader(built_service.settings.with_overrides(reader="bogus"), built_service.embedder, built_service.aliases)


def test_cli_reader_option_fails_clearly_without_the_neural_module(built_service, monkeypatch, capsys):
    import sys

    from qa import cli

    import qa.neural

    monkeypatch.setitem(sys.modules, "qa.neural.reader", None)
    monkeypatch.delattr(qa.neural, "reader", raising=False)
    dirs = ["--corpus", str(built_service.settings.corpus_dir), "--index-dir", str(built_service.settings.index_dir)]
    assert cli.main(dirs + ["--reader", "neural", "ask", QUESTION]) == 2
    assert "neural reader is not available" in capsys.readouterr().err
    assert cli.main(dirs + ["--reader", "heuristic", "ask", "--json", QUESTION]) == 0
    out = __import__("json").loads(capsys.readouterr().out)
    assert out["reader"] == "heuristic" and out["confidence"] > 0 and "span_text" in out["citations"][0]
