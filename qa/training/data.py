"""Reading-comprehension examples from SQuAD-format files, cut into the passages the app reads.

Each paragraph is chunked by the project's own chunker, so training passages look exactly like
indexed ones. A question yields a positive example with the first chunk that holds its whole
answer, and (with `negatives` > 0) chunks of the same paragraph that do not hold it, the hard
negatives. SQuAD 2.0's unanswerable questions yield negatives only.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..chunking import chunk_document, token_counter
from ..settings import PROJECT_ROOT, Settings
from ..text import normalize, raw_sentences
from ..types import Chunk, Document

SHARED = PROJECT_ROOT.parent / "shared"
TRAIN_DIR, EVAL_DIR = SHARED / "traindata", SHARED / "evaldata"
DRCD_VALIDATION_IDS = Path(__file__).with_name("drcd_validation_articles.txt")


@dataclass
class Question:
    qid: str
    text: str
    answers: list[str]  # gold texts (several for dev sets)
    start: int | None  # char offset of the first gold answer in its paragraph; None if unanswerable
    paragraph: str  # paragraph key


@dataclass
class Example:
    qid: str
    chunk: str  # chunk key "<paragraph key>/<n>"
    start: int | None  # answer char offsets relative to the chunk text; None for a negative
    end: int | None


@dataclass
class ReadingSet:
    name: str
    questions: dict[str, Question] = field(default_factory=dict)
    chunks: dict[str, Chunk] = field(default_factory=dict)  # key -> chunk (text == paragraph[start:end])
    paragraph_chunks: dict[str, list[str]] = field(default_factory=dict)
    paragraph_article: dict[str, str] = field(default_factory=dict)
    paragraph_text: dict[str, str] = field(default_factory=dict)
    question_source: str = ""  # a derived set (answer sentences cut out) reuses this set's question states
    excluded_chunks: int = 0  # chunks of paragraphs left out (exclude_paragraphs): the cache of the full set still fits


TRANSLATED = Path(__file__).resolve().parent / "translated"  # hand-translated English questions (README there)
TRANSLATED_TRAIN, TRANSLATED_DEV = "cmrc2018_train.en.jsonl", "cmrc2018_dev.en.jsonl"  # CMRC 2018 train / dev


def load_translations(filename: str) -> dict[str, str]:
    """Question id -> its English wording (`question_en`), from a file in qa/training/translated/."""
    lines = (TRANSLATED / filename).read_text(encoding="utf-8").splitlines()
    return {row["id"]: row["question_en"] for row in map(json.loads, filter(str.strip, lines))}


def read_squad(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)["data"]


def answer_start(context: str, answer: dict) -> int:
    """The answer's offset in its paragraph: the official one when it points at the answer text, else the text's
    first occurrence (21 CMRC train offsets are wrong in the official file too); -1 when the text is not there."""
    start = answer.get("answer_start", -1)
    if start is None or start < 0 or context[start : start + len(answer["text"])] != answer["text"]:
        start = context.find(answer["text"])
    return start


def load_set(name: str, path: Path, settings: Settings, articles: set[str] | None = None,
             exclude_articles: set[str] | None = None, max_questions: int | None = None, seed: int = 0,
             exclude_paragraphs: set[str] | None = None, translations: dict[str, str] | None = None) -> ReadingSet:
    """Chunk every paragraph (of the chosen articles, minus those whose text is in `exclude_paragraphs`) and
    collect its questions. `translations` (question id -> English wording): only those questions, asked in
    English over the same paragraphs (translate-train)."""
    data = read_squad(path)
    count = token_counter(settings)
    out = ReadingSet(name)
    for a, article in enumerate(data):
        art_id = str(article.get("id") or article.get("title") or a)
        if articles is not None and art_id not in articles:
            continue
        if exclude_articles and art_id in exclude_articles:
            continue
        for p, para in enumerate(article["paragraphs"]):
            key = f"{name}:{a}:{p}"
            doc = Document(doc_id=key, text=para["context"])
            if exclude_paragraphs and para["context"] in exclude_paragraphs:
                out.excluded_chunks += len(chunk_document(doc, settings, count))
                continue
            keys = []
            for n, chunk in enumerate(chunk_document(doc, settings, count)):
                ck = f"{key}/{n}"
                out.chunks[ck] = chunk
                keys.append(ck)
            out.paragraph_chunks[key] = keys
            out.paragraph_article[key] = art_id
            out.paragraph_text[key] = para["context"]
            for qa in para["qas"]:
                answers = [x for x in qa.get("answers", []) if x.get("text")]
                impossible = bool(qa.get("is_impossible")) or not answers
                start = None
                if not impossible:
                    start = answer_start(para["context"], answers[0])
                    if start < 0:
                        continue
                out.questions[str(qa["id"])] = Question(str(qa["id"]), qa["question"], [x["text"] for x in answers],
                                                        start, key)
    if translations is not None:
        out.questions = {k: replace(q, text=translations[k]) for k, q in out.questions.items() if k in translations}
    sampled = max_questions is not None and len(out.questions) > max_questions
    if sampled:
        keep = set(random.Random(seed).sample(sorted(out.questions), max_questions))
        out.questions = {k: v for k, v in out.questions.items() if k in keep}
    if sampled or translations is not None:  # only the paragraphs still asked about are kept
        used = {q.paragraph for q in out.questions.values()}
        out.paragraph_chunks = {p: ks for p, ks in out.paragraph_chunks.items() if p in used}
        out.chunks = {k: c for p, ks in out.paragraph_chunks.items() for k in ks for c in [out.chunks[k]]}
    return out


def examples_for(rs: ReadingSet, negatives: float, seed: int = 0, next_negatives: float = 0.0) -> list[Example]:
    """One positive per answerable question, about `negatives` hard negatives per question (chunks of its
    own paragraph without the answer) and about `next_negatives` chunks of the next paragraph."""
    rng = random.Random(seed)
    out: list[Example] = []
    paragraphs = list(rs.paragraph_chunks)
    following = {p: paragraphs[(i + 1) % len(paragraphs)] for i, p in enumerate(paragraphs)}
    for q in rs.questions.values():
        chunk_keys = rs.paragraph_chunks[q.paragraph]
        holding, others = None, []
        for ck in chunk_keys:
            c = rs.chunks[ck]
            if q.start is not None and c.start <= q.start and q.start + len(q.answers[0]) <= c.end and holding is None:
                holding = ck
            elif q.start is None or not (c.start <= q.start < c.end or c.start < q.start + len(q.answers[0]) <= c.end):
                others.append(ck)
        if holding is not None:
            c = rs.chunks[holding]
            out.append(Example(q.qid, holding, q.start - c.start, q.start - c.start + len(q.answers[0])))
        if q.start is None:  # SQuAD 2.0 unanswerable: every chunk of its paragraph is a negative
            for ck in rng.sample(others, min(len(others), 1)):
                out.append(Example(q.qid, ck, None, None))
            continue
        n = int(negatives) + (1 if rng.random() < negatives - int(negatives) else 0)
        for ck in rng.sample(others, min(len(others), n)):
            out.append(Example(q.qid, ck, None, None))
        if next_negatives and len(paragraphs) > 1:
            golds = [normalize(a) for a in q.answers]
            pool = [ck for ck in rs.paragraph_chunks[following[q.paragraph]]
                    if not any(g and g in normalize(rs.chunks[ck].text) for g in golds)]
            m = int(next_negatives) + (1 if rng.random() < next_negatives - int(next_negatives) else 0)
            for ck in rng.sample(pool, min(len(pool), m)):
                out.append(Example(q.qid, ck, None, None))
    return out


def without_answer_sentence(context: str, golds: list[str]) -> str | None:
    """The paragraph minus the sentence(s) holding the first gold answer, when no gold answer is left in it.

    The question's topic and names stay in the documents, only what it asks is gone: the hard kind of
    unanswerable question ("what was X's revenue?" over documents about X that never give it)."""
    at = context.find(golds[0])
    if at < 0:
        return None
    end = at + len(golds[0])
    kept = "".join(context[x.start : x.end] for x in raw_sentences(context) if x.end <= at or x.start >= end)
    folded = normalize(kept)
    if len(kept) < 40 or any(normalize(g) in folded for g in golds):
        return None
    return kept


def answer_sentence_cut(rs: ReadingSet, settings: Settings, share: float, seed: int = 0) -> ReadingSet:
    """Negatives of the hardest kind: for about `share` of the answerable questions, the chunk of their own
    paragraph, re-chunked after the sentence holding the answer was cut out, that covers the cut.

    The passage keeps the topic and the names and loses what is asked, as on a question the documents
    do not answer. Question states come from `rs` (question_source), so only the new chunks are encoded."""
    rng = random.Random(seed)
    count = token_counter(settings)
    out = ReadingSet(f"{rs.name}-cut", question_source=rs.name)
    for q in rs.questions.values():
        if q.start is None or rng.random() >= share:
            continue
        context = rs.paragraph_text[q.paragraph]
        kept = without_answer_sentence(context, q.answers)
        if kept is None:
            continue
        at = context.find(q.answers[0])
        cut_at = sum(x.end - x.start for x in raw_sentences(context) if x.end <= at)
        chunks = chunk_document(Document(doc_id=f"{q.paragraph}#{q.qid}", text=kept), settings, count)
        if not chunks:
            continue
        chunk = next((c for c in chunks if c.start <= cut_at <= c.end), chunks[-1])
        key = f"{q.paragraph}#{q.qid}/cut"
        out.chunks[key] = chunk
        out.paragraph_chunks[key] = [key]
        out.questions[q.qid] = Question(q.qid, q.text, q.answers, None, key)
    return out


def drcd_split(seed: int = 13, validation_share: float = 0.2) -> tuple[set[str], set[str]]:
    """DRCD dev split by article with a fixed seed; the validation ids are committed next to this file."""
    ids = [str(a["id"]) for a in read_squad(EVAL_DIR / "drcd" / "DRCD_dev.json")]
    if DRCD_VALIDATION_IDS.exists():
        validation = set(DRCD_VALIDATION_IDS.read_text().split())
    else:
        validation = set(random.Random(seed).sample(ids, round(len(ids) * validation_share)))
        DRCD_VALIDATION_IDS.write_text("\n".join(sorted(validation, key=lambda x: (len(x), x))) + "\n")
    return set(ids) - validation, validation
