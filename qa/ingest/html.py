"""HTML: the main content only (trafilatura, Apache-2.0), not menus, sidebars and footers; h1-h6 become sections."""

from __future__ import annotations

import logging
import re

from ..settings import Settings
from .builder import TextBuilder, collapse_whitespace
from .errors import DocumentError

log = logging.getLogger(__name__)
logging.getLogger("trafilatura").setLevel(logging.ERROR)
logging.getLogger("htmldate").setLevel(logging.ERROR)

_BLOCK = {"p", "div", "li", "dd", "dt", "blockquote", "pre", "td", "th", "figcaption", "caption", "section", "article"}
_HEADING = re.compile(r"^h([1-6])$")


def _text(element) -> str:
    return collapse_whitespace("".join(element.itertext()))


def extract_html(name: str, data: bytes, settings: Settings) -> tuple[TextBuilder, str]:
    """(text with headings, page title) of the page's main content."""
    import trafilatura
    from lxml import etree

    try:
        xml = trafilatura.extract(data, output_format="xml", include_formatting=True, include_comments=False,
                                  include_tables=True, include_images=False, favor_recall=True)
        meta = trafilatura.extract_metadata(data)
    except Exception as exc:  # malformed markup that even lxml's recovering parser rejects
        raise DocumentError(f"{name}: not a readable HTML page ({type(exc).__name__})") from exc
    if not xml:
        raise DocumentError(f"{name}: the HTML page has no main text (only menus, scripts or markup)")
    root = etree.fromstring(xml.encode("utf-8"))
    builder = TextBuilder()
    main = root.find("main") if root.find("main") is not None else root
    for element in main:
        _emit_xml(element, builder)
    if not builder.text.strip():
        raise DocumentError(f"{name}: the HTML page has no main text (only menus, scripts or markup)")
    title = (meta.title or "").strip() if meta is not None else ""
    return builder, title


def _emit_xml(element, builder: TextBuilder) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag == "head":
        rend = element.get("rend", "h2")
        builder.heading(_text(element), int(rend[1]) if _HEADING.match(rend) else 2)
    elif tag == "list":
        for item in element:
            builder.paragraph(_text(item))
    elif tag == "table":
        for row in element.iter("row"):
            builder.paragraph(" | ".join(t for t in (_text(c) for c in row) if t))
    elif tag in ("p", "quote", "code", "item"):
        builder.paragraph(_text(element))
    elif len(element):
        for child in element:
            _emit_xml(child, builder)
    else:
        builder.paragraph(_text(element))


def walk_html(body, builder: TextBuilder) -> None:
    """Every heading and block of an (X)HTML tree, in order: for EPUB chapters, which are all content."""
    for element in body.iter():
        tag = element.tag.rsplit("}", 1)[-1].lower() if isinstance(element.tag, str) else ""
        heading = _HEADING.match(tag)
        if heading:
            builder.heading(_text(element), int(heading.group(1)))
        elif tag in _BLOCK and not any(isinstance(c.tag, str) and c.tag.rsplit("}", 1)[-1].lower() in _BLOCK | {"h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table"}
                                       for c in element):
            builder.paragraph(_text(element))
