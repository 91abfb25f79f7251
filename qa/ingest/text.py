"""Plain text and Markdown: decoded by qa/loader.py (UTF-8/16, GBK, Big5); Markdown headings become sections."""

from __future__ import annotations

import re

from ..loader import decode_bytes
from ..types import Heading

_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def decode_text(name: str, data: bytes) -> str:
    return decode_bytes(data, name).replace("\r\n", "\n").replace("\r", "\n")


def markdown_headings(text: str) -> list[Heading]:
    """ATX headings (`# Title`); the heading text is `text[start:start + len(heading)]`."""
    return [Heading(m.start(2), m.group(2), len(m.group(1))) for m in _MD_HEADING.finditer(text)]
