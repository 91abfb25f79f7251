"""Do the FAISS + bm25s store and the Milvus store return the same top-5? (issue 10)

Builds one FAISS index over the built-in corpus plus an XQuAD zh subset (one .txt per context), then
Milvus indexes from the same vectors (nothing re-embedded) in each sparse mode, and compares the top-5
of every question: eval/questions.jsonl and the subset's XQuAD questions. "Allowing for ties": a
passage that only one engine ranks in its top-5 counts as agreeing when FAISS gives it the same score
(to 1e-6) as FAISS's own 5th passage.

    python eval/store_agreement.py [--articles 8] [--modes tokens,jieba] [--incremental 4] [--out FILE]

`--incremental N` also builds each Milvus index in N successive syncs (as uploads would), which on
Milvus Lite means N segments, each with its own BM25 statistics.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa.pipeline import QAService  # noqa: E402
from qa.retriever import HybridRetriever  # noqa: E402
from qa.settings import load_settings  # noqa: E402
from qa.stores.milvus_index import sync_milvus  # noqa: E402

XQUAD = REPO.parent / "shared" / "evaldata" / "xquad" / "xquad.zh.json"


def make_corpus(root: Path, articles: int) -> list[str]:
    corpus = root / "corpus"
    shutil.copytree(REPO / "corpus", corpus)
    questions = [json.loads(line)["question"] for line in (REPO / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    if XQUAD.exists():
        data = json.loads(XQUAD.read_text(encoding="utf-8"))["data"][:articles]
        (corpus / "xquad").mkdir()
        for article in data:
            for i, para in enumerate(article["paragraphs"]):
                (corpus / "xquad" / f"{article['title'][:40]}-{i}.txt").write_text(para["context"], encoding="utf-8")
                questions.extend(qa["question"] for qa in para["qas"])
    return questions


_VECTORS: dict[str, object] = {}
_REFERENCE: dict[tuple, list] = {}


def top(service, question: str, mode: str, k: int = 5) -> list[tuple[tuple, float]]:
    retriever = HybridRetriever(service.index, service.embedder, service.aliases, service.settings)
    query = service.retrieval_query(question)
    if query not in _VECTORS:  # one embedding per question for every engine and mode
        _VECTORS[query] = retriever.embed_query(query)
    hits = retriever.retrieve(query, k, mode=mode, query_vector=_VECTORS[query])
    return [((h.chunk.doc_id, h.chunk.start), h.score) for h in hits]


def agreement(reference, other, questions, mode: str) -> dict:
    exact = tied = 0
    overlap = 0.0
    for q in questions:
        if (q, mode) not in _REFERENCE:
            _REFERENCE[q, mode] = top(reference, q, mode, 30)
        ref = _REFERENCE[q, mode]
        ref5, oth5 = [p for p, _ in ref[:5]], [p for p, _ in top(other, q, mode)]
        scores = dict(ref)
        fifth = ref[min(4, len(ref) - 1)][1] if ref else 0.0
        overlap += len(set(ref5) & set(oth5)) / len(ref5) if ref5 else float(not oth5)
        if set(ref5) == set(oth5):
            exact += 1
            tied += 1
        elif len(ref5) == len(oth5) and all(abs(scores.get(p, -1.0) - fifth) <= 1e-6 for p in set(oth5) - set(ref5)):
            tied += 1
    n = len(questions)
    return {"questions": n, "same_set": round(exact / n, 4), "same_set_allowing_ties": round(tied / n, 4),
            "mean_overlap_at_5": round(overlap / n, 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=8, help="XQuAD zh articles to index (5 contexts each)")
    ap.add_argument("--modes", default="tokens,jieba")
    ap.add_argument("--incremental", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="store-agreement-"))
    questions = make_corpus(root, args.articles)
    settings = load_settings(corpus_dir=root / "corpus", index_dir=root / "index", reader="heuristic")
    faiss = QAService(settings)
    started = time.perf_counter()
    faiss.reindex()
    print(f"FAISS: {faiss.status()['chunks']} passages in {time.perf_counter() - started:.1f}s; {len(questions)} questions", file=sys.stderr)
    results = {"passages": faiss.status()["chunks"], "documents": faiss.status()["documents"], "modes": {}}
    documents, _ = faiss.load_documents()
    for sparse in args.modes.split(","):
        for steps in ([1, args.incremental] if args.incremental > 1 else [1]):
            ms = settings.with_overrides(store="milvus", milvus_sparse=sparse, index_dir=root / f"milvus-{sparse}-{steps}")
            milvus = QAService(ms, embedder=faiss.embedder)
            started = time.perf_counter()
            for i in range(1, steps + 1):  # the first i/steps of the documents, as successive uploads would add them
                milvus.index, _ = sync_milvus(documents[: len(documents) * i // steps], ms, faiss.embedder, previous=faiss.index)
            seconds = time.perf_counter() - started
            key = f"{sparse}, {steps} sync{'s' if steps > 1 else ''}"
            results["modes"][key] = {"build_seconds": round(seconds, 1),
                                     **{m: agreement(faiss, milvus, questions, m) for m in ("sparse", "hybrid", "dense")}}
            print(key, json.dumps(results["modes"][key]), file=sys.stderr)
            milvus.index.store.close()
    print(json.dumps(results, ensure_ascii=False, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
