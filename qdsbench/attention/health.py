"""Health of a static normaliser at initialisation: is P informative, or (nearly) the identity or uniform matrix?

A static QontOT circuit (theta fixed, no gradient into the scores) cannot learn its way out of a degenerate P:
with timm's initialisation and scaled scores its angles start near 0 and P ~ I, so the CLS token only ever sees
itself and accuracy stays at chance. The check runs before training, on one batch, and stops such a run at once.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qdsbench.errors import DegenerateAttentionError

DEGENERATE_WITHIN = 0.05
FACTORS = "model.init (timm | sinkformer), attention.inject (scaled | raw | standardized), attention.theta_range"


def matrix_stats(p: torch.Tensor) -> dict[str, float]:
    """Statistics of a batch of (..., T, T) row-stochastic matrices."""
    p = p.detach().double().reshape(-1, p.shape[-2], p.shape[-1])
    t = p.shape[-1]
    diag = torch.diagonal(p, dim1=-2, dim2=-1).mean().item()
    entropy = -(p.clamp_min(1e-300).log() * p).sum(-1).mean().item() / math.log(t)
    return {
        "mean_diagonal": diag,
        "row_entropy_over_log_t": entropy,
        "identity_distance": (p - torch.eye(t, dtype=p.dtype)).abs().amax(dim=(-2, -1)).mean().item(),
        "uniform_distance": (p - 1.0 / t).abs().amax(dim=(-2, -1)).mean().item(),
        "sample_spread": p.std(dim=0).mean().item() if p.shape[0] > 1 else 0.0,
    }


def degenerate(stats: dict[str, float], within: float = DEGENERATE_WITHIN) -> str | None:
    """'identity' or 'uniform' when P is within ``within`` (max-abs, averaged over matrices) of one; else None."""
    if stats["identity_distance"] <= within:
        return "identity"
    if stats["uniform_distance"] <= within:
        return "uniform"
    return None


def static_backends(model: nn.Module) -> list[nn.Module]:
    """Backends whose matrix gets no gradient (``grad: none``): they cannot leave a bad starting point."""
    from qdsbench.attention.base import MatrixAttention

    return [m for m in model.modules() if isinstance(m, MatrixAttention) and getattr(m, "grad", None) == "none"]


@torch.no_grad()
def check_static_attention(
    model: nn.Module, inputs: torch.Tensor, within: float = DEGENERATE_WITHIN, stop: bool = True
) -> list[dict[str, float]]:
    """Per static backend, the statistics of P on ``inputs``; with ``stop``, raises DegenerateAttentionError when
    one is degenerate (studies of the degenerate settings themselves measure without stopping)."""
    backends = static_backends(model)
    if not backends:
        return []
    from qdsbench.analysis.capture import Capture  # the one capture mechanism (analysis, Delta, diagnostics)

    was_training = model.training
    model.eval()
    try:
        with Capture(model, matrices="formed", inputs=False, hidden=False) as cap:
            model(inputs)
    finally:
        model.train(was_training)
    formed = {id(b): r.attention[-1] for (_, b), r in zip(cap.backends, cap.layers) if r.attention}
    report = []
    for index, backend in enumerate(backends):
        if id(backend) not in formed:
            continue
        stats = matrix_stats(formed[id(backend)])
        kind = degenerate(stats, within)
        if kind and stop:
            raise DegenerateAttentionError(
                f"static {backend.name} attention (layer {index}) is within {within} of the {kind} matrix at "
                f"initialisation (mean diagonal {stats['mean_diagonal']:.3f}, spread across samples "
                f"{stats['sample_spread']:.4f}); such a start trained to chance or far below the others here "
                f"(results/qds/README.md): change {FACTORS}, or train anyway with check_attention=false"
            )
        report.append(stats)
    return report
