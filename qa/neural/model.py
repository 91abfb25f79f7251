"""The reading head: e5's upper layers, fine-tuned to read question and passage together.

Input: lower-layer states of the question and of one passage (qa/neural/encoder.py).
Output, per passage: start and end logits over its tokens, and one logit for "this passage
answers the question". Weights ship as float16 safetensors with the recipe in the metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .layers import EncoderLayer

FORMAT = 1


class ReaderModel(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        h = config["hidden"]
        self.layers = nn.ModuleList(EncoderLayer(h, config["heads"], config["ffn"], config["eps"], config.get("dropout", 0.1))
                                    for _ in range(config["upper_layers"]))
        self.segment = nn.Parameter(torch.zeros(2, h))
        self.span = nn.Linear(h, 2)
        self.answerable = nn.Linear(2 * h, 1)

    @classmethod
    def from_bert(cls, bert, lower_layers: int, **extra) -> "ReaderModel":
        cfg = bert.config
        config = dict(hidden=cfg.hidden_size, heads=cfg.num_attention_heads, ffn=cfg.intermediate_size,
                      eps=cfg.layer_norm_eps, lower_layers=lower_layers,
                      upper_layers=cfg.num_hidden_layers - lower_layers, format=FORMAT, **extra)
        model = cls(config)
        for mine, theirs in zip(model.layers, bert.encoder.layer[lower_layers:]):
            mine.load_state_dict(EncoderLayer.from_bert(theirs, cfg.layer_norm_eps).state_dict())
        return model

    def forward(self, q: torch.Tensor, q_mask: torch.Tensor, p: torch.Tensor, p_mask: torch.Tensor):
        """q: [B, Tq, H], p: [B, Tp, H] float; masks bool.

        Returns start, end [B, Tp], answerable [B] and null [B, 2]: the span head read on the question's <s>,
        the "no answer" slot that competes with every span (SQuAD 2.0 style; used when config["null_slot"])."""
        tq = q.shape[1]
        x = torch.cat([q + self.segment[0], p + self.segment[1]], dim=1)
        mask = torch.cat([q_mask, p_mask], dim=1)
        for layer in self.layers:
            x = layer(x, mask)
        hq, hp = x[:, :tq], x[:, tq:]
        logits = self.span(hp)
        neg = torch.finfo(logits.dtype).min
        start = logits[..., 0].masked_fill(~p_mask, neg)
        end = logits[..., 1].masked_fill(~p_mask, neg)
        pooled = hp.masked_fill(~p_mask[..., None], neg).amax(dim=1)
        answerable = self.answerable(torch.cat([hq[:, 0], pooled], dim=-1)).squeeze(-1)
        null = self.span(hq[:, 0])
        return start, end, answerable, null

    def save(self, path: Path, extra_metadata: dict | None = None) -> None:
        from safetensors.torch import save_file

        tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in self.state_dict().items()}
        meta = {"config": json.dumps(self.config), **{k: json.dumps(v) for k, v in (extra_metadata or {}).items()}}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(path) + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)

    @staticmethod
    def read_config(path: Path) -> dict:
        """The recipe-level config stored in a weights file's header, without loading its tensors."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["config"])

    @classmethod
    def load(cls, path: Path) -> "ReaderModel":
        from safetensors.torch import load_file

        config = cls.read_config(path)
        if config.get("format") != FORMAT:
            raise RuntimeError(f"{path}: reader weights of format {config.get('format')}, this code reads {FORMAT}")
        model = cls(config)
        model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
        return model.eval()
