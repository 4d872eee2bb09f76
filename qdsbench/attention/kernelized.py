"""Efficient-attention baselines of the MonarchAttention comparison, as zero-shot drop-ins for softmax.

performer: positive random features exp(w^T x - |x|^2 / 2) / sqrt(r), w ~ N(0, I), q and k pre-scaled by d^-1/4
(the authors redraw w on every call; ``redraw: false`` fixes it from ``seed``). linear: elu + 1 features.
cosformer: ReLU features re-weighted by cos / sin of (pi / 2) i / N. nystrom: segment-mean landmarks and a
6-iteration iterative pseudo-inverse (Nystromformer). All are non-causal and cost O(N) in sequence length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from qdsbench.attention.base import AttentionBackend
from qdsbench.attention.registry import register


def _linear_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6):
    kv = torch.einsum("...nr,...nd->...rd", phi_k, v)
    normaliser = torch.einsum("...nr,...r->...n", phi_q, phi_k.sum(-2)).clamp_min(eps)
    return torch.einsum("...nr,...rd->...nd", phi_q, kv) / normaliser[..., None]


class _NonCausal(AttentionBackend):
    supports_causal = False

    def forward(self, q, k, v, mask=None):
        self.check_inputs(q, k, v)
        if mask is not None:
            raise ValueError(f"attention backend '{self.name}' supports no mask; use mask=None")
        return self.attend(q, k, v)


@register("performer")
class PerformerAttention(_NonCausal):
    def __init__(
        self,
        scale: float | None = None,
        causal: bool = False,
        num_features: int = 64,
        redraw: bool = True,
        seed: int = 0,
    ):
        super().__init__(scale=scale, causal=causal)
        if num_features < 1:
            raise ValueError(f"performer num_features={num_features} must be >= 1")
        self.num_features, self.redraw, self.seed = num_features, redraw, seed

    def features(self, x: torch.Tensor, omega: torch.Tensor, query: bool = False) -> torch.Tensor:
        """exp(w^T x - |x|^2 / 2) / sqrt(r) times a constant that cancels in the ratio out = phi(q) S / phi(q) z: one
        per query row, one per (batch, head) for the keys, each the largest exponent it covers, so the largest
        feature is 1/sqrt(r) and the normaliser stays far above its guard (one constant for all queries left it
        below 1e-6 on every row of N(0, 1) inputs with d = 64, shrinking the output towards 0)."""
        exponent = x @ omega.T - x.square().sum(-1, keepdim=True) / 2
        stabiliser = exponent.amax(dim=-1 if query else (-1, -2), keepdim=True).detach()
        return torch.exp(exponent - stabiliser) / math.sqrt(self.num_features)

    def attend(self, q, k, v):
        d = q.shape[-1]
        generator = None if self.redraw else torch.Generator().manual_seed(self.seed)
        omega = torch.randn(self.num_features, d, generator=generator).to(q)
        pre = math.sqrt(self.scale_for(q))  # d^-1/4 on each side: q.k scaled by 1/sqrt(d)
        return _linear_attention(self.features(q * pre, omega, query=True), self.features(k * pre, omega), v)


@register("linear")
class LinearAttention(_NonCausal):
    def attend(self, q, k, v):
        return _linear_attention(F.elu(q) + 1, F.elu(k) + 1, v)


@register("cosformer")
class CosFormerAttention(_NonCausal):
    def attend(self, q, k, v):
        n = q.shape[-2]
        angle = (math.pi / 2) * torch.arange(n, device=q.device, dtype=q.dtype) / n
        cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
        phi_q, phi_k = F.relu(q), F.relu(k)
        return _linear_attention(
            torch.cat([phi_q * cos, phi_q * sin], -1), torch.cat([phi_k * cos, phi_k * sin], -1), v
        )


def iterative_pinv(x: torch.Tensor, iterations: int = 6) -> torch.Tensor:
    """Nystromformer's Newton-Schulz-style pseudo-inverse of the (row-stochastic) landmark kernel."""
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    z = x.transpose(-1, -2) / (x.abs().sum(-1).amax(-1)[..., None, None] * x.abs().sum(-2).amax(-1)[..., None, None])
    for _ in range(iterations):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
    return z


@register("nystrom")
class NystromAttention(_NonCausal):
    def __init__(
        self, scale: float | None = None, causal: bool = False, num_landmarks: int = 32, pinv_iterations: int = 6
    ):
        super().__init__(scale=scale, causal=causal)
        if num_landmarks < 1:
            raise ValueError(f"nystrom num_landmarks={num_landmarks} must be >= 1")
        self.num_landmarks, self.pinv_iterations = num_landmarks, pinv_iterations

    def attend(self, q, k, v):
        s = self.scale_for(q)
        landmarks = min(self.num_landmarks, q.shape[-2])

        def segment_means(x):
            return (
                F.adaptive_avg_pool1d(x.flatten(0, 1).transpose(-1, -2), landmarks)
                .transpose(-1, -2)
                .unflatten(0, x.shape[:2])
            )

        q_l, k_l = segment_means(q), segment_means(k)
        kernel1 = torch.softmax(s * q @ k_l.transpose(-1, -2), -1)
        kernel2 = torch.softmax(s * q_l @ k_l.transpose(-1, -2), -1)
        kernel3 = torch.softmax(s * q_l @ k.transpose(-1, -2), -1)
        return kernel1 @ (iterative_pinv(kernel2, self.pinv_iterations) @ (kernel3 @ v))
