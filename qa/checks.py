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


def unanswerable_notice(question: str, corpus_text: str | None, english_terms=None) -> str | None:
    """Why the question cannot be answered from a corpus (normalized text), or None to go on reading.

    `english_terms`: for an English question, a callable giving the content words the corpus never renders
    (qa/coverage.absent_units); None skips that check."""
    if corpus_text is None:
        return None
    absent = missing_numbers(question, corpus_text)
    if absent:  # "revenue in 2030?" cannot be answered by documents that never mention 2030
        return f"the documents never mention {', '.join(absent)}"
    if english_terms is not None:
        words = [u.english for u in english_terms(question, corpus_text)]
        if words:  # "Where is Baichuan headquartered?": no rendering of "headquartered" (总部...) is in them
            return (f"the documents never mention {', '.join(repr(w) for w in words)} "
                    f"(no CC-CEDICT rendering of it occurs in them)")
    return None
