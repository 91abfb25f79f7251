"""Evaluation data: the seed question set and SQuAD-format benchmarks (paragraphs -> in-memory Documents).

SQuAD-format runs index a file's paragraphs as an in-memory corpus (one Document per paragraph,
doc_id "<title>#<global paragraph index>"; index/ is never touched); --questions-from takes the
question texts from another SQuAD file, paired by question id (XQuAD: English questions over
Chinese paragraphs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..settings import PROJECT_ROOT
from .args import UsageError
from .questions import EvalQuestion, load_questions

DEFAULT_QUESTIONS = PROJECT_ROOT / "eval" / "questions.jsonl"
SQUAD_RELEVANCE = ("a passage is relevant when it comes from the question's source paragraph "
                   "(chunk doc_id == paragraph id)")
SEED_RELEVANCE = "a passage is relevant when it contains one of the question's evidence strings (script-folded)"


def read_question_set(path: Path) -> list[EvalQuestion]:
    """A JSONL question set; unreadable or invalid files are usage errors."""
    try:
        return load_questions(path)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None


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


def sample_text(n: int, total: int, limit, seed) -> str:
    if n >= total:
        return f"all {total}"
    return f"{n} of {total} (seeded sample, seed {seed})" if seed is not None else f"first {n} of {total}"


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


def load_squad(path, questions_from=None, paragraphs: int | None = None, articles: set[str] | None = None) -> SquadSet:
    """Paragraphs -> Documents; questions -> EvalQuestions whose evidence and gold answers are the gold spans.

    `questions_from`: another SQuAD file, a JSONL file of hand translations (qa/training/translated/), or a mapping question id -> text (hand translations), whose wording
    replaces each question's; questions without a partner are skipped.
    `articles`: only the paragraphs of these article ids are indexed (e.g. the DRCD validation part)."""
    from ..loader import detect_script
    from ..types import Document

    chosen_articles = articles
    articles = [a for a in _read_squad(path) if chosen_articles is None or str(a.get("id")) in chosen_articles]
    other: dict[str, str] | None = None
    if isinstance(questions_from, Mapping):
        other = dict(questions_from)
    elif questions_from and str(questions_from).endswith(".jsonl"):  # hand translations: {"id", "question_en"} lines
        other = {}
        try:
            for line in Path(questions_from).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    other[str(row["id"])] = str(row.get("question_en") or row["question"]).strip()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{questions_from}: not a JSONL file of {{\"id\", \"question_en\"}} lines "
                             f"({type(exc).__name__}: {exc})") from None
    elif questions_from:
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
