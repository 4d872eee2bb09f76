"""Oversmoothing vs depth in random-initialised attention stacks (analysis notes, recipe A1c).

A stack of ``depth`` single-head attention layers with fresh Gaussian W_Q, W_K, W_V (std 1/sqrt(d)) per layer, applied
to i.i.d. Gaussian tokens, in three variants:

- ``pure``: X <- A X W_V (no residual, no LayerNorm; Dong et al.'s pure attention);
- ``residual``: X <- X + A X W_V;
- ``residual_ln``: X <- X + A LN(X) W_V (pre-LN).

A comes from any qdsbench backend's normaliser (softmax, sinkhorn, qr, ...) under a mask: ``full``, ``causal`` or
``window`` (|i - j| <= window). After every layer it records the normalised distance to the token mean
mu(X)/||X||_F and the rank-collapse residual; expected (Wu et al. 2024): exponential decay for pure attention under
every mask, slower for causal and local masks, no collapse once residual + LayerNorm are added. Doubly stochastic A
keeps the token mean and contracts only the centred part, by sigma_2(A).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qdsbench import attention as attention_backends
from qdsbench.analysis import metrics as m

VARIANTS = ("pure", "residual", "residual_ln")
MASKS = ("full", "causal", "window")


def make_mask(kind: str, t: int, window: int = 2) -> torch.Tensor | None:
    if kind == "full":
        return None
    if kind == "causal":
        return torch.ones(t, t, dtype=torch.bool).tril()
    if kind == "window":
        i = torch.arange(t)
        return (i[:, None] - i[None, :]).abs() <= window
    raise ValueError(f"unknown mask '{kind}'; valid choices: {', '.join(MASKS)}")


@torch.no_grad()
def depth_profile(
    backend: dict,
    variant: str = "pure",
    mask: str = "full",
    depth: int = 32,
    tokens: int = 16,
    dim: int = 64,
    samples: int = 8,
    seed: int = 0,
    window: int = 2,
) -> list[dict]:
    """Rows (layer, distance_to_mean, rank_collapse_residual) averaged over ``samples`` random stacks and inputs;
    layer 0 is the input."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant '{variant}'; valid choices: {', '.join(VARIANTS)}")
    options = dict(backend)
    normaliser = attention_backends.create(options.pop("name"), **options)
    attn_mask = make_mask(mask, tokens, window)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, tokens, dim, generator=g, dtype=torch.float64)
    rows = []

    def record(layer: int, h: torch.Tensor) -> None:
        rows.append(
            {
                "layer": layer,
                "distance_to_mean": float(m.distance_to_mean(h).mean()),
                "rank_collapse_residual": float(m.rank_collapse_residual(h).mean()),
            }
        )

    record(0, x)
    for layer in range(1, depth + 1):
        wq, wk, wv = (torch.randn(samples, dim, dim, generator=g, dtype=torch.float64) / dim**0.5 for _ in range(3))
        h = F.layer_norm(x, (dim,)) if variant == "residual_ln" else x
        scores = (h @ wq) @ (h @ wk).transpose(-1, -2) / dim**0.5
        a = normaliser.normalize(scores[:, None], attn_mask)[:, 0].to(h.dtype)
        out = a @ h @ wv
        x = out if variant == "pure" else x + out
        record(layer, x)
    return rows
