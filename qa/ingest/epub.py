"""EPUB books: the spine's XHTML chapters in reading order (zipfile + lxml; no extra dependency)."""

from __future__ import annotations

import posixpath

from ..settings import Settings
from .builder import TextBuilder
from .errors import DocumentError
from .html import walk_html
from .zipcheck import open_zip, read_member

_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container", "opf": "http://www.idpf.org/2007/opf",
       "dc": "http://purl.org/dc/elements/1.1/"}


def extract_epub(name: str, data: bytes, settings: Settings) -> tuple[TextBuilder, str]:
    from lxml import etree, html

    archive = open_zip(name, data, settings, "an EPUB book")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
    try:
        container = etree.fromstring(read_member(archive, "META-INF/container.xml", settings, name), parser)
        opf_path = container.find(".//c:rootfile", _NS).get("full-path")
        opf = etree.fromstring(read_member(archive, opf_path, settings, name), parser)
        manifest = {item.get("id"): item.get("href") for item in opf.iterfind(".//opf:manifest/opf:item", _NS)}
        spine = [manifest[ref.get("idref")] for ref in opf.iterfind(".//opf:spine/opf:itemref", _NS) if ref.get("idref") in manifest]
        title = (opf.findtext(".//dc:title", default="", namespaces=_NS) or "").strip()
    except (KeyError, AttributeError, etree.XMLSyntaxError, TypeError) as exc:
        raise DocumentError(f"{name}: not a readable EPUB book (no usable container or package file)") from exc
    builder = TextBuilder()
    base = posixpath.dirname(opf_path)
    for href in spine:
        try:
            chapter = read_member(archive, posixpath.normpath(posixpath.join(base, href)), settings, name)
        except KeyError:
            continue
        tree = html.fromstring(chapter, parser=html.HTMLParser(encoding="utf-8", remove_comments=True))
        for junk in tree.xpath("//script|//style|//head"):
            junk.getparent().remove(junk)
        walk_html(tree, builder)
    if not builder.text.strip():
        raise DocumentError(f"{name}: the EPUB book has no text")
    return builder, title
