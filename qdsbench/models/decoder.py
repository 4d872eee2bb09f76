"""A small decoder-only LM (pre-LN, RoPE, GELU MLP) whose prefill attention is any causal qdsbench backend.

Two attention paths, as in the Delta paper's protocol: a full-sequence pass (training and prefill) goes through the
layer's backend (``sdpa`` when training; ``sink_window`` / ``delta`` zero-shot at evaluation), and decoding with a
KV cache is always dense attention over the whole cache. The layers subclass ``BackendAttention``, so
``set_backend`` and the capture hooks (``qdsbench.analysis.capture``: each backend's post-RoPE q, k, v and output,
for the per-layer comparisons of the evaluation) work as for the ViT. RoPE is the standard 1-D rotate-half form
applied with the original positions (timm's rotary helpers are built for 2-D image grids).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from qdsbench.attention.base import causal_mask
from qdsbench.models.backend_attention import BackendAttention, set_backend
from qdsbench.models.registry import register

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


def rope_tables(positions: torch.Tensor, dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) / dim)
    angles = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], -1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class DecoderAttention(BackendAttention):
    def __init__(self, dim: int, num_heads: int):
        super().__init__(dim, num_heads=num_heads, qkv_bias=False)

    def forward(self, x, rope=None, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        cos, sin = rope
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if past is None:  # full causal pass through the backend (training / prefill)
            out = self.backend(q, k, v)
        else:  # decode: dense attention over the cache; new tokens see all cached keys and each other causally
            k, v = torch.cat([past[0], k], -2), torch.cat([past[1], v], -2)
            mask = None if N == 1 else causal_mask(N, k.shape[-2], x.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(B, N, self.attn_dim)
        return self.proj(out), (k, v)


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = DecoderAttention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x, rope, past=None):
        h, kv = self.attn(self.norm1(x), rope, past)
        x = x + h
        return x + self.mlp(self.norm2(x)), kv


class DecoderLM(nn.Module):
    def __init__(
        self,
        attention: dict[str, Any],
        vocab_size: int,
        embed_dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        rope_base: float = 10000.0,
        tie_embeddings: bool = True,
    ):
        super().__init__()
        self.head_dim, self.rope_base = embed_dim // num_heads, rope_base
        self.embed = nn.Embedding(vocab_size, embed_dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(DecoderBlock(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, vocab_size, bias=False)
        if tie_embeddings:
            self.head.weight = self.embed.weight
        set_backend(self, attention, causal=True)

    def forward(
        self, tokens: torch.Tensor, past: KVCache | None = None, return_cache: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, KVCache]:
        start = past[0][0].shape[-2] if past else 0
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        rope = rope_tables(positions, self.head_dim, self.rope_base)
        x, cache = self.embed(tokens), []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, rope, past[i] if past else None)
            cache.append(kv)
        logits = self.head(self.norm(x))
        return (logits, cache) if return_cache else logits

    def attention_modules(self) -> list[DecoderAttention]:
        return [b.attn for b in self.blocks]


@register("decoder_lm")
def create_decoder_lm(
    *,
    attention: dict[str, Any],
    vocab_size: int,
    embed_dim: int = 128,
    depth: int = 4,
    num_heads: int = 4,
    mlp_ratio: float = 4.0,
    rope_base: float = 10000.0,
    tie_embeddings: bool = True,
) -> DecoderLM:
    if embed_dim % num_heads or (embed_dim // num_heads) % 2:
        raise ValueError(f"embed_dim={embed_dim} / num_heads={num_heads} must give an even head size for RoPE")
    return DecoderLM(attention, vocab_size, embed_dim, depth, num_heads, mlp_ratio, rope_base, tie_embeddings)
