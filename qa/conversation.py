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


def is_follow_up(question: str) -> bool:
    folded = normalize(question).strip()
    words = re.findall(r"[a-z0-9]+|[\u4e00-\u9fff]", folded)
    cues = _FOLLOW_UP_START.search(folded) or _FOLLOW_UP_END.search(folded) or _PRONOUNS.search(folded)
    return bool(cues) or len(words) <= 3


def rewrite_query(question: str, previous_questions: list[str], aliases: AliasLexicon) -> str:
    """The question itself, or for a follow-up, the last question adapted to it."""
    if not previous_questions or not is_follow_up(question):
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
