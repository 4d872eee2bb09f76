"""timm's Attention layer with its score/normalise/aggregate step delegated to a qdsbench backend.

Subclassing keeps timm's qkv projection, optional q/k norms and output projection, so a qdsbench ViT is a stock
timm ``VisionTransformer`` whose only change is the attention backend.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers.attention import Attention

from qdsbench import attention as attention_backends


class BackendAttention(Attention):
    backend_config: dict[str, Any] = {"name": "softmax"}

    def __init__(self, dim: int, num_heads: int = 8, **kwargs):
        super().__init__(dim, num_heads=num_heads, **kwargs)
        config = dict(self.backend_config)
        self.backend = attention_backends.create(config.pop("name"), **config)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False):
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        out = self.backend(q, k, v, mask=attn_mask)
        out = out.transpose(1, 2).reshape(B, N, self.attn_dim)
        return self.proj_drop(self.proj(self.norm(out)))


def bind_backend(config: dict[str, Any]) -> type[BackendAttention]:
    """A BackendAttention subclass bound to one backend config (timm instantiates attention layers by class)."""
    name = config.get("name")
    if name is None:
        raise ValueError("attention config needs a 'name'; valid choices: " + ", ".join(attention_backends.available()))
    attention_backends.BACKENDS.get(name)  # fail early with the list of valid names
    return type(f"BackendAttention_{name}", (BackendAttention,), {"backend_config": dict(config)})
