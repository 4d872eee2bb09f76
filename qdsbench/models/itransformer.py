"""iTransformer (Liu et al., ICLR 2024): each variate's whole lookback window is one token; a transformer
encoder attends across variates. The encoder is timm's ``Block`` whose attention is any qdsbench backend, so
``attention=sinkhorn`` on iTransformer runs (a cross-paper experiment none of the papers ran).
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from qdsbench.data.inputs import ModelInputs, needs
from qdsbench.models.backend_attention import BackendAttention, set_backend
from qdsbench.models.registry import register


class ITransformer(nn.Module):
    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        d_model: int = 512,
        depth: int = 2,
        num_heads: int = 8,
        mlp_ratio: float = 1.0,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.embed = nn.Linear(seq_len, d_model)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(
                d_model, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, proj_drop=dropout, attn_layer=BackendAttention
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, pred_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B,T,N] -> [B,tau,N]
        mean = x.mean(1, keepdim=True).detach()
        std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5).detach()
        tokens = self.dropout(self.embed(((x - mean) / std).transpose(1, 2)))  # [B,N,D]
        for block in self.blocks:
            tokens = block(tokens)
        out = self.head(self.norm(tokens)).transpose(1, 2)
        return out * std + mean


@register("itransformer")
@needs("seq_len", "pred_len")
def create_itransformer(
    *,
    attention: dict,
    inputs: ModelInputs,
    d_model: int = 512,
    depth: int = 2,
    num_heads: int = 8,
    mlp_ratio: float = 1.0,
    dropout: float = 0.1,
) -> ITransformer:
    model = ITransformer(inputs.seq_len, inputs.pred_len, d_model, depth, num_heads, mlp_ratio, dropout)
    set_backend(model, attention)
    return model
