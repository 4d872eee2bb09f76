"""A small token tagger: embeddings + timm pre-LN transformer blocks (qdsbench attention backends) + per-token head.

For the switch-tagging task of the analysis study (non-causal, or causal with ``causal: true``, which is passed to
the backend). ``special_tokens`` embeddings follow the vocabulary (the data's BOS is index ``vocab_size``). The
blocks are timm ``Block``s with ``BackendAttention``, so the analysis hooks, the backend switch and ``set_backend``
work exactly as for the ViT.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.models.vision_transformer import Block
from torch import nn

from qdsbench.models.backend_attention import BackendAttention, set_backend
from qdsbench.models.registry import register


class Tagger(nn.Module):
    def __init__(
        self,
        attention: dict[str, Any],
        vocab_size: int,
        seq_len: int,
        num_classes: int = 2,
        embed_dim: int = 64,
        depth: int = 1,
        num_heads: int = 2,
        mlp_ratio: float = 2.0,
        pos_embed: bool = True,
        causal: bool = False,
        special_tokens: int = 1,
    ):
        super().__init__()
        self.causal = causal
        self.embed = nn.Embedding(vocab_size + special_tokens, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, seq_len, embed_dim)) if pos_embed else None
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, attn_layer=BackendAttention)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        set_backend(self, dict(attention), causal=True if causal else None)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        if self.pos_embed is not None:
            x = x + self.pos_embed[:, : x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


@register("tagger")
def create_tagger(
    *,
    attention: dict[str, Any],
    vocab_size: int,
    seq_len: int,
    num_classes: int = 2,
    embed_dim: int = 64,
    depth: int = 1,
    num_heads: int = 2,
    mlp_ratio: float = 2.0,
    pos_embed: bool = True,
    causal: bool = False,
    special_tokens: int = 1,
) -> Tagger:
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
    return Tagger(
        attention,
        vocab_size,
        seq_len,
        num_classes,
        embed_dim,
        depth,
        num_heads,
        mlp_ratio,
        pos_embed,
        causal,
        special_tokens,
    )
