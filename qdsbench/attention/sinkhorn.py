"""Sinkformer's log-domain Sinkhorn normaliser (Sander et al., AISTATS 2022).

Alternating log-sum-exp normalisation of rows then columns for a fixed ``n_iter`` (no data-dependent early stop,
so no device sync); n_iter = 1 is exactly softmax and odd n_iter leaves the matrix exactly row-stochastic. The
output is the transport plan with uniform marginals multiplied by the number of queries, i.e. unit row sums
(and column sums n_q / n_k), as the Sinkformer ViT uses it. With a mask only the valid block is normalised
(marginals over valid tokens); fully masked rows become zero rows.
"""

from __future__ import annotations

import torch

from qdsbench.attention.base import MatrixAttention, dense_attention_flops
from qdsbench.attention.registry import register


def _safe_lse(x: torch.Tensor, dim: int) -> torch.Tensor:
    """logsumexp, 0 for a row/column with no finite log-sum (one fully masked): such a line is first filled with 0,
    because logsumexp's backward on an all -inf line is 0 * exp(-inf + inf) = NaN, which the next step would spread
    into the kept entries."""
    lse = torch.logsumexp(x, dim=dim, keepdim=True)
    bad = ~torch.isfinite(lse.detach())
    if not bad.any():
        return lse
    return torch.logsumexp(x.masked_fill(bad, 0.0), dim=dim, keepdim=True).masked_fill(bad, 0.0)


def sinkhorn_log(scores: torch.Tensor, n_iter: int, eps: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    log_p = scores / eps
    n_q, n_k = scores.shape[-2], scores.shape[-1]
    if mask is not None:
        mask = mask.expand_as(scores)
        log_p = log_p.masked_fill(~mask, float("-inf"))
        valid_q = mask.any(-1, keepdim=True).sum(-2, keepdim=True).to(scores.dtype)
        valid_k = mask.any(-2, keepdim=True).sum(-1, keepdim=True).to(scores.dtype)
        col_target = torch.log(valid_q.clamp_min(1) / valid_k.clamp_min(1))
    else:
        col_target = torch.log(torch.tensor(n_q / n_k, dtype=scores.dtype, device=scores.device))
    for step in range(n_iter - 1):
        if step % 2 == 0:
            log_p = log_p - _safe_lse(log_p, -1)
        else:
            log_p = log_p - _safe_lse(log_p, -2) + col_target
    if (n_iter - 1) % 2 == 0:  # a final row step is a softmax: n_iter = 1 is bit-identical to softmax attention
        if mask is None:
            p = torch.softmax(log_p, dim=-1)
        else:  # a fully masked row is filled before the softmax: its NaN row would give NaN gradients upstream
            p = torch.nan_to_num(torch.softmax(log_p.masked_fill(~mask.any(-1, keepdim=True), 0.0), dim=-1), nan=0.0)
    else:
        p = (log_p - _safe_lse(log_p, -2) + col_target).exp()
    return p if mask is None else p.masked_fill(~mask, 0.0)


@register("sinkhorn")
class SinkhornAttention(MatrixAttention):
    supports_causal = False  # column balancing of a triangular matrix is not meaningful (see the paper notes)

    def __init__(self, scale: float | None = None, causal: bool = False, n_iter: int = 3, eps: float = 1.0):
        super().__init__(scale=scale, causal=causal)
        if n_iter < 1:
            raise ValueError(f"sinkhorn n_iter={n_iter} must be >= 1")
        if eps <= 0:
            raise ValueError(f"sinkhorn eps={eps} must be > 0")
        self.n_iter, self.eps = n_iter, eps

    def normalize(self, scores, mask=None):
        if mask is not None and mask.shape[-2] == 1 and scores.shape[-2] == scores.shape[-1]:
            mask = mask & mask.transpose(-1, -2)  # a key-padding mask also pads the queries in self-attention
        return sinkhorn_log(scores, self.n_iter, self.eps, mask)

    def flops(self, n, d):
        return dense_attention_flops(n, d)
