"""Script folding that remembers where every folded character came from.

The reader reads folded text (NFKC + Traditional->Simplified, as the indexes do) but must cite
the original; `fold_with_offsets` returns the folded text plus, for each folded character, the
index of the original character it came from.
"""

from __future__ import annotations

import difflib
import unicodedata

from ..text import _t2s, fold_script


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """(fold_script(text), origin) with len(origin) == len(folded) + 1; origin[-1] == len(text)."""
    pieces = [unicodedata.normalize("NFKC", ch) for ch in text]
    nfkc_origin = [i for i, piece in enumerate(pieces) for _ in piece]
    nfkc = "".join(pieces)
    folded = fold_script(text)
    if nfkc != unicodedata.normalize("NFKC", text):  # composed across characters: align the whole
        nfkc = unicodedata.normalize("NFKC", text)
        nfkc_origin = _align(nfkc, text, list(range(len(text))))
    converted = _t2s().convert(nfkc)
    if converted != folded:  # not expected; keep folded as the truth and align to it
        converted = folded
    if len(converted) == len(nfkc):
        origin = nfkc_origin
    else:
        origin = _align(converted, nfkc, nfkc_origin)
    return folded, origin + [len(text)]


def _align(target: str, source: str, source_origin: list[int]) -> list[int]:
    """For each character of `target`, the origin of the matching (or nearest preceding) source character."""
    out: list[int] = []
    matcher = difflib.SequenceMatcher(a=target, b=source, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k in range(i2 - i1):
            j = min(j1 + k, j2 - 1) if j2 > j1 else max(j1 - 1, 0)
            out.append(source_origin[j] if source_origin else 0)
    return out
