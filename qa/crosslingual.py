"""The English query encoder: English questions meet Chinese passages in e5's own vector space.

`qa train-retriever` (qa/training/crosslingual.py) fine-tunes a copy of the bundled e5's encoder layers so that an
English question lands where its Chinese wording would; passages keep the index's vectors, so nothing is re-indexed.
Only questions `detect_script` calls English take this path: Chinese retrieval is unchanged, bit for bit.
The weights ship in qa/neural/weights/query-en.safetensors (float16 layers; the word table is the bundled model's).
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_QUERY_ENCODER = Path(__file__).resolve().parent / "neural" / "weights" / "query-en.safetensors"


def read_meta(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return json.loads((f.metadata() or {}).get("qa_query_encoder", "{}"))


def english_query_runner(bert, tokenizer, path: Path):
    """A float32 TorchRunner over a copy of `bert` with the trained layers loaded; the word table stays shared."""
    import torch
    from safetensors.torch import load_file

    from .fast_embed import TorchRunner, copy_without_word_table

    weights = load_file(str(path))
    student = copy_without_word_table(bert)
    params = dict(student.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise RuntimeError(f"{path}: not a query encoder for this model (unknown tensors such as {missing[0]})")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(torch.float32))
    runner = TorchRunner(student.eval(), tokenizer)
    runner.word_embeddings = bert.embeddings.word_embeddings  # the copy has a one-row placeholder in its place
    runner.name = "torch-query-en"
    return runner
