"""Fast paths for the bundled e5: length-sorted batching, ONNX Runtime (fp32 or int8), a GPU when present.

A *runner* computes, for padded token batches, the retrieval vector (mean-pooled last layer,
L2-normalized: what sentence-transformers gives) and the hidden states after layer `STATE_LAYER`
(what the neural reader caches), in ONE forward pass:

- `TorchRunner`: the HF BertModel itself (on the CPU, shared with the reader), or a copy on CUDA.
- `OnnxRunner`: ONNX Runtime on the CPU. The graph is exported once from the bundled weights into
  the cache dir (never downloaded), with eager attention so that onnxruntime's BERT optimizer fuses
  it (Attention, SkipLayerNormalization, BiasGelu: the same numbers, fewer kernels) and, for int8,
  quantized with onnxruntime's dynamic quantization (per-channel int8 weights of every MatMul but the
  FFN down-projections, see `ffn_out_nodes`). The word-embedding table (250k x 384, most of the
  model's bytes) stays out of the graph: the runner looks rows up with the torch model it already
  has and feeds them in, so the ONNX file is small and no second copy of the table sits in memory.
  A marker next to the file records the sources, versions and the file's sha256; a stale or
  damaged export is rebuilt.

`encode()` tokenizes all texts, sorts them by token length so that a batch pads little, runs the
batches and returns rows in the caller's order.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .loader import file_sha256

log = logging.getLogger(__name__)

def shipped_state_layer(weights: Path = Path(__file__).resolve().parent / "neural" / "weights" / "reader.safetensors",
                        fallback: int = 9) -> int:
    """The shipped reader's lower_layers, read from its weights' header (cheap): the layer whose states the index
    pass keeps per passage, so that a retrained reader with another split needs no edit here."""
    from .neural.model import ReaderModel

    try:
        return int(ReaderModel.read_config(weights)["lower_layers"])
    except (OSError, ValueError, KeyError, TypeError):
        return fallback


STATE_LAYER = shipped_state_layer()  # the states the shipped reader caches per passage (qa/neural/weights)
_EXPORT_FORMAT = 4  # bump when the exported graph changes (3: eager attention, fused by the ORT optimizer)
BACKENDS = ("auto", "torch", "onnx")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("float32", "bfloat16", "int8")


def cpu_has_native_bf16() -> bool:
    """oneDNN's bf16 kernels need AVX512-BF16 or AMX; elsewhere bf16 is emulated and slower than float32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(setting: str, device: str) -> str:
    """The passage precision, checked; bfloat16 on a CPU without native bf16 works but is slow (said once)."""
    setting = (setting or "float32").lower()
    if setting not in PRECISIONS:
        raise ValueError(f"embedding_precision must be one of {PRECISIONS}, not {setting!r}")
    if setting == "bfloat16" and device == "cpu" and not cpu_has_native_bf16():
        log.warning("embedding_precision bfloat16: this CPU has no native bf16 (AVX512-BF16/AMX); float32 is faster here")
    return setting


def resolve_device(setting: str) -> str:
    """"auto": CUDA when torch sees a GPU, else the CPU."""
    setting = (setting or "auto").lower()
    if setting not in DEVICES:
        raise ValueError(f"embedding_device must be one of {DEVICES}, not {setting!r}")
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def resolve_backend(setting: str, device: str, precision: str = "float32") -> str:
    """"auto": torch on a GPU (onnxruntime here is the CPU build) and for bfloat16; ONNX Runtime on the CPU for
    float32 and int8 when it is installed."""
    setting = (setting or "auto").lower()
    if setting not in BACKENDS:
        raise ValueError(f"embedding_backend must be one of {BACKENDS}, not {setting!r}")
    if setting != "auto":
        return setting
    if device != "cpu" or precision == "bfloat16":
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx"


def _pool(last: np.ndarray | torch.Tensor, mask):
    """Mean over real tokens, L2-normalized (sentence-transformers' Pooling + Normalize)."""
    if isinstance(last, torch.Tensor):
        m = mask.unsqueeze(-1).to(last.dtype)
        pooled = (last * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)
    m = mask[..., None].astype(last.dtype)
    pooled = (last * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


class _Runner:
    name = "?"
    pad_id = 1  # XLM-R <pad>

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def run(self, ids: np.ndarray, mask: np.ndarray, states: bool) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def encode(self, texts: list[str], max_tokens: int, batch_size: int, states: bool = False, sort: bool = True):
        """Vectors [N, H] in input order; with `states`, also per text (int32 ids, float16 states [T, H])."""
        toks = self.tokenizer(list(texts), truncation=True, max_length=max_tokens, add_special_tokens=True)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(toks[i])) if sort else list(range(len(texts)))
        vectors: list[np.ndarray | None] = [None] * len(texts)
        kept: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(texts)
        for b in range(0, len(order), max(1, batch_size)):
            idx = order[b : b + batch_size]
            width = max(len(toks[i]) for i in idx)
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, : len(toks[i])] = toks[i]
                mask[r, : len(toks[i])] = 1
            vec, st = self.run(ids, mask, states)
            for r, i in enumerate(idx):
                vectors[i] = vec[r]
                if states:
                    n = len(toks[i])
                    kept[i] = (ids[r, :n].astype(np.int32), st[r, :n].astype(np.float16))
        out = np.vstack(vectors).astype(np.float32) if texts else np.zeros((0, 0), np.float32)
        return (out, kept) if states else out


def copy_without_word_table(bert):
    """A copy of the BertModel whose 250k-row word table is a one-row placeholder: rows are looked up in the original's
    table and fed in as inputs_embeds (the bfloat16/CUDA copy here, the English query encoder in qa/crosslingual.py)."""
    import copy

    table = bert.embeddings.word_embeddings
    return copy.deepcopy(bert, {id(table): torch.nn.Embedding(1, table.embedding_dim)})


class TorchRunner(_Runner):
    """The HF BertModel (CPU, float32: the very model the reader shares; CUDA or bfloat16: a copy).

    A bfloat16 copy leaves the word-embedding table (250k x 384, most of the model's bytes) out: the rows are looked
    up in the shared float32 table and fed in, so the copy costs ~45 MB. Pooling runs in float32.
    """

    def __init__(self, bert, tokenizer, device: str = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__(tokenizer)
        self.device, self.dtype = torch.device(device), dtype
        self.word_embeddings = None
        if self.device.type != "cpu" or dtype != torch.float32:
            table = bert.embeddings.word_embeddings
            bert = copy_without_word_table(bert).to(device=self.device, dtype=dtype).eval()
            self.word_embeddings = table
        self.bert = bert
        self.name = "torch" + ("" if self.device.type == "cpu" else f"-{self.device.type}") + (
            "-bf16" if dtype == torch.bfloat16 else "")

    @torch.inference_mode()
    def run(self, ids, mask, states):
        ids_t, mask_t = torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)
        if self.word_embeddings is None:
            out = self.bert(input_ids=ids_t, attention_mask=mask_t, output_hidden_states=states)
        else:
            rows = self.word_embeddings(torch.from_numpy(ids)).to(device=self.device, dtype=self.dtype)
            out = self.bert(inputs_embeds=rows, attention_mask=mask_t, output_hidden_states=states)
        vec = _pool(out.last_hidden_state.float(), mask_t).cpu().numpy()
        st = out.hidden_states[STATE_LAYER].float().cpu().numpy() if states else None
        return vec, st


class _Graph(torch.nn.Module):
    """What the ONNX file computes: word-embedding rows + mask -> (vector, hidden_states[STATE_LAYER])."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, inputs_embeds, attention_mask):
        out = self.bert(inputs_embeds=inputs_embeds, attention_mask=attention_mask, output_hidden_states=True)
        return _pool(out.last_hidden_state, attention_mask), out.hidden_states[STATE_LAYER]


def _export_signature(model_dir: Path, int8: bool) -> dict:
    import onnxruntime

    try:
        sources = json.loads((Path(model_dir) / "qa_materialized.json").read_text())["sources"]
    except (OSError, ValueError, KeyError):
        sources = None
    return {"format": _EXPORT_FORMAT, "sources": sources, "int8": bool(int8), "state_layer": STATE_LAYER,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def _current(path: Path, marker: Path, want: dict) -> bool:
    try:
        got = json.loads(marker.read_text())
        return got["signature"] == want and path.exists() and file_sha256(path) == got["sha256"]
    except (OSError, ValueError, KeyError):
        return False


def ffn_out_nodes(path: Path) -> list[str]:
    """The MatMul of each layer's FFN down-projection (`output.dense`). It stays float32 in the int8 graph: its
    input, the GELU output, has outliers that per-tensor uint8 activations serve badly (measured in
    eval/results/embed.md: excluding it lifts the minimum cosine to the current vectors from ~0.995 to ~0.999
    and keeps the reader's states close, for a small loss of speed)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.name.endswith("/output/dense/MatMul")
            and "/attention/" not in n.name]


def onnx_file(bert, model_dir: Path, int8: bool) -> Path:
    """The exported (and, for int8, quantized) graph in <model_dir>/onnx/, built once; rebuilt when stale."""
    folder = Path(model_dir) / "onnx"
    name = "e5-encoder-int8.onnx" if int8 else "e5-encoder-fp32.onnx"
    path, marker = folder / name, folder / (name + ".json")
    want = _export_signature(model_dir, int8)
    if _current(path, marker, want):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    log.info("building %s from the bundled weights (once)", path)
    tmp = Path(tempfile.mkdtemp(prefix=".onnx-", dir=folder))
    try:
        fp32 = tmp / "fp32.onnx"
        hidden = int(bert.config.hidden_size)
        example = (torch.zeros(2, 7, hidden), torch.ones(2, 7, dtype=torch.int64))
        raw = tmp / "raw.onnx"
        # Eager attention exports as plain MatMul/Softmax, which the BERT optimizer fuses into one Attention op;
        # SDPA's export (Where/IsNaN masking) is not fused. The model is shared with the reader: restore it.
        attention = getattr(bert.config, "_attn_implementation", None)
        try:
            bert.config._attn_implementation = "eager"
            with torch.no_grad():
                # the legacy (TorchScript) exporter: no onnxscript needed; it still needs the `onnx` package
                torch.onnx.export(_Graph(bert).eval(), example, str(raw), dynamo=False, opset_version=17,
                                  input_names=["inputs_embeds", "attention_mask"], output_names=["vector", "states"],
                                  dynamic_axes={"inputs_embeds": {0: "batch", 1: "tokens"},
                                                "attention_mask": {0: "batch", 1: "tokens"},
                                                "vector": {0: "batch"}, "states": {0: "batch", 1: "tokens"}})
        finally:
            if attention is not None:
                bert.config._attn_implementation = attention
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=int(bert.config.num_attention_heads),
                                         hidden_size=hidden, opt_level=1)
        fused.save_model_to_file(str(fp32))
        built = fp32
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            built = tmp / "int8.onnx"
            # From the unfused graph: a fused Attention becomes QAttention, whose per-tensor weights cost the reader
            # about 1.5 F1 on the CMRC sample (tests/test_neural_parts.py); per-channel MatMuls keep it.
            quantize_dynamic(str(raw), str(built), weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=ffn_out_nodes(raw))
        os.replace(built, path)
        marker.write_text(json.dumps({"signature": want, "sha256": file_sha256(path)}, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


class OnnxRunner(_Runner):
    def __init__(self, bert, tokenizer, model_dir: Path, int8: bool = True, threads: int = 0, path: Path | None = None):
        super().__init__(tokenizer)
        import onnxruntime as ort

        self.word_embeddings = bert.embeddings.word_embeddings  # shared with the torch model, not copied
        self.path = Path(path) if path is not None else onnx_file(bert, model_dir, int8)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.name = "onnx-int8" if int8 else "onnx"

    def run(self, ids, mask, states):
        with torch.inference_mode():
            rows = self.word_embeddings(torch.from_numpy(ids)).numpy()
        outputs = ["vector", "states"] if states else ["vector"]
        got = self.session.run(outputs, {"inputs_embeds": rows, "attention_mask": mask})
        return got[0], (got[1] if states else None)
