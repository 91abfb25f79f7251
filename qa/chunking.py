"""Sentence-aware chunking under a tiktoken budget, keeping character offsets into the original."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterable

import tiktoken

from .settings import Settings
from .text import split_sentences
from .types import Chunk, Document, Sentence


# Bump when sentence splitting or packing changes: indexes built by another version re-chunk everything.
CHUNKER_VERSION = 2


@lru_cache(maxsize=4)
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


def token_counter(settings: Settings) -> Callable[[str], int]:
    encoding = _encoding(settings.tiktoken_encoding)
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def chunk_document(doc: Document, settings: Settings, count_tokens: Callable[[str], int] | None = None,
                   first_chunk_id: int = 0) -> list[Chunk]:
    """Greedy packing of whole sentences into chunks of at most `chunk_tokens` tokens.

    Consecutive chunks share trailing sentences worth up to `chunk_overlap_tokens`, so an
    answer that straddles a boundary is still retrievable in one piece.
    """
    count = count_tokens or token_counter(settings)
    sentences = split_sentences(doc.text, settings.min_sentence_chars, settings.max_sentence_chars)
    sizes = [count(doc.text[s.start : s.end]) for s in sentences]
    chunks: list[Chunk] = []
    i = 0
    while i < len(sentences):
        j, used = i, 0
        while j < len(sentences) and (j == i or used + sizes[j] <= settings.chunk_tokens):
            used += sizes[j]
            j += 1
        chunks.append(_make_chunk(doc, sentences[i:j], first_chunk_id + len(chunks)))
        if j >= len(sentences):
            break
        # step back over sentences that fit in the overlap budget, but always advance
        back, overlap = j, 0
        while back - 1 > i and overlap + sizes[back - 1] <= settings.chunk_overlap_tokens:
            back -= 1
            overlap += sizes[back]
        i = back
    return chunks


def _make_chunk(doc: Document, sentences: list[Sentence], chunk_id: int) -> Chunk:
    start, end = sentences[0].start, sentences[-1].end
    return Chunk(chunk_id=chunk_id, doc_id=doc.doc_id, start=start, end=end, text=doc.text[start:end],
                 sentences=[Sentence(s.start, s.end) for s in sentences])


def chunk_documents(docs: Iterable[Document], settings: Settings, first_chunk_id: int = 0) -> list[Chunk]:
    count = token_counter(settings)
    chunks: list[Chunk] = []
    for doc in docs:
        chunks.extend(chunk_document(doc, settings, count, first_chunk_id + len(chunks)))
    return chunks
