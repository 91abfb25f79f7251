"""Bilingual alias lexicon (corpus/aliases.json): expands questions on the BM25 side.

"01.AI" in an English question then also searches 零一万物, which BM25 over Chinese text
could never match on its own. Matching is on normalized text, so either script works.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from .text import normalize

log = logging.getLogger(__name__)
ALIASES_FILE = "aliases.json"


@dataclass(frozen=True)
class AliasLexicon:
    entities: tuple[tuple[str, ...], ...] = ()  # companies, people, products
    terms: tuple[tuple[str, ...], ...] = ()  # topics

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        return self.entities + self.terms

    @classmethod
    def load(cls, corpus_dir: Path) -> "AliasLexicon":
        path = corpus_dir / ALIASES_FILE
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            entities, terms = (tuple(tuple(str(n) for n in g) for g in raw.get(key, []) if len(g) > 1)
                               for key in ("entities", "terms"))
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.warning("ignoring unreadable alias lexicon %s: %s", path, exc)
            return cls()
        return cls(entities, terms)

    def groups_in(self, text: str, entities_only: bool = False) -> list[tuple[str, ...]]:
        """The alias groups that the text names, in either script."""
        folded = normalize(text)
        return [g for g in (self.entities if entities_only else self.groups)
                if any(_mentions(folded, normalize(name)) for name in g)]

    def expansions(self, question: str) -> list[str]:
        """Aliases of every entity named in the question (names already present are not repeated)."""
        folded = normalize(question)
        extra: list[str] = []
        seen = set()
        for group in self.groups_in(question):
            for name in group:
                key = normalize(name)
                if key not in folded and key not in seen:
                    seen.add(key)
                    extra.append(name)
        return extra

    def expand(self, question: str) -> str:
        extra = self.expansions(question)
        return question if not extra else question + " " + " ".join(extra)


def _mentions(folded_text: str, folded_name: str) -> bool:
    if not folded_name:
        return False
    if folded_name.isascii():  # whole-word match for Latin names: "Yi" must not match "yield"
        return re.search(r"(?<![a-z0-9])" + re.escape(folded_name) + r"(?![a-z0-9])", folded_text) is not None
    return folded_name in folded_text
