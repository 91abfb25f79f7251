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


POSSIBLY_RELATED = {
    "en": "The closest passages are listed below as possibly related; none of them answers it.",
    "zh-Hans": "下面列出的是可能相关的段落，它们都没有回答这个问题。",
    "zh-Hant": "下面列出的是可能相關的段落，它們都沒有回答這個問題。",
}


def possibly_related_message(question: str, has_passages: bool) -> str:
    """Appended to an abstention when passages were retrieved: they stay visible, with no claim that they answer."""
    if not has_passages:
        return ""
    return " " + POSSIBLY_RELATED.get(detect_script(question), POSSIBLY_RELATED["en"])


def abstention_text(question: str, has_passages: bool) -> str:
    """"Not found", plus the pointer to the possibly related passages when some were retrieved."""
    return not_found_message(question) + possibly_related_message(question, has_passages)
