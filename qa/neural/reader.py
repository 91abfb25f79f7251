"""The trained reader: reranks the candidates by the probability that each answers the question,
quotes the best span in bold inside its sentence, or abstains below a calibrated threshold."""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..messages import abstention_text, display, possibly_related_message
from ..settings import Settings
from ..text import fold_script, normalize
from ..types import Answer, Citation, Hit
from ..verifier import names_an_entity
from .encoder import EncodedText, LowerEncoder
from .model import ReaderModel
from .reading import read_passages
from .states import StateCache, StatefulEmbedder

log = logging.getLogger(__name__)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "reader.safetensors"
_EDGE_PUNCT = set(" \t\n\u3000，。、；：！？,.;:!?（）()「」『』“”\"'《》【】-—…")
_MODELS: dict[tuple[str, bool], ReaderModel] = {}
_MODELS_LOCK = threading.Lock()


def weights_path(settings: Settings) -> Path:
    return Path(settings.reader_weights) if settings.reader_weights else DEFAULT_WEIGHTS


def load_model(path: Path, int8: bool) -> ReaderModel:
    """Load (once per process) the reader weights; int8 dynamic quantization of the linear layers on request."""
    key = (str(path), int8)
    with _MODELS_LOCK:
        if key not in _MODELS:
            if not Path(path).exists():
                from ..protocols import ReaderUnavailableError

                raise ReaderUnavailableError(f"reader weights not found at {path}; rebuild them with `qa train` "
                                             "or use --reader heuristic")
            model = ReaderModel.load(path)
            if int8:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            _MODELS[key] = model.eval()
        return _MODELS[key]


class NeuralReader:
    """Two modes, chosen by `Settings.reader_rerank`:

    - span mode (default): the heuristic reader chooses the sentences (the answer verifier, in the pipeline,
      decides abstention), this model puts first the cited sentence where its best span scores highest and
      marks the answer span inside it;
    - rerank mode: this model's probability reorders the candidates and decides abstention. Its
      probability did not separate answer-bearing from answer-free passages on the validation split
      (CMRC 2018 dev decision accuracy 0.52, see MODEL_CARD.md), so this mode is not the default.
    """

    name = "neural"

    def __init__(self, settings: Settings, embedder, aliases=None, corpus_text=None):
        self.settings = settings
        self.reranks = bool(settings.reader_rerank)
        from ..reader import HeuristicReader

        # with the answer verifier on, the verifier decides abstention (qa/pipeline.py), not the sentence score
        sentence_settings = settings.with_overrides(abstain_threshold=float("-inf")) if settings.answer_verifier else settings
        self.sentences = HeuristicReader(embedder, aliases, sentence_settings, corpus_text=corpus_text)
        self.model = load_model(weights_path(settings), settings.reader_int8)
        self.lower_layers = int(self.model.config["lower_layers"])
        base = self._bundled(embedder, settings)
        self.lower = LowerEncoder.from_embedder(base, self.lower_layers)
        self.cache = StateCache()
        self._stateful = StatefulEmbedder(base, self.cache, self.lower_layers) if base is embedder else None

    @staticmethod
    def _bundled(embedder, settings: Settings):
        """The reader reads with the bundled e5; with another retrieval model it loads its own copy."""
        from ..settings import DEFAULT_MODEL

        if getattr(embedder, "model_id", None) == DEFAULT_MODEL and hasattr(embedder, "model"):
            return embedder
        from ..embedding import get_embedder

        return get_embedder(settings.with_overrides(embedding_model=DEFAULT_MODEL))

    def indexing_embedder(self, embedder):
        """The embedder build_index should use: the state-filling one when it is the reader's own e5."""
        return self._stateful if self._stateful is not None and embedder is self._stateful.inner else embedder

    # ---------------------------------------------------------------- reading
    def _passages(self, hits: list[Hit]) -> list[EncodedText]:
        out: list[EncodedText | None] = []
        missing = []
        for i, hit in enumerate(hits):
            ids, starts, ends = self.lower.tokenize(hit.chunk.text, "passage")
            cached = self.cache.get(fold_script(hit.chunk.text))
            if cached is not None and np.array_equal(cached[0], ids):
                out.append(EncodedText(ids, starts, ends, cached[1]))
            else:
                out.append(None)
                missing.append(i)
        if missing:
            for i, enc in zip(missing, self.lower.encode([hits[i].chunk.text for i in missing], "passage")):
                self.cache.put(fold_script(hits[i].chunk.text), enc.ids, enc.states)
                out[i] = enc
        return out  # type: ignore[return-value]

    def rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        """The same hits, reordered by the model's probability that each answers the question, each with its
        best span that is not only the question's own words (settings.span_runners_up)."""
        if not hits:
            return hits
        q = self.lower.encode([question], "query")[0]
        readings = read_passages(self.model, q, self._passages(hits), runners_up=self.settings.span_runners_up)
        entities = self.sentences.question_concepts(question)[1]
        for hit, r in zip(hits, readings):
            hit.reader_score = r.probability
            candidates = [(span, score) for span, score in _span_candidates(hit, r) if span is not None]
            chosen = next(((span, score) for span, score in candidates
                           if not _echoes_question(_span_text(hit, span), question, entities)),
                          candidates[0] if candidates else (None, None))
            hit.span, hit.span_score = chosen
            hit.span_gap = max(0.0, r.free_score - chosen[1]) if chosen[1] is not None else 0.0
        return sorted(hits, key=lambda h: -(h.reader_score or 0.0))

    def abstains_below(self, question: str) -> float:
        """Rerank mode: the probability under which this reader abstains by itself. Where the answer verifier
        judges the question (Chinese; English with settings.english_verifier) it decides instead (-inf here);
        English questions otherwise keep the reader's own cut (settings.reader_threshold_en)."""
        from ..loader import detect_script

        english = detect_script(question) == "en"
        if self.settings.answer_verifier and (not english or self.settings.english_verifier):
            return float("-inf")
        return self.settings.reader_threshold_en if english else self.settings.reader_threshold

    def read(self, question: str, hits: list[Hit], query_vector=None, titles: Callable[[str], str] | None = None) -> Answer:
        if not self.reranks:
            return self._read_spans(question, hits, query_vector, titles)
        if hits and hits[0].reader_score is None:
            hits = self.rerank(question, hits)
        threshold = self.abstains_below(question)
        confidence = float(hits[0].reader_score or 0.0) if hits else 0.0
        if not hits or confidence < threshold:
            return Answer(question=question, text=abstention_text(question, bool(hits)), abstained=True, hits=hits, confidence=confidence,
                          notice=f"reader confidence {confidence:.2f} is below the threshold {threshold:.2f}")
        floor = max(threshold, confidence - self.settings.reader_support_margin)
        chosen = [hits[0]] + [h for h in hits[1:] if h.reader_score is not None and h.reader_score >= floor]
        citations: list[Citation] = []
        for hit in chosen:
            citation = _sentence_citation(hit, titles)
            if any(c.doc == citation.doc and c.start < citation.end and citation.start < c.end for c in citations):
                continue
            citations.append(citation)
            if len(citations) >= self.settings.answer_sentences:
                break
        verification = ({"span_score": hits[0].span_score, "span_gap": hits[0].span_gap}
                        if hits[0].span_score is not None else {})
        return Answer(question=question, text=compose(citations), abstained=False, citations=citations, hits=hits,
                      confidence=confidence, verification=verification)


    def _read_spans(self, question: str, hits: list[Hit], query_vector, titles) -> Answer:
        """Span mode: the heuristic reader's sentences, with this model's answer span in bold in the first. The first
        is the cited sentence where the model's span scores best (settings.span_sentence_choice), and the span is
        never only the question's own words (settings.span_runners_up)."""
        answer = self.sentences.read(question, hits, query_vector, titles)
        if answer.abstained or not answer.citations:
            if answer.abstained and hits:
                answer.text += possibly_related_message(question, True)
            return answer
        q = self.lower.encode([question], "query")[0]  # once: the veto and the span read the same question states
        if self.settings.reader_verify:
            vetoed = self._verify(question, q, answer, hits)
            if vetoed is not None:
                return vetoed
        entities = self.sentences.question_concepts(question)[1]
        if self.settings.span_sentence_choice and len(answer.citations) > 1:
            answer.citations = self._by_span_score(q, answer.citations, hits, entities)
        first = answer.citations[0]
        hit = _holding(hits, first)
        if hit is not None:
            # read again with the runners-up: _by_span_score asked for the best span of each sentence only
            window = (first.start - hit.chunk.start, first.end - hit.chunk.start)
            r = read_passages(self.model, q, self._passages([hit]), windows=[window],
                              runners_up=self.settings.span_runners_up)[0]
            candidates = _span_candidates(hit, r)
            inside = [(x, score) for x, score in candidates if x is not None and first.start <= x[0] < x[1] <= first.end]
            if inside and inside[0] == candidates[0]:  # the best span lies in the cited sentence
                # signals for the answer verifier (qa/verifier.py): how sure the span head is inside the cited
                # sentence, and how much better a span elsewhere in the passage scores
                answer.verification = {"span_score": r.span_score, "span_gap": max(0.0, r.free_score - r.span_score)}
            span, inside_score = next(((x, score) for x, score in inside
                                       if not _echoes_question(_span_text(hit, x), question, entities)),
                                      inside[0] if inside else (None, None))
            if span is not None:
                first.span_start, first.span_end = span
                hit.span, hit.reader_score = span, r.probability
            if self.settings.span_free_choice:
                found = self._free_sentence(question, q, hit, first, inside_score, entities, titles)
                if found is not None:
                    moved, moved_score = found
                    answer.citations = [moved] + [c for c in answer.citations
                                                  if not (c.doc == moved.doc and c.start < moved.end and moved.start < c.end)]
                    answer.verification = {"span_score": moved_score, "span_gap": 0.0}
                    hit.span = (moved.span_start, moved.span_end)
                    answer.citations = answer.citations[: max(1, self.settings.answer_sentences)]
        answer.text = compose(answer.citations)
        return answer

    def _free_sentence(self, question: str, q: EncodedText, hit: Hit, first: Citation, inside_score: float | None,
                       entities, titles) -> tuple[Citation, float] | None:
        """The sentence of `hit` the model would quote instead of the cited `first`: the one holding its best span
        in the whole passage that lies inside one sentence and is not only the question's words, when that span
        beats the best span inside `first` (`inside_score`) by settings.span_free_margin logits, with that span's
        score; else None."""
        sentences = hit.chunk.sentences or []
        if not sentences:
            return None
        r = read_passages(self.model, q, self._passages([hit]), runners_up=self.settings.span_free_runners_up)[0]
        for span, score in _span_candidates(hit, r):
            if span is None:
                continue
            holder = next((x for x in sentences if x.start <= span[0] and span[1] <= x.end), None)
            if holder is None or _echoes_question(_span_text(hit, span), question, entities):
                continue
            start, end = max(holder.start, hit.chunk.start), min(holder.end, hit.chunk.end)
            if self._loses_entity(first.text, _span_text(hit, (start, end)), entities):
                continue
            if first.start <= span[0] and span[1] <= first.end:
                return None  # the model's best usable span is in the cited sentence already
            if inside_score is not None and score < inside_score + self.settings.span_free_margin:
                return None
            moved = Citation(doc=hit.chunk.doc_id, start=start, end=end, text=_span_text(hit, (start, end)),
                             score=first.score,
                             title=titles(hit.chunk.doc_id) if titles else "", chunk_id=hit.chunk.chunk_id,
                             span_start=span[0], span_end=span[1])
            return moved, score
        return None

    def _loses_entity(self, cited: str, candidate: str, entities: list[set[str]]) -> bool:
        """Whether quoting `candidate` before `cited` would drop the entity the question asks about
        (settings.span_keep_entity): `cited` names one of the question's entities and `candidate` none."""
        return (self.settings.span_keep_entity and names_an_entity(cited, entities)
                and not names_an_entity(candidate, entities))  # True for both when the question names none

    def _by_span_score(self, q: EncodedText, citations: list[Citation], hits: list[Hit],
                       entities: list[set[str]]) -> list[Citation]:
        """The cited sentences reordered so that the one where the model's best span scores highest comes first;
        the heuristic's first keeps a lead of `span_sentence_margin` logits (chosen on the validation sets), and
        a sentence that drops the question's entity never overtakes it (`_loses_entity`)."""
        located = [(c, h) for c in citations for h in [_holding(hits, c)] if h is not None
                   and (c is citations[0] or not self._loses_entity(citations[0].text, c.text, entities))]
        if len(located) < 2:
            return citations
        readings = read_passages(self.model, q, self._passages([h for _, h in located]),
                                 windows=[(c.start - h.chunk.start, c.end - h.chunk.start) for c, h in located])
        lead = self.settings.span_sentence_margin
        scored = [(r.span_score + (lead if c is citations[0] else 0.0), c) for (c, _), r in zip(located, readings)]
        best = max(scored, key=lambda x: x[0])[1]
        return [best] + [c for c in citations if c is not best]

    def _verify(self, question: str, q: EncodedText, answer: Answer, hits: list[Hit]) -> Answer | None:
        """The model's veto over the heuristic's answer: an abstention when none of the top passages answers.

        The best probability among the first `reader_verify_passages` hits becomes the answer's confidence;
        below `reader_threshold` (calibrated on validation data by `qa train`) the answer is withdrawn."""
        top = hits[: max(1, self.settings.reader_verify_passages)]
        readings = read_passages(self.model, q, self._passages(top))
        for hit, r in zip(top, readings):
            hit.reader_score = r.probability
        confidence = max(r.probability for r in readings)
        answer.confidence = confidence
        threshold = self.settings.reader_threshold
        if confidence >= threshold:
            return None
        return Answer(question=question, text=abstention_text(question, True),
                      abstained=True, hits=hits, confidence=confidence, reader=answer.reader,
                      notice=f"reader confidence {confidence:.2f} is below the threshold {threshold:.2f}")


def compose(citations: list[Citation]) -> str:
    """The answer text: each cited sentence with its marker [n]; the first one's span in **bold**."""
    parts = []
    for n, c in enumerate(citations, 1):
        if n == 1 and c.span_start is not None and c.span_end is not None:
            a, b = c.span_start - c.start, c.span_end - c.start
            parts.append(f"{display(c.text[:a])}**{display(c.text[a:b])}**{display(c.text[b:])} [{n}]")
        else:
            parts.append(f"{display(c.text)} [{n}]")
    return " ".join(parts)


def _holding(hits: list[Hit], citation: Citation) -> Hit | None:
    return next((h for h in hits if h.chunk.doc_id == citation.doc and h.chunk.start <= citation.start
                 and citation.end <= h.chunk.end), None)


def _compact(text: str) -> str:
    return "".join(normalize(text).split())


def _echoes_question(span: str, question: str, entities: list[set[str]]) -> bool:
    """A span made only of the question's own words ("MiniMax" for "Who founded MiniMax?", 阶跃星辰 for "Who
    is the CEO of StepFun?" through its alias group) names what is asked about, not the answer."""
    text = _compact(span)
    return not text or text in _compact(question) or any(text in _compact(name) for group in entities for name in group)


def _span_candidates(hit: Hit, reading) -> list[tuple[tuple[int, int] | None, float]]:
    """A reading's best span and its runners-up, best first, as trimmed absolute offsets (None where trimming leaves
    nothing) with their scores: what span mode, rerank mode and the free sentence choice pick from."""
    return [(_trim(hit.chunk.text, a, b, hit.chunk.start), score)
            for a, b, score in [(reading.start, reading.end, reading.span_score)] + reading.runners_up]


def _span_text(hit: Hit, span: tuple[int, int]) -> str:
    return hit.chunk.text[span[0] - hit.chunk.start : span[1] - hit.chunk.start]


def _trim(text: str, start: int, end: int, offset: int) -> tuple[int, int] | None:
    """Span without edge punctuation or spaces (bold markers next to them render badly), as absolute offsets."""
    while start < end and text[start] in _EDGE_PUNCT:
        start += 1
    while end > start and text[end - 1] in _EDGE_PUNCT:
        end -= 1
    return (offset + start, offset + end) if end > start else None


def _sentence_citation(hit: Hit, titles) -> Citation:
    """The sentence(s) of the chunk around the hit's span (the whole chunk's first sentence if no span)."""
    chunk = hit.chunk
    sentences = chunk.sentences or []
    if hit.span is not None and sentences:
        s, e = hit.span
        inside = [x for x in sentences if x.start < e and s < x.end] or [min(sentences, key=lambda x: abs(x.start - s))]
        start, end = min(x.start for x in inside), max(x.end for x in inside)
    elif sentences:
        start, end = sentences[0].start, sentences[0].end
    else:
        start, end = chunk.start, chunk.end
    text = chunk.text[start - chunk.start : end - chunk.start]
    span = hit.span if hit.span is not None and start <= hit.span[0] and hit.span[1] <= end else None
    return Citation(doc=chunk.doc_id, start=start, end=end, text=text, score=float(hit.reader_score or 0.0),
                    title=titles(chunk.doc_id) if titles else "", chunk_id=chunk.chunk_id,
                    span_start=span[0] if span else None, span_end=span[1] if span else None)


def make_reader(settings: Settings, embedder, aliases=None, corpus_text=None) -> NeuralReader:
    return NeuralReader(settings, embedder, aliases, corpus_text=corpus_text)
