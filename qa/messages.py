"""User-facing messages shared by every reader and by the pipeline's checks."""

from __future__ import annotations

from .loader import detect_script

NOT_FOUND = {
    "en": "Not found in the documents: none of the indexed passages answers this question.",
    "zh-Hans": "文档中未找到答案：检索到的段落都不能回答这个问题。",
    "zh-Hant": "文件中未找到答案：檢索到的段落都不能回答這個問題。",
}


def not_found_message(question: str) -> str:
    """"Not found in the documents", in the question's script."""
    return NOT_FOUND.get(detect_script(question), NOT_FOUND["en"])


def display(text: str) -> str:
    """Subtitle line breaks read better as spaces inside an answer."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
