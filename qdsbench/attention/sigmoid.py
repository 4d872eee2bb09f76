"""Sigmoid attention without normalisation: P = sigmoid(scale * q k^T + bias), elementwise.

The "sigmoid attention, no normalisation" arm of Gu et al. (ICLR 2025), where sinks all but vanish (Sink_1 = 0.44%
vs 18% for softmax in their 60M model). ``bias`` defaults to -log(N) (Ramapuram et al. 2024), which keeps the row sums
near 1 at initialisation; with a mask, N counts only the keys some query may attend (padded keys excluded; a causal
mask keeps N). Rows are not stochastic, so the analysis measures sinks on Gu's proxy |P_ij| / sum_j |P_ij|.
"""

from __future__ import annotations

import math

import torch

from qdsbench.attention.base import MatrixAttention
from qdsbench.attention.registry import register


@register("sigmoid")
class SigmoidAttention(MatrixAttention):
    def __init__(self, scale: float | None = None, causal: bool = False, bias: float | None = None):
        super().__init__(scale=scale, causal=causal)
        self.bias = bias

    def normalize(self, scores, mask=None):
        if self.bias is not None:
            bias = self.bias
        elif mask is None:
            bias = -math.log(scores.shape[-1])
        else:  # N = the keys visible to at least one query: key padding does not count, causality keeps N
            kept = mask.expand_as(scores).any(-2, keepdim=True).sum(-1, keepdim=True)
            bias = -torch.log(kept.clamp_min(1).to(scores.dtype))
        p = torch.sigmoid(scores + bias)
        return p if mask is None else p.masked_fill(~mask, 0.0)
