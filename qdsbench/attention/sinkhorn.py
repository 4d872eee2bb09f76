"""Sinkformer's Sinkhorn normaliser (Sander et al., AISTATS 2022).

Alternating normalisation of rows then columns (log-sum-exp in the log domain) for a fixed ``n_iter`` (no
data-dependent early stop); n_iter = 1 is exactly softmax and odd n_iter leaves the matrix exactly row-stochastic. The
output is the transport plan with uniform marginals multiplied by the number of queries, i.e. unit row sums
(and column sums n_q / n_k), as the Sinkformer ViT uses it. With a mask only the valid block is normalised
(marginals over valid tokens); fully masked rows become zero rows.

Speed: without a mask, n_iter >= 2 runs in the exp domain (``_ScaledSinkhorn``): one softmax, then each further
step divides by the line sums, with a hand-written backward (each step's output and line sums are kept); the log
domain's log-sum-exps cost an exp per step and more in autograd (about 6x a softmax for the normaliser at
n_iter = 3, N = 50). It equals the log-domain result up to rounding as long as no column sum falls below
``_floor`` (entries that underflow then carry less than 1e-26 of their column); a call where one does is recomputed
in the log domain (that check is the one host sync of the fast path).
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


def _floor(dtype: torch.dtype) -> float:
    """Smallest column sum the exp domain accepts: sqrt of the smallest normal number (1e-19 in float32)."""
    return torch.finfo(dtype).tiny ** 0.5


class _ScaledSinkhorn(torch.autograd.Function):
    """Unmasked Sinkhorn in the exp domain: softmax over rows, then alternating column / row divisions by the line
    sums (a column step also multiplies by n_q / n_k); returns None when a column sum is below ``_floor``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, n_iter: int):
        col_target = x.shape[-2] / x.shape[-1]
        p = torch.softmax(x, dim=-1)
        outputs, sums = [p], []
        for step in range(1, n_iter):
            dim = -2 if step % 2 == 1 else -1
            total = p.sum(dim, keepdim=True)
            if dim == -2 and bool((total < _floor(p.dtype)).any()):
                return None
            p = p / total if dim == -1 else p * (col_target / total)
            outputs.append(p)
            sums.append(total)
        ctx.save_for_backward(*outputs, *sums)
        ctx.col_target = col_target
        return p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        saved = ctx.saved_tensors
        n = (len(saved) + 1) // 2
        outputs, sums = saved[:n], saved[n:]
        for step in range(n - 1, 0, -1):  # y = t x / S: dL/dx = (t / S) (g - sum(g y) / t) along the line
            dim, t = (-2, ctx.col_target) if step % 2 == 1 else (-1, 1.0)
            y = outputs[step]
            grad = (grad - (grad * y).sum(dim, keepdim=True) / t) * (t / sums[step - 1])
        y = outputs[0]
        return y * (grad - (grad * y).sum(-1, keepdim=True)), None


def sinkhorn_log(
    scores: torch.Tensor, n_iter: int, eps: float, mask: torch.Tensor | None = None, exp_domain: bool = True
) -> torch.Tensor:
    """``exp_domain=False`` forces the log domain (the reference the tests and scripts/bench_attention.py use)."""
    if mask is None and n_iter >= 2 and exp_domain:
        x = scores / eps
        half = x.dtype in (torch.float16, torch.bfloat16)
        p = _ScaledSinkhorn.apply(x.float() if half else x, n_iter)
        if p is not None:
            return p.to(scores.dtype)
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
