"""Running systems: one `QAService.ask` per question and system, turned into EvalRecords.

A system is a retrieval mode plus a reader. "hybrid+<reader>" is the deployed pipeline (hybrid
retrieval, then the reader's rerank and read) for each reader of --readers; with --baselines,
"sparse" (BM25 over jieba tokens) and "dense" (e5 only) -- and plain "hybrid" when the first reader
reranks -- are pure retrieval rankings (no reranking), answered by the first reader.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .args import UsageError
from .metrics import EvalRecord, evaluate_by_slice, per_record
from .questions import EvalQuestion

BASELINES = ("sparse", "dense", "hybrid")  # display order of the retrieval baselines
BASE_LABELS = {"sparse": "BM25 (jieba)", "dense": "dense (e5)", "hybrid": "hybrid (RRF)"}
_CITATION = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class System:
    key: str  # "sparse" | "dense" | "hybrid" | "hybrid+<reader>"
    mode: str  # retrieval mode
    reader: str
    rerank: bool  # False: the pure retrieval order (baselines)


def system_label(key: str) -> str:
    """"BM25 (jieba)", "hybrid (RRF) + heuristic", ... for tables and plots."""
    mode, _, reader = key.partition("+")
    base = BASE_LABELS.get(mode, mode)
    return f"{base} + {reader}" if reader else base


def plan_systems(readers: Sequence[str], baselines: bool, first_reranks: bool) -> list[System]:
    """The systems in run order: the deployed pipelines first (their latency is measured with a cold cache)."""
    systems = [System(f"hybrid+{r}", "hybrid", r, True) for r in readers]
    if baselines:
        if first_reranks:  # otherwise plain hybrid == hybrid+<first reader>
            systems.append(System("hybrid", "hybrid", readers[0], False))
        systems += [System("dense", "dense", readers[0], False), System("sparse", "sparse", readers[0], False)]
    return systems


def display_order(keys) -> list[str]:
    keys = list(keys)
    return [k for k in BASELINES if k in keys] + [k for k in keys if k not in BASELINES]


def check_readers(service, readers: Sequence[str]) -> bool:
    """Load every reader up front (a clear usage error when one is unavailable); True when the first reranks."""
    from ..pipeline import ReaderUnavailableError

    try:
        loaded = [service.reader_for(name) for name in readers]
    except ReaderUnavailableError as exc:
        raise UsageError(str(exc)) from None
    return bool(loaded[0].reranks)


def open_current(settings):
    """QAService.open (which re-indexes when corpus/ or the chunker changed since the last build), with its notes."""
    from ..pipeline import QAService

    service = QAService.open(settings)
    for message in service.messages:
        print(f"note: {message}", file=sys.stderr)
    return service


def answer_text(text: str) -> str:
    """The answer without its citation markers "[n]" and the reader's bold markers "**" (not part of the quoted text)."""
    return _CITATION.sub("", text or "").replace("**", "").strip()


def ask_record(service, question: EvalQuestion, mode: str, top_k: int, source_doc: str | None = None,
               reader: str | None = None, rerank: bool = True) -> EvalRecord:
    from ..pipeline import QuestionError

    started = time.perf_counter()
    try:
        answer = service.ask(question.question, top_k=top_k, retrieval_mode=mode, reader=reader, rerank=rerank)
    except QuestionError:
        return EvalRecord(question, [], "", True, time.perf_counter() - started, [] if source_doc else None)
    latency = time.perf_counter() - started
    hits = answer.hits
    relevant = [h.chunk.doc_id == source_doc for h in hits] if source_doc is not None else None
    cited = next((c for c in answer.citations if c.span_start is not None and c.span_end is not None), None)
    short = cited.text[cited.span_start - cited.start : cited.span_end - cited.start] if cited else None
    return EvalRecord(question=question, retrieved=[h.chunk.text for h in hits],
                      answer="" if answer.abstained else answer_text(answer.text), abstained=answer.abstained,
                      latency_s=latency, relevant=relevant,
                      passage_ids=[f"{h.chunk.doc_id}:{h.chunk.start}-{h.chunk.end}" for h in hits],
                      span=(cited.doc, cited.span_start, cited.span_end) if cited and not answer.abstained else None,
                      confidence=float(answer.confidence), short_answer=None if answer.abstained else short)


def run_systems(service, questions: Sequence[EvalQuestion], systems: Sequence[System], ks: Sequence[int],
                source: dict[str, str] | None = None, progress: bool = True) -> dict[str, list[EvalRecord]]:
    """One record per question and system; the systems run one after the other in the given order."""
    from tqdm import tqdm

    top_k = max(max(ks), 10)
    records: dict[str, list[EvalRecord]] = {}
    for system in systems:
        bar = tqdm(questions, desc=f"asking ({system.key})", unit="q", file=sys.stderr, mininterval=10,
                   disable=not progress or not questions)
        records[system.key] = [ask_record(service, q, system.mode, top_k, source.get(q.id) if source else None,
                                          reader=system.reader, rerank=system.rerank) for q in bar]
    return {k: records[k] for k in display_order(records)}


def summarize(records: dict[str, list[EvalRecord]], ks: Sequence[int]) -> dict[str, dict]:
    out = {}
    for key, recs in records.items():
        slices = evaluate_by_slice(recs, ks)
        out[key] = {"overall": slices.pop("overall"), "by_lang": slices}
    return out


def write_records(path: Path, records: dict[str, list[EvalRecord]], ks: Sequence[int]) -> Path:
    """<name>.records.jsonl: one line per question and system, with every per-question metric."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for key, recs in records.items():
            for r in recs:
                line = {"id": r.question.id, "system": key, "lang": r.question.lang, "passages": r.passage_ids,
                        "answer": r.answer, "span": list(r.span) if r.span else None, "abstained": r.abstained,
                        "confidence": None if r.confidence is None else round(r.confidence, 6),
                        "metrics": per_record(r, ks)}
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


# ------------------------------------------------------------------ the three SQuAD settings
SETTINGS = ("closed", "open", "removed")
SETTING_NOTES = {
    "closed": "the question's own paragraph is given (all its passages): the reader alone, always answering with its "
              "best span (a reader without spans: its answer text)",
    "open": "retrieval over all indexed paragraphs, then the reader: end to end",
    "removed": "the question asked over the paragraphs minus its own (its passages are dropped from the fused "
               "candidates; BM25 statistics still include them): every answer is wrong, abstaining is right",
    "open+removed": "open and removed together: refusal precision/recall and answer accuracy over both",
}


def closed_record(service, question: EvalQuestion, source_doc: str, reader_name: str) -> EvalRecord:
    """The reader over the gold paragraph's passages only (no retrieval, no abstention)."""
    from ..text import fold_script
    from ..types import Hit

    reader = service.reader_for(reader_name)
    index = service.index
    started = time.perf_counter()
    hits = [Hit(c, 1.0) for c in index.chunks if c.doc_id == source_doc]
    vector = service.embedder.encode_queries([fold_script(question.question)])[0]
    hits = reader.rerank(question.question, hits)  # the neural reader's spans (the heuristic one: unchanged)
    answer = reader.read(question.question, hits, vector, index.title)
    best = hits[0] if hits else None
    if best is not None and best.span is not None:
        text = best.chunk.text[best.span[0] - best.chunk.start : best.span[1] - best.chunk.start]
        short, abstained = text, False
    else:
        text, short, abstained = answer_text(answer.text), None, answer.abstained
    return EvalRecord(question=question, retrieved=[h.chunk.text for h in hits], answer=text, abstained=abstained,
                      latency_s=time.perf_counter() - started, relevant=[True] * len(hits),
                      passage_ids=[f"{h.chunk.doc_id}:{h.chunk.start}-{h.chunk.end}" for h in hits],
                      span=(best.chunk.doc_id, *best.span) if best is not None and best.span else None,
                      confidence=float(best.reader_score) if best is not None and best.reader_score is not None
                      else float(answer.confidence), short_answer=short)


def removed_record(service, question: EvalQuestion, source_doc: str, reader_name: str, top_k: int) -> EvalRecord:
    from dataclasses import replace

    from ..pipeline import QuestionError

    unanswerable = replace(question, id=question.id + "#removed", answerable=False, gold_answers=[], answer_keywords=[])
    started = time.perf_counter()
    try:
        answer = service.ask(question.question, top_k=top_k, reader=reader_name, exclude_doc=source_doc)
    except QuestionError:
        return EvalRecord(unanswerable, [], "", True, time.perf_counter() - started)
    return EvalRecord(question=unanswerable, retrieved=[h.chunk.text for h in answer.hits],
                      answer="" if answer.abstained else answer_text(answer.text), abstained=answer.abstained,
                      latency_s=time.perf_counter() - started,
                      passage_ids=[f"{h.chunk.doc_id}:{h.chunk.start}-{h.chunk.end}" for h in answer.hits],
                      confidence=float(answer.confidence))


def run_settings(service, questions: Sequence[EvalQuestion], systems: Sequence[System], ks: Sequence[int],
                 source: dict[str, str], open_records: dict[str, list[EvalRecord]], settings: Sequence[str],
                 progress: bool = True) -> dict[str, list[EvalRecord]]:
    """Closed and answer-removed runs for each reader system, keyed "<system> · closed" etc."""
    from tqdm import tqdm

    top_k = max(max(ks), 10)
    out: dict[str, list[EvalRecord]] = {}
    for system in [s for s in systems if s.rerank or "+" in s.key]:
        if "closed" in settings:
            bar = tqdm(questions, desc=f"closed ({system.key})", unit="q", file=sys.stderr, mininterval=10, disable=not progress)
            out[f"{system.key} · closed"] = [closed_record(service, q, source[q.id], system.reader) for q in bar]
        if "removed" in settings:
            bar = tqdm(questions, desc=f"removed ({system.key})", unit="q", file=sys.stderr, mininterval=10, disable=not progress)
            removed = [removed_record(service, q, source[q.id], system.reader, top_k) for q in bar]
            out[f"{system.key} · removed"] = removed
            if system.key in open_records:
                out[f"{system.key} · open+removed"] = open_records[system.key] + removed
    return out
