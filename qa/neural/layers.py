"""A BERT encoder layer in plain torch, loaded from e5's weights.

Written out (rather than reusing transformers' BertLayer) so that the shipped reader depends on
nothing but torch and its own weight file, whatever transformers' internal APIs do next.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EncoderLayer(nn.Module):
    def __init__(self, hidden: int = 384, heads: int = 12, ffn: int = 1536, eps: float = 1e-12, dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """x: [B, T, H]; key_mask: [B, T] bool, True where a real token is."""
        b, t, h = x.shape
        def split(y):
            return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)
        bias = torch.zeros(b, 1, 1, t, dtype=x.dtype, device=x.device).masked_fill(~key_mask[:, None, None, :], float("-inf"))
        drop = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)),
                                             attn_mask=bias, dropout_p=drop)
        att = att.transpose(1, 2).reshape(b, t, h)
        x = self.attn_norm(x + F.dropout(self.attn_out(att), drop, self.training))
        y = self.ffn_out(F.gelu(self.ffn_in(x)))
        return self.out_norm(x + F.dropout(y, drop, self.training))

    @classmethod
    def from_bert(cls, layer, eps: float) -> "EncoderLayer":
        """Copy one transformers BertLayer's weights."""
        hidden = layer.attention.self.query.in_features
        heads = layer.attention.self.num_attention_heads
        ffn = layer.intermediate.dense.out_features
        new = cls(hidden, heads, ffn, eps)
        pairs = [(new.query, layer.attention.self.query), (new.key, layer.attention.self.key),
                 (new.value, layer.attention.self.value), (new.attn_out, layer.attention.output.dense),
                 (new.attn_norm, layer.attention.output.LayerNorm), (new.ffn_in, layer.intermediate.dense),
                 (new.ffn_out, layer.output.dense), (new.out_norm, layer.output.LayerNorm)]
        with torch.no_grad():
            for mine, theirs in pairs:
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
        return new
