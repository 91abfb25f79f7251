"""Evaluation question sets (JSON Lines) and the script/width-insensitive matcher used by the metrics.

One JSON object per line::

    {"id": "en-001", "lang": "en", "question": "...", "answerable": true,
     "evidence": ["verbatim substring of a corpus document"], "answer_keywords": ["通义"],
     "gold_answers": []}   # gold_answers is optional (SQuAD-style sets: CMRC 2018, DRCD)

Blank lines are skipped. `load_questions` raises ValueError("path:line: problem") on the first bad line.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

LANGS = ("zh-Hans", "zh-Hant", "en")


@dataclass
class EvalQuestion:
    id: str
    lang: str  # one of LANGS: the language/script the question is written in
    question: str
    answerable: bool
    evidence: list[str]  # verbatim substrings of the corpus (original script); any one marks a relevant passage
    answer_keywords: list[str]  # an answer is correct when it contains any of these (after normalize_for_match)
    gold_answers: list[str] = field(default_factory=list)  # gold answer spans (SQuAD sets)


_REQUIRED: dict[str, type] = {
    "id": str,
    "lang": str,
    "question": str,
    "answerable": bool,
    "evidence": list,
    "answer_keywords": list,
}
_LIST_FIELDS = ("evidence", "answer_keywords", "gold_answers")


def _parse_line(line: str) -> EvalQuestion:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(data) - set(_REQUIRED) - {"gold_answers"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    for name, typ in _REQUIRED.items():
        value = data[name]
        # bool is a subclass of int, and only `answerable` is a bool, so isinstance is exact here
        if not isinstance(value, typ):
            raise ValueError(f"field {name!r} must be {typ.__name__}, got {type(value).__name__}")
    for name in _LIST_FIELDS:
        value = data.get(name, [])
        if not isinstance(value, list):
            raise ValueError(f"field {name!r} must be list, got {type(value).__name__}")
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise ValueError(f"field {name!r} must hold non-empty strings, got {item!r}")
    if not data["id"].strip():
        raise ValueError("field 'id' is empty")
    if not data["question"].strip():
        raise ValueError("field 'question' is empty")
    if data["lang"] not in LANGS:
        raise ValueError(f"unknown lang {data['lang']!r} (expected one of {', '.join(LANGS)})")
    return EvalQuestion(
        id=data["id"],
        lang=data["lang"],
        question=data["question"],
        answerable=data["answerable"],
        evidence=list(data["evidence"]),
        answer_keywords=list(data["answer_keywords"]),
        gold_answers=list(data.get("gold_answers", [])),
    )


def load_questions(path) -> list[EvalQuestion]:
    """Read and validate a question file; ValueError names `file:line` and the problem."""
    path = Path(path)
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                question = _parse_line(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from None
            if question.id in seen:
                raise ValueError(f"{path}:{lineno}: duplicate id {question.id!r} (first on line {seen[question.id]})")
            seen[question.id] = lineno
            questions.append(question)
    return questions


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc  # the `opencc` package (OpenCC 1.x binding); config name with or without ".json"

    try:
        return opencc.OpenCC("t2s")
    except Exception:  # pragma: no cover - older bindings want the file name
        return opencc.OpenCC("t2s.json")


@functools.lru_cache(maxsize=65536)
def normalize_for_match(text: str) -> str:
    """Script- and width-insensitive form for substring matching.

    Traditional -> Simplified (OpenCC t2s), Unicode NFKC (full-width -> half-width, compatibility
    ideographs), lowercase, and all whitespace removed (the transcript puts spaces around numbers:
    "2019 年 6 月" matches "2019年6月"). Cached: passages are matched against many questions.
    """
    text = unicodedata.normalize("NFKC", text or "")
    text = unicodedata.normalize("NFKC", _t2s().convert(text))
    return "".join(text.lower().split())
