"""Turn a file's bytes into a Document: PDF, Word, HTML, EPUB, Markdown and plain text.

`extract_document(name, data, settings)` checks the size limit, that the content is what the
extension says (`sniff`), extracts the text with the format's module, and records the layout
(page offsets, headings). Every refusal is a DocumentError whose message names the file and
the reason; nothing else escapes for a bad file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..loader import content_hash, detect_script, document_from_bytes
from ..settings import Settings
from ..types import Document
from .errors import DocumentError
from .sniff import KIND_NAMES, sniff

# Bump when an extractor's output changes: cached extractions of unchanged files are then redone.
EXTRACTOR_VERSION = 1

KINDS = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".xhtml": "html", ".epub": "epub",
         ".md": "md", ".markdown": "md", ".txt": "txt"}
SUPPORTED_SUFFIXES = tuple(KINDS)
TEXT_KINDS = ("md", "txt")
_CONTAINER_KINDS = ("pdf", "docx", "epub", "zip", "badzip", "ole", "image")


def file_hash(data: bytes) -> str:
    """Fingerprint of a file's bytes under this extractor version (the key of cached extractions)."""
    return hashlib.sha256(b"qa-extractor-%d\n" % EXTRACTOR_VERSION + data).hexdigest()


def kind_of(name: str) -> str | None:
    return KINDS.get(Path(name).suffix.lower())


def size_limit(name: str, settings: Settings) -> int:
    return settings.max_upload_bytes if kind_of(name) in TEXT_KINDS else settings.max_document_bytes


def check_kind(name: str, data: bytes) -> str:
    """The format to extract with; raises when the extension is unsupported or lies about the content."""
    kind = kind_of(name)
    if kind is None:
        raise DocumentError(f"{name}: unsupported file type; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    actual = sniff(data)
    if kind in TEXT_KINDS:
        lies = actual in _CONTAINER_KINDS
    elif kind == "html":
        lies = actual not in ("html", "text")
    else:  # a damaged zip may be a damaged .docx/.epub: the extractor says what is wrong with it
        lies = actual != kind and not (actual == "badzip" and kind in ("docx", "epub"))
    if lies and data:
        what = KIND_NAMES.get(actual, actual) + (" (a binary file, not text)" if kind in TEXT_KINDS else "")
        raise DocumentError(f"{name}: the extension says .{Path(name).suffix.lower().lstrip('.')} but the content is "
                            f"{what}; rename the file to match what it is")
    return kind


def extract_document(name: str, data: bytes, settings: Settings, metadata: dict | None = None) -> Document:
    """Validate and extract one file; raises DocumentError with a user-facing reason."""
    if kind_of(name) is not None and len(data) > size_limit(name, settings):  # before any parsing
        raise DocumentError(f"{name}: too large ({len(data):,} bytes; the limit is {size_limit(name, settings):,})")
    kind = check_kind(name, data)
    limit = size_limit(name, settings)
    meta = metadata or {}
    if kind in TEXT_KINDS:
        doc = document_from_bytes(name, data, meta, limit)
        if kind == "md":
            from .text import markdown_headings

            doc.headings = markdown_headings(doc.text)
        doc.kind, doc.file_hash = kind, file_hash(data)
        return doc
    if not data:
        raise DocumentError(f"{name}: the file is empty")
    builder, title = _extract(kind, name, data, settings)
    text = builder.text
    if not text.strip():
        raise DocumentError(f"{name}: no text could be extracted")
    if len(text) > settings.max_document_chars:
        raise DocumentError(f"{name}: too much text ({len(text):,} characters; the limit is {settings.max_document_chars:,})")
    return Document(doc_id=name, text=text, title=meta.get("title") or title or Path(name).stem,
                    script=meta.get("script") or detect_script(text), source=meta.get("source", ""),
                    content_hash=content_hash(text), pages=builder.pages, headings=builder.headings,
                    kind=kind, file_hash=file_hash(data))


def _extract(kind: str, name: str, data: bytes, settings: Settings):
    if kind == "pdf":
        from .pdf import extract_pdf

        return extract_pdf(name, data, settings)
    if kind == "docx":
        from .docx import extract_docx

        return extract_docx(name, data, settings), ""
    if kind == "html":
        from .html import extract_html

        return extract_html(name, data, settings)
    from .epub import extract_epub

    return extract_epub(name, data, settings)
