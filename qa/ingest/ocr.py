"""OCR for PDF pages without a text layer: RapidOCR (PP-OCRv4 Chinese models bundled in the wheel).

`rapidocr-onnxruntime` ships its detection, direction and recognition ONNX models inside the
package and downloads nothing at run time (tests run it in a network namespace with no network).
When it cannot be imported, `available()` is False and text-less pages are refused instead.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Protocol

log = logging.getLogger(__name__)


class OcrEngine(Protocol):
    def lines(self, image) -> list[str]:
        """Text lines of a PIL image, top to bottom."""


class RapidOcrEngine:
    def __init__(self):
        from rapidocr_onnxruntime import RapidOCR

        self._engine = RapidOCR()
        self._lock = threading.Lock()  # one page at a time: the ONNX sessions already use every core

    def lines(self, image) -> list[str]:
        import numpy as np

        with self._lock:
            result, _ = self._engine(np.asarray(image.convert("RGB")))
        boxes = sorted(result or [], key=lambda r: (round(r[0][0][1] / 12), r[0][0][0]))  # rows, then left to right
        return [text.strip() for _, text, _ in boxes if text.strip()]


@lru_cache(maxsize=1)
def engine() -> OcrEngine | None:
    try:
        return RapidOcrEngine()
    except Exception as exc:  # ImportError, or a broken onnxruntime / opencv install
        log.warning("OCR is not available (%s: %s); pages without text will be refused", type(exc).__name__, exc)
        return None
