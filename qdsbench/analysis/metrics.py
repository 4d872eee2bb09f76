"""Sink, diagonal and oversmoothing metrics over attention matrices (..., T, T) and hidden states (..., T, d).

Definitions follow shared/papers/analysis.md §1.3: Gu et al.'s importance score alpha_k (column k averaged over
the queries that can see it) and sink rate (thresholded per sample, layer and head, then averaged); the proposed
diagonal score (t >= 2, since A_11 = 1 under a causal mask) and 3-way head label; StreamingLLM's first-token
attention; value-drain ratio; normalised distance to the token mean mu(X)/||X||_F; mean pairwise token cosine;
Dobrushin's ergodicity coefficient. Every function reduces only the last two (or one) dimensions.
"""

from __future__ import annotations

import torch


def importance(a: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """alpha_k = (1 / #queries that see key k) * sum_t A[t, k]: (..., T, T) -> (..., T)."""
    t = a.shape[-1]
    counts = (t - torch.arange(t, device=a.device, dtype=a.dtype)) if causal else torch.full((t,), t, dtype=a.dtype,
                                                                                             device=a.device)
    return a.sum(-2) / counts


def sink_rate(a: torch.Tensor, epsilon: float = 0.3, k: int = 0, causal: bool = True) -> torch.Tensor:
    """Share of (sample, layer, head) attention matrices whose key k has alpha_k > epsilon (Gu et al.)."""
    return (importance(a, causal)[..., k] > epsilon).to(torch.float64).mean()


def diagonal_score(a: torch.Tensor) -> torch.Tensor:
    """delta = mean_{t >= 2} A[t, t] (the first row is trivially diagonal under a causal mask)."""
    return torch.diagonal(a, dim1=-2, dim2=-1)[..., 1:].mean(-1)


def diagonal_rate(a: torch.Tensor, epsilon: float = 0.3) -> torch.Tensor:
    return (diagonal_score(a) > epsilon).to(torch.float64).mean()


def head_labels(a: torch.Tensor, epsilon: float = 0.3, causal: bool = True) -> torch.Tensor:
    """0 = sink (alpha_1 > eps), 1 = diagonal (delta > eps, not sink), 2 = mixing."""
    sink = importance(a, causal)[..., 0] > epsilon
    diagonal = (diagonal_score(a) > epsilon) & ~sink
    return torch.where(sink, 0, torch.where(diagonal, 1, 2))


def first_token_attention(a: torch.Tensor) -> torch.Tensor:
    """Attention of the last query to the first key (StreamingLLM)."""
    return a[..., -1, 0]


def max_attention(a: torch.Tensor) -> torch.Tensor:
    """Mean over queries of each row's largest weight: concentration that also means something under DS."""
    return a.amax(-1).mean(-1)


def row_entropy(a: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(a, a).sum(-1).mean(-1)


def value_drain_ratio(v: torch.Tensor, sink: int = 0) -> torch.Tensor:
    """||v_sink|| / mean_{j != sink} ||v_j|| over (..., T, d) values."""
    norms = v.norm(dim=-1)
    others = torch.cat([norms[..., :sink], norms[..., sink + 1 :]], -1)
    return norms[..., sink] / others.mean(-1).clamp_min(1e-12)


def distance_to_mean(x: torch.Tensor) -> torch.Tensor:
    """mu(X) / ||X||_F with mu(X) = ||X - 1 xbar^T||_F: 0 when every token is the same (oversmoothed)."""
    centred = x - x.mean(-2, keepdim=True)
    return centred.flatten(-2).norm(dim=-1) / x.flatten(-2).norm(dim=-1).clamp_min(1e-12)


def rank_collapse_residual(x: torch.Tensor) -> torch.Tensor:
    """Relative residual of the best rank-one 1 x^T fit; x is the column-wise median (the composite l1,inf-norm
    minimiser of Dong et al. is approximated by the l1-optimal median), normalised by ||X||_F."""
    residual = x - x.median(-2, keepdim=True).values
    return residual.flatten(-2).norm(dim=-1) / x.flatten(-2).norm(dim=-1).clamp_min(1e-12)


def mean_token_cosine(x: torch.Tensor) -> torch.Tensor:
    """Mean |cos(h_i, h_j)| over pairs i != j."""
    unit = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (unit @ unit.transpose(-1, -2)).abs()
    t = x.shape[-2]
    return (cos.sum((-2, -1)) - torch.diagonal(cos, dim1=-2, dim2=-1).sum(-1)) / (t * (t - 1))


def dobrushin(a: torch.Tensor) -> torch.Tensor:
    """tau(A) = 1/2 max_{i,j} sum_k |A_ik - A_jk|: 0 when all rows are equal (sink, uniform), 1 for a permutation."""
    return 0.5 * (a[..., :, None, :] - a[..., None, :, :]).abs().sum(-1).amax((-2, -1))
