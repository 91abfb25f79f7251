"""Checks that apply to any reader: run by QAService.ask after retrieval, before reranking and reading.

A check returns a notice when the question cannot be answered from these documents whatever the
passages say; the pipeline then abstains with the not-found message (qa/messages.py).
"""

from __future__ import annotations

import re

from .text import has_word_chars, normalize


def missing_numbers(question: str, corpus_text: str) -> list[str]:
    """Numbers of two or more digits (years, amounts) in the question that the corpus never contains."""
    numbers = dict.fromkeys(n for n in re.findall(r"\d+(?:\.\d+)?", normalize(question)) if len(n) >= 2)
    return [n for n in numbers if n not in corpus_text]


def wordless_notice(question: str) -> str | None:
    """A question of emoji, symbols or punctuation only has nothing to look up: no passage is even related."""
    if has_word_chars(question):
        return None
    return "the question has no words to look up (only emoji, symbols or punctuation)"


def unanswerable_notice(question: str, corpus_text: str | None) -> str | None:
    """Why the question cannot be answered from a corpus (normalized text), or None to go on reading."""
    if corpus_text is None:
        return None
    absent = missing_numbers(question, corpus_text)
    if absent:  # "revenue in 2030?" cannot be answered by documents that never mention 2030
        return f"the documents never mention {', '.join(absent)}"
    return None


def english_absent_notice(question: str, corpus_text: str, aliases, index) -> str | None:
    """The same for an English question whose every content word the corpus never renders (qa/coverage.absent_units):
    "Where is Baichuan headquartered?" when no rendering of "headquartered" (总部...) is in it."""
    from .coverage import absent_units

    words = [u.english for u in absent_units(question, corpus_text, aliases, index)]
    if not words:
        return None
    return f"the documents never mention {', '.join(repr(w) for w in words)} (no CC-CEDICT rendering of it occurs in them)"
