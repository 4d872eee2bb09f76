"""timm's Attention layer with its score/normalise/aggregate step delegated to a qdsbench backend.

Subclassing keeps timm's qkv projection, optional q/k norms and output projection, so a qdsbench ViT is a stock
timm ``VisionTransformer`` whose only change is the attention backend. Backends are swapped after construction
(``set_backend``) rather than baked into a generated class, so models stay picklable (ddp_spawn, launchers) and
zero-shot conversion uses the same call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from timm.layers.attention import Attention
from torch import nn

from qdsbench import attention as attention_backends

LAYER_SETS = ("all", "first_half", "second_half")


class BackendAttention(Attention):
    def __init__(self, dim: int, num_heads: int = 8, **kwargs):
        super().__init__(dim, num_heads=num_heads, **kwargs)
        self.backend: attention_backends.AttentionBackend = attention_backends.create("softmax")

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False):
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        out = self.backend(q, k, v, mask=attn_mask)
        out = out.transpose(1, 2).reshape(B, N, self.attn_dim)
        return self.proj_drop(self.proj(self.norm(out)))


def attention_layers(model: nn.Module) -> list[BackendAttention]:
    return [m for m in model.modules() if isinstance(m, BackendAttention)]


def select_layers(n_layers: int, layers: str | Iterable[int]) -> list[int]:
    if isinstance(layers, str):
        if layers == "all":
            return list(range(n_layers))
        if layers == "first_half":
            return list(range(n_layers // 2))
        if layers == "second_half":
            return list(range(n_layers // 2, n_layers))
        raise ValueError(f"unknown layer set '{layers}'; valid choices: {', '.join(LAYER_SETS)} or a list of indices")
    chosen = sorted(set(int(i) for i in layers))
    bad = [i for i in chosen if not 0 <= i < n_layers]
    if bad:
        raise ValueError(f"layer indices {bad} out of range; the model has layers 0..{n_layers - 1}")
    return chosen


def set_backend(
    model: nn.Module, config: dict[str, Any], layers: str | Iterable[int] = "all", causal: bool | None = None
) -> list[int]:
    """Give the chosen attention layers a fresh backend built from ``config`` (``name`` + options). ``causal``
    overrides the config's (a causal model passes True and a backend that cannot be causal refuses, naming those
    that can); None keeps the config's, or the backend's default."""
    overrides = {} if causal is None else {"causal": causal}
    modules = attention_layers(model)
    chosen = select_layers(len(modules), layers)
    backends = [attention_backends.from_config(config, **overrides) for _ in chosen]
    for index, backend in zip(chosen, backends):
        modules[index].backend = backend
    return chosen
