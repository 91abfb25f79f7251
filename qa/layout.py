"""Where an offset falls in a document: its PDF page and its nearest heading.

Chunks get their page/section when they are made; citations get theirs when an answer is
returned, from the extracted documents kept with the index (`SearchIndex.texts`).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import asdict

from .types import Answer, Chunk, Document, Heading


def page_at(doc: Document, offset: int) -> int | None:
    """1-based page containing `offset`, or None for documents without pages."""
    if not doc.pages:
        return None
    return max(1, bisect_right(doc.pages, offset))


def section_at(doc: Document, offset: int) -> str:
    """Text of the last heading that starts at or before `offset` ("" when there is none)."""
    i = bisect_right([h.start for h in doc.headings], offset)
    return doc.headings[i - 1].text if i else ""


def annotate_chunks(chunks: list[Chunk], doc: Document) -> None:
    for chunk in chunks:
        chunk.page, chunk.section = page_at(doc, chunk.start), section_at(doc, chunk.start)


def annotate_answer(answer: Answer, texts: dict[str, Document]) -> Answer:
    """Set page and section on every citation whose document layout is known."""
    for citation in answer.citations:
        doc = texts.get(citation.doc)
        if doc is not None:
            citation.page, citation.section = page_at(doc, citation.start), section_at(doc, citation.start)
    return answer


def document_to_dict(doc: Document) -> dict:
    return asdict(doc)


def document_from_dict(data: dict) -> Document:
    headings = [Heading(**h) for h in data.get("headings", [])]
    return Document(**{**data, "headings": headings})
