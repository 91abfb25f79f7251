"""How much of an English question the Chinese text that answers it covers: a refusal signal for English questions.

An English question over Chinese passages cannot be matched word by word, so the Chinese verifier's coverage
features do not exist for it. Once each English content word has Chinese renderings (the alias lexicon, the
corpus's romanized names, CC-CEDICT read backwards: qa/dictionary.py) they do: a unit is covered when the text holds
one of its renderings, or the English word itself ("GPU", "AGI"). "Where is Baichuan headquartered?" over a passage
about 百川's founders covers Baichuan but not "headquartered".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .aliases import AliasLexicon
from .dictionary import STOPWORDS, cedict_groups, index_pinyin_map, name_terms, without_names, without_pieces
from .text import fold_script, normalize


@dataclass(frozen=True)
class Unit:
    """One content unit of an English question and the Chinese words that render it (empty: none known)."""
    english: str
    chinese: tuple[str, ...]
    entity: bool = False  # a name: from the alias lexicon or the corpus's pinyin


def question_units(question: str, aliases: AliasLexicon | None = None, index=None) -> list[Unit]:
    """The question's content units, names first. Words of a matched name are not read again word by word."""
    units: list[Unit] = []
    rest = question
    for group in (aliases.groups_in(question) if aliases is not None else []):
        latin = [n for n in group if re.search(r"[A-Za-z]", n) and re.search(
            rf"(?<![A-Za-z]){re.escape(n)}(?![A-Za-z])", rest, flags=re.IGNORECASE)]
        if not latin:
            continue
        chinese = tuple(dict.fromkeys(fold_script(n) for n in group if re.search(r"[\u4e00-\u9fff]", n)))
        named = max(latin, key=len)
        units.append(Unit(named, chinese, entity=group in aliases.entities))
        rest = without_names(rest, latin)
    if index is not None:
        pinyin = index_pinyin_map(index)
        terms, matched = name_terms(rest, pinyin)  # one unit for all matched names: they are rare and all entities
        if matched:
            units.append(Unit(" ".join(matched), tuple(terms), entity=True))
            rest = without_pieces(rest, matched)
    units.extend(Unit(english, tuple(dict.fromkeys(chinese))) for english, chinese in cedict_groups(rest, True)
                 if english not in STOPWORDS)
    return units


def unit_covered(unit: Unit, text: str, normalized: bool = False) -> bool:
    """True when the text holds one of the unit's Chinese renderings or its English words."""
    folded = text if normalized else normalize(text)
    if any(fold_script(c) in folded for c in unit.chinese):
        return True
    return re.search(rf"(?<![a-z]){re.escape(unit.english.lower())}(?![a-z])", folded) is not None


def coverage(units: list[Unit], text: str, translatable_only: bool = False) -> float:
    """Share of the units the text covers (1.0 when there is nothing to cover). `translatable_only`: units with no
    Chinese rendering are left out instead of counting as uncovered unless the English word appears."""
    counted = [u for u in units if u.chinese or not translatable_only]
    if not counted:
        return 1.0
    return sum(unit_covered(u, text) for u in counted) / len(counted)


def absent_units(question: str, corpus_text: str, aliases: AliasLexicon | None = None, index=None) -> list[Unit]:
    """The units of the question that the corpus (normalized text) never mentions, when that is all of them: the
    English counterpart of "the documents never mention 2030" (qa/checks.py). Names are left out (the name being
    there does not answer), and so are words CC-CEDICT cannot render. On translated CMRC 2018 dev (validation)
    this refuses 10 of 240 answerable questions (4.2 %: "courtesy name", "distributed"), so it stays a last check,
    not a verifier."""
    judged = [u for u in question_units(question, aliases, index) if u.chinese and not u.entity]
    missing = [u for u in judged if not unit_covered(u, corpus_text, normalized=True)]
    return missing if judged and len(missing) == len(judged) else []
