"""DLinear (Zeng et al., AAAI 2023): moving-average trend + remainder, one shared linear map each over time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qdsbench.data.inputs import ModelInputs, needs
from qdsbench.models.registry import register


class DLinear(nn.Module):
    def __init__(self, seq_len: int, pred_len: int, kernel_size: int = 25):
        super().__init__()
        self.kernel_size = kernel_size
        self.seasonal = nn.Linear(seq_len, pred_len)
        self.trend = nn.Linear(seq_len, pred_len)
        for layer in (self.seasonal, self.trend):
            nn.init.constant_(layer.weight, 1.0 / seq_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B,T,N] -> [B,tau,N]
        pad = (self.kernel_size - 1) // 2
        padded = torch.cat([x[:, :1].expand(-1, pad, -1), x, x[:, -1:].expand(-1, pad, -1)], dim=1)
        trend = F.avg_pool1d(padded.transpose(1, 2), self.kernel_size, stride=1).transpose(1, 2)
        seasonal = x - trend
        out = self.seasonal(seasonal.transpose(1, 2)) + self.trend(trend.transpose(1, 2))
        return out.transpose(1, 2)


@register("dlinear")
@needs("seq_len", "pred_len")
def create_dlinear(*, attention: dict | None = None, inputs: ModelInputs, kernel_size: int = 25) -> DLinear:
    return DLinear(inputs.seq_len, inputs.pred_len, kernel_size)
