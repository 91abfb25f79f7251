"""Word (.docx) text with python-docx (MIT): paragraphs and tables in order, headings kept as sections."""

from __future__ import annotations

import io
import re

from ..settings import Settings
from .builder import TextBuilder
from .errors import DocumentError
from .zipcheck import open_zip

_HEADING_STYLE = re.compile(r"^(?:heading|标题|標題)\s*(\d)?", re.IGNORECASE)


def heading_level(paragraph) -> int | None:
    style = paragraph.style.name if paragraph.style is not None else ""
    if style.lower() == "title":
        return 0
    m = _HEADING_STYLE.match(style or "")
    if m:
        return int(m.group(1) or 1)
    outline = paragraph._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    return int(outline[0]) + 1 if outline and outline[0].isdigit() and int(outline[0]) < 9 else None


def extract_docx(name: str, data: bytes, settings: Settings) -> TextBuilder:
    open_zip(name, data, settings, "a Word document")  # damaged zips and zip bombs stop here
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors... for broken parts
        raise DocumentError(f"{name}: not a readable Word document ({type(exc).__name__}: {str(exc)[:120]})") from exc
    builder = TextBuilder()
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                builder.paragraph(" | ".join(cells))
            continue
        level = heading_level(block)
        if level is not None:
            builder.heading(block.text, level)
        else:
            builder.paragraph(block.text)
    return builder
