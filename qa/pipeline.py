"""The question-answering service: owns the index, answers questions, adds documents.

One instance serves the CLI, the Gradio app and the evaluator. The active index is swapped
under a lock, so questions keep being answered while a new document is being indexed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import Iterator

from .aliases import AliasLexicon
from .checks import english_absent_notice, unanswerable_notice, wordless_notice
from .conversation import rewrite_query
from .loader import DocumentError, detect_script, document_from_bytes, load_corpus, load_metadata
from .messages import abstention_text, not_found_message
from .protocols import Embedder, Reader, ReaderUnavailableError
from .ingest.corpus import extraction_cache, load_documents
from .layout import annotate_answer
from .retriever import HybridRetriever
from .settings import READERS, Settings, load_settings
from .stores import open_index
from .stores.base import IndexCorruptError, IndexMissingError, IndexView, Progress
from .stores.faiss_store import build_index, save_index
from .text import strip_control
from .types import Answer, Document, Hit
from .verifier import AnswerVerifier, VerifierSet, evidence_features, load_verifier, question_concepts

log = logging.getLogger(__name__)


def _withdrawn(answer: Answer, threshold: float, measure: str) -> Answer:
    """An abstention after reading: "not found", the passages kept as possibly related, no citation."""
    return Answer(question=answer.question, text=abstention_text(answer.question, bool(answer.hits)), abstained=True,
                  hits=answer.hits, confidence=answer.confidence, reader=answer.reader, verification=answer.verification,
                  notice=f"{measure} {answer.confidence:.2f} is below the threshold {threshold:.2f}")


class QuestionError(ValueError):
    """A question that cannot be asked; the message is meant for the user."""


@dataclass
class IndexReport:
    documents: int
    chunks: int
    reused_documents: int
    embedded_documents: int
    embedded_chunks: int
    seconds: float
    problems: list[str]
    message: str = ""


def clean_question(question: str | None, settings: Settings) -> str:
    text = strip_control(question or "").strip()
    if not text:
        raise QuestionError("Please type a question.")
    if len(text) > settings.max_question_chars:
        raise QuestionError(f"The question is too long ({len(text):,} characters; the limit is "
                            f"{settings.max_question_chars:,}). Please shorten it.")
    return text


_UNSAFE_NAME = re.compile(r"[^\w.\- ()\u3000-\u9fff]+")


def safe_file_name(name: str) -> str:
    """A plain file name for corpus/: no folders, no traversal, no hidden or control characters."""
    base = unicodedata.normalize("NFC", os.path.basename(str(name).replace("\\", "/"))).strip()
    base = _UNSAFE_NAME.sub("_", base).lstrip(".").strip()
    if not base or base in {".", ".."}:
        raise DocumentError(f"{name!r}: not a usable file name")
    return base[:120]


def make_reader(settings: Settings, embedder: Embedder, aliases: AliasLexicon, corpus_text=None) -> Reader:
    """The Reader named by `settings.reader`. `corpus_text`: optional callable returning the active
    corpus's normalized text (the heuristic reader's unknown-term penalty uses it).

    "neural" loads `qa.neural.reader`: its `make_reader(settings, embedder, aliases)` if it has one,
    else `NeuralReader(settings, embedder, aliases)`.
    """
    name = settings.reader
    if name == "heuristic":
        from .reader import HeuristicReader

        return HeuristicReader(embedder, aliases, settings, corpus_text=corpus_text)
    if name == "neural":
        try:
            from .neural import reader as neural
        except ImportError as exc:
            raise ReaderUnavailableError(
                f"The neural reader is not available ({type(exc).__name__}: {exc}): qa.neural.reader cannot be "
                f"imported. Use --reader heuristic (or QA_READER=heuristic).") from exc
        factory = getattr(neural, "make_reader", None)
        if factory is not None:
            return factory(settings, embedder, aliases, corpus_text=corpus_text)
        if not hasattr(neural, "NeuralReader"):
            raise ReaderUnavailableError("qa.neural.reader defines neither make_reader() nor NeuralReader; "
                                         "use --reader heuristic (or QA_READER=heuristic).")
        return neural.NeuralReader(settings, embedder, aliases)
    raise ReaderUnavailableError(f"Unknown reader {name!r}; choose one of {', '.join(READERS)}.")


class QAService:
    def __init__(self, settings: Settings | None = None, index: IndexView | None = None,
                 embedder: Embedder | None = None):
        self.settings = settings or load_settings()
        self._embedder = embedder
        self.aliases = AliasLexicon.load(self.settings.corpus_dir)
        self.index = index
        self.messages: list[str] = []  # what happened at start-up (rebuilds, skipped files)
        self._lock = threading.RLock()  # guards index swaps and corpus writes
        self._readers: dict[str, tuple[Settings, AliasLexicon, Reader]] = {}
        self._installed: dict[str, Reader] = {}  # readers given as objects (tests, notebooks)
        self.extracted_cache: dict[str, Document] = {}  # file fingerprint -> extracted upload, not extracted twice
        self._checked = time.monotonic()  # when a shared (Milvus) index was last compared with the database
        self._verifier: tuple[Settings, VerifierSet] | None = None
        self._installed_verifier: VerifierSet | None = None  # given as an object (training, tests)

    # ------------------------------------------------------------ set-up
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from .embedding import get_embedder

            self._embedder = get_embedder(self.settings)
        return self._embedder

    @classmethod
    def open(cls, settings: Settings | None = None, build_if_missing: bool = True, progress: Progress | None = None) -> "QAService":
        """Load the persisted index; build it if missing, rebuild it (with a message) if corrupted.

        A model mismatch is not repaired silently: it raises ModelMismatchError telling the user to rebuild.
        """
        service = cls(settings)
        try:
            service.index = open_index(service.settings)
        except IndexMissingError:
            if not build_if_missing:
                raise
            service.messages.append("No index yet: building it from the corpus.")
            service.reindex(progress=progress)
        except IndexCorruptError as exc:
            if not build_if_missing:
                raise
            service.messages.append(f"{exc}. Rebuilt the index from the corpus.")
            log.warning("%s; rebuilding", exc)
            service.reindex(rebuild=True, progress=progress)
        else:
            if build_if_missing and service.index_is_stale():
                report = service.reindex(progress=progress)
                service.messages.append(f"The corpus or chunking settings changed since the last build: re-indexed "
                                        f"{report.embedded_documents} documents, reused {report.reused_documents}.")
        return service

    def index_is_stale(self) -> bool:
        """True when corpus/ files or chunking settings differ from what the active index was built from."""
        from .stores.base import chunking_signature

        if self.index is None or self.index.manifest.get("chunking") != chunking_signature(self.settings):
            return True
        if self.index.manifest.get("embedding_backend", "torch") != getattr(self.embedder, "backend", "torch"):
            return True  # e.g. built with torch, now ONNX int8 (qa/fast_embed.py): vectors and states are re-made
        documents, _ = self.load_documents()
        built = {doc_id: meta.get("hash") for doc_id, meta in self.index.documents.items()}
        return built != {d.doc_id: d.content_hash for d in documents}

    def reindex(self, rebuild: bool = False, progress: Progress | None = None) -> IndexReport:
        """Index corpus/ incrementally (unchanged documents keep their vectors) and persist atomically."""
        with self._lock:
            started = time.perf_counter()
            documents, problems = self.load_documents(reuse_extraction=not rebuild)
            report = self._install(documents, None if rebuild else self.index, progress, rebuild=rebuild)
            self.extracted_cache.clear()  # now kept with the index
            report.problems = problems
            report.seconds = round(time.perf_counter() - started, 3)
            self.aliases = AliasLexicon.load(self.settings.corpus_dir)
            return report

    def load_documents(self, reuse_extraction: bool = True) -> tuple[list[Document], list[str]]:
        """The corpus folder's documents; files whose bytes are unchanged are not extracted again."""
        cache = extraction_cache(self.index.texts if self.index is not None else None, self.extracted_cache) if reuse_extraction else {}
        return load_documents(self.settings, cache)

    def index_documents(self, documents: list[Document], persist: bool = False, progress: Progress | None = None) -> IndexReport:
        """Index in-memory documents (benchmarks): replaces the active index, persisted only if asked."""
        with self._lock:
            return self._install(documents, None, progress, persist=persist)

    def _install(self, documents, previous, progress, persist: bool = True, rebuild: bool = False) -> IndexReport:
        started = time.perf_counter()
        if persist and self.settings.store == "milvus":  # incremental, document by document, in the database
            from .stores.milvus_index import sync_milvus

            store = previous.store if getattr(previous, "store_name", "") == "milvus" else None
            index, stats = sync_milvus(documents, self.settings, self._indexing_embedder(), rebuild=rebuild,
                                       previous=previous, progress=progress, store=store)
        else:
            index, stats = build_index(documents, self.settings, self._indexing_embedder(), previous, progress)
            if persist:
                save_index(index, self.settings.index_dir)
        self.index = index
        self._checked = time.monotonic()
        return IndexReport(len(documents), len(index.chunks), stats["reused_documents"], stats["embedded_documents"],
                           stats["embedded_chunks"], round(time.perf_counter() - started, 3), [])

    def _indexing_embedder(self) -> Embedder:
        """The configured reader may fill its passage states during the embedding pass (qa/neural/states.py)."""
        if self.settings.reader == "heuristic":
            return self.embedder
        wrap = getattr(self.reader_for(self.settings.reader), "indexing_embedder", None)
        return wrap(self.embedder) if wrap is not None else self.embedder

    # ------------------------------------------------------------ documents
    def add_document(self, name: str, data: bytes, progress: Progress | None = None) -> IndexReport:
        """Validate an uploaded file, store it in corpus/ and index it; nothing changes if it is rejected."""
        from .documents import DocumentLibrary

        report = DocumentLibrary(self).add_files([(safe_file_name(name), data)], progress)
        outcome = report.outcomes[0]
        if outcome.status in ("refused", "skipped"):
            raise DocumentError(f"{outcome.name}: {outcome.reason}")
        verb = "Replaced the earlier version of" if outcome.status == "replaced" else "Added"
        message = f"{verb} {outcome.name}: {report.embedded_chunks} new passages indexed ({report.chunks} in total)."
        if outcome.duplicate_of:
            message += f" Note: it {outcome.reason}."
        report.index.message = message
        return report.index

    def status(self) -> dict:
        if self.index is None:
            return {"documents": 0, "chunks": 0, "model": self.settings.embedding_model, "built_at": "never"}
        return self.index.status()

    # ------------------------------------------------------------ questions
    def retrieval_query(self, question: str, history: list[str] | None = None) -> str:
        return rewrite_query(question, [h for h in (history or []) if h and h.strip()], self.aliases)

    def ask(self, question: str, history: list[str] | None = None, top_k: int | None = None,
            retrieval_mode: str = "hybrid", reader: str | None = None, rerank: bool = True,
            exclude_doc: str | None = None) -> Answer:
        """Answer with quoted, cited sentences, or abstain. Raises QuestionError for unusable input.

        retrieve -> checks for any reader (qa/checks.py) -> reader.rerank -> reader.read. A reranking reader
        sees max(top_k, reader_candidates) fused hits; the answer keeps the top_k after reranking.
        `reader` overrides settings.reader for this question; `rerank=False` keeps the retrieval order
        (the eval's pure retrieval baselines).
        """
        text = clean_question(question, self.settings)
        index = self.current_index()  # one reference for the whole question; re-indexing swaps in a new object
        if index is None:
            raise QuestionError("The index is not built yet; run `qa index` first.")
        chosen = self.reader_for(reader or self.settings.reader)
        wordless = wordless_notice(text)
        if wordless is not None:  # "🙂🙂": not found, and no passage shown as possibly related
            return Answer(question=text, text=not_found_message(text), abstained=True, notice=wordless,
                          query=text, reader=chosen.name)
        k = top_k or self.settings.top_k
        reranking = rerank and chosen.reranks
        query = self.retrieval_query(text, history)
        retriever = HybridRetriever(index, self.embedder, self.aliases, self.settings)
        vector = retriever.embed_query(query)
        wanted = max(k, self.settings.reader_candidates) if reranking else k
        if exclude_doc is None:
            hits = retriever.retrieve(query, wanted, mode=retrieval_mode, query_vector=vector)
        else:  # evaluation's "answer removed" setting: as if that document were not indexed
            own = sum(c.doc_id == exclude_doc for c in index.chunks)
            hits = [h for h in retriever.retrieve(query, wanted + own, mode=retrieval_mode, query_vector=vector)
                    if h.chunk.doc_id != exclude_doc][:wanted]
        asked = text if query == text else query
        corpus_text = index.normalized_text_without(exclude_doc)
        notice = unanswerable_notice(asked, corpus_text)
        if (notice is None and corpus_text is not None and self.settings.english_absent_terms
                and self.settings.english_dictionary and detect_script(asked) == "en"):
            notice = english_absent_notice(asked, corpus_text, self.aliases, index)
        if notice is not None:
            answer = Answer(question=asked, text=abstention_text(asked, bool(hits)),
                            abstained=True, hits=hits[:k], notice=notice)
        else:
            if reranking:
                hits = chosen.rerank(asked, hits)
            answer = chosen.read(asked, hits, vector, index.title)
            verifiers = self.verifier if chosen.name == "neural" else None
            if verifiers is not None and not answer.abstained and answer.citations:
                verifier = verifiers.for_question(asked)
                if verifier is not None:  # P(answered) replaces the reader's score as the answer's confidence
                    answer.verification = evidence_features(asked, answer, hits, question_concepts(asked, self.aliases),
                                                            corpus_text)
                    answer.confidence = verifier.probability(answer.verification)
                    cut, measure = verifier.threshold, "answer verifier: P(answered)"
                elif reranking:  # outside its languages, a reranking reader has applied its own cut already
                    cut, measure = float("-inf"), "reader probability"
                else:  # outside its languages: the evidence score's cut
                    cut, measure = self.settings.abstain_threshold, "evidence score"
                if answer.confidence < cut:
                    answer = _withdrawn(answer, cut, measure)
            answer.hits = hits[:k]
        answer.question, answer.query, answer.reader = text, query, chosen.name
        answer = annotate_answer(answer, index.texts)
        answer.english = self.english_for(answer, index)
        return answer

    def english_for(self, answer: Answer, index: IndexView | None = None) -> str:
        """For an English question, the answer's English rendering (qa/gloss.py: lexicon, CC-CEDICT, pinyin,
        number rules); "" for other questions and for abstentions."""
        from .gloss import english_summary

        index = index or self.index
        titles = index.title if index is not None else None
        try:
            return english_summary(answer, answer.question, titles, self.aliases) or ""
        except Exception:  # the English line is an addition: the answer is still given without it
            log.exception("could not render the answer in English")
            return ""

    def retrieve(self, query: str, top_k: int | None = None, documents: Collection[str] | None = None) -> list[Hit]:
        """The passages a question is answered from, without reading them (the HTTP API's /v1/retrieval).

        The same retrieval as `ask` (hybrid, de-duplicated; reranked, with reader_score set, when the configured
        reader reranks), on the query as given (no follow-up rewriting), optionally only from some documents.
        Raises QuestionError for unusable input.
        """
        text = clean_question(query, self.settings)
        index = self.current_index()
        if index is None:
            raise QuestionError("The index is not built yet; run `qa index` first.")
        k = top_k or self.settings.top_k
        reader = self.reader_for(self.settings.reader)
        wanted = max(k, self.settings.reader_candidates) if reader.reranks else k
        hits = HybridRetriever(index, self.embedder, self.aliases, self.settings).retrieve(text, wanted, documents=documents)
        if reader.reranks:
            hits = reader.rerank(text, hits)
        return hits[:k]

    @property
    def verifier(self) -> VerifierSet | None:
        """The trained answer verifiers (settings.answer_verifier), loaded once per settings; None when switched off."""
        if self._installed_verifier is not None:
            return self._installed_verifier
        if not self.settings.answer_verifier:
            return None
        if self._verifier is None or self._verifier[0] != self.settings:
            try:
                self._verifier = (self.settings, load_verifier(self.settings))
            except FileNotFoundError as exc:
                raise ReaderUnavailableError(str(exc)) from None
        return self._verifier[1]

    def current_index(self) -> IndexView | None:
        """The active index; a shared Milvus index is compared with the database at most every
        `milvus_refresh_s` seconds and re-read when another process added or removed documents."""
        index = self.index
        if getattr(index, "store_name", "") != "milvus" or time.monotonic() - self._checked < self.settings.milvus_refresh_s:
            return index
        with self._lock:
            self._checked = time.monotonic()
            try:
                if self.index is index and index.store.read_manifest()["documents"] != index.documents:
                    from .stores.milvus_index import load_milvus_index

                    self.index = load_milvus_index(self.settings, index.store)
                    log.info("the Milvus index changed in another process: %d passages now", len(self.index.chunks))
            except Exception as exc:  # e.g. another process is rebuilding: keep answering from what we have
                log.warning("could not re-read the Milvus index (%s); answering from the copy read earlier", exc)
            return self.index

    @property
    def reader(self) -> Reader:
        """The configured reader (settings.reader)."""
        return self.reader_for(self.settings.reader)

    def install_verifier(self, verifier: AnswerVerifier | VerifierSet | None) -> None:
        """Use this verifier (or set of them) for the neural reader's answers (None: back to settings.answer_verifier)."""
        self._installed_verifier = None if verifier is None else VerifierSet.of(verifier)

    def install_reader(self, reader: Reader) -> None:
        """Use this Reader object for questions asking for `reader.name` (also as settings.reader)."""
        self._installed[reader.name] = reader

    def reader_for(self, name: str) -> Reader:
        """One reader per name, rebuilt only when settings or aliases change (the heuristic reader's
        sentence-vector cache survives re-indexing)."""
        if name in self._installed:
            return self._installed[name]
        cached = self._readers.get(name)
        if cached is None or cached[0] != self.settings or cached[1] != self.aliases:
            settings = self.settings if name == self.settings.reader else self.settings.with_overrides(reader=name)
            reader = make_reader(settings, self.embedder, self.aliases, corpus_text=self._corpus_text)
            self._readers[name] = (self.settings, self.aliases, reader)
            return reader
        return cached[2]

    def _corpus_text(self) -> str | None:
        index = self.index
        return index.normalized_text if index is not None else None

    @property
    def llm_configured(self) -> bool:
        return bool(self.settings.llm_base_url and self.settings.llm_model)

    def ask_stream(self, question: str, history: list[str] | None = None, top_k: int | None = None,
                   answer_mode: str = "extractive") -> Iterator[tuple[str, Answer | None]]:
        """Yields (growing partial answer text, None) pairs, then (full text, Answer).

        answer_mode "llm" asks the configured local LLM (qa/llm.py) and falls back to the
        extractive answer, with a notice, when it is not configured, fails or cites nothing valid.
        """
        answer = self.ask(question, history, top_k)
        if answer_mode == "llm" and not answer.abstained:
            if not self.llm_configured:
                answer.notice = "No LLM is configured (set QA_LLM_BASE_URL and QA_LLM_MODEL); showing the extractive answer."
                answer.mode = "extractive-fallback"
            else:
                from .llm import llm_answer_stream

                texts = self.index.texts
                for partial, final in llm_answer_stream(answer, self.settings, titles=self.index.title):
                    if final is not None:  # its citations are the LLM's: the English is made again for them
                        final = annotate_answer(final, texts)
                        final.english = self.english_for(final)
                    yield partial, final
                return
        for end in range(8, len(answer.text), 8):
            yield answer.text[:end], None
        yield answer.text, answer
