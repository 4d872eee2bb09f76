"""Sink, diagonal and oversmoothing metrics over attention matrices (..., T, T) and hidden states (..., T, d).

Definitions follow shared/papers/analysis.md §1.3: Gu et al.'s importance score alpha_k (column k averaged over
the queries that can see it) and sink rate (thresholded per sample, layer and head, then averaged); the proposed
diagonal score (t >= 2, since A_11 = 1 under a causal mask) and 3-way head label; StreamingLLM's first-token
attention; value-drain ratio; normalised distance to the token mean mu(X)/||X||_F; mean pairwise token cosine;
Dobrushin's ergodicity coefficient; and, meaningful also under doubly stochastic attention, sink concentration,
per-query views (sink mass, diagonal, max, entropy, gain) for splits by query type, the head smoothing profile
(output gain g, token-specific signal kept kappa, sigma_2 contraction), Gu's proxy for unnormalised kernels and the
residual-stream smoothing ratio. Every function reduces only the last two (or one) dimensions.
"""

from __future__ import annotations

import torch


def importance(a: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """alpha_k = (1 / #queries that see key k) * sum_t A[t, k]: (..., T, T) -> (..., T)."""
    t = a.shape[-1]
    counts = (
        (t - torch.arange(t, device=a.device, dtype=a.dtype))
        if causal
        else torch.full((t,), t, dtype=a.dtype, device=a.device)
    )
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
    """tau(A) = 1/2 max_{i,j} sum_k |A_ik - A_jk|: 0 when all rows are equal (sink, uniform), 1 for a permutation.
    Computed one query row at a time, so (B, H, T, T) inputs need O(B H T^2) memory, not O(B H T^3)."""
    best = torch.zeros(a.shape[:-2], dtype=a.dtype, device=a.device)
    for i in range(a.shape[-2]):
        best = torch.maximum(best, 0.5 * (a[..., i : i + 1, :] - a).abs().sum(-1).amax(-1))
    return best


# --- per-query views (for splits by query type) -------------------------------------------------------------------


def query_sink_mass(a: torch.Tensor, sink: int = 0) -> torch.Tensor:
    """Attention each query puts on the sink key: (..., T, T) -> (..., T)."""
    return a[..., :, sink]


def query_diagonal(a: torch.Tensor) -> torch.Tensor:
    """A[i, i] per query: (..., T, T) -> (..., T)."""
    return torch.diagonal(a, dim1=-2, dim2=-1)


def query_max(a: torch.Tensor) -> torch.Tensor:
    return a.amax(-1)


def query_entropy(a: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(a, a).sum(-1)


# --- concentration measures that keep their meaning under doubly stochastic attention ------------------------------


def sink_concentration(a: torch.Tensor) -> torch.Tensor:
    """c = max_j (1/T) sum_i 1[argmax_k A_ik = j]: share of queries whose top key is the most popular key."""
    top = a.argmax(-1)
    counts = torch.zeros(*a.shape[:-2], a.shape[-1], dtype=a.dtype, device=a.device)
    counts.scatter_add_(-1, top, torch.ones_like(top, dtype=a.dtype))
    return counts.amax(-1) / a.shape[-2]


def sink_argmax_fraction(a: torch.Tensor, sink: int = 0) -> torch.Tensor:
    """Share of queries whose largest weight is on the sink key."""
    return (a.argmax(-1) == sink).to(a.dtype).mean(-1)


def proxy_attention(a: torch.Tensor) -> torch.Tensor:
    """Gu et al. section 7.4 proxy for kernels without row normalisation: |A_ij| / sum_j |A_ij|."""
    absolute = a.abs()
    return absolute / absolute.sum(-1, keepdim=True).clamp_min(1e-30)


def is_row_stochastic(a: torch.Tensor, tol: float = 1e-3) -> bool:
    return bool(((a.sum(-1) - 1).abs() <= tol).all()) and bool((a >= -tol).all())


# --- what a head does to its values (switch / smoothing profile, notes section 1.3 items 8-10) -----------------------


def _centre(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-2, keepdim=True)


def output_gain(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """g = ||A V||_F / ||V||_F: 0 for a hard switch (output identically 0), 1 for A = I."""
    return (a @ v).flatten(-2).norm(dim=-1) / v.flatten(-2).norm(dim=-1).clamp_min(1e-12)


def query_gain(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-query gain ||(A V)_i|| / rms_j ||v_j||, so that g^2 = mean_i g_i^2: (..., T)."""
    rms = v.square().sum(-1).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)
    return (a @ v).norm(dim=-1) / rms


def signal_kept(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """kappa = ||P A V||_F / ||P V||_F with P = I - 11^T/T: token-specific signal a head keeps (0: sink or uniform,
    1: identity)."""
    return _centre(a @ v).flatten(-2).norm(dim=-1) / _centre(v).flatten(-2).norm(dim=-1).clamp_min(1e-12)


def sigma2_contraction(a: torch.Tensor) -> torch.Tensor:
    """s(A) = ||P A P||_2 with P = I - 11^T/T, so mu(AX) <= s(A) mu(X) for row-stochastic A (A1 = 1); for doubly
    stochastic A it equals the notes' ||A P||_2 = sigma_2(A). 0 for a sink or uniform matrix, 1 for A = I."""
    t = a.shape[-1]
    p = torch.eye(t, dtype=a.dtype, device=a.device) - 1.0 / t
    return torch.linalg.matrix_norm(p @ a @ p, ord=2)


def token_norm_ratio(x: torch.Tensor, token: int = 0) -> torch.Tensor:
    """||x_token|| / mean_{j != token} ||x_j||: the value-drain ratio on values, the massive-activation ratio on
    hidden states."""
    return value_drain_ratio(x, token)


def residual_smoothing(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """r = mu(H after the attention sublayer) / mu(H before), mu(X) = ||X - 1 xbar^T||_F: < 1 means the sublayer
    smoothed the residual stream."""
    return _centre(after).flatten(-2).norm(dim=-1) / _centre(before).flatten(-2).norm(dim=-1).clamp_min(1e-12)


def column_importance_error(a: torch.Tensor) -> torch.Tensor:
    """max_k |alpha_k - 1/T| without a causal mask: 0 for every doubly stochastic matrix (alpha_k = 1/T)."""
    return (importance(a, causal=False) - 1.0 / a.shape[-1]).abs().amax(-1)
