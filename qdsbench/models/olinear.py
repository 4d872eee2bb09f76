"""OLinear (OrthoTrans + NormLin), following the official code's architecture (see results/olinear/README.md).

x [B,T,N] -> RevIN -> dimension extension (x * phi, phi in R^d) -> x Q_in^T (+ delta1) -> Linear(T d -> D)
-> e_layers x [CSL: NormLin mixing of the N variate tokens; ISL: 1x1-conv FFN], post-LN -> LayerNorm
-> Linear(D -> tau d) -> x Q_out (+ delta2) -> MLP(tau d -> d_ff -> tau) -> dropout -> RevIN denorm.
Q_in and Q_out come from the datamodule (``ModelInputs.orthotrans``): the model reads no data itself.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qdsbench.data.inputs import ModelInputs, needs
from qdsbench.models.registry import register


class RevIN(nn.Module):
    """Reversible instance normalisation (affine; population std + eps; denorm divides by w + eps^2)."""

    def __init__(self, num_variates: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_variates))
        self.bias = nn.Parameter(torch.zeros(num_variates))

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        self.mean = x.mean(1, keepdim=True).detach()
        self.std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - self.mean) / self.std * self.weight + self.bias

    def denorm(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.bias) / (self.weight + self.eps**2) * self.std + self.mean


class NormLin(nn.Module):
    """Row-L1-normalised softplus weights replace the attention matrix across variate tokens."""

    def __init__(self, num_variates: int, dropout: float):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(num_variates) + torch.randn(num_variates, num_variates))
        self.dropout = nn.Dropout(dropout)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        mix = self.dropout(F.normalize(F.softplus(self.weight), p=1, dim=-1))
        return torch.einsum("nm,bmd->bnd", mix, v)


class LinearEncoderLayer(nn.Module):
    def __init__(self, num_variates: int, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.value = nn.Linear(d_model, d_model)
        self.normlin = NormLin(num_variates, dropout)
        self.out = nn.Linear(d_model, d_model)
        self.conv1 = nn.Conv1d(d_model, d_ff, 1)
        self.conv2 = nn.Conv1d(d_ff, d_model, 1)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.out(self.normlin(self.value(x)))))
        y = self.dropout(F.gelu(self.conv1(x.transpose(-1, 1))))
        y = self.dropout(self.conv2(y).transpose(-1, 1))
        return self.norm2(x + y)


class OLinear(nn.Module):
    def __init__(
        self,
        q_in: np.ndarray,
        q_out: np.ndarray,
        num_variates: int,
        seq_len: int,
        pred_len: int,
        embed_size: int = 16,
        d_model: int = 512,
        d_ff: int = 512,
        e_layers: int = 2,
        dropout: float = 0.2,
    ):
        super().__init__()
        if q_in.shape != (seq_len, seq_len) or q_out.shape != (pred_len, pred_len):
            raise ValueError(
                f"Q shapes {q_in.shape}, {q_out.shape} do not match seq_len={seq_len}, pred_len={pred_len}"
            )
        self.register_buffer("q_in", torch.as_tensor(q_in, dtype=torch.float32))
        self.register_buffer("q_out", torch.as_tensor(q_out, dtype=torch.float32))
        self.seq_len, self.pred_len, self.embed_size = seq_len, pred_len, embed_size
        self.revin = RevIN(num_variates)
        self.phi = nn.Parameter(torch.randn(1, embed_size))
        self.delta1 = nn.Parameter(torch.zeros(1, num_variates, 1, seq_len))
        self.delta2 = nn.Parameter(torch.zeros(1, num_variates, 1, pred_len))
        self.proj_in = nn.Linear(seq_len * embed_size, d_model)
        self.layers = nn.ModuleList(LinearEncoderLayer(num_variates, d_model, d_ff, dropout) for _ in range(e_layers))
        self.norm = nn.LayerNorm(d_model)
        self.proj_out = nn.Linear(d_model, pred_len * embed_size)
        self.fc = nn.Sequential(nn.Linear(pred_len * embed_size, d_ff), nn.GELU(), nn.Linear(d_ff, pred_len))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n = x.shape
        x = self.revin.norm(x)
        z = x.transpose(1, 2)[..., None] * self.phi  # [B,N,T,d]
        z = torch.einsum("bndt,tv->bndv", z.transpose(-1, -2), self.q_in.T) + self.delta1
        h = self.proj_in(z.flatten(-2))
        for layer in self.layers:
            h = layer(h)
        h = self.proj_out(self.norm(h)).reshape(b, n, self.embed_size, self.pred_len)
        h = torch.einsum("bndt,tv->bndv", h, self.q_out) + self.delta2
        y = self.fc(h.transpose(-1, -2).flatten(-2)).transpose(1, 2)  # [B,tau,N]
        return self.revin.denorm(self.dropout(y))


@register("olinear")
@needs("seq_len", "pred_len", "num_variates", "orthotrans")
def create_olinear(
    *,
    attention: dict | None = None,
    inputs: ModelInputs,
    q_rows: str = "paper_ratio",
    q_cache_dir: str = "logs/cache/orthotrans",
    embed_size: int = 16,
    d_model: int = 512,
    d_ff: int = 512,
    e_layers: int = 2,
    dropout: float = 0.2,
) -> OLinear:
    q_in, q_out = inputs.orthotrans(q_rows, q_cache_dir)
    return OLinear(
        q_in, q_out, inputs.num_variates, inputs.seq_len, inputs.pred_len, embed_size, d_model, d_ff, e_layers, dropout
    )
