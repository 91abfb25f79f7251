"""Gradio 6 chat app: streamed, cited answers; a sources panel; uploads; index status.

`launch(settings)` opens (or builds) the index and serves on settings.host (127.0.0.1 by
default; another host only with settings.api_key set). `build_app(service)` returns the Blocks
without launching, so tests can start it on a free port. Besides the UI, two Gradio API
endpoints are exposed:

* ``/respond`` - what the chat box calls: (message, mode, top_k) -> chat, sources HTML, meta.
* ``/ask`` - for scripts (eval/bench_load.py): (question, history, mode, top_k) streams dicts
  ``{"text", "done": false}`` and finally ``{"text", "done": true, "abstained", "mode",
  "notice", "citations": [...]}`` or ``{"error", "code", "done": true}``.

and, on the same port, the OpenAI-compatible HTTP API of qa/api.py (/v1/chat/completions,
/v1/models, /v1/retrieval; docs/api.md), which answers through the same `Handlers.ask`.

Everything that comes from documents or users is html-escaped here: documents are untrusted.
"""

from __future__ import annotations

import html
import ipaddress
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Iterator

import gradio as gr

from .api import api_routes
from .documents import DocumentLibrary
from .loader import DocumentError, document_from_bytes
from .pipeline import QAService, QuestionError, clean_question
from .settings import Settings, load_settings
from .store import CURRENT_FILE
from .types import Answer, Citation, Chunk

log = logging.getLogger(__name__)

EXAMPLES = [
    "why did 01.AI give up pretraining?",
    "李开复说一次预训练的成本是多少？",  # (the Chinese 01.AI "why" question is withdrawn by the verifier: issue 20 note)
    "階躍星辰和智譜AI會繼續做預訓練嗎？",
]

# Answering is CPU-bound (embedding + scoring). More parallel workers than cores only adds
# contention; the queue holds everyone else, so any number of simultaneous users gets answered.
CONCURRENCY = int(os.environ.get("QA_APP_CONCURRENCY", "4"))
EXCERPT_CHARS = 90  # chunk text shown on each side of the cited sentence in a source card
CONTEXT_CHARS = 400  # extra corpus text on each side of the chunk in the "wider context" view
HISTORY_TURNS = 5  # previous questions passed to the service for follow-up rewriting

MODE_LABELS = {"extractive": "extractive (quoted sentences)", "llm": "local LLM",
               "extractive-fallback": "extractive (LLM fallback)"}

CSS = """
#sources-panel { max-height: 78vh; overflow-y: auto; }
.qa-sources .src-empty { color: var(--body-text-color-subdued); font-style: italic; padding: 8px; }
.qa-sources .src-header { font-weight: 600; margin: 2px 0 8px; }
.qa-sources .src-query { font-weight: normal; color: var(--body-text-color-subdued); font-size: 0.9em; }
.src-card { border: 1px solid var(--border-color-primary); border-left: 4px solid #2563eb; border-radius: 8px;
            padding: 8px 12px; margin-bottom: 10px; background: var(--block-background-fill); scroll-margin-top: 12px; }
.src-card.src-flash { box-shadow: 0 0 0 3px #f59e0b; transition: box-shadow 0.3s; }
.src-card .src-num { display: inline-block; min-width: 2em; font-weight: 700; color: #2563eb; }
.src-card .src-title { font-weight: 600; }
.src-card .src-meta { font-size: 0.82em; color: var(--body-text-color-subdued); margin: 2px 0 6px; }
.src-card .src-passage { line-height: 1.7; margin: 0; }
.src-card details { margin-top: 6px; font-size: 0.92em; }
.src-card details summary { cursor: pointer; color: #2563eb; }
.src-card .src-context { line-height: 1.7; margin-top: 4px; padding: 6px 8px; background: var(--background-fill-secondary);
                         border-radius: 6px; max-height: 320px; overflow-y: auto; }
.qa-sources mark, .qa-answer mark { background: #fde68a; color: #111827; padding: 0 1px; border-radius: 2px; }
.src-card.src-unsupported { border-left-color: #dc2626; }
.qa-answer a.cite, .qa-answer span.cite { font-weight: 700; text-decoration: none; color: #2563eb; margin: 0 1px; }
.qa-answer span.cite.stale { color: var(--body-text-color-subdued); }
.qa-answer .cite.unsupported { color: #dc2626; }
.qa-answer .qa-english { margin-top: 0.6em; padding-top: 0.4em; border-top: 1px solid var(--border-color-primary); font-size: 0.92em; }
.qa-abstain { border: 1px dashed #9ca3af; border-radius: 8px; padding: 6px 10px; color: #4b5563;
              background: #f3f4f6; font-style: italic; }
.qa-abstain strong { font-style: normal; }
.qa-answer strong.qa-span, .qa-sources strong.qa-span { font-weight: 700; text-decoration: underline; text-decoration-color: #b45309; }
.qa-error { border-left: 4px solid #dc2626; padding: 4px 10px; color: #991b1b; background: #fef2f2; border-radius: 4px; }
.qa-pending { color: var(--body-text-color-subdued); font-style: italic; }
#answer-meta { font-size: 0.88em; color: var(--body-text-color-subdued); min-height: 1.2em; }
#index-status { font-size: 0.9em; }
.upload-ok { color: #166534; } .upload-bad { color: #b91c1c; } .upload-skip { color: #92400e; }
.src-card .src-where { font-weight: 600; color: #1f2937; }
#document-list table { width: 100%; font-size: 0.88em; border-collapse: collapse; }
#document-list th, #document-list td { text-align: left; padding: 2px 6px; border-bottom: 1px solid var(--border-color-primary); }
"""

# Citation links are plain in-page anchors; this keeps them in the page (markdown renderers may
# add target=_blank) and flashes the card that was jumped to.
HEAD = """
<script>
document.addEventListener("click", function (event) {
  const link = event.target.closest && event.target.closest('a[href^="#src-"]');
  if (!link) return;
  const card = document.getElementById(link.getAttribute("href").slice(1));
  if (!card) return;
  event.preventDefault();
  event.stopPropagation();
  card.scrollIntoView({behavior: "smooth", block: "start"});
  card.classList.add("src-flash");
  setTimeout(function () { card.classList.remove("src-flash"); }, 1500);
}, true);
</script>
"""


# ------------------------------------------------------------------ pure rendering helpers

def esc(text: str) -> str:
    return html.escape(text or "", quote=True)


def _flat(text: str) -> str:
    """Subtitle line breaks read better as spaces (same as qa.messages.display())."""
    return re.sub(r"\s*\n\s*", " ", text)


def highlight(text: str, start: int, end: int) -> str:
    """Escaped `text` with text[start:end] wrapped in <mark>; offsets are clamped."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    if end < start:
        start, end = end, start
    return (esc(_flat(text[:start])) + "<mark>" + esc(_flat(text[start:end])) + "</mark>"
            + esc(_flat(text[end:])))


_MARKER = re.compile(r"\[(\d{1,2})\]")
_BOLD = re.compile(r"\*\*(.+?)\*\*", flags=re.S)


def bold_spans(escaped: str) -> str:
    """The reader's answer span, written **span** in the answer text, as <strong class="qa-span">."""
    return _BOLD.sub(r'<strong class="qa-span">\1</strong>', escaped)


def highlight_with_span(text: str, start: int, end: int, span_start: int | None, span_end: int | None) -> str:
    """Like highlight(), and inside the marked sentence the answer span in <strong class="qa-span">."""
    if span_start is None or span_end is None or not (start <= span_start < span_end <= end):
        return highlight(text, start, end)
    return (esc(_flat(text[:start])) + "<mark>" + esc(_flat(text[start:span_start]))
            + '<strong class="qa-span">' + esc(_flat(text[span_start:span_end])) + "</strong>"
            + esc(_flat(text[span_end:end])) + "</mark>" + esc(_flat(text[end:])))


def link_markers(escaped: str, n_citations: int | None, unsupported=()) -> str:
    """Turn [n] markers of already-escaped text into anchors to the source card #src-n."""

    def repl(m: re.Match) -> str:
        n = int(m.group(1))
        if n < 1 or (n_citations is not None and n > n_citations):
            return m.group(0)
        cls = "cite unsupported" if n in unsupported else "cite"
        title = "flagged: not supported by this source" if n in unsupported else f"source {n}"
        return f'<a class="{cls}" href="#src-{n}" title="{title}">[{n}]</a>'

    return _MARKER.sub(repl, escaped)


def answer_html(answer: Answer) -> str:
    """The chat bubble of a final answer; abstentions get their own, distinct style."""
    if answer.abstained:
        m = re.match(r"([^:：]{1,40}[:：])(.*)", answer.text, flags=re.S)
        head, rest = (m.group(1), m.group(2)) if m else ("Not found in the documents.", " " + answer.text)
        return f'<div class="qa-abstain" data-abstained="true"><strong>{esc(head)}</strong>{esc(rest)}</div>'
    body = link_markers(bold_spans(esc(answer.text)), len(answer.citations), set(answer.unsupported or ()))
    if answer.english:  # an English question: what the Chinese quote holds, in English (qa/gloss.py)
        lines = "<br>".join(link_markers(bold_spans(esc(line)), len(answer.citations)) for line in answer.english.splitlines())
        body += f'<div class="qa-english" lang="en">{lines}</div>'
    return f'<div class="qa-answer">{body}</div>'


def partial_html(text: str) -> str:
    """A streaming chat bubble: markers link already (the cards arrive with the final answer)."""
    return f'<div class="qa-answer">{link_markers(bold_spans(esc(text)), None)}▍</div>'


def error_html(message: str) -> str:
    return f'<div class="qa-error">⚠ {esc(message)}</div>'


def question_html(question: str) -> str:
    if not (question or "").strip():
        return '<div class="qa-q"><i>(empty question)</i></div>'
    return f'<div class="qa-q">{esc(question)}</div>'


def meta_html(answer: Answer | None, seconds: float | None = None) -> str:
    if answer is None:
        return ""
    parts = [f"Answered by: <b>{esc(MODE_LABELS.get(answer.mode, answer.mode))}</b>"]
    if answer.reader:
        parts.append(f"reader: {esc(answer.reader)} · confidence {float(answer.confidence):.2f}")
    if answer.abstained:
        # the notice below says why when a check decided it ("the documents never mention 2030")
        parts.append("abstained" if answer.notice else "abstained (no passage was convincing enough)")
    if answer.query and answer.question and answer.query != answer.question:
        parts.append(f"searched for: “{esc(answer.query)}”")
    if seconds is not None:
        parts.append(f"{seconds:.1f} s")
    line = " · ".join(parts)
    if answer.notice:
        line += f'<br><span class="qa-notice">ℹ {esc(answer.notice)}</span>'
    return line


def status_html(status: dict) -> str:
    built = status.get("built_at") or "never"
    secs = status.get("build_seconds")
    took = f" ({secs:.1f} s)" if isinstance(secs, (int, float)) else ""
    return (f"<b>{status.get('documents', 0)}</b> documents · <b>{status.get('chunks', 0)}</b> passages · "
            f"model <code>{esc(str(status.get('model', '')))}</code> · last build {esc(str(built))}{took}")


class CorpusReader:
    """Document text for the wider-context view: the extracted text kept with the index (PDF, Word,
    HTML...), else the corpus file, cached by (mtime, size)."""

    def __init__(self, corpus_dir: Path | None, service: QAService | None = None):
        self.corpus_dir = Path(corpus_dir) if corpus_dir else None
        self.service = service
        self._cache: dict[str, tuple[tuple, str]] = {}
        self._lock = threading.Lock()

    def text(self, doc: str) -> str | None:
        index = self.service.index if self.service is not None else None
        if index is not None and doc in index.texts:
            return index.texts[doc].text
        if self.corpus_dir is None:
            return None
        path = self.corpus_dir / doc
        try:
            if self.corpus_dir.resolve() not in path.resolve().parents:
                return None
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
            with self._lock:
                hit = self._cache.get(doc)
            if hit and hit[0] == key:
                return hit[1]
            text = document_from_bytes(doc, path.read_bytes()).text
        except (OSError, DocumentError):
            return None
        with self._lock:
            self._cache[doc] = (key, text)
        return text


def _chunk_for(citation: Citation, hits) -> Chunk | None:
    for hit in hits or ():
        if citation.chunk_id is not None and hit.chunk.chunk_id == citation.chunk_id:
            return hit.chunk
    for hit in hits or ():
        c = hit.chunk
        if c.doc_id == citation.doc and c.start <= citation.start and citation.end <= c.end:
            return c
    return None


def source_card(n: int, c: Citation, hits, corpus: CorpusReader | None, scripts: dict | None = None,
                unsupported: bool = False) -> str:
    chunk = _chunk_for(c, hits)
    if chunk is not None and chunk.text[c.start - chunk.start : c.end - chunk.start] == c.text:
        rel_s, rel_e = c.start - chunk.start, c.end - chunk.start
        lo, hi = max(0, rel_s - EXCERPT_CHARS), min(len(chunk.text), rel_e + EXCERPT_CHARS)
        sp_s = c.span_start - chunk.start - lo if c.span_start is not None else None
        sp_e = c.span_end - chunk.start - lo if c.span_end is not None else None
        excerpt = (("…" if lo > 0 else "") + highlight_with_span(chunk.text[lo:hi], rel_s - lo, rel_e - lo, sp_s, sp_e)
                   + ("…" if hi < len(chunk.text) else ""))
        passage_text, passage_start = chunk.text, chunk.start
    else:
        excerpt = highlight_with_span(c.text, 0, len(c.text), None if c.span_start is None else c.span_start - c.start,
                                      None if c.span_end is None else c.span_end - c.start)
        passage_text, passage_start = c.text, c.start
    # Wider context: read from the corpus file when it still matches the index, else the chunk.
    full = corpus.text(c.doc) if corpus else None
    if full is not None and full[c.start : c.end] == c.text:
        w_lo = max(0, (chunk.start if chunk else c.start) - CONTEXT_CHARS)
        w_hi = min(len(full), (chunk.end if chunk else c.end) + CONTEXT_CHARS)
        context = (("…" if w_lo > 0 else "") + highlight(full[w_lo:w_hi], c.start - w_lo, c.end - w_lo)
                   + ("…" if w_hi < len(full) else ""))
        context_label = f"Show wider context (chars {w_lo}–{w_hi} of {len(full)})"
    else:
        context = highlight(passage_text, c.start - passage_start, c.end - passage_start)
        context_label = "Show the full passage"
    script = (scripts or {}).get(c.doc, "")
    meta = [esc(c.doc)]
    if c.page:
        meta.append(f'<span class="src-where" data-page="{int(c.page)}">p. {int(c.page)}</span>')
    if c.section:
        meta.append(f'<span class="src-where" data-section="{esc(c.section)}">§ {esc(c.section)}</span>')
    meta.append(f"chars {c.start}–{c.end}")
    if script:
        meta.append(esc(script))
    meta.append(f"score {float(c.score):.3f}")
    if c.span_start is not None and c.span_end is not None:
        meta.append(f"answer span chars {c.span_start}–{c.span_end}")
    if unsupported:
        meta.append("⚠ flagged as unsupported")
    cls = "src-card src-unsupported" if unsupported else "src-card"
    return (f'<div class="{cls}" id="src-{n}" data-doc="{esc(c.doc)}">'
            f'<div class="src-head"><span class="src-num">[{n}]</span><span class="src-title">{esc(c.title or c.doc)}</span></div>'
            f'<div class="src-meta">{" · ".join(meta)}</div>'
            f'<p class="src-passage">{excerpt}</p>'
            f'<details><summary>{context_label}</summary><div class="src-context">{context}</div></details>'
            f"</div>")


EMPTY_SOURCES = '<div class="qa-sources"><div class="src-empty">Sources of the answer appear here.</div></div>'


def sources_html(answer: Answer | None, corpus: CorpusReader | None = None, scripts: dict | None = None) -> str:
    """The sources panel for one answer: a card per citation, or the closest passages when abstaining."""
    if answer is None:
        return EMPTY_SOURCES
    head = f'<div class="src-header">Sources for “{esc(answer.question)}”'
    if answer.query and answer.query != answer.question:
        head += f' <span class="src-query">(searched for “{esc(answer.query)}”)</span>'
    head += "</div>"
    if answer.citations:
        unsupported = set(answer.unsupported or ())
        cards = "".join(source_card(n, c, answer.hits, corpus, scripts, n in unsupported)
                        for n, c in enumerate(answer.citations, 1))
        return f'<div class="qa-sources">{head}{cards}</div>'
    closest = "".join(
        f'<li><b>{esc(h.chunk.doc_id)}</b> chars {h.chunk.start}–{h.chunk.end}: {esc(_flat(h.chunk.text[:160]))}…</li>'
        for h in (answer.hits or [])[:5])
    note = '<div class="src-empty">No passage answers the question, so nothing is cited.</div>'
    if closest:
        note += (f'<details open class="possibly-related"><summary>Possibly related passages (they do not answer it)'
                 f"</summary><ul>{closest}</ul></details>")
    return f'<div class="qa-sources">{head}{note}</div>'


def answer_payload(answer: Answer) -> dict:
    """The final answer as JSON (the /ask endpoint, and the citations of the /v1 API): citation n is marker [n];
    `text == document text[start:end]`, and span_text == text[span_start - start:span_end - start] when set."""
    return {"text": answer.text, "done": True, "abstained": answer.abstained, "mode": answer.mode,
            "notice": answer.notice, "query": answer.query, "english": answer.english,
            "citations": [{"n": n, "doc": c.doc, "title": c.title, "start": c.start, "end": c.end, "text": c.text,
                           "score": round(float(c.score), 4), "page": c.page, "section": c.section,
                           "span_start": c.span_start, "span_end": c.span_end, "span_text": c.span_text}
                          for n, c in enumerate(answer.citations, 1)]}


def _stale(content: str) -> str:
    """Older answers keep their markers but no longer link: the panel shows the latest sources."""
    content = re.sub(r'<a class="(cite[^"]*)" href="#src-(\d+)" title="[^"]*">', r'<span class="\1 stale" title="source of an earlier answer">', content)
    return content.replace("</a>", "</span>")


# ------------------------------------------------------------------ the app

def _mode_choice(service: QAService):
    if service.llm_configured:
        return dict(choices=[("Extractive (quotes the documents)", "extractive"), ("LLM (local model, cites sources)", "llm")],
                    interactive=True, info="LLM answers fall back to extractive when the model fails or cites nothing valid.")
    return dict(choices=[("Extractive (quotes the documents)", "extractive"), ("LLM (not configured)", "llm")],
                interactive=False, info="LLM mode is disabled: set QA_LLM_BASE_URL and QA_LLM_MODEL to enable it.")


class Handlers:
    """The event handlers, separate from the layout so tests can call them directly."""

    def __init__(self, service: QAService):
        self.service = service
        self.settings = service.settings
        self.corpus = CorpusReader(self.settings.corpus_dir, service)

    def scripts(self) -> dict:
        index = self.service.index
        return {d: m.get("script", "") for d, m in index.documents.items()} if index is not None else {}

    def status(self) -> str:
        return status_html(self.service.status())

    @staticmethod
    def render_chat(turns: list[dict]) -> list[dict]:
        messages = []
        for t in turns:
            messages.append({"role": "user", "content": question_html(t["question"])})
            messages.append({"role": "assistant", "content": t["html"]})
        return messages

    @staticmethod
    def new_conversation() -> dict:
        return {"turns": [], "asked": []}

    def respond(self, message: str, mode: str, top_k: float, conv: dict | None):
        """Streams (chat messages, question box, sources HTML, meta HTML, conversation state)."""
        conv = conv or {}
        conv = {"turns": [dict(t) for t in conv.get("turns", [])], "asked": list(conv.get("asked", []))}
        for t in conv["turns"]:
            t["html"] = _stale(t["html"])
        turn = {"question": message or "", "html": '<div class="qa-pending">Searching the documents…</div>'}
        conv["turns"].append(turn)
        question = ""
        try:
            question = clean_question(message, self.settings)
        except QuestionError as exc:
            turn["html"] = error_html(str(exc))
            yield self.render_chat(conv["turns"]), gr.skip(), gr.skip(), "", conv
            return
        yield self.render_chat(conv["turns"]), "", gr.skip(), "", conv
        started = time.perf_counter()
        try:
            k = int(top_k) if top_k else None
            for partial, answer in self.service.ask_stream(question, history=conv["asked"][-HISTORY_TURNS:], top_k=k,
                                                           answer_mode=mode or "extractive"):
                if answer is None:
                    turn["html"] = partial_html(partial)
                    yield self.render_chat(conv["turns"]), gr.skip(), gr.skip(), gr.skip(), conv
                else:
                    turn["html"] = answer_html(answer)
                    conv["asked"].append(question)
                    conv["last"] = {"reader": answer.reader, "confidence": round(float(answer.confidence), 4),
                                    "abstained": answer.abstained,
                                    "measure": "P(answered)" if "answer_coverage" in answer.verification else "evidence score"}
                    yield (self.render_chat(conv["turns"]), gr.skip(), sources_html(answer, self.corpus, self.scripts()),
                           meta_html(answer, time.perf_counter() - started), conv)
        except QuestionError as exc:
            turn["html"] = error_html(str(exc))
            yield self.render_chat(conv["turns"]), gr.skip(), gr.skip(), "", conv
        except Exception as exc:  # the app must keep running whatever happens
            log.exception("answering %r failed", question)
            turn["html"] = error_html(f"Sorry, something went wrong while answering ({type(exc).__name__}). "
                                      "The app is still running; please try again or rephrase the question.")
            yield self.render_chat(conv["turns"]), gr.skip(), gr.skip(), "", conv

    def ask(self, question: str, history: list[str] | None = None, mode: str = "extractive",
            top_k: int = 0) -> Iterator[dict]:
        """Answer a question, streaming {"text", "done": false} then the final answer with citations.

        Shared by the Gradio /ask endpoint and the /v1 HTTP API (qa/api.py). `history`: the earlier questions,
        as the chat box keeps them; errors end the stream with {"error", "code", "done": true}, code
        "invalid_question" (the message is for the user) or "internal_error".
        """
        try:
            history = [h for h in (history or []) if isinstance(h, str)][-HISTORY_TURNS:]
            for partial, answer in self.service.ask_stream(question, history=history, top_k=int(top_k or 0) or None,
                                                           answer_mode=mode or "extractive"):
                yield {"text": partial, "done": False} if answer is None else answer_payload(answer)
        except QuestionError as exc:
            yield {"error": str(exc), "code": "invalid_question", "done": True}
        except Exception as exc:
            log.exception("API question %r failed", question)
            yield {"error": f"internal error ({type(exc).__name__})", "code": "internal_error", "done": True}

    def upload(self, files, progress=gr.Progress()):
        """Index uploaded files in one batch; returns (report HTML, status HTML, cleared file list)."""
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        if not paths:
            return gr.skip(), gr.skip(), gr.skip()
        before = self.service.status().get("documents", 0)
        try:
            report = DocumentLibrary(self.service).add_files(
                [(Path(p).name, Path(p)) for p in paths], total=len(paths),
                progress=lambda f, d: progress(f, desc=d))
            lines = [self._outcome_html(o, report) for o in report.outcomes]
        except Exception as exc:  # the app stays up, and the corpus was restored
            log.exception("upload failed")
            lines = [f'<li class="upload-bad">✗ Not added: unexpected error ({esc(type(exc).__name__)}); '
                     "the index is unchanged.</li>"]
        after = self.service.status().get("documents", 0)
        summary = (f"Documents in the index: {before} → {after}." if after != before
                   else f"Nothing new was indexed; the index is unchanged ({after} documents).")
        return f'<div id="upload-report"><ul>{"".join(lines)}</ul><div>{summary}</div></div>', self.status(), None

    def reader_info(self, conv: dict | None = None) -> str:
        """The settings' reader line: which reader answers, its threshold, the last answer's confidence."""
        cfg = self.settings
        line = f"Reader: <b>{esc(cfg.reader)}</b>"
        verifier = self.service.verifier if cfg.reader == "neural" else None
        judged = "; ".join(m.describe() for m in verifier.models) if verifier is not None else ""
        if cfg.reader == "neural" and cfg.reader_rerank and verifier is not None:
            line += (f" (trained; reranks the passages and marks the span; the answer verifier abstains on {judged}; "
                     f"on others the reader's probability below {cfg.reader_threshold_en:.2f})")
        elif cfg.reader == "neural" and cfg.reader_rerank:
            line += f" (trained; reranks, abstains below probability {cfg.reader_threshold:.2f})"
        elif cfg.reader == "neural" and verifier is not None:
            line += (f" (trained span in bold; the answer verifier abstains on {judged}; "
                     f"on others the evidence score below {cfg.abstain_threshold:.2f})")
        elif cfg.reader == "neural":
            line += (f" (trained span in bold; sentences and abstention by the evidence score, "
                     f"abstains below {cfg.abstain_threshold:.2f})")
        else:
            line += f" (abstains below evidence score {cfg.abstain_threshold:.2f})"
        last = (conv or {}).get("last")
        if last:
            verdict = "abstained" if last.get("abstained") else "answered"
            line += (f' · last answer: confidence <b id="reader-confidence-value">{float(last.get("confidence", 0)):.2f}</b>'
                     f" ({esc(last.get('measure', 'evidence score'))}; {verdict})")
        return f'<div id="reader-info">{line}</div>'

    @staticmethod
    def _outcome_html(o, report) -> str:
        if o.status == "refused":
            return f'<li class="upload-bad">✗ Not added: {esc(o.name)}: {esc(o.reason)}</li>'
        if o.status == "skipped":
            return f'<li class="upload-skip">– Skipped {esc(o.name)}: {esc(o.reason)}</li>'
        verb = "Replaced the earlier version of" if o.status == "replaced" else "Added"
        note = f" ⚠ It {esc(o.reason)}." if o.duplicate_of else ""
        return f'<li class="upload-ok">✓ {verb} {esc(o.name)}.{note}</li>'

    def documents_html(self) -> str:
        rows = DocumentLibrary(self.service).list()
        if not rows:
            return '<div id="document-table">No documents yet.</div>'
        body = "".join(f"<tr><td>{esc(r.doc_id)}</td><td>{esc(r.kind)}</td><td>{r.pages or ''}</td><td>{r.passages}</td>"
                       f"<td>{esc(r.added_at)}</td></tr>" for r in rows)
        return ('<div id="document-table"><table><thead><tr><th>document</th><th>type</th><th>pages</th>'
                f"<th>passages</th><th>added</th></tr></thead><tbody>{body}</tbody></table></div>")

    def documents_view(self):
        """(document table HTML, delete dropdown update)."""
        choices = [r.doc_id for r in DocumentLibrary(self.service).list()]
        return self.documents_html(), gr.update(choices=choices, value=None)

    def delete(self, doc_id: str | None):
        """Remove one document; returns (message HTML, status HTML, table HTML, dropdown update)."""
        if not doc_id:
            return '<div id="delete-report">Choose a document to delete.</div>', gr.skip(), gr.skip(), gr.skip()
        try:
            report = DocumentLibrary(self.service).remove(doc_id)
            message = (f'<div id="delete-report" class="upload-ok">✓ Deleted {esc(doc_id)} '
                       f"({report.documents} documents, {report.chunks} passages left).</div>")
        except DocumentError as exc:
            message = f'<div id="delete-report" class="upload-bad">✗ {esc(str(exc))}</div>'
        except Exception as exc:
            log.exception("delete of %s failed", doc_id)
            message = f'<div id="delete-report" class="upload-bad">✗ Could not delete {esc(doc_id)} ({esc(type(exc).__name__)}).</div>'
        table, dropdown = self.documents_view()
        return message, self.status(), table, dropdown

    def clear(self):
        return [], self.new_conversation(), EMPTY_SOURCES, "", ""


def theme() -> gr.themes.Base:
    """The default look with local fonts only: the stock theme fetches Google Fonts, which offline
    machines cannot reach (pages then wait on it), and CJK text wants a CJK font first anyway."""
    sans = ["Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Microsoft YaHei", "DejaVu Sans", "system-ui", "sans-serif"]
    mono = ["Noto Sans Mono CJK SC", "ui-monospace", "Consolas", "monospace"]
    return gr.themes.Default(font=sans, font_mono=mono)


def build_app(service: QAService) -> gr.Blocks:
    settings = service.settings
    h = Handlers(service)

    with gr.Blocks(title="文档问答 · Document QA", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        conv = gr.State(Handlers.new_conversation())
        gr.Markdown("## 文档问答 · Question answering over Chinese documents\n"
                    "Ask in 简体, 繁體 or English. Answers quote the documents verbatim with numbered citations "
                    "[1], [2]…; click a marker to jump to its source. When the documents don't say, the bot says so.")
        status = gr.HTML(h.status(), elem_id="index-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=380):
                chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=520, latex_delimiters=[],
                                     feedback_options=None, buttons=["copy"],
                                     placeholder="Ask a question about the documents.")
                with gr.Row():
                    question = gr.Textbox(show_label=False, placeholder="Ask a question… 例如：李开复说一次预训练的成本是多少？",
                                          scale=5, max_lines=4, elem_id="question", autofocus=True)
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask-button")
                meta = gr.HTML("", elem_id="answer-meta")
                gr.Examples([[q] for q in EXAMPLES], inputs=[question], label="Example questions")
                clear_btn = gr.Button("New conversation", size="sm", elem_id="clear-button")
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    mode = gr.Radio(value="extractive", label="Answer mode", elem_id="answer-mode", **_mode_choice(service))
                    top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages to retrieve (top-k)",
                                      elem_id="top-k")
                    reader_info = gr.HTML(h.reader_info(), elem_id="reader-confidence")
                with gr.Accordion("Add documents", open=True, elem_id="add-documents"):
                    files = gr.File(file_count="multiple",
                                    label=f"Upload PDF, Word (.docx), HTML, EPUB, Markdown or text files "
                                    f"(≤ {settings.max_document_bytes // 1_000_000} MB each; text ≤ "
                                    f"{settings.max_upload_bytes // 1_000_000} MB)", elem_id="upload", height=150)
                    upload_result = gr.HTML("", elem_id="upload-result")
                with gr.Accordion("Documents", open=False, elem_id="documents"):
                    doc_table = gr.HTML(h.documents_html(), elem_id="document-list")
                    with gr.Row():
                        doc_choice = gr.Dropdown(choices=[r.doc_id for r in DocumentLibrary(service).list()], value=None,
                                                 label="Document to delete", elem_id="delete-choice", scale=4)
                        delete_btn = gr.Button("Delete", variant="stop", elem_id="delete-button", scale=1, min_width=80)
                    delete_result = gr.HTML("", elem_id="delete-result")
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("### Sources", elem_id="sources-title")
                sources = gr.HTML(EMPTY_SOURCES, label="Sources", elem_id="sources-panel")

        gr.on([question.submit, ask_btn.click], h.respond, inputs=[question, mode, top_k, conv],
              outputs=[chatbot, question, sources, meta, conv], api_name="respond",
              concurrency_id="answer", show_progress="minimal").then(
            h.reader_info, inputs=[conv], outputs=[reader_info], api_visibility="private", queue=False)
        files.upload(h.upload, inputs=[files], outputs=[upload_result, status, files], api_name="upload",
                     concurrency_limit=1, concurrency_id="upload").then(
            h.documents_view, outputs=[doc_table, doc_choice], api_visibility="private", queue=False)
        delete_btn.click(h.delete, inputs=[doc_choice], outputs=[delete_result, status, doc_table, doc_choice],
                         api_name="delete", concurrency_limit=1, concurrency_id="upload")
        clear_btn.click(h.clear, outputs=[chatbot, conv, sources, meta, question], api_visibility="private", queue=False)
        demo.load(h.status, outputs=[status], api_visibility="private", queue=False)
        demo.load(h.documents_view, outputs=[doc_table, doc_choice], api_visibility="private", queue=False)
        gr.api(h.ask, api_name="ask", concurrency_id="answer")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=None)

    # gradio 6 takes css/head in launch(): bake ours in, so `demo.launch(...)` in tests looks the same.
    # The /v1 HTTP API goes in the same way: launch() builds the FastAPI app from app_kwargs, and routes given
    # to its constructor come before Gradio's own, on the same port (gr.mount_gradio_app would need our own
    # uvicorn, and tests could no longer start the app with demo.launch()).
    plain_launch = demo.launch
    routes = api_routes(h, concurrency=CONCURRENCY)

    def launch_with_style(*args, **kwargs):
        kwargs.setdefault("css", CSS)
        kwargs.setdefault("head", HEAD)
        kwargs.setdefault("theme", theme())
        app_kwargs = dict(kwargs.get("app_kwargs") or {})
        app_kwargs["routes"] = [*routes, *app_kwargs.get("routes", [])]
        kwargs["app_kwargs"] = app_kwargs
        return plain_launch(*args, **kwargs)

    demo.launch = launch_with_style
    return demo


def _terminal_progress():
    """tqdm already draws the embedding bar; this adds the stage summaries."""

    def progress(fraction: float, desc: str) -> None:
        if fraction >= 1.0 and not desc.startswith("embedding"):
            print(f"[index] {desc}", flush=True)

    return progress


def _warm_up(service: QAService) -> None:
    """First question pays for lazy initialisation (tokenizers, jieba, sentence vectors): do it now."""
    started = time.perf_counter()
    try:
        service.ask(EXAMPLES[1])
        service.ask(EXAMPLES[0])  # an English one too: it loads the English rendering's dictionary (qa/gloss.py)
        log.info("warm-up question answered in %.1fs", time.perf_counter() - started)
    except Exception:  # never fatal
        log.exception("warm-up failed")


class UnsafeHostError(SystemExit):
    """Serving beyond this machine without an API key. A SystemExit: `python app.py` / `qa serve` print the
    message and exit with status 1, no traceback."""


def is_loopback(host: str) -> bool:
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # any other name may resolve to a reachable address
        return False


def check_host(settings: Settings, host: str) -> None:
    """Refuse a non-loopback host without settings.api_key: the /v1 API would answer anyone on the network."""
    if is_loopback(host) or settings.api_key:
        return
    raise UnsafeHostError(
        f"Refusing to serve on {host}: without an API key anyone who can reach this machine could use the /v1 API. "
        f"Set QA_API_KEY to a long random secret (clients send it as 'Authorization: Bearer <key>'; e.g. "
        f"QA_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')), or serve on 127.0.0.1, "
        f"the default. The key protects the /v1 routes; the chat page itself stays open to whoever reaches it.")


def launch(settings: Settings | None = None, host: str | None = None, port: int | None = None, **kwargs):
    settings = settings or load_settings()
    host, port = server_address(settings, host, port)
    check_host(settings, host)  # before the index is opened: a refusal takes no time
    started = time.perf_counter()
    if settings.store == "milvus":
        print(f"Opening the Milvus index at {settings.milvus_uri or Path(settings.index_dir) / 'milvus.db'}…", flush=True)
    elif (Path(settings.index_dir) / CURRENT_FILE).exists():
        print(f"Opening the index in {settings.index_dir}…", flush=True)
    else:
        print(f"No index in {settings.index_dir} yet: building it from {settings.corpus_dir} (first start only)…",
              flush=True)
    service = QAService.open(settings, build_if_missing=True, progress=_terminal_progress())
    for message in service.messages:
        if not message.startswith("No index yet"):
            print(f"note: {message}", flush=True)
    st = service.status()
    print(f"Index ready in {time.perf_counter() - started:.1f}s: {st['documents']} documents, {st['chunks']} passages.",
          flush=True)
    threading.Thread(target=_warm_up, args=(service,), daemon=True, name="qa-warm-up").start()
    demo = build_app(service)
    max_file = max(settings.max_upload_bytes, settings.max_document_bytes) * 2
    return demo.launch(server_name=host, server_port=port, max_file_size=max_file, **kwargs)


def server_address(settings: Settings, host: str | None = None, port: int | None = None,
                   environ=os.environ) -> tuple[str, int]:
    """Where to listen: --host/--port, else QA_HOST/QA_PORT, else GRADIO_SERVER_NAME/GRADIO_SERVER_PORT
    (the variables every Gradio app honours, set by Hugging Face Spaces), else 127.0.0.1:7860."""
    if not host:
        host = settings.host if environ.get("QA_HOST") else (environ.get("GRADIO_SERVER_NAME") or settings.host)
    if not port:
        gradio_port = environ.get("GRADIO_SERVER_PORT")
        port = settings.port if environ.get("QA_PORT") or not gradio_port else int(gradio_port)
    return host, int(port)
