"""The Milvus store: passages, vectors and BM25 terms in a Milvus collection, through pymilvus' MilvusClient.

A local path (`index/milvus.db`) runs embedded Milvus Lite; `http://host:19530` reaches a server with
the same calls. Two collections: `<prefix>_passages` (one row per chunk) and `<prefix>_documents`
(the manifest: one row per document, plus the `__index__` row with model and chunking).

Crash safety without atomic swaps: a passage's primary key is derived from its document id, the
document's content hash and its offsets (re-running an interrupted ingestion upserts the same rows),
a document enters the manifest only after its passages are flushed, and `reconcile()` (run before every
ingestion) deletes passages whose (document, hash) is not in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from collections import Counter
from typing import Callable, Iterable, Sequence

import numpy as np

from ..text import fold_script, tokenize
from ..types import Chunk

log = logging.getLogger(__name__)

INDEX_ROW = "__index__"  # the manifest row holding model, dim and chunking
MAX_VARCHAR = 65535
DENSE_INDEXES = {  # index type -> build params (Milvus Lite 3.2.2 supports FLAT, HNSW, HNSW_SQ, IVF_FLAT, IVF_SQ8)
    "FLAT": {}, "HNSW": {"M": 16, "efConstruction": 200}, "HNSW_SQ": {"M": 16, "efConstruction": 200},
    "IVF_FLAT": {"nlist": 128}, "IVF_SQ8": {"nlist": 128},
}
SEARCH_PARAMS = {"HNSW": {"ef": 128}, "HNSW_SQ": {"ef": 128}, "IVF_FLAT": {"nprobe": 16}, "IVF_SQ8": {"nprobe": 16}}
SPARSE_MODES = ("tokens", "weights", "jieba")
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}  # bm25s' defaults (Lucene BM25); Milvus' own default k1 is 1.2


def _strings(values: list[str]) -> str:
    """A list literal for a filter expression (Milvus Lite 3.2.2 has no filter templates)."""
    return json.dumps(list(values), ensure_ascii=False)


def is_local(uri: str) -> bool:
    """A file path (Milvus Lite) rather than a server address."""
    return "://" not in uri


def resolve_uri(settings) -> str:
    return settings.milvus_uri or str(Path(settings.index_dir) / "milvus.db")


def doc_key(doc_id: str, content_hash: str) -> str:
    """Names one version of one document: passages of a replaced version no longer match the manifest."""
    return hashlib.blake2b(f"{doc_id}\0{content_hash}".encode(), digest_size=16).hexdigest()


def passage_key(doc_id: str, content_hash: str, start: int, end: int) -> int:
    """Deterministic int64 primary key: the same passage of the same document version is always the same row."""
    digest = hashlib.blake2b(f"{doc_id}\0{content_hash}\0{start}\0{end}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1)


def hashed_terms(text: str) -> str:
    """Our BM25 tokens (qa.text.tokenize: jieba search mode, folded, no stopwords), each as one ASCII word.

    Milvus Lite's analyzers are only "standard" and "jieba"; "standard" keeps `t0123…` words whole,
    so Milvus computes BM25 (its own IDF and length statistics) over exactly the tokens bm25s sees.
    """
    tokens = tokenize(text) or ["\u2205"]  # bm25s indexes empty passages as one placeholder token too
    return " ".join("t" + hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in tokens)[:MAX_VARCHAR]


def term_index(token: str) -> int:
    """A token's dimension in the "weights" sparse vectors (32-bit hash; Milvus allows indices < 2**32 - 1)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "big") & 0xFFFFFFFE


def bm25_document_weights(text: str, avgdl: float) -> dict[int, float]:
    """The passage side of Lucene BM25 (as bm25s: k1 1.5, b 0.75) for an IP sparse field; the query side
    carries the IDF. Exact while the average passage length stays `avgdl` (fixed when the index is created)."""
    tokens = tokenize(text) or ["\u2205"]
    k1, b, dl = BM25_PARAMS["bm25_k1"], BM25_PARAMS["bm25_b"], len(tokens)
    return {term_index(t): tf / (tf + k1 * (1 - b + b * dl / max(avgdl, 1e-9))) for t, tf in Counter(tokens).items()}


class MilvusStore:
    """A PassageStore (qa/stores/base.py) in Milvus. Keys are int64 primary keys (`passage_key`)."""

    def __init__(self, uri: str, prefix: str = "qa", index_type: str = "FLAT", sparse: str = "weights"):
        from pymilvus import MilvusClient

        logging.getLogger("pymilvus").setLevel(logging.ERROR)  # query_iterator warns on every Lite call (no mvccTs)
        if index_type.upper() not in DENSE_INDEXES:
            raise ValueError(f"unknown Milvus index type {index_type!r}; choose one of {', '.join(DENSE_INDEXES)}")
        if sparse not in SPARSE_MODES:
            raise ValueError(f"milvus_sparse must be one of {', '.join(SPARSE_MODES)}, not {sparse!r}")
        if is_local(uri):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            # Lite's in-process gRPC server logs a traceback for every RPC it lacks (AllocTimestamp, which
            # pymilvus calls while waiting for a new index); the client side already handles it.
            logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        self.uri, self.index_type, self.sparse_mode = uri, index_type.upper(), sparse
        self.passages, self.docs = f"{prefix}_passages", f"{prefix}_documents"
        try:
            self.client = MilvusClient(uri)
        except Exception as exc:  # pymilvus raises ConnectionConfigException("Open local milvus failed") for a held Lite file
            from .base import IndexError_

            if is_local(uri):
                raise IndexError_(f"cannot open the Milvus Lite file {uri} ({exc}): Milvus Lite is single-process and "
                                  f"another process probably has it open; stop it, or serve several processes from a "
                                  f"Milvus server (QA_MILVUS_URI=http://host:19530)") from exc
            raise IndexError_(f"cannot reach Milvus at {uri} ({exc})") from exc
        self._loaded = False
        self.avgdl: float | None = None  # "weights": the mean passage length (tokens) stored weights assume; None: first batch's

    @classmethod
    def from_settings(cls, settings) -> "MilvusStore":
        return cls(resolve_uri(settings), settings.milvus_collection, settings.milvus_index_type, settings.milvus_sparse)

    # ------------------------------------------------------------ collections
    def exists(self) -> bool:
        return self.client.has_collection(self.passages) and self.client.has_collection(self.docs)

    def create(self, dim: int) -> None:
        """Create both collections (no-op for those that exist)."""
        from pymilvus import DataType, Function, FunctionType

        if not self.client.has_collection(self.passages):
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("pk", DataType.INT64, is_primary=True)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
            schema.add_field("doc_key", DataType.VARCHAR, max_length=64)
            schema.add_field("chunk", DataType.JSON)
            if self.sparse_mode != "weights":  # Milvus computes BM25 from a text field
                analyzer = {"tokenizer": "standard"} if self.sparse_mode == "tokens" else {"tokenizer": "jieba"}
                schema.add_field("terms", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True, analyzer_params=analyzer)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            if self.sparse_mode != "weights":
                schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                             input_field_names=["terms"], output_field_names=["sparse"]))
            index = self.client.prepare_index_params()
            index.add_index("vector", index_type=self.index_type, metric_type="IP", params=DENSE_INDEXES[self.index_type])
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP" if self.sparse_mode == "weights" else "BM25",
                            params={} if self.sparse_mode == "weights" else BM25_PARAMS)
            self.client.create_collection(self.passages, schema=schema, index_params=index, consistency_level="Strong")
        if not self.client.has_collection(self.docs):
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=4096)
            schema.add_field("meta", DataType.JSON)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
            index = self.client.prepare_index_params()
            index.add_index("unused", index_type="FLAT", metric_type="L2")
            self.client.create_collection(self.docs, schema=schema, index_params=index, consistency_level="Strong")
        self._loaded = False
        self._load()

    def drop(self) -> None:
        for name in (self.passages, self.docs):
            if self.client.has_collection(name):
                self.client.drop_collection(name)
        self._loaded = False

    def _load(self) -> None:
        """A reopened collection must be loaded before it is searched or queried."""
        if not self._loaded:
            for name in (self.passages, self.docs):
                self.client.load_collection(name)
            self._loaded = True

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------ writing
    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray, content_hash: str | dict[str, str] = "",
            flush: bool = True, batch: int = 512) -> list[int]:
        """Upsert passages with precomputed vectors (no embedding here). `content_hash`: the documents'
        hash (one for all, or doc_id -> hash); it is part of the primary key and of `doc_key`."""
        self._load()
        keys = []
        rows = []
        if self.sparse_mode == "weights" and self.avgdl is None and len(chunks):
            self.avgdl = sum(len(tokenize(c.text) or "x") for c in chunks) / len(chunks)
        for chunk, vector in zip(chunks, np.asarray(vectors, dtype=np.float32)):
            h = content_hash.get(chunk.doc_id, "") if isinstance(content_hash, dict) else content_hash
            key = passage_key(chunk.doc_id, h, chunk.start, chunk.end)
            keys.append(key)
            row = {"pk": key, "doc_id": chunk.doc_id, "doc_key": doc_key(chunk.doc_id, h), "chunk": chunk.to_dict(),
                   "vector": vector.tolist()}
            if self.sparse_mode == "weights":
                row["sparse"] = bm25_document_weights(chunk.text, self.avgdl)
            else:
                row["terms"] = hashed_terms(chunk.text) if self.sparse_mode == "tokens" else fold_script(chunk.text)[:MAX_VARCHAR]
            rows.append(row)
        for start in range(0, len(rows), batch):
            self.client.upsert(self.passages, rows[start : start + batch])
        if flush:
            self.client.flush(self.passages)
        return keys

    def flush(self) -> None:
        self.client.flush(self.passages)

    def reweight(self, avgdl: float, batch: int = 512) -> int:
        """"weights" mode: rewrite every passage's BM25 weights for a new average passage length."""
        rows = self._all(self.passages, ["pk", "doc_id", "doc_key", "chunk", "vector"])
        self.avgdl = avgdl
        for row in rows:
            row["sparse"] = bm25_document_weights(row["chunk"]["text"], avgdl)
            row["vector"] = [float(x) for x in row["vector"]]
        for start in range(0, len(rows), batch):
            self.client.upsert(self.passages, rows[start : start + batch])
        self.flush()
        return len(rows)

    def record_documents(self, metas: dict[str, dict]) -> None:
        """Add or replace manifest rows; call only after the documents' passages are flushed."""
        self._load()
        if metas:
            self.client.upsert(self.docs, [{"doc_id": d, "meta": m, "unused": [0.0, 0.0]} for d, m in metas.items()])
            self.client.flush(self.docs)

    def write_header(self, header: dict) -> None:
        self.record_documents({INDEX_ROW: header})

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        """Manifest rows first (the documents vanish at once), then their passages."""
        self._load()
        ids = [d for d in doc_ids if d != INDEX_ROW]
        if not ids:
            return 0
        self.client.delete(self.docs, filter=f"doc_id in {_strings(ids)}")
        self.client.flush(self.docs)
        return self._delete_passages(f"doc_id in {_strings(ids)}")

    def delete_version(self, doc_id: str, content_hash: str) -> int:
        """The passages of one version of a document (after a newer version was recorded)."""
        return self._delete_passages(f'doc_key == "{doc_key(doc_id, content_hash)}"')

    def _delete_passages(self, expr: str) -> int:
        result = self.client.delete(self.passages, filter=expr)
        self.client.flush(self.passages)
        return int(result.get("delete_count", 0) if isinstance(result, dict) else len(result or []))

    def reconcile(self) -> int:
        """Delete passages of documents (or document versions) that the manifest does not list: the
        leftovers of an ingestion killed between flushing passages and recording the document."""
        docs = self.read_manifest()["documents"]
        valid = [doc_key(d, m.get("hash", "")) for d, m in docs.items()]
        orphans = [r["pk"] for r in self._all(self.passages, ["pk", "doc_key"]) if r["doc_key"] not in set(valid)]
        if orphans:
            log.warning("removing %d passages of unrecorded documents (an interrupted ingestion)", len(orphans))
            for start in range(0, len(orphans), 1000):
                self.client.delete(self.passages, ids=orphans[start : start + 1000])
            self.client.flush(self.passages)
        return len(orphans)

    # ------------------------------------------------------------ reading
    def _all(self, collection: str, fields: list[str], batch: int = 1000) -> list[dict]:
        self._load()
        if is_local(self.uri):  # Lite returns every row to a query without limit (its iterator needs AllocTimestamp, which it lacks)
            return list(self.client.query(collection, filter="", output_fields=fields))
        rows, iterator = [], self.client.query_iterator(collection, batch_size=batch, filter="", output_fields=fields)
        try:
            while True:
                page = iterator.next()
                if not page:
                    return rows
                rows.extend(page)
        finally:
            iterator.close()

    def read_manifest(self) -> dict:
        """The header row's fields plus {"documents": {doc_id: meta}}; {} when nothing was ever written."""
        rows = {r["doc_id"]: r["meta"] for r in self._all(self.docs, ["doc_id", "meta"])}
        header = rows.pop(INDEX_ROW, None)
        return {**header, "documents": rows} if header is not None else {"documents": rows}

    def chunks(self) -> list[tuple[int, Chunk]]:
        """Every stored passage as (key, chunk), in document order then offset."""
        rows = self._all(self.passages, ["pk", "chunk"])
        pairs = [(r["pk"], Chunk.from_dict(r["chunk"])) for r in rows]
        return sorted(pairs, key=lambda p: (p[1].doc_id, p[1].start, p[1].end))

    def count(self) -> int:
        self._load()
        rows = self.client.query(self.passages, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def dense_search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        self._load()
        params = {"metric_type": "IP", "params": SEARCH_PARAMS.get(self.index_type, {})}
        result = self.client.search(self.passages, data=[np.asarray(vector, dtype=np.float32).ravel().tolist()],
                                    anns_field="vector", limit=k, search_params=params, output_fields=["pk"])
        return [(int(hit["pk"] if "pk" in hit else hit["id"]), float(hit["distance"])) for hit in result[0]]

    def sparse_search(self, query: str, k: int, idf: Callable[[str], float] | None = None) -> list[tuple[int, float]]:
        """BM25 search. Milvus Lite reports distance = -score for BM25, a server the score: abs().
        "weights" mode needs `idf` (token -> IDF over the whole collection; MilvusIndex supplies it)."""
        self._load()
        if self.sparse_mode == "weights":
            counts = Counter(tokenize(query))
            data = {term_index(t): (idf(t) if idf else 1.0) * n for t, n in counts.items()}
            data = {i: w for i, w in data.items() if w > 0}
            metric = "IP"
        else:
            data = " ".join("t" + hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in tokenize(query)) \
                if self.sparse_mode == "tokens" else fold_script(query)
            metric = "BM25"
        if not data or (isinstance(data, str) and not data.strip()):
            return []
        result = self.client.search(self.passages, data=[data], anns_field="sparse", limit=k,
                                    search_params={"metric_type": metric}, output_fields=["pk"])
        hits = [(int(hit["pk"] if "pk" in hit else hit["id"]), abs(float(hit["distance"]))) for hit in result[0]]
        return [(key, score) for key, score in hits if score > 0]
