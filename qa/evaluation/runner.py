"""`qa eval`: run the service over a question set and report retrieval, answer and refusal metrics.

Three kinds of run share one code path (`run.run_systems`: one `QAService.ask` per question and system):

* the seed set (eval/questions.jsonl, or --questions FILE) over the built-in corpus index;
* a SQuAD-format benchmark (--squad FILE): its paragraphs become an in-memory corpus (one Document
  per paragraph, doc_id "<title>#<global paragraph index>"; index/ is never touched) and each question
  is asked over all indexed paragraphs. --questions-from FILE takes the question texts from another
  SQuAD file, paired by question id (XQuAD: English questions over Chinese paragraphs);
* --calibrate: sweeps abstain_threshold and the dense RRF weight on the seed set.

Relevance on SQuAD sets: a retrieved passage (chunk) is relevant when it comes from the question's
source paragraph (chunk.doc_id == that paragraph's doc_id). A paragraph longer than one chunk
counts every one of its chunks as relevant, also one that does not hold the answer span; a
paragraph elsewhere that happens to contain the answer string does not count. Answers are scored
against the gold spans: answer accuracy = the quoted answer contains a gold span; char-F1 / EM follow
CMRC 2018's official script (the extractive reader quotes whole sentences, so F1/EM stay low by design).

Systems: "hybrid+<reader>" (the deployed pipeline) for each reader of --readers (default: the
configured reader); --baselines adds the pure retrieval rankings "sparse" (BM25 over jieba tokens),
"dense" (e5 only) and, when the first reader reranks, plain "hybrid" (RRF of both), all in one process
over the same index: passages are embedded once per dataset. SQuAD runs also keep passage/sentence vectors in an on-disk cache
(<cache_dir>/eval-embeddings/), so a rerun, or XQuAD en->zh after zh->zh, embeds nothing twice.

Every run writes <name>.md, <name>.json (metrics per system and slice, every setting), <name>.png and
<name>.records.jsonl (one line per question and system). This module is the entry point; the work is in
datasets.py (data), run.py (asking), report.py (outputs, --combine), calibrate.py (--calibrate).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..settings import settings_from_args
from .args import EXIT_USAGE, UsageError, parse_ks, parse_readers, slug
from .cache import CachingEmbedder, embedding_cache_path
from .calibrate import run_calibration
from .datasets import (DEFAULT_QUESTIONS, SEED_RELEVANCE, SQUAD_RELEVANCE, limit_questions, load_squad,
                       read_question_set, sample_text)
from .report import DEFAULT_OUT, emit, make_payload, markdown_table, run_combine, settings_line
from .run import (SETTING_NOTES, SETTINGS, ask_record, check_readers, open_current, plan_systems, run_settings,
                  run_systems, summarize)

__all__ = ["main", "run_seed", "run_squad", "ask_record", "load_squad"]


def _systems(args, service):
    readers = parse_readers(getattr(args, "readers", None), service.settings.reader)
    first_reranks = check_readers(service, readers)
    return readers, plan_systems(readers, bool(args.baselines), first_reranks)


def _latency_note(readers) -> str:
    return (f"the systems run hybrid+{readers[0]} first, then the others, and share caches (query and sentence "
            "vectors), so the later systems' latencies are optimistic")


def run_seed(args, service=None) -> int:
    ks = parse_ks(args.k)
    path = Path(args.questions) if args.questions else DEFAULT_QUESTIONS
    questions = read_question_set(path)
    total = len(questions)
    questions = limit_questions(questions, args.limit, getattr(args, "sample_seed", None))
    if not questions:
        raise UsageError(f"{path}: no questions to evaluate")
    started = time.perf_counter()
    if service is None:
        service = open_current(settings_from_args(args))
    readers, plan = _systems(args, service)
    records = run_systems(service, questions, plan, ks)
    systems = summarize(records, ks)
    status = service.status()
    name = slug(args.name or ("seed" if path.resolve() == DEFAULT_QUESTIONS.resolve() else path.stem))
    title = f"{name}: {len(questions)} questions from {path.name} over the built-in corpus"
    dataset = {"kind": "seed", "questions_file": str(path), "questions": len(questions), "limit": args.limit,
               "sample_seed": getattr(args, "sample_seed", None),
               "documents": status.get("documents"), "chunks": status.get("chunks"), "relevance": SEED_RELEVANCE}
    payload = make_payload(name, title, systems, service.settings, dataset, time.perf_counter() - started,
                           max(max(ks), 10), readers)
    header = [f"- questions: {sample_text(len(questions), total, args.limit, getattr(args, 'sample_seed', None))} "
              f"from `{path.name}`",
              f"- corpus: built-in index, {status.get('documents')} documents, {status.get('chunks')} passages",
              f"- relevance: {SEED_RELEVANCE}; answer accuracy: answer contains a keyword (unanswerable: abstained)",
              settings_line(service.settings, readers),
              f"- latency: wall time of one `QAService.ask` on this machine; {_latency_note(readers)}"]
    emit(args, payload, markdown_table(systems, ks), header, ks, Path(args.out) if args.out else DEFAULT_OUT, name,
         records)
    return 0


def run_squad(args, service=None) -> int:
    ks = parse_ks(args.k)
    paragraphs = getattr(args, "paragraphs", None)
    articles = getattr(args, "articles", None)
    data = load_squad(args.squad, args.questions_from, paragraphs,
                      articles=set(Path(articles).read_text(encoding="utf-8").split()) if articles else None)
    seed = getattr(args, "sample_seed", None)
    questions = limit_questions(data.questions, args.limit, seed)
    if not questions:
        raise UsageError(f"{args.squad}: no questions to evaluate")
    started = time.perf_counter()
    tmp_dir = None
    cache = None
    if service is None:
        from ..embedding import get_embedder
        from ..pipeline import QAService

        base = settings_from_args(args)
        # an empty corpus folder: no alias lexicon of the built-in corpus, and nothing written to index/
        tmp_dir = Path(tempfile.mkdtemp(prefix="qa-squad-"))
        settings = base.with_overrides(corpus_dir=tmp_dir / "corpus", index_dir=tmp_dir / "index")
        embedder = get_embedder(settings)
        if not getattr(args, "no_embedding_cache", False):
            embedder = cache = CachingEmbedder(embedder, embedding_cache_path(settings, getattr(embedder, "backend", "torch")))
        service = QAService(settings, embedder=embedder)
    try:
        readers, plan = _systems(args, service)
        report = service.index_documents(data.documents, persist=False)
        if cache is not None:
            cache.save()
        print(f"indexed {report.documents} paragraphs into {report.chunks} passages in {report.seconds:.1f}s",
              file=sys.stderr)
        records = run_systems(service, questions, plan, ks, source=data.source)
        chosen = [x.strip() for x in str(getattr(args, "settings", "open") or "open").split(",") if x.strip()]
        unknown = [x for x in chosen if x not in SETTINGS]
        if unknown:
            raise UsageError(f"--settings: unknown {unknown}; choose from {', '.join(SETTINGS)}")
        records.update(run_settings(service, questions, plan, ks, data.source, records, chosen))
        if "open" not in chosen:
            records = {k: v for k, v in records.items() if "·" in k}
    finally:
        if cache is not None:
            cache.save()
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    systems = summarize(records, ks)
    squad = Path(args.squad)
    default_name = squad.stem if not args.questions_from else f"{Path(args.questions_from).stem}-on-{squad.stem}"
    name = slug(args.name or default_name)
    pairing = f"; question texts from `{Path(args.questions_from).name}` paired by id" if args.questions_from else ""
    sample = (f"first {len(data.documents)} of {data.paragraphs_total} paragraphs" if paragraphs is not None
              and len(data.documents) < data.paragraphs_total else f"all {data.paragraphs_total} paragraphs")
    qsample = f"{sample_text(len(questions), data.questions_total, args.limit, seed)} questions of these paragraphs"
    title = f"{name}: {len(questions)} questions over {len(data.documents)} paragraphs of {squad.name}"
    dataset = {"kind": "squad", "file": str(squad), "questions_from": args.questions_from, "lang": data.lang,
               "paragraphs_indexed": len(data.documents), "paragraphs_total": data.paragraphs_total,
               "chunks": report.chunks, "questions": len(questions), "questions_of_indexed": data.questions_total,
               "unpaired_skipped": data.unpaired, "limit": args.limit, "sample_seed": seed, "paragraph_limit": paragraphs,
               "relevance": SQUAD_RELEVANCE}
    payload = make_payload(name, title, systems, service.settings, dataset, time.perf_counter() - started,
                           max(max(ks), 10), readers)
    header = [f"- data: `{squad.name}`{pairing}; corpus = {sample} ({report.chunks} passages), in memory",
              f"- questions: {qsample}" + (f"; {data.unpaired} without an id partner skipped" if data.unpaired else ""),
              f"- relevance: {SQUAD_RELEVANCE}",
              *[f"- setting `{k}`: {v}" for k, v in SETTING_NOTES.items()],
              "- short answers: char-F1 / EM score the reader's bold span when it marks one",
              "- answers: accuracy = the quoted answer contains a gold span; char-F1 / EM = CMRC 2018 official style "
              "against the gold spans (the reader quotes whole sentences, so these stay low)",
              settings_line(service.settings, readers),
              f"- latency: wall time of one `QAService.ask` on this machine; {_latency_note(readers)}; passage/sentence "
              "vectors are also cached on disk across runs, so only the first system of a cold run includes embedding work"]
    emit(args, payload, markdown_table(systems, ks), header, ks, Path(args.out) if args.out else DEFAULT_OUT, name,
         records)
    return 0


def main(args, service=None) -> int:
    """`qa eval`. `service` (tests): use this QAService instead of opening the index; a SQuAD run
    replaces its active index, so never pass a shared one there."""
    try:
        if getattr(args, "combine", None):
            return run_combine(args)
        if getattr(args, "calibrate", False):
            return run_calibration(args, service)
        if getattr(args, "questions_from", None) and not getattr(args, "squad", None):
            raise UsageError("--questions-from needs --squad")
        if getattr(args, "squad", None):
            if args.questions:
                raise UsageError("use either --questions or --squad, not both")
            return run_squad(args, service)
        return run_seed(args, service)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
