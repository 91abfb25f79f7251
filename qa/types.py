"""The plain data that flows through the pipeline: documents, chunks, hits, citations, answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Document:
    """One source file, decoded to text; `text` is the original script, never normalized."""

    doc_id: str  # file name inside the corpus folder, stable across rebuilds
    text: str
    title: str = ""
    script: str = ""  # "zh-Hans", "zh-Hant", "en", ... as given in metadata.json
    source: str = ""
    content_hash: str = ""
    # Layout of extracted documents (qa/ingest): where each page starts, the headings, the format.
    pages: list[int] = field(default_factory=list)  # pages[i] = offset in `text` where page i + 1 starts
    headings: list["Heading"] = field(default_factory=list)  # in text order
    kind: str = ""  # "pdf", "docx", "html", "epub", "md", "txt"
    file_hash: str = ""  # fingerprint of the file's bytes (qa.ingest.file_hash): unchanged files are not re-extracted


@dataclass
class Heading:
    """A heading of a document: its text is `document.text[start:start + len(text)]`."""

    start: int
    text: str
    level: int = 1


@dataclass
class Sentence:
    """A sentence-like unit of a document: [start, end) offsets into the original text."""

    start: int
    end: int


@dataclass
class Chunk:
    """A retrievable passage: `text == document.text[start:end]`."""

    chunk_id: int
    doc_id: str
    start: int
    end: int
    text: str
    sentences: list[Sentence] = field(default_factory=list)  # absolute offsets
    page: int | None = None  # PDF page (1-based) where the chunk starts
    section: str = ""  # nearest heading before the chunk (docx, md, html, epub)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Chunk":
        sentences = [Sentence(**s) for s in data.get("sentences", [])]
        return cls(**{**data, "sentences": sentences})


@dataclass
class Hit:
    """A retrieved chunk with its fused score and the per-retriever ranks that produced it."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    sparse_rank: int | None = None
    reader_score: float | None = None  # set by a reranking reader (None: the reader does not rerank)
    span: tuple[int, int] | None = None  # absolute offsets in the chunk's document of the reader's answer span
    span_score: float | None = None  # the reader's start + end logit for that span (set with `span`)
    span_gap: float = 0.0  # how much higher the best span anywhere in the chunk scores (it may echo the question)


@dataclass
class Citation:
    """A quoted span: `text == document.text[start:end]`."""

    doc: str
    start: int
    end: int
    text: str
    score: float
    title: str = ""
    chunk_id: int | None = None
    span_start: int | None = None  # absolute offsets of the (bold) answer span inside the cited sentence
    span_end: int | None = None
    page: int | None = None  # PDF page (1-based) of the cited span
    section: str = ""  # nearest heading before the cited span

    @property
    def span_text(self) -> str | None:
        """The document text of the answer span, or None when the reader marked none."""
        if self.span_start is None or self.span_end is None:
            return None
        return self.text[self.span_start - self.start : self.span_end - self.start]


@dataclass
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    mode: str = "extractive"  # which reader produced the text: extractive | llm | extractive-fallback
    notice: str = ""  # one-line message for the user (fallbacks, warnings)
    unsupported: list[int] = field(default_factory=list)  # citation numbers flagged by verification
    query: str = ""  # the retrieval query actually used (after follow-up rewriting)
    confidence: float = 0.0  # the reader's best score (heuristic reader: the best sentence score)
    reader: str = ""  # name of the reader that read the hits: "heuristic" | "neural"
    verification: dict[str, float] = field(default_factory=dict)  # the answer verifier's inputs (qa/verifier.py)
    # For an English question: what the Chinese answer found, in English (qa/gloss.py: the bold span word by word,
    # the names, numbers and dates of each quote, where it is); "" otherwise
    english: str = ""

    def to_json_dict(self) -> dict:
        """The documented `qa ask --json` shape."""
        return {
            "answer": self.text,
            "abstained": self.abstained,
            "mode": self.mode,
            "notice": self.notice,
            "confidence": round(float(self.confidence), 4),
            "reader": self.reader,
            "english": self.english,
            "citations": [
                {"doc": c.doc, "start": c.start, "end": c.end, "text": c.text, "score": round(float(c.score), 4),
                 "span_start": c.span_start, "span_end": c.span_end, "span_text": c.span_text,
                 "page": c.page, "section": c.section}
                for c in self.citations
            ],
            "hits": [
                {
                    "doc": h.chunk.doc_id,
                    "start": h.chunk.start,
                    "end": h.chunk.end,
                    "text": h.chunk.text,
                    "score": round(float(h.score), 6),
                    "reader_score": None if h.reader_score is None else round(float(h.reader_score), 6),
                    "page": h.chunk.page,
                    "section": h.chunk.section,
                }
                for h in self.hits
            ],
        }
