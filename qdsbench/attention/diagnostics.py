"""Cheap per-layer diagnostics of attention matrices, meaningful for row-stochastic and doubly stochastic ones."""

from __future__ import annotations

import torch


def attention_diagnostics(p: torch.Tensor) -> dict[str, float]:
    """p: (..., N, N) attention matrices; returns scalars averaged over the leading dimensions."""
    p = p.detach().to(torch.float64)
    n = p.shape[-1]
    flat = p.reshape(-1, p.shape[-2], n)
    row_err = (flat.sum(-1) - 1).abs().amax(-1)
    col_target = flat.shape[-2] / n
    col_err = (flat.sum(-2) - col_target).abs().amax(-1)
    entropy = -(flat * torch.log(flat.clamp_min(1e-30))).sum(-1).mean(-1)
    uniform = torch.full_like(flat, 1.0 / n)
    eye = torch.eye(flat.shape[-2], n, dtype=flat.dtype, device=flat.device)
    singular = torch.linalg.svdvals(flat)
    weights = singular / singular.sum(-1, keepdim=True).clamp_min(1e-30)
    effective_rank = torch.exp(-(weights * torch.log(weights.clamp_min(1e-30))).sum(-1))
    return {
        "row_marginal_error": float(row_err.mean()),
        "col_marginal_error": float(col_err.mean()),
        "row_entropy": float(entropy.mean()),
        "dist_uniform": float((flat - uniform).flatten(1).norm(dim=-1).mean()),
        "dist_identity": float((flat - eye).flatten(1).norm(dim=-1).mean()),
        "effective_rank": float(effective_rank.mean()),
    }
