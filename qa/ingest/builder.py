"""Assemble extracted pieces (paragraphs, headings, page breaks) into one text with a layout.

Every format's extractor feeds a TextBuilder, so offsets are computed in one place: a heading's
text is `text[start:start + len(heading)]`, page n starts at `pages[n - 1]`. Paragraphs are
separated by a blank line (sentences never merge across it), and so are pages, so every
sentence belongs to exactly one page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..types import Heading


@dataclass
class TextBuilder:
    parts: list[str] = field(default_factory=list)
    length: int = 0
    pages: list[int] = field(default_factory=list)
    headings: list[Heading] = field(default_factory=list)

    def _append(self, text: str) -> int:
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        return start

    def paragraph(self, text: str) -> None:
        text = text.strip()
        if text:
            self._append(text)

    def heading(self, text: str, level: int = 1) -> None:
        text = " ".join(text.split())
        if text:
            self.headings.append(Heading(self._append(text), text, level))

    def page(self) -> None:
        """Start a new page: the next paragraph is its first."""
        self.pages.append(self.length + (2 if self.parts else 0))

    @property
    def text(self) -> str:
        return "".join(self.parts)


_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]")  # ，。、：；！？ and friends
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def collapse_whitespace(text: str) -> str:
    """Whitespace between CJK characters is removed when it holds a line break or follows CJK punctuation
    (markup line breaks, or a parser that already turned them into spaces); any other run becomes one space."""
    def repl(m: re.Match) -> str:
        before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
        if before and after and _CJK.match(before) and _CJK.match(after):
            return "" if "\n" in m.group() or _PUNCT.match(before) else " "
        return " "

    return _WS.sub(repl, text).strip()
