"""`qa eval`: run the service over a question set and report retrieval, answer and refusal metrics.

Three kinds of run share one code path (`run_systems`: one `QAService.ask` per question and system):

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

--baselines asks every question with retrieval "sparse" (BM25 over jieba tokens), "dense" (e5 only)
and "hybrid" (RRF of both, the default) in one process, over the same index: passages are embedded
once per dataset. SQuAD runs also keep passage/sentence vectors in an on-disk cache
(<cache_dir>/eval-embeddings/), so a rerun, or XQuAD en->zh after zh->zh, embeds nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..cli import settings_from_args
from ..settings import PROJECT_ROOT, Settings
from .metrics import EvalRecord, answer_is_correct, evaluate_by_slice
from .questions import EvalQuestion, load_questions

DEFAULT_QUESTIONS = PROJECT_ROOT / "eval" / "questions.jsonl"
DEFAULT_OUT = PROJECT_ROOT / "eval" / "results"
SYSTEMS = ("sparse", "dense", "hybrid")  # display order
RUN_ORDER = ("hybrid", "dense", "sparse")  # the deployed system first: its latency is measured with a cold cache
LABELS = {"sparse": "BM25 (jieba)", "dense": "dense (e5)", "hybrid": "hybrid (RRF)"}
DEFAULT_WEIGHTS = (0.5, 1.0, 1.5, 2.0)
EXIT_USAGE = 2
SQUAD_RELEVANCE = ("a passage is relevant when it comes from the question's source paragraph "
                   "(chunk doc_id == paragraph id)")
SEED_RELEVANCE = "a passage is relevant when it contains one of the question's evidence strings (script-folded)"
_CITATION = re.compile(r"\s*\[\d+\]")




class UsageError(ValueError):
    pass


# ------------------------------------------------------------------ settings and arguments

def parse_ks(text: str | None) -> list[int]:
    try:
        ks = sorted({int(part) for part in str(text or "1,3,5,10").split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise UsageError(f"--k needs cut-offs >= 1, got {text!r}")
    return ks


def parse_weights(text: str | None) -> list[float]:
    if not text:
        return list(DEFAULT_WEIGHTS)
    try:
        weights = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--weights must be comma-separated numbers, got {text!r}") from None
    if not weights or any(w < 0 for w in weights):
        raise UsageError(f"--weights needs non-negative numbers, got {text!r}")
    return weights


def limit_questions(questions: list[EvalQuestion], limit: int | None, seed: int | None = None) -> list[EvalQuestion]:
    """The first `limit` questions, or (with a seed) a reproducible random sample of them kept in file order."""
    if limit is None or limit >= len(questions):
        return list(questions)
    limit = max(0, limit)
    if seed is None:
        return list(questions[:limit])
    import random

    chosen = set(random.Random(seed).sample(range(len(questions)), limit))
    return [q for i, q in enumerate(questions) if i in chosen]


def _sample_text(n: int, total: int, limit, seed) -> str:
    if n >= total:
        return f"all {total}"
    return f"{n} of {total} (seeded sample, seed {seed})" if seed is not None else f"first {n} of {total}"


def _slug(text: str) -> str:
    return re.sub(r"[^\w.\-]+", "-", text).strip("-") or "run"


# ------------------------------------------------------------------ SQuAD-format data

@dataclass
class SquadSet:
    documents: list  # qa.types.Document, one per indexed paragraph
    questions: list[EvalQuestion]
    source: dict[str, str]  # question id -> doc_id of its source paragraph
    paragraphs_total: int
    questions_total: int  # questions of the indexed paragraphs (before --limit)
    unpaired: int = 0  # --questions-from: questions without a partner, skipped
    lang: str = ""


def _read_squad(path) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        articles = data["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a readable SQuAD-format file ({type(exc).__name__}: {exc})") from None
    return articles


def load_squad(path, questions_from=None, paragraphs: int | None = None) -> SquadSet:
    """Paragraphs -> Documents; questions -> EvalQuestions whose evidence and gold answers are the gold spans."""
    from ..loader import detect_script
    from ..types import Document

    articles = _read_squad(path)
    other: dict[str, str] | None = None
    if questions_from:
        other = {}
        for article in _read_squad(questions_from):
            for para in article.get("paragraphs", []):
                for qa in para.get("qas", []):
                    if str(qa.get("question", "")).strip():
                        other[str(qa["id"])] = str(qa["question"]).strip()
    documents, questions, source = [], [], {}
    seen_ids: set[str] = set()
    total_paragraphs, unpaired, g = 0, 0, 0
    for article in articles:
        title = str(article.get("title", "") or "untitled").strip()
        for para in article.get("paragraphs", []):
            total_paragraphs += 1
            if paragraphs is not None and len(documents) >= paragraphs:
                g += 1
                continue
            context = str(para.get("context", ""))
            doc_id = f"{title}#{g}"
            g += 1
            if not context.strip():
                continue
            documents.append(Document(doc_id=doc_id, text=context, title=title, script=detect_script(context),
                                      source=str(path), content_hash=hashlib.sha256(context.encode("utf-8")).hexdigest()))
            for qa in para.get("qas", []):
                qid = str(qa.get("id", ""))
                text = str(qa.get("question", "")).strip()
                golds = list(dict.fromkeys(str(a.get("text", "")).strip() for a in qa.get("answers", [])))
                golds = [a for a in golds if a]
                if not qid or not text or not golds:
                    continue
                if other is not None:
                    if qid not in other:
                        unpaired += 1
                        continue
                    text = other[qid]
                uid, n = qid, 1
                while uid in seen_ids:  # ids are unique in the public sets; stay safe anyway
                    n += 1
                    uid = f"{qid}~{n}"
                seen_ids.add(uid)
                questions.append(EvalQuestion(id=uid, lang="", question=text, answerable=True, evidence=golds,
                                              answer_keywords=[], gold_answers=golds))
                source[uid] = doc_id
    # one language label per file, so that a short question without script-specific characters
    # (common in DRCD) is not sliced away from its siblings
    lang = detect_script("".join(q.question for q in questions[:300])) if questions else "zh-Hans"
    for q in questions:
        q.lang = lang
    return SquadSet(documents, questions, source, total_paragraphs, len(questions), unpaired, lang)


# ------------------------------------------------------------------ embedding cache (SQuAD runs)

class CachingEmbedder:
    """Wraps an Embedder: document/sentence vectors are computed once per text and kept on disk.

    Passages and reader sentences (`encode_documents`) are cached on disk; query vectors only in
    memory, so each question's text is embedded once per process and shared by the retrieval modes
    (the first mode run pays for it). Everything else is delegated to the wrapped embedder.
    """

    def __init__(self, inner, path: Path | None):
        self.inner, self.path = inner, path
        self._vectors: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}
        self._dirty = False
        self._signature = json.dumps([inner.model_id, getattr(inner, "document_prompt", ""), int(inner.dim)])
        if path is not None and path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    if str(data["signature"]) == self._signature:
                        self._vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
            except (OSError, ValueError, KeyError) as exc:
                print(f"note: ignoring unreadable embedding cache {path}: {exc}", file=sys.stderr)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._queries))
        if missing:
            for text, vec in zip(missing, self.inner.encode_queries(missing)):
                self._queries[text] = np.asarray(vec, dtype=np.float32)
        if not texts:
            return self.inner.encode_queries([])
        return np.vstack([self._queries[t] for t in texts]).astype(np.float32)

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return self.inner.encode_documents([])
        keys = [self._key(t) for t in texts]
        missing = {}
        for key, text in zip(keys, texts):
            if key not in self._vectors:
                missing.setdefault(key, text)
        if missing:
            vectors = self.inner.encode_documents(list(missing.values()), show_progress=show_progress)
            for key, vec in zip(missing, vectors):
                self._vectors[key] = np.asarray(vec, dtype=np.float32)
            self._dirty = True
        return np.vstack([self._vectors[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self._vectors)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, signature=np.array(self._signature), keys=np.array(keys),
                 vectors=np.vstack([self._vectors[k] for k in keys]).astype(np.float32))
        os.replace(tmp, self.path)
        self._dirty = False


def embedding_cache_path(settings: Settings) -> Path:
    return Path(settings.cache_dir) / "eval-embeddings" / f"{_slug(settings.embedding_model)}.npz"


# ------------------------------------------------------------------ running

def open_current(settings: Settings):
    """QAService.open (which re-indexes when corpus/ or the chunker changed since the last build), with its notes."""
    from ..pipeline import QAService

    service = QAService.open(settings)
    for message in service.messages:
        print(f"note: {message}", file=sys.stderr)
    return service


def _answer_text(text: str) -> str:
    """The answer without its citation markers "[n]" (they are not part of the quoted text)."""
    return _CITATION.sub("", text or "").strip()


def ask_record(service, question: EvalQuestion, mode: str, top_k: int, source_doc: str | None = None) -> EvalRecord:
    from ..pipeline import QuestionError

    started = time.perf_counter()
    try:
        answer = service.ask(question.question, top_k=top_k, retrieval_mode=mode)
    except QuestionError:
        return EvalRecord(question, [], "", True, time.perf_counter() - started, [] if source_doc else None)
    latency = time.perf_counter() - started
    hits = answer.hits
    relevant = [h.chunk.doc_id == source_doc for h in hits] if source_doc is not None else None
    return EvalRecord(question=question, retrieved=[h.chunk.text for h in hits],
                      answer="" if answer.abstained else _answer_text(answer.text), abstained=answer.abstained,
                      latency_s=latency, relevant=relevant)


def run_systems(service, questions: Sequence[EvalQuestion], modes: Sequence[str], ks: Sequence[int],
                source: dict[str, str] | None = None, progress: bool = True) -> dict[str, list[EvalRecord]]:
    """One record per question and retrieval mode; the modes run one after the other (RUN_ORDER)."""
    from tqdm import tqdm

    top_k = max(max(ks), 10)
    records: dict[str, list[EvalRecord]] = {}
    for mode in [m for m in RUN_ORDER if m in modes]:
        bar = tqdm(questions, desc=f"asking ({mode})", unit="q", file=sys.stderr, mininterval=10,
                   disable=not progress or not questions)
        records[mode] = [ask_record(service, q, mode, top_k, source.get(q.id) if source else None) for q in bar]
    return {m: records[m] for m in SYSTEMS if m in records}


def summarize(records: dict[str, list[EvalRecord]], ks: Sequence[int]) -> dict[str, dict]:
    out = {}
    for mode, recs in records.items():
        slices = evaluate_by_slice(recs, ks)
        out[mode] = {"overall": slices.pop("overall"), "by_lang": slices}
    return out


# ------------------------------------------------------------------ reporting

COLUMNS = [("n", "n"), ("mrr", "MRR"), ("ndcg@10", "nDCG@10"), ("answer_accuracy", "acc"), ("char_f1", "char-F1"),
           ("exact_match", "EM"), ("refusal_precision", "ref-P"), ("refusal_recall", "ref-R"),
           ("latency_p50_s", "p50 s"), ("latency_p95_s", "p95 s")]


def _fmt(value, key: str = "") -> str:
    if value is None:
        return "–"
    if key == "n":
        return str(int(value))
    if key.startswith("latency"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown_table(systems: dict[str, dict], ks: Sequence[int]) -> str:
    keys = [("n", "n")] + [(f"recall@{k}", f"R@{k}") for k in ks] + COLUMNS[1:]
    lines = ["| system | slice | " + " | ".join(label for _, label in keys) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in keys) + " |"]
    for mode, result in systems.items():
        for slice_name, metrics in [("overall", result["overall"]), *sorted(result["by_lang"].items())]:
            if slice_name != "overall" and len(result["by_lang"]) == 1:
                continue  # a one-language set: the language row repeats the overall row
            lines.append(f"| {LABELS.get(mode, mode)} | {slice_name} | "
                         + " | ".join(_fmt(metrics.get(key), key) for key, _ in keys) + " |")
    return "\n".join(lines)


def plot_results(systems: dict[str, dict], ks: Sequence[int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"sparse": "tab:orange", "dense": "tab:blue", "hybrid": "tab:green"}
    styles = ["-", "--", ":", "-."]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    slice_names: list[str] = []
    for result in systems.values():
        for name in ["overall", *sorted(result["by_lang"])]:
            if name not in slice_names:
                slice_names.append(name)
    if len(slice_names) == 2:  # one language: its curve is the overall curve
        slice_names = ["overall"]
    for mode, result in systems.items():
        for s, name in enumerate(slice_names):
            metrics = result["overall"] if name == "overall" else result["by_lang"].get(name)
            if not metrics:
                continue
            ys = [metrics.get(f"recall@{k}") for k in ks]
            if all(y is None for y in ys):
                continue
            left.plot(ks, [np.nan if y is None else y for y in ys], styles[s % len(styles)], marker="o",
                      color=colors.get(mode), label=f"{LABELS.get(mode, mode)} · {name}",
                      linewidth=2.2 if name == "overall" else 1.2)
    left.set(xlabel="k (passages)", ylabel="recall@k", title="retrieval: recall@k", ylim=(0, 1.02), xticks=list(ks))
    left.grid(alpha=0.3)
    left.legend(fontsize=7, loc="lower right")
    width = 0.8 / max(1, len(systems))
    x = np.arange(len(slice_names))
    for i, (mode, result) in enumerate(systems.items()):
        values = []
        for name in slice_names:
            metrics = result["overall"] if name == "overall" else result["by_lang"].get(name, {})
            values.append(metrics.get("answer_accuracy") or 0.0)
        bars = right.bar(x + (i - (len(systems) - 1) / 2) * width, values, width, color=colors.get(mode),
                         label=LABELS.get(mode, mode))
        right.bar_label(bars, fmt="%.2f", fontsize=7)
    right.set(xticks=x, xticklabels=slice_names, ylim=(0, 1.05), ylabel="answer accuracy", title="answers: accuracy")
    right.grid(axis="y", alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out_dir: Path, name: str, payload: dict, table: str, header: list[str], ks: Sequence[int]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{name}.md"
    md.write_text("\n".join([f"# {payload['title']}", "", *header, "", table, ""]), encoding="utf-8")
    js = out_dir / f"{name}.json"
    js.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    png = out_dir / f"{name}.png"
    plot_results(payload["systems"], ks, png, payload["title"])
    return [md, js, png]


def _payload(name: str, title: str, systems: dict[str, dict], settings: Settings, dataset: dict, elapsed: float) -> dict:
    main_mode = "hybrid" if "hybrid" in systems else next(iter(systems))
    main = systems[main_mode]
    return {
        **main["overall"],
        "by_lang": main["by_lang"],
        "name": name,
        "title": title,
        "system": main_mode,
        "systems": systems,
        "dataset": dataset,
        "settings": {"embedding_model": settings.embedding_model, "abstain_threshold": settings.abstain_threshold,
                     "dense_weight": settings.dense_weight, "sparse_weight": settings.sparse_weight,
                     "rrf_k": settings.rrf_k, "chunk_tokens": settings.chunk_tokens, "top_k_retrieved": None,
                     "reader_chunks": settings.reader_chunks},
        "elapsed_s": round(elapsed, 1),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _emit(args, payload: dict, table: str, header: list[str], ks, out_dir: Path, name: str) -> None:
    files = write_outputs(out_dir, name, payload, table, header, ks)
    report = "\n".join([*header, "", table, "", "wrote " + ", ".join(str(f) for f in files)])
    if getattr(args, "json", False):
        print(report, file=sys.stderr)
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print(report)


# ------------------------------------------------------------------ the runs

def run_seed(args, service=None) -> int:
    ks = parse_ks(args.k)
    path = Path(args.questions) if args.questions else DEFAULT_QUESTIONS
    try:
        questions = load_questions(path)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    total = len(questions)
    questions = limit_questions(questions, args.limit, getattr(args, "sample_seed", None))
    if not questions:
        raise UsageError(f"{path}: no questions to evaluate")
    started = time.perf_counter()
    if service is None:
        service = open_current(settings_from_args(args))
    modes = SYSTEMS if args.baselines else ("hybrid",)
    records = run_systems(service, questions, modes, ks)
    systems = summarize(records, ks)
    status = service.status()
    name = _slug(args.name or ("seed" if path.resolve() == DEFAULT_QUESTIONS.resolve() else path.stem))
    title = f"{name}: {len(questions)} questions from {path.name} over the built-in corpus"
    dataset = {"kind": "seed", "questions_file": str(path), "questions": len(questions), "limit": args.limit,
               "sample_seed": getattr(args, "sample_seed", None),
               "documents": status.get("documents"), "chunks": status.get("chunks"), "relevance": SEED_RELEVANCE}
    payload = _payload(name, title, systems, service.settings, dataset, time.perf_counter() - started)
    payload["settings"]["top_k_retrieved"] = max(max(ks), 10)
    header = [f"- questions: {_sample_text(len(questions), total, args.limit, getattr(args, 'sample_seed', None))} "
              f"from `{path.name}`",
              f"- corpus: built-in index, {status.get('documents')} documents, {status.get('chunks')} passages",
              f"- relevance: {SEED_RELEVANCE}; answer accuracy: answer contains a keyword (unanswerable: abstained)",
              _settings_line(service.settings),
              "- latency: wall time of one `QAService.ask` on this machine; systems run hybrid → dense → BM25 and share "
              "the reader's sentence-vector cache, so the later systems' latencies are optimistic"]
    _emit(args, payload, markdown_table(systems, ks), header, ks, Path(args.out) if args.out else DEFAULT_OUT, name)
    return 0


def _settings_line(settings: Settings) -> str:
    return (f"- settings: model `{settings.embedding_model}`, abstain_threshold {settings.abstain_threshold}, "
            f"RRF weights dense {settings.dense_weight} / sparse {settings.sparse_weight} (k={settings.rrf_k}), "
            f"chunks of {settings.chunk_tokens} tokens")


def run_squad(args, service=None) -> int:
    ks = parse_ks(args.k)
    paragraphs = getattr(args, "paragraphs", None)
    data = load_squad(args.squad, args.questions_from, paragraphs)
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
            embedder = cache = CachingEmbedder(embedder, embedding_cache_path(settings))
        service = QAService(settings, embedder=embedder)
    try:
        report = service.index_documents(data.documents, persist=False)
        if cache is not None:
            cache.save()
        print(f"indexed {report.documents} paragraphs into {report.chunks} passages in {report.seconds:.1f}s",
              file=sys.stderr)
        modes = SYSTEMS if args.baselines else ("hybrid",)
        records = run_systems(service, questions, modes, ks, source=data.source)
    finally:
        if cache is not None:
            cache.save()
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    systems = summarize(records, ks)
    squad = Path(args.squad)
    default_name = squad.stem if not args.questions_from else f"{Path(args.questions_from).stem}-on-{squad.stem}"
    name = _slug(args.name or default_name)
    pairing = f"; question texts from `{Path(args.questions_from).name}` paired by id" if args.questions_from else ""
    sample = (f"first {len(data.documents)} of {data.paragraphs_total} paragraphs" if paragraphs is not None
              and len(data.documents) < data.paragraphs_total else f"all {data.paragraphs_total} paragraphs")
    qsample = f"{_sample_text(len(questions), data.questions_total, args.limit, seed)} questions of these paragraphs"
    title = f"{name}: {len(questions)} questions over {len(data.documents)} paragraphs of {squad.name}"
    dataset = {"kind": "squad", "file": str(squad), "questions_from": args.questions_from, "lang": data.lang,
               "paragraphs_indexed": len(data.documents), "paragraphs_total": data.paragraphs_total,
               "chunks": report.chunks, "questions": len(questions), "questions_of_indexed": data.questions_total,
               "unpaired_skipped": data.unpaired, "limit": args.limit, "sample_seed": seed, "paragraph_limit": paragraphs,
               "relevance": SQUAD_RELEVANCE}
    payload = _payload(name, title, systems, service.settings, dataset, time.perf_counter() - started)
    payload["settings"]["top_k_retrieved"] = max(max(ks), 10)
    header = [f"- data: `{squad.name}`{pairing}; corpus = {sample} ({report.chunks} passages), in memory",
              f"- questions: {qsample}" + (f"; {data.unpaired} without an id partner skipped" if data.unpaired else ""),
              f"- relevance: {SQUAD_RELEVANCE}",
              "- answers: accuracy = the quoted answer contains a gold span; char-F1 / EM = CMRC 2018 official style "
              "against the gold spans (the reader quotes whole sentences, so these stay low)",
              _settings_line(service.settings),
              "- latency: wall time of one `QAService.ask` on this machine; systems run hybrid → dense → BM25 and share "
              "query vectors and passage/sentence vectors (also cached on disk across runs), so only the hybrid "
              "row of a cold run includes embedding work"]
    _emit(args, payload, markdown_table(systems, ks), header, ks, Path(args.out) if args.out else DEFAULT_OUT, name)
    return 0


# ------------------------------------------------------------------ calibration

@dataclass
class _Probe:
    question: EvalQuestion
    best: float  # best sentence score (-inf: nothing to read, always abstains)
    answer: str
    retrieved: list[str]


def _refusal_f1(records: list[EvalRecord]) -> float:
    tp = sum(1 for r in records if r.abstained and not r.question.answerable)
    fp = sum(1 for r in records if r.abstained and r.question.answerable)
    fn = sum(1 for r in records if not r.abstained and not r.question.answerable)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _records_at(probes: list[_Probe], threshold: float) -> list[EvalRecord]:
    out = []
    for p in probes:
        abstained = p.best < threshold
        out.append(EvalRecord(p.question, p.retrieved, "" if abstained else p.answer, abstained, float("nan")))
    return out


def _sweep(probes: list[_Probe]) -> list[dict]:
    """Accuracy and refusal F1 at thresholds between consecutive best scores (decisions change only there)."""
    scores = sorted({p.best for p in probes if math.isfinite(p.best)})
    if not scores:
        return []
    cuts = [scores[0] - 0.01] + [(a + b) / 2 for a, b in zip(scores, scores[1:])] + [scores[-1] + 0.01]
    rows = []
    for t in cuts:
        recs = _records_at(probes, t)
        verdicts = [answer_is_correct(r) for r in recs]
        judged = [v for v in verdicts if v is not None]
        rows.append({"threshold": round(t, 4), "answer_accuracy": sum(judged) / len(judged) if judged else float("nan"),
                     "refusal_f1": _refusal_f1(recs), "abstained": sum(r.abstained for r in recs)})
    return rows


def _best_row(rows: list[dict]) -> dict:
    top = max((r["answer_accuracy"], r["refusal_f1"]) for r in rows)
    tied = [r for r in rows if (r["answer_accuracy"], r["refusal_f1"]) == top]
    return tied[(len(tied) - 1) // 2]  # the middle of the tied thresholds: furthest from both edges


def run_calibration(args, service=None) -> int:
    from ..pipeline import QAService

    if getattr(args, "squad", None):
        raise UsageError("--calibrate tunes on the seed question set only, never on a public benchmark")
    path = Path(args.questions) if args.questions else DEFAULT_QUESTIONS
    try:
        questions = load_questions(path)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.limit is not None:
        questions = questions[: max(0, args.limit)]
    if not questions:
        raise UsageError(f"{path}: no questions to calibrate on")
    weights = parse_weights(getattr(args, "weights", None))
    ks = parse_ks(args.k)
    started = time.perf_counter()
    if service is None:
        service = open_current(settings_from_args(args))
    base = service.settings
    # a private service over the same index and embedder: it never abstains, so the reader's best
    # score and answer are read once per question and weight, and the threshold is swept offline
    # (its embedder memoizes query and sentence vectors in memory, shared by all weights)
    probe_service = QAService(base.with_overrides(abstain_threshold=-math.inf), index=service.index,
                              embedder=CachingEmbedder(service.embedder, None))
    per_weight = []
    for w in weights:
        probe_service.settings = base.with_overrides(abstain_threshold=-math.inf, dense_weight=w)
        probes = [_probe(probe_service, q, max(max(ks), 10)) for q in questions]
        retrieval = evaluate_by_slice(_records_at(probes, -math.inf), ks)["overall"]
        rows = _sweep(probes)
        best = _best_row(rows) if rows else {"threshold": base.abstain_threshold, "answer_accuracy": float("nan"),
                                             "refusal_f1": 0.0, "abstained": 0}
        current = _records_at(probes, base.abstain_threshold)
        cur_verdicts = [v for v in (answer_is_correct(r) for r in current) if v is not None]
        per_weight.append({"dense_weight": w, "sparse_weight": base.sparse_weight, "rows": rows, "best": best,
                           "recall@5": retrieval.get("recall@5"), "mrr": retrieval.get("mrr"),
                           "at_current_threshold": {"answer_accuracy": sum(cur_verdicts) / len(cur_verdicts)
                                                    if cur_verdicts else None, "refusal_f1": _refusal_f1(current)},
                           "scores": [{"id": p.question.id, "answerable": p.question.answerable,
                                       "best": None if not math.isfinite(p.best) else round(p.best, 4)} for p in probes]})
        print(f"dense_weight {w}: best threshold {best['threshold']:.3f} -> accuracy {best['answer_accuracy']:.3f}, "
              f"refusal F1 {best['refusal_f1']:.3f}; recall@5 {retrieval.get('recall@5')}, MRR {retrieval.get('mrr')}",
              file=sys.stderr)
    chosen = max(per_weight, key=lambda r: (r["best"]["answer_accuracy"], r["best"]["refusal_f1"], r["mrr"] or 0,
                                            -abs(r["dense_weight"] - base.dense_weight)))
    out_dir = Path(args.out) if args.out else DEFAULT_OUT
    name = _slug(args.name or "calibration")
    payload = {
        "name": name, "questions_file": str(path), "questions": len(questions),
        "current": {"abstain_threshold": base.abstain_threshold, "dense_weight": base.dense_weight,
                    "sparse_weight": base.sparse_weight},
        "best": {"abstain_threshold": round(chosen["best"]["threshold"], 3), "dense_weight": chosen["dense_weight"],
                 "sparse_weight": chosen["sparse_weight"], "answer_accuracy": chosen["best"]["answer_accuracy"],
                 "refusal_f1": chosen["best"]["refusal_f1"], "recall@5": chosen["recall@5"], "mrr": chosen["mrr"]},
        "weights": per_weight, "elapsed_s": round(time.perf_counter() - started, 1),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    md = _calibration_markdown(payload)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(md, encoding="utf-8")
    (out_dir / f"{name}.json").write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    _plot_calibration(payload, out_dir / f"{name}.png")
    if getattr(args, "json", False):
        print(md, file=sys.stderr)
        print(json.dumps({k: v for k, v in payload.items() if k != "weights"}, ensure_ascii=False, indent=2))
    else:
        print(md)
    return 0


def _probe(service, question: EvalQuestion, top_k: int) -> _Probe:
    """Ask once with a service that never abstains: its first citation carries the reader's best score."""
    from ..pipeline import QuestionError

    try:
        answer = service.ask(question.question, top_k=top_k, retrieval_mode="hybrid")
    except QuestionError:
        return _Probe(question, -math.inf, "", [])
    best = answer.citations[0].score if answer.citations and not answer.abstained else -math.inf
    return _Probe(question, float(best), _answer_text(answer.text), [h.chunk.text for h in answer.hits])


def _calibration_markdown(payload: dict) -> str:
    best, cur = payload["best"], payload["current"]
    lines = [f"# Calibration on `{Path(payload['questions_file']).name}` ({payload['questions']} questions)", "",
             "Tuned on the seed set only (never on the public benchmarks). The reader's best sentence score is "
             "computed once per question and RRF weight, then abstain_threshold is swept over the cuts between "
             "observed scores; the best setting maximizes answer accuracy, ties broken by refusal F1, then MRR; "
             "among tied thresholds the middle one is kept.", "",
             f"**Best: abstain_threshold = {best['abstain_threshold']}, dense_weight = {best['dense_weight']} "
             f"(sparse_weight {best['sparse_weight']})** → answer accuracy {best['answer_accuracy']:.3f}, "
             f"refusal F1 {best['refusal_f1']:.3f}, recall@5 {_fmt(best['recall@5'])}, MRR {_fmt(best['mrr'])}", "",
             f"Current settings: abstain_threshold {cur['abstain_threshold']}, dense_weight {cur['dense_weight']}, "
             f"sparse_weight {cur['sparse_weight']}.", "",
             "| dense_weight | recall@5 | MRR | best threshold | accuracy | refusal F1 | accuracy @ current threshold |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in payload["weights"]:
        lines.append(f"| {r['dense_weight']} | {_fmt(r['recall@5'])} | {_fmt(r['mrr'])} | {r['best']['threshold']:.3f} | "
                     f"{r['best']['answer_accuracy']:.3f} | {r['best']['refusal_f1']:.3f} | "
                     f"{_fmt(r['at_current_threshold']['answer_accuracy'])} |")
    chosen = next(r for r in payload["weights"] if r["dense_weight"] == best["dense_weight"])
    lines += ["", f"Threshold curve at dense_weight {best['dense_weight']} (every 4th cut shown):", "",
              "| threshold | accuracy | refusal F1 | abstained |", "| ---: | ---: | ---: | ---: |"]
    rows = chosen["rows"]
    shown = rows[::4] + ([rows[-1]] if rows and (len(rows) - 1) % 4 else [])
    for row in shown:
        lines.append(f"| {row['threshold']:.3f} | {row['answer_accuracy']:.3f} | {row['refusal_f1']:.3f} | {row['abstained']} |")
    return "\n".join(lines) + "\n"


def _plot_calibration(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    for r in payload["weights"]:
        xs = [row["threshold"] for row in r["rows"]]
        left.plot(xs, [row["answer_accuracy"] for row in r["rows"]], label=f"accuracy, dense_weight {r['dense_weight']}")
    chosen = next(r for r in payload["weights"] if r["dense_weight"] == payload["best"]["dense_weight"])
    left.plot([row["threshold"] for row in chosen["rows"]], [row["refusal_f1"] for row in chosen["rows"]], "k--",
              label=f"refusal F1, dense_weight {chosen['dense_weight']}")
    left.axvline(payload["best"]["abstain_threshold"], color="red", alpha=0.5, label="chosen threshold")
    left.axvline(payload["current"]["abstain_threshold"], color="grey", alpha=0.5, linestyle=":", label="current threshold")
    left.set(xlabel="abstain_threshold", ylabel="score", title="threshold sweep (seed set)", ylim=(0, 1.02))
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    ans = [s["best"] for s in chosen["scores"] if s["answerable"] and s["best"] is not None]
    una = [s["best"] for s in chosen["scores"] if not s["answerable"] and s["best"] is not None]
    right.hist([ans, una], bins=20, label=["answerable", "unanswerable"], color=["tab:green", "tab:red"])
    right.axvline(payload["best"]["abstain_threshold"], color="red", alpha=0.5)
    right.set(xlabel="best sentence score", ylabel="questions", title="best-score distribution")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ combining benchmark results

def run_combine(args) -> int:
    results = []
    for item in args.combine:
        try:
            results.append(json.loads(Path(item).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{item}: unreadable result file ({exc})") from None
    name = _slug(args.name or "benchmarks")
    keys = [("recall@1", "R@1"), ("recall@5", "R@5"), ("recall@10", "R@10"), ("mrr", "MRR"),
            ("answer_accuracy", "acc"), ("char_f1", "char-F1"), ("exact_match", "EM"), ("latency_p50_s", "p50 s")]
    lines = ["# Benchmarks", "",
             "Each row: one dataset sample × one retrieval system, same questions and index. Relevance on the public "
             f"SQuAD-format sets: {SQUAD_RELEVANCE}; on the seed set: {SEED_RELEVANCE}. Answer accuracy: the quoted "
             "answer contains a gold span / keyword; char-F1 and EM: CMRC 2018 official style. Sources and licences: "
             "XQuAD (CC BY-SA 4.0), DRCD (CC BY-SA 3.0), CMRC 2018 (CC BY-SA 4.0).", "",
             "| dataset | sample | system | n | " + " | ".join(label for _, label in keys) + " |",
             "| --- | --- | --- | ---: | " + " | ".join("---:" for _ in keys) + " |"]
    for res in results:
        ds = res.get("dataset", {})
        if ds.get("kind") == "squad":
            sample = (f"{ds.get('paragraphs_indexed')}/{ds.get('paragraphs_total')} paragraphs "
                      f"({ds.get('chunks')} passages), {ds.get('questions')} q")
        else:
            sample = f"{ds.get('documents')} docs ({ds.get('chunks')} passages), {ds.get('questions')} q"
        for mode, sys_result in res["systems"].items():
            m = sys_result["overall"]
            lines.append(f"| {res['name']} | {sample} | {LABELS.get(mode, mode)} | {_fmt(m.get('n'), 'n')} | "
                         + " | ".join(_fmt(m.get(k), k) for k, _ in keys) + " |")
    out_dir = Path(args.out) if args.out else DEFAULT_OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    md = "\n".join(lines) + "\n"
    (out_dir / f"{name}.md").write_text(md, encoding="utf-8")
    combined = {"name": name, "results": {r["name"]: {"dataset": r.get("dataset"), "systems": {
        mode: s["overall"] for mode, s in r["systems"].items()}} for r in results}}
    (out_dir / f"{name}.json").write_text(json.dumps(combined, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    _plot_combined(results, out_dir / f"{name}.png")
    if getattr(args, "json", False):
        print(md, file=sys.stderr)
        print(json.dumps(combined, ensure_ascii=False, indent=2))
    else:
        print(md)
    return 0


def _plot_combined(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"sparse": "tab:orange", "dense": "tab:blue", "hybrid": "tab:green"}
    names = [r["name"] for r in results]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (key, label) in zip(axes, [("recall@5", "recall@5"), ("mrr", "MRR"), ("answer_accuracy", "answer accuracy")]):
        modes = [m for m in SYSTEMS if any(m in r["systems"] for r in results)]
        width = 0.8 / max(1, len(modes))
        for i, mode in enumerate(modes):
            values = [(r["systems"].get(mode, {}).get("overall", {}).get(key) or 0.0) for r in results]
            bars = ax.bar(x + (i - (len(modes) - 1) / 2) * width, values, width, color=colors.get(mode),
                          label=LABELS.get(mode, mode))
            ax.bar_label(bars, fmt="%.2f", fontsize=6)
        ax.set(xticks=x, ylim=(0, 1.05), title=label)
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ entry point

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
