"""PDF text, page by page, with pypdfium2 (PDFium, Apache-2.0/BSD); OCR for pages without text."""

from __future__ import annotations

import logging
import re

from ..settings import Settings
from .builder import TextBuilder
from .errors import DocumentError
from .pdf_text import clean_pages

log = logging.getLogger(__name__)

MIN_PAGE_CHARS = 3  # a page with fewer non-space characters has no text layer
OCR_SCALE = 2.0  # render at 144 dpi for OCR


def extract_pdf(name: str, data: bytes, settings: Settings) -> tuple[TextBuilder, str]:
    """(text page by page, the PDF's Title metadata or "")."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        reason = str(exc).lower()
        if "password" in reason or "security" in reason:
            raise DocumentError(f"{name}: the PDF is encrypted (password-protected); remove the password and add it again") from exc
        raise DocumentError(f"{name}: not a readable PDF (the file is damaged or truncated: {exc})") from exc
    try:
        n = len(pdf)
        if n == 0:
            raise DocumentError(f"{name}: the PDF has no pages")
        if n > settings.max_pages:
            raise DocumentError(f"{name}: too many pages ({n:,}; the limit is {settings.max_pages:,}); split the file")
        try:
            title = usable_title(pdf.get_metadata_dict().get("Title") or "")
        except Exception:  # unreadable metadata is not worth refusing a file
            title = ""
        raw, blank = [], []
        for i in range(n):
            page = pdf[i]
            textpage = page.get_textpage()
            # PDFium turns a hyphen that ends a line into U+FFFE and joins the lines: put both back
            raw.append(textpage.get_text_range().replace("\ufffe", "-\n"))
            textpage.close()
            if len("".join(raw[-1].split())) < MIN_PAGE_CHARS and _has_image(page):
                blank.append(i)  # a scanned page; a page with neither text nor image is just blank
            page.close()
        if blank:
            _ocr_pages(name, pdf, raw, blank, settings)
    finally:
        pdf.close()
    builder = TextBuilder()
    for paragraphs in clean_pages(raw):
        builder.page()
        for paragraph in paragraphs:
            builder.paragraph(paragraph)
    if not builder.text.strip():
        raise DocumentError(f"{name}: the PDF has no text")
    return builder, title


_PLACEHOLDER_TITLE = re.compile(r"^(untitled|无标题|無標題|microsoft (word|powerpoint) - .*|.*\.(docx?|pptx?|pdf|txt|tmp))$", re.I)


def usable_title(title: str) -> str:
    """The PDF's Title metadata, unless it is a placeholder ("untitled", "Microsoft Word - x.docx")."""
    title = " ".join(title.split())
    return "" if _PLACEHOLDER_TITLE.match(title) else title


def _has_image(page) -> bool:
    import pypdfium2.raw as pdfium_c

    return next(iter(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3)), None) is not None


def _ocr_pages(name: str, pdf, raw: list[str], blank: list[int], settings: Settings) -> None:
    """Fill raw[i] for text-less pages by OCR, or raise the no-text message."""
    from . import ocr

    where = f"page {blank[0] + 1}" if len(blank) == 1 else f"{len(blank)} pages (first: page {blank[0] + 1})"
    engine = ocr.engine() if settings.ocr else None
    if engine is None:
        why = "OCR is turned off (QA_OCR=0)" if not settings.ocr else "no OCR engine is installed"
        raise DocumentError(f"{name}: {where} has no text layer (a scan?) and {why}; "
                            "add a PDF with selectable text")
    if len(blank) > settings.ocr_max_pages:
        raise DocumentError(f"{name}: {where} have no text layer; OCR is limited to {settings.ocr_max_pages} pages a file")
    for i in blank:
        page = pdf[i]
        image = page.render(scale=OCR_SCALE).to_pil()
        page.close()
        lines = engine.lines(image)
        log.info("OCR of %s page %d: %d lines", name, i + 1, len(lines))
        raw[i] = "\n".join(lines)
