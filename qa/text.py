"""Script normalization, sentence splitting and BM25 tokenization.

Indexes see one script (Traditional -> Simplified via OpenCC, NFKC width folding, lowercase);
everything shown and cited keeps the original text, so every function here that segments
returns offsets into the original string.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

import jieba
import opencc

from .types import Sentence

_SENTENCE_END = re.compile(r"[。！？；!?;…]+[”」』\"'）)]*|\n+")


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def fold_script(text: str) -> str:
    """One script for indexing: NFKC width folding, then Traditional -> Simplified (case kept).

    NFKC runs first so that full-width forms reach OpenCC as ordinary characters.
    Lengths may change, so never use offsets of folded text to cite the original.
    """
    return _t2s().convert(unicodedata.normalize("NFKC", text))


def normalize(text: str) -> str:
    """fold_script plus lowercase: the form used for lexical matching (BM25, evidence checks)."""
    return fold_script(text).lower()


def strip_control(text: str) -> str:
    """Drop control characters (keep newlines and tabs) so they cannot break tokenizers or the UI."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")


def has_word_chars(text: str) -> bool:
    """Whether the text has a letter or a digit in any script (emoji, symbols and punctuation are not words)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def raw_sentences(text: str) -> list[Sentence]:
    """Split on Chinese/Western sentence punctuation and line breaks; trims whitespace."""
    spans: list[Sentence] = []
    pos = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end() if match.group().strip() else match.start()
        _append_trimmed(text, pos, end, spans)
        pos = match.end()
    _append_trimmed(text, pos, len(text), spans)
    return spans


def _append_trimmed(text: str, start: int, end: int, out: list[Sentence]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        out.append(Sentence(start, end))


def split_sentences(text: str, min_chars: int = 24, max_chars: int = 160) -> list[Sentence]:
    """Sentence-like units with offsets into `text`.

    Subtitle transcripts put a few words on each line with no punctuation, so short pieces
    are merged with their neighbours until a unit reaches `min_chars` or ends with real
    sentence punctuation; units never grow past `max_chars`. Long punctuated sentences are
    cut at commas (then hard) so that no unit exceeds `max_chars`.
    """
    units: list[Sentence] = []
    current: Sentence | None = None
    for piece in (p for s in raw_sentences(text) for p in _cut_long(text, s, max_chars)):
        if current is not None and "\n\n" in text[current.end : piece.start]:
            units.append(current)  # a blank line ends a paragraph (or a heading): never merge across it
            current = None
        if current is None:
            current = Sentence(piece.start, piece.end)
        elif piece.end - current.start <= max_chars:
            current = Sentence(current.start, piece.end)
        else:
            units.append(current)
            current = Sentence(piece.start, piece.end)
        if current.end - current.start >= min_chars or _ends_sentence(text, current):
            units.append(current)
            current = None
    if current is not None:
        if units and current.end - units[-1].start <= max_chars and current.end - current.start < min_chars // 2:
            units[-1] = Sentence(units[-1].start, current.end)
        else:
            units.append(current)
    return units


def _ends_sentence(text: str, span: Sentence) -> bool:
    return text[span.end - 1] in "。！？!?；;…”」』"


_SOFT_BREAK = re.compile(r"[，,、：:]")


def _cut_long(text: str, span: Sentence, max_chars: int) -> list[Sentence]:
    if span.end - span.start <= max_chars:
        return [span]
    pieces: list[Sentence] = []
    start = span.start
    while span.end - start > max_chars:
        window = text[start : start + max_chars]
        breaks = [m.end() for m in _SOFT_BREAK.finditer(window) if m.end() >= max_chars // 3]
        cut = start + (breaks[-1] if breaks else max_chars)
        pieces.append(Sentence(start, cut))
        start = cut
    pieces.append(Sentence(start, span.end))
    return pieces


# ------------------------------------------------------------------ BM25 tokens

jieba.setLogLevel(logging.WARNING)

_KEEP = re.compile(r"[0-9a-z\u4e00-\u9fff]")
# Function words that match everywhere and only add noise to BM25.
STOPWORDS = frozenset(
    "的 了 是 在 和 与 也 都 就 而 及 着 或 一个 这 那 之 为 对 从 把 被 让 给 上 中 下 我们 他们 它们 "
    "什么 为什么 怎么 如何 哪些 哪个 吗 呢 吧 啊 多少 谁 哪 哪里 哪家 哪款 哪一年 一年 几 几家 几个 时候 什么样 怎样 "
    "多久 多长 多长时间 长时间 叫 名字 分别 是否 曾 认为 有 会 the a an of to in on and or is are was were be been "
    "what why how which who whom did does do with for by as at from that this it its up has have had will would "
    "can could should about into their they them there than then so not no yes when where much many".split()
)


TOKENIZER_VERSION = 1  # bump when tokenize() changes: a persisted BM25 index of another version is rebuilt


def tokenizer_signature() -> str:
    """What tokenize() depends on; stored with a persisted BM25 index (qa/sparse.py)."""
    import hashlib
    from importlib.metadata import version

    stop = hashlib.sha256("\n".join(sorted(STOPWORDS)).encode("utf-8")).hexdigest()[:16]
    return f"tokenize v{TOKENIZER_VERSION}; jieba {version('jieba')}; opencc {version('opencc')}; stopwords {stop}"


def tokenize(text: str) -> list[str]:
    """jieba search-mode tokens of the normalized text, without punctuation and stopwords."""
    folded = normalize(text)
    return [t for t in (w.strip() for w in jieba.cut_for_search(folded)) if t and _KEEP.search(t) and t not in STOPWORDS]


def word_frequency(word: str) -> int:
    """jieba's dictionary count of a word (0 when unknown): how common it is in general Chinese text."""
    jieba.dt.check_initialized()
    return int(jieba.dt.FREQ.get(word, 0))
