"""Read corpus files into Documents: decoding (UTF-8/16, GBK, Big5), metadata, clear errors."""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from pathlib import Path

from .text import normalize
from .types import Document

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md")
METADATA_FILE = "metadata.json"


class DocumentError(ValueError):
    """A file that cannot become a document; the message is meant for the user."""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """A file's sha256, read in 1 MiB blocks: detects a corrupted or truncated index or model export."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def decode_bytes(data: bytes, name: str = "file") -> str:
    """Decode text in UTF-8, UTF-16 (BOM), GB18030/GBK or Big5; raise DocumentError otherwise."""
    if data.startswith(b"\xef\xbb\xbf"):
        return _strict(data[3:], "utf-8", name)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _strict(data, "utf-16", name)
    if b"\x00" in data:
        text = _utf16_without_bom(data)
        if text is None:
            raise DocumentError(f"{name}: looks like a binary file (contains NUL bytes); only text files are supported")
        return text
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    candidates = []
    encodings = ("gb18030", "big5", "utf-16-le", "utf-16-be") if len(data) % 2 == 0 else ("gb18030", "big5")
    for encoding in encodings:
        try:
            candidates.append((_plausibility(data.decode(encoding)), encoding))
        except UnicodeDecodeError:
            continue
    if not candidates:
        raise DocumentError(f"{name}: not valid UTF-8, UTF-16, GBK or Big5 text; please save it as UTF-8")
    score, encoding = max(candidates)
    text = data.decode(encoding)
    if score < 0.05 and len(text) > 20:
        raise DocumentError(f"{name}: could not tell the text encoding (not UTF-8; GBK/Big5 give gibberish)")
    log.info("decoded %s as %s", name, encoding)
    return text


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 without a BOM has NUL bytes too (high bytes of ASCII, 一 = U+4E00): keep the byte order
    whose decoding reads as text (printable, with real words or mostly ASCII), else call it binary."""
    odd, even = data[1::2].count(0), data[0::2].count(0)
    if len(data) % 2 or min(odd, even) > 0.25 * (odd + even):  # text has its NULs on one byte parity
        return None
    best, best_score = None, 0.0
    for encoding in ("utf-16-le", "utf-16-be"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if sum(ch.isprintable() or ch in "\n\r\t" for ch in text) < 0.95 * len(text):
            continue
        ascii_share = sum(ch.isascii() for ch in text) / max(1, len(text))
        score = max(_plausibility(text), ascii_share)
        if score > best_score:
            best, best_score = text, score
    return best if best_score >= 0.1 else None


def _strict(data: bytes, encoding: str, name: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name}: invalid {encoding} text ({exc.reason} at byte {exc.start})") from exc


@lru_cache(maxsize=1)
def _common_words() -> frozenset[str]:
    """Two-character words from jieba's dictionary: real Chinese text is full of them, mis-decoded text is not."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return frozenset(w for w, f in jieba.dt.FREQ.items() if len(w) == 2 and f >= 50)


def _plausibility(text: str) -> float:
    folded = normalize(text)
    pairs = [folded[i : i + 2] for i in range(len(folded) - 1)]
    if not pairs:
        return 0.0
    words = _common_words()
    return sum(p in words for p in pairs) / len(pairs)


def detect_script(text: str) -> str:
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    if cjk < max(1, len(text) // 20):
        return "en"
    changed = sum(a != b for a, b in zip(text, normalize(text)) if "\u4e00" <= a <= "\u9fff")
    return "zh-Hant" if changed > cjk * 0.03 else "zh-Hans"


def load_metadata(corpus_dir: Path) -> dict[str, dict]:
    path = corpus_dir / METADATA_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}


def document_from_bytes(name: str, data: bytes, metadata: dict | None = None, max_bytes: int | None = None) -> Document:
    """Validate and decode one file's bytes; raises DocumentError with a user-facing reason."""
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{name}: unsupported file type; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if max_bytes is not None and len(data) > max_bytes:
        raise DocumentError(f"{name}: too large ({len(data):,} bytes; the limit is {max_bytes:,})")
    text = decode_bytes(data, name).replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DocumentError(f"{name}: the file is empty")
    meta = metadata or {}
    return Document(
        doc_id=name,
        text=text,
        title=meta.get("title") or Path(name).stem,
        script=meta.get("script") or detect_script(text),
        source=meta.get("source", ""),
        content_hash=content_hash(text),
    )


def iter_corpus_files(corpus_dir: Path) -> list[Path]:
    return sorted(p for p in corpus_dir.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


def load_corpus(corpus_dir: Path, max_bytes: int | None = None) -> tuple[list[Document], list[str]]:
    """All readable documents of a folder, plus one message per file that was skipped."""
    if not corpus_dir.is_dir():
        raise DocumentError(f"corpus folder not found: {corpus_dir}")
    metadata = load_metadata(corpus_dir)
    documents, problems = [], []
    for path in iter_corpus_files(corpus_dir):
        try:
            documents.append(document_from_bytes(path.name, path.read_bytes(), metadata.get(path.name), max_bytes))
        except (DocumentError, OSError) as exc:
            problems.append(str(exc))
            log.warning("skipped %s", exc)
    return documents, problems
