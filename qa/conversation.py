"""Follow-up questions: build a standalone retrieval query from the conversation.

"and Baichuan?" after "why did 01.AI give up pretraining?" should search for why Baichuan
gave up pretraining: the previous question with its entity swapped for the new one.
"""

from __future__ import annotations

import re

from .aliases import AliasLexicon
from .text import normalize

_FOLLOW_UP_START = re.compile(r"^\s*(and|what about|how about|also|then|same for)\b|^\s*(那|那么|那麼|还有|還有|另外|以及|和|跟)", re.I)
_FOLLOW_UP_END = re.compile(r"(呢|怎么样|怎麼樣)\s*[?？]?\s*$")
_PRONOUNS = re.compile(r"\b(it|its|they|them|their|he|she|his|her|that company|this company)\b|它|他们|该公司|这家", re.I)


_WORD = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]")  # a word of folded text: a Latin word or number, or one CJK character
_SHORT_REMAINDER = 5  # CJK characters (or words) left beside an ending cue: "百川呢？" is a follow-up


def is_follow_up(question: str, aliases: AliasLexicon | None = None) -> bool:
    """A question that leans on the previous one: a leading cue ("and ...", "那..."), a pronoun, very few
    words, or an ending cue ("...呢", "...怎么样") beside a short remainder or a known name.

    An ending cue alone is not enough: "今天北京天气怎么样？" ends like "百川怎么样？" but names its own topic.
    """
    folded = normalize(question).strip()
    words = _WORD.findall(folded)
    if _FOLLOW_UP_START.search(folded) or _PRONOUNS.search(folded):
        return True
    if len(words) <= 3:  # "why?", "how much?", "Baichuan?" lean on the previous question ...
        rest = _without_names(folded, question, aliases)
        return len(rest) == len(words) or len(rest) <= 1  # ... "Who founded MiniMax?" names its own subject
    ending = _FOLLOW_UP_END.search(folded)
    if not ending:
        return False
    remainder = _WORD.findall(folded[: ending.start()])
    return len(remainder) <= _SHORT_REMAINDER or bool(aliases and aliases.groups_in(question, entities_only=True))


def _without_names(folded: str, question: str, aliases: AliasLexicon | None) -> list[str]:
    """The question's words once the entity names it mentions are taken out."""
    for group in (aliases.groups_in(question, entities_only=True) if aliases else []):
        for name in sorted(group, key=len, reverse=True):
            folded = folded.replace(normalize(name), " ")
    return _WORD.findall(folded)


def rewrite_query(question: str, previous_questions: list[str], aliases: AliasLexicon) -> str:
    """The question itself, or for a follow-up, the last question adapted to it."""
    if not previous_questions or not is_follow_up(question, aliases):
        return question
    previous = previous_questions[-1]
    new_entities = aliases.groups_in(question, entities_only=True)
    if not new_entities:
        return f"{previous} {question}"
    context = previous
    for group in aliases.groups_in(previous, entities_only=True):
        if group not in new_entities:
            for name in sorted(group, key=len, reverse=True):
                context = re.sub(re.escape(name), " ", context, flags=re.I)
    return f"{' '.join(context.split())} {question}"
