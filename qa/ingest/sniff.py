"""What a file really is, from its first bytes: catches extensions that lie."""

from __future__ import annotations

import io
import zipfile

KIND_NAMES = {"pdf": "a PDF", "docx": "a Word document", "epub": "an EPUB book", "zip": "a zip archive", "badzip": "a damaged zip archive",
              "html": "an HTML page", "text": "plain text", "binary": "a binary file", "ole": "an old Office (.doc/.xls) file",
              "image": "an image"}


def sniff(data: bytes) -> str:
    """One of: pdf, docx, epub, zip, badzip, ole, image, html, binary, text."""
    head = data[:1024]
    if head.lstrip(b"\x00\t\r\n ")[:5] == b"%PDF-" or b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return "badzip"
        if "word/document.xml" in names:
            return "docx"
        if "META-INF/container.xml" in names:
            return "epub"
        return "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF")):
        return "image"
    lowered = head.lower()
    if b"<html" in lowered or b"<!doctype html" in lowered or b"<body" in lowered:
        return "html"
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "binary"
    return "text"
