"""Clean the text layer of PDF pages: drop running headers, footers and page numbers, join broken lines.

Pure functions over lists of lines, so every rule is testable without a PDF:

* A line among the first or last `EDGE_LINES` of a page that recurs (digits ignored) at the same
  place on at least half of the pages (and on at least 2) is a running header or footer.
* A lone page number ("12", "- 12 -", "第 12 页", "Page 12 of 40", "12/40") at the top or bottom is dropped.
* Lines broken inside a sentence are joined: with no space when either side is CJK, with one
  space between Latin words. A line ends its paragraph when it ends with sentence punctuation
  and is shorter than the page's full lines, or when it is much shorter than them (a heading).
* Characters are kept as written (full-width and half-width punctuation alike).
"""

from __future__ import annotations

import re
from collections import Counter

EDGE_LINES = 2

_PAGE_NUMBER = re.compile(
    r"^\s*(?:[-–—]\s*)?(?:(?:page|p\.?)\s*)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?(?:\s*[-–—])?\s*$"
    r"|^\s*第\s*\d{1,4}\s*[页頁]\s*(?:[,，/]?\s*共\s*\d{1,4}\s*[页頁])?\s*$"
    r"|^\s*[-–—]?\s*[ivxlcdm]{1,6}\s*[-–—]?\s*$",
    re.IGNORECASE)
_SENTENCE_END = tuple("。！？!?；;…”」』.:：")


def split_lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def _key(line: str) -> str:
    return re.sub(r"\d+", "#", re.sub(r"\s+", "", line))


def running_lines(pages: list[list[str]]) -> set[str]:
    """Keys of lines that repeat at the top or bottom of many pages."""
    if len(pages) < 2:
        return set()
    counts: Counter[tuple[int, str]] = Counter()  # (position from the top or bottom, line with digits as #)
    for lines in pages:
        content = [line for line in lines if line]
        edges = {(i, _key(content[i])) for i in range(min(EDGE_LINES, len(content)))}
        edges |= {(-i, _key(content[-i])) for i in range(1, min(EDGE_LINES, len(content)) + 1)}
        counts.update(e for e in edges if e[1])
    need = max(2, (len(pages) + 1) // 2)
    return {k for (_, k), n in counts.items() if n >= need}


def strip_page_furniture(lines: list[str], running: set[str]) -> list[str]:
    content = [line for line in lines if line]
    edges = set(range(min(EDGE_LINES, len(content)))) | set(range(max(0, len(content) - EDGE_LINES), len(content)))
    return [line for i, line in enumerate(content)
            if not (i in edges and (_key(line) in running or _PAGE_NUMBER.match(line)))]


def _is_cjk(ch: str) -> bool:
    return ("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\u3000" <= ch <= "\u303f"
            or "\uff00" <= ch <= "\uffef" or "\u2e80" <= ch <= "\u2fdf" or "\uf900" <= ch <= "\ufaff")


def join_lines(lines: list[str]) -> list[str]:
    """Paragraphs of a page: consecutive lines merged where a sentence was broken by the layout."""
    if not lines:
        return []
    full = sorted(len(line) for line in lines)[int(len(lines) * 0.8)] if len(lines) >= 3 else max(map(len, lines))
    paragraphs: list[str] = []
    current = previous = ""
    for line in lines:
        if not current:
            current = previous = line
            continue
        short = len(previous) < 0.6 * full
        ended = previous.endswith(_SENTENCE_END) and len(previous) < 0.9 * full
        if short or ended:
            paragraphs.append(current)
            current = line
        elif _is_cjk(current[-1]) or _is_cjk(line[0]) or current.endswith("-"):
            current += line
        else:
            current += " " + line
        previous = line
    paragraphs.append(current)
    return paragraphs


def clean_pages(raw_pages: list[str]) -> list[list[str]]:
    """Paragraphs of each page, without running headers, footers and page numbers."""
    pages = [split_lines(text) for text in raw_pages]
    running = running_lines(pages)
    return [join_lines(strip_page_furniture(lines, running)) for lines in pages]
