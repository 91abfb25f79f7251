"""Ingestion benchmark: PDF extraction pages/s (and exactness), embedding passages/s, OCR s/page,
Word/HTML extraction, and the measurements behind the duplicate thresholds.

    python eval/bench_ingest.py [--data ../shared/evaldata] [--pages 100] [--passages 120]

Writes eval/results/ingest.json and eval/results/ingest.md. Text nobody on this project wrote:
XQuAD zh (Simplified, 48 articles) and DRCD dev (Traditional) paragraphs, typeset into PDFs with
reportlab's CID fonts (STSong-Light / MSung-Light) with a running header and a page-number footer,
then extracted again. A page is exact when its extracted text, whitespace removed, equals what was
typeset on it, whitespace removed. Other PDF libraries are compared when installed (pypdf).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

import make_docs  # noqa: E402
from qa.chunking import chunk_document  # noqa: E402
from qa.dedup import overlap, shingles, similarity  # noqa: E402
from qa.ingest import extract_document  # noqa: E402
from qa.settings import load_settings  # noqa: E402

LINE_CHARS, LINES_PER_PAGE = 30, 36


def articles(data_dir: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(title, text) of XQuAD zh articles (Simplified) and DRCD dev articles (Traditional)."""
    out = []
    for path in (data_dir / "xquad" / "xquad.zh.json", data_dir / "drcd" / "DRCD_dev.json"):
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
        out.append([(a["title"], "\n".join(p["context"].strip() for p in a["paragraphs"])) for a in data])
    return out[0], out[1]


def typeset(text: str, pages: int) -> list[list[str]]:
    """Lines of each page: paragraphs wrapped at LINE_CHARS, LINES_PER_PAGE lines a page."""
    lines = [line for para in text.split("\n") for line in make_docs.wrap(para, LINE_CHARS)]
    while len(lines) < pages * LINES_PER_PAGE:  # XQuAD zh fills ~56 pages: start over rather than leave pages empty
        lines += lines
    return [lines[i * LINES_PER_PAGE : (i + 1) * LINES_PER_PAGE] for i in range(pages)]


def pdf_from_lines(pages: list[list[str]], font: str, header: str) -> bytes:
    # one "paragraph" per line, wrapped at the same width: the page shows exactly these lines
    return make_docs.pdf_bytes([[line for line in page] for page in pages], font, header, width=LINE_CHARS)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def bench_pdf(name: str, pages: list[list[str]], font: str, settings) -> dict:
    data = pdf_from_lines(pages, font, f"{name} · 基准测试")
    expected = [squash("".join(page)) for page in pages]
    result = {"pages": len(pages), "bytes": len(data)}
    started = time.perf_counter()
    doc = extract_document(f"{name}.pdf", data, settings)
    seconds = time.perf_counter() - started
    bounds = doc.pages + [len(doc.text) + 2]
    got = [squash(doc.text[bounds[i] : bounds[i + 1]]) for i in range(len(doc.pages))]
    result["qa (pypdfium2 + clean-up)"] = {"seconds": round(seconds, 3), "pages_per_s": round(len(pages) / seconds, 1),
                                           "exact_pages": sum(a == b for a, b in zip(got, expected)) / len(pages)}
    import pypdfium2 as pdfium

    started = time.perf_counter()
    pdf = pdfium.PdfDocument(data)
    raw = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]  # as PDFium gives it (U+FFFE hyphens)
    seconds = time.perf_counter() - started
    result["pypdfium2 (raw text layer)"] = {"seconds": round(seconds, 3), "pages_per_s": round(len(pages) / seconds, 1),
                                            "exact_pages": _raw_exact(raw, expected, name)}
    try:
        import pypdf
    except ImportError:
        return result, doc
    started = time.perf_counter()
    raw = [p.extract_text() for p in pypdf.PdfReader(__import__("io").BytesIO(data)).pages]
    seconds = time.perf_counter() - started
    result["pypdf (raw text layer)"] = {"seconds": round(seconds, 3), "pages_per_s": round(len(pages) / seconds, 1),
                                        "exact_pages": _raw_exact(raw, expected, name)}
    return result, doc


def _raw_exact(raw: list[str], expected: list[str], name: str) -> float:
    """Raw page text minus the header and footer lines we typeset, compared without whitespace."""
    exact = 0
    for text, want in zip(raw, expected):
        lines = [line for line in text.replace("\r", "\n").split("\n") if line.strip()]
        exact += squash("".join(lines[1:-1])) == want
    return exact / len(expected)


def bench_embedding(doc, settings, limit: int) -> dict:
    from qa.embedding import get_embedder
    from qa.text import fold_script

    started = time.perf_counter()
    embedder = get_embedder(settings)
    embedder.encode_documents(["预热"])
    load = time.perf_counter() - started
    chunks = chunk_document(doc, settings)[:limit]
    texts = [fold_script(c.text) for c in chunks]
    started = time.perf_counter()
    embedder.encode_documents(texts)
    seconds = time.perf_counter() - started
    return {"model": settings.embedding_model, "model_load_s": round(load, 2), "passages": len(texts),
            "mean_passage_chars": round(statistics.mean(len(c.text) for c in chunks)), "seconds": round(seconds, 2),
            "passages_per_s": round(len(texts) / seconds, 2), "batch_size": settings.embedding_batch_size}


def bench_other_formats(settings) -> dict:
    out = {}
    for name, data in (("docx", make_docs.docx_bytes(make_docs.DOCX_BLOCKS * 50)), ("html", make_docs.html_bytes()),
                       ("epub", make_docs.epub_bytes(make_docs.EPUB_CHAPTERS * 50))):
        started = time.perf_counter()
        doc = extract_document(f"bench.{name}", data, settings)
        out[name] = {"chars": len(doc.text), "seconds": round(time.perf_counter() - started, 3)}
    if make_docs.NOTO_CJK.exists():
        from qa.ingest import ocr

        started = time.perf_counter()
        ocr.engine()
        load = time.perf_counter() - started
        scan = make_docs.scanned_pdf(make_docs.SCAN_LINES * 4)  # one A4 page, 12 lines
        times = []
        for _ in range(2):
            started = time.perf_counter()
            doc = extract_document("scan.pdf", scan, settings)
            times.append(time.perf_counter() - started)
        expected = squash("".join(make_docs.SCAN_LINES * 4))
        out["ocr"] = {"engine_load_s": round(load, 2), "seconds_per_page": round(min(times), 2),
                      "exact": squash(doc.text) == expected,
                      "char_accuracy": round(sum(a == b for a, b in zip(squash(doc.text), expected)) / len(expected), 4)}
    return out


def edit(text: str, share: float, rng: random.Random) -> str:
    """Re-save with small edits: a share of the sentences replaced by other sentences (of the same text)."""
    sentences = re.findall(r"[^。！？\n]+[。！？]?\n?", text)
    n = max(1, int(len(sentences) * share))
    for i in rng.sample(range(len(sentences)), n):
        sentences[i] = "这是修改后新加入的一句话，内容与原文不同，编号" + str(i) + "。"
    return "".join(sentences)


def bench_duplicates(hans: list[tuple[str, str]], settings) -> dict:
    rng = random.Random(0)
    docs = [t for _, t in hans]
    dup = {"same text, other script (s2t)": [similarity(t, make_docs.to_traditional(t)) for t in docs]}
    for share in (0.05, 0.1, 0.2, 0.3):
        dup[f"{int(share * 100)}% of sentences rewritten"] = [similarity(t, edit(t, share, rng)) for t in docs]
    dup["10% rewritten + other script"] = [similarity(t, make_docs.to_traditional(edit(t, 0.1, rng))) for t in docs]
    unrelated = [similarity(a, b) for i, a in enumerate(docs) for b in docs[i + 1 :]]
    corpus = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "corpus").glob("*.txt"))]
    same_topic = similarity(*corpus)
    half = [similarity(a, a[: len(a) // 2] + b[len(b) // 2 :]) for a, b in zip(docs, docs[1:])]
    # passages: chunk copies across scripts vs neighbouring chunks of one document (which share an overlap)
    from qa.types import Document

    copies, neighbours = [], []
    for t in docs[:20]:
        a = chunk_document(Document("a", t), settings)
        b = chunk_document(Document("b", make_docs.to_traditional(t)), settings)
        for ca in a:
            copies.append(max(overlap(shingles(ca.text), shingles(cb.text)) for cb in b))
        neighbours += [overlap(shingles(x.text), shingles(y.text)) for x, y in zip(a, a[1:])]

    def summary(values, threshold):
        return {"n": len(values), "min": round(min(values), 3), "median": round(statistics.median(values), 3),
                "max": round(max(values), 3), "at_or_above_threshold": round(sum(v >= threshold for v in values) / len(values), 3)}

    td, tp = settings.duplicate_threshold, settings.passage_duplicate_threshold
    return {
        "documents": {"duplicates": {k: summary(v, td) for k, v in dup.items()},
                      "not duplicates": {"different XQuAD articles (all pairs)": summary(unrelated, td),
                                         "the two built-in corpus documents (same topic)": summary([same_topic], td),
                                         "half of one article + half of another": summary(half, td)},
                      "threshold": td},
        "passages": {"copies across scripts (best match)": summary(copies, tp),
                     "neighbouring chunks of one document": summary(neighbours, tp),
                     "threshold": tp},
    }


def markdown(r: dict) -> str:
    lines = ["# Ingestion benchmark", "", f"Machine: {r['machine']}. Command: `python eval/bench_ingest.py`.", "",
             "## PDF text extraction", "",
             "| PDF | pages | extractor | pages/s | exact pages |", "| --- | ---: | --- | ---: | ---: |"]
    for key in ("pdf_hans", "pdf_hant"):
        p = r[key]
        for name, m in p.items():
            if isinstance(m, dict):
                lines.append(f"| {p['label']} | {p['pages']} | {name} | {m['pages_per_s']} | {m['exact_pages']:.3f} |")
    e = r["embedding"]
    lines += ["", "## Embedding", "", f"{e['passages']} passages of the Simplified PDF (mean {e['mean_passage_chars']} "
              f"characters), `{e['model']}`, batch {e['batch_size']}: **{e['passages_per_s']} passages/s** "
              f"({e['seconds']} s; model load {e['model_load_s']} s).", "", "## Other formats", ""]
    for name, m in r["other_formats"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in m.items()))
    d = r["duplicates"]
    lines += ["", "## Duplicate thresholds", "", "MinHash Jaccard of script-folded 4-character shingles (documents); "
              "shingle overlap coefficient (passages).", "", "| pair | n | min | median | max | ≥ threshold |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for group in ("duplicates", "not duplicates"):
        for name, s in d["documents"][group].items():
            lines.append(f"| {group}: {name} | {s['n']} | {s['min']} | {s['median']} | {s['max']} | {s['at_or_above_threshold']:.3f} |")
    for name, s in d["passages"].items():
        if isinstance(s, dict):
            lines.append(f"| passages: {name} | {s['n']} | {s['min']} | {s['median']} | {s['max']} | {s['at_or_above_threshold']:.3f} |")
    lines += ["", f"Document threshold: {d['documents']['threshold']}; passage threshold: {d['passages']['threshold']}.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "evaldata"))
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--passages", type=int, default=120)
    parser.add_argument("--out", default=str(ROOT / "eval" / "results"))
    args = parser.parse_args()
    settings = load_settings()
    hans, hant = articles(Path(args.data))
    hans_text = "\n".join(t for _, t in hans)
    hant_text = "\n".join(t for _, t in hant)
    import os
    import platform

    results = {"machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}"}
    pdf_hans, doc_hans = bench_pdf("xquad-zh", typeset(hans_text, args.pages), "STSong-Light", settings)
    pdf_hans["label"] = "XQuAD zh, 简体 (STSong-Light)"
    pdf_hant, _ = bench_pdf("drcd-dev", typeset(hant_text, args.pages), "MSung-Light", settings)
    pdf_hant["label"] = "DRCD dev, 繁體 (MSung-Light)"
    results.update(pdf_hans=pdf_hans, pdf_hant=pdf_hant)
    results["other_formats"] = bench_other_formats(settings)
    results["duplicates"] = bench_duplicates(hans, settings)
    results["embedding"] = bench_embedding(doc_hans, settings, args.passages)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "ingest.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
