"""QDSFormer's expressivity analysis (§3, App. C) for any normaliser exposing ``normalize(scores)``.

- soundness: Frobenius distance of P to the Birkhoff polytope (exact Euclidean projection by Dykstra's algorithm
  over the two convex sets {row and column sums 1} and {P >= 0});
- diversity: how many distinct matrices (rounded to 3 decimals) an operator emits on a fixed input family;
- information preservation: ||P - S||_F against the mean row entropy of P (Fig. 2B);
- per-cell range of a QontOT DSM over random circuit parameters, by circuit layers and auxiliary qubits (Fig. A4).
"""

from __future__ import annotations

import itertools
import math

import torch


def project_affine(x: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto {X : X 1 = 1, X^T 1 = 1} (closed form for square matrices)."""
    n = x.shape[-1]
    row = x.sum(-1, keepdim=True)
    col = x.sum(-2, keepdim=True)
    total = x.sum((-2, -1), keepdim=True)
    return x + (1 - row) / n + (1 - col) / n + (total - n) / n**2


def birkhoff_projection(x: torch.Tensor, iters: int = 2000, tol: float = 1e-10) -> torch.Tensor:
    """Dykstra's alternating projections: converges to the nearest doubly stochastic matrix."""
    x = x.to(torch.float64)
    p = torch.zeros_like(x)
    q = torch.zeros_like(x)
    y = x
    for _ in range(iters):
        z = project_affine(y + p)
        p = y + p - z
        y_new = (z + q).clamp_min(0)
        q = z + q - y_new
        if (y_new - y).abs().max() < tol:
            y = y_new
            break
        y = y_new
    return y


def birkhoff_distance(p: torch.Tensor) -> torch.Tensor:
    return (p.to(torch.float64) - birkhoff_projection(p)).flatten(-2).norm(dim=-1)


def row_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp_min(0).to(torch.float64)
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1).mean(-1)


def count_unique(p: torch.Tensor, decimals: int = 3) -> int:
    rounded = torch.round(p.to(torch.float64) * 10**decimals).to(torch.int64).flatten(1)
    return int(torch.unique(rounded, dim=0).shape[0])


def hypersphere_family(n: int = 4) -> torch.Tensor:
    """625 = 5^4 matrices whose n=4 columns are each one of 5 fixed unit vectors (our construction; the paper's
    exact family is not published)."""
    base = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, -1, 1, -1]], dtype=torch.float64)
    base = base / base.norm(dim=1, keepdim=True)
    mats = [torch.stack(cols, dim=1) for cols in itertools.product(base, repeat=n)]
    return torch.stack(mats)


def apply(normalizer, scores: torch.Tensor) -> torch.Tensor:
    """Normalise a stack (M, n, n) of score matrices with a backend's ``normalize`` (B=M, H=1)."""
    with torch.no_grad():
        return normalizer.normalize(scores.unsqueeze(1)).squeeze(1)


def cell_range(make_normalizer, scores: torch.Tensor, samples: int) -> float:
    """Average over cells of (max - min) of P over ``samples`` random parameter draws."""
    outs = torch.stack([apply(make_normalizer(seed), scores.unsqueeze(0))[0] for seed in range(samples)])
    return float((outs.amax(0) - outs.amin(0)).mean())


def random_scores(count: int, n: int, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(count, n, n, generator=g, dtype=torch.float64) * scale


def entropy_upper_bound(n: int) -> float:
    return math.log(n)
