"""Duplicates across documents and passages, in either script.

Texts are compared as sets of character shingles of their script-folded form (NFKC,
Traditional -> Simplified, lowercase, letters and digits only), so a document re-saved with
small edits, or converted between 简体 and 繁體, shares most of its shingles with the original.

* Documents: MinHash signatures (datasketch, 128 permutations) estimate the Jaccard similarity;
  at or above `duplicate_threshold` the user is told which document the new one duplicates.
* Passages: retrieval keeps the best-ranked of any two hits whose shingle overlap coefficient
  (shared / smaller set) reaches `passage_duplicate_threshold`, so top-k never holds two copies.

Both thresholds come from `eval/bench_ingest.py` (see README).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .text import normalize
from .types import Hit

SHINGLE = 4  # characters: 4 CJK characters are about two words
PERMUTATIONS = 128
_KEEP = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff]+")


def folded(text: str) -> str:
    return _KEEP.sub("", normalize(text))


@lru_cache(maxsize=4096)
def shingles(text: str, size: int = SHINGLE) -> frozenset[str]:
    f = folded(text)
    if len(f) <= size:
        return frozenset([f]) if f else frozenset()
    return frozenset(f[i : i + size] for i in range(len(f) - size + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def overlap(a: frozenset, b: frozenset) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


@lru_cache(maxsize=1024)
def signature(text: str):
    """MinHash of the text's shingles (cached by text)."""
    from datasketch import MinHash

    m = MinHash(num_perm=PERMUTATIONS, seed=1)
    grams = shingles(text)
    if grams:
        m.update_batch([g.encode("utf-8") for g in grams])
    return m


def similarity(a: str, b: str) -> float:
    """Estimated Jaccard similarity of two documents' folded shingles."""
    return float(signature(a).jaccard(signature(b)))


@dataclass
class Duplicate:
    doc_id: str  # the existing document
    similarity: float
    identical: bool  # same folded text (e.g. the same article in the other script, or the same file again)


def find_duplicate(text: str, others: dict[str, str], threshold: float) -> Duplicate | None:
    """The most similar of `others` (doc_id -> text) at or above the threshold, or None."""
    if not others:
        return None
    mine = signature(text)
    best_id, best = None, -1.0
    for doc_id, other in others.items():
        score = float(mine.jaccard(signature(other)))
        if score > best:
            best_id, best = doc_id, score
    if best < threshold:
        return None
    return Duplicate(best_id, round(best, 3), folded(text) == folded(others[best_id]))


def unique_hits(hits: list[Hit], k: int, threshold: float) -> list[Hit]:
    """The first k hits, skipping any whose text is a near copy of a hit already kept."""
    kept: list[Hit] = []
    kept_grams: list[frozenset] = []
    for hit in hits:
        grams = shingles(hit.chunk.text)
        if any(overlap(grams, g) >= threshold for g in kept_grams):
            continue
        kept.append(hit)
        kept_grams.append(grams)
        if len(kept) == k:
            break
    return kept
