"""NormLin (OLinear, Yue et al. 2025): a learned token-mixing matrix in place of the attention matrix.

A = RowL1Norm(Softplus(W)), W in R^{N x N} initialised as I + N(0, 1), dropout on A itself; the output is A v. The
matrix does not depend on q or k (the scores are ignored), so it only fits models whose token count is fixed, e.g.
the variate tokens of iTransformer: the OLinear paper's "NormLin as a plug-in for transformer forecasters".
``num_tokens`` sizes W (N). One W is shared by all heads, as OLinear's single-head CSL. With a mask, masked entries
are dropped and each row renormalised over the keys left (softplus keeps every kept entry positive).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qdsbench.attention.base import MatrixAttention
from qdsbench.attention.registry import register


@register("normlin")
class NormLinAttention(MatrixAttention):
    def __init__(self, num_tokens: int | None, dropout: float = 0.0, scale: float | None = None, causal: bool = False):
        super().__init__(scale=scale, causal=causal)
        if num_tokens is None:
            raise ValueError(
                "attention backend 'normlin' needs num_tokens, the model's fixed token count (the "
                "data has no num_variates): set attention.num_tokens=N"
            )
        if int(num_tokens) < 1:
            raise ValueError(f"attention backend 'normlin': num_tokens must be >= 1, got {num_tokens}")
        self.num_tokens = int(num_tokens)
        self.weight = nn.Parameter(torch.eye(self.num_tokens) + torch.randn(self.num_tokens, self.num_tokens))
        self.dropout = nn.Dropout(dropout)

    def attention_matrix(self, q, k, mask=None) -> torch.Tensor:
        self.check_inputs(q, k, k)
        n_q, n_k = q.shape[-2], k.shape[-2]
        if n_q != self.num_tokens or n_k != self.num_tokens:
            raise ValueError(
                f"attention backend 'normlin': built for num_tokens={self.num_tokens}, got {n_q} "
                f"queries and {n_k} keys (set attention.num_tokens to the model's token count)"
            )
        positive = F.softplus(self.weight.to(q.dtype)).expand(*q.shape[:2], n_q, n_k)
        mask = self.full_mask(mask, q, k)
        if mask is not None:
            positive = positive.masked_fill(~mask, 0.0)
        return self.dropout(F.normalize(positive, p=1, dim=-1))
