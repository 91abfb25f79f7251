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
    """The question itself, or for a follow-up, the last question adapted to it.

    A follow-up that only names a new entity ("and Baichuan?", "那百川呢？") becomes the last question with its
    entity swapped ("why did Baichuan give up pretraining?"), so the query reads like a question and its cue
    words (那, 呢, and) do not dilute retrieval or the verifier's coverage. One that asks more ("百川的融资情况呢？")
    is appended to the last question without its entities.
    """
    if not previous_questions or not is_follow_up(question, aliases):
        return question
    previous = previous_questions[-1]
    new_entities = aliases.groups_in(question, entities_only=True)
    if not new_entities:
        return f"{previous} {question}"
    old_entities = [g for g in aliases.groups_in(previous, entities_only=True) if g not in new_entities]
    if old_entities and _only_names(question, aliases):
        return _swap_entities(previous, old_entities, _name_as_written(question, new_entities))
    context = previous
    for group in old_entities:
        for name in sorted(group, key=len, reverse=True):
            context = re.sub(re.escape(name), " ", context, flags=re.I)
    return f"{' '.join(context.split())} {question}"


def _only_names(question: str, aliases: AliasLexicon) -> bool:
    """The follow-up says nothing but entity names and follow-up cues."""
    folded = normalize(question)
    folded = _FOLLOW_UP_END.sub(" ", _FOLLOW_UP_START.sub(" ", folded))
    return not _without_names(folded, question, aliases)


def _name_as_written(question: str, groups: list[tuple[str, ...]]) -> str:
    """The new entities' names as the follow-up writes them ("百川", not "Baichuan AI")."""
    folded = normalize(question)
    names = []
    for group in groups:
        present = [n for n in group if (key := normalize(n)) and key in folded]
        names.append(max(present, key=len) if present else group[0])
    return " ".join(names)


def _swap_entities(previous: str, old_entities: list[tuple[str, ...]], new_name: str) -> str:
    """The previous question with its first old entity replaced by the new name and any other old one removed."""
    names = sorted((n for g in old_entities for n in g), key=len, reverse=True)
    pattern = re.compile("|".join(rf"(?<![a-z0-9]){re.escape(n)}(?![a-z0-9])" if n.isascii() else re.escape(n)
                                  for n in names), re.I)  # whole words for Latin names: "Yi" is not in "yield"
    first = pattern.search(previous)
    swapped = previous[: first.start()] + new_name + pattern.sub(" ", previous[first.end():])
    return " ".join(swapped.split())
