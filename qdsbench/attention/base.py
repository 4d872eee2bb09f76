"""The attention backend contract every backend implements.

A backend is called as ``backend(q, k, v, mask=None) -> out`` with q, k, v and out of shape (B, H, N, d).
Scaling by 1/sqrt(d) happens inside the backend so that normalisers which are not scale invariant
(QontOT) see exactly the scores the config says. ``mask`` is boolean, True where a query may attend a key,
either broadcastable to (B, H, N, N) or a (B, N) key-padding mask.

What the rest of qdsbench needs to know about a backend it asks the backend, never a list of names:
``flops(n, d)`` (convert), ``attention_matrix(q, k, mask)`` and ``forms_matrix`` (analysis capture, diagnostics),
``supports_causal`` and ``not_supported_reasons(causal=...)`` (models that need causal attention).
"""

from __future__ import annotations

import torch
from torch import nn


def causal_mask(n_q: int, n_k: int, device=None) -> torch.Tensor:
    """(Nq, Nk) boolean, True where query i may see key j: causality aligned to the last key (a prefill continues
    the keys already there), so a square mask is the lower triangle."""
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(n_k - n_q)


def dense_attention_flops(n: int, d: int) -> int:
    """Bmm FLOPs per head of attention with an explicit N x N matrix: q k^T and P v, 2 N^2 d each."""
    return 4 * n * n * d


class AttentionBackend(nn.Module):
    """Base class: input checks, the scale, causal masking and an optional capture of the attention matrix."""

    supports_causal: bool = True
    forms_matrix: bool = False  # the forward builds the N x N matrix anyway, so keeping it costs nothing

    def __init__(self, scale: float | None = None, causal: bool = False):
        super().__init__()
        reasons = self.not_supported_reasons(causal=causal)
        if reasons:
            raise ValueError("; ".join(reasons))
        self.scale = scale
        self.causal = causal
        self.capture = False  # analysis hooks set this to keep the last attention matrix
        self.last_attention: torch.Tensor | None = None

    @property
    def name(self) -> str:
        return getattr(type(self), "registered_name", type(self).__name__)

    @classmethod
    def not_supported_reasons(cls, causal: bool = False) -> list[str]:
        """Why this backend refuses these settings, one line each naming it and the backends that can; [] = fine.
        Asked before building (``cls.not_supported_reasons(causal=True)``) and by ``__init__``."""
        if causal and not cls.supports_causal:
            from qdsbench.attention.registry import BACKENDS

            can = [n for n in BACKENDS.available() if getattr(BACKENDS.get(n), "supports_causal", True)]
            name = getattr(cls, "registered_name", cls.__name__)
            return [
                f"attention backend '{name}' does not support causal=True; causal backends: {', '.join(can)} "
                "(or use causal=false)"
            ]
        return []

    def flops(self, n: int, d: int) -> int | None:
        """Analytic attention FLOPs per head for N queries and N keys of size d (d_v = d); None: no formula, so
        only the FLOPs torch's counter measures are reported."""
        return None

    def attention_matrix(self, q, k, mask=None) -> torch.Tensor | None:
        """The (B, H, Nq, Nk) matrix P with out = P v, for analysis; None for backends that have none."""
        return None

    def scale_for(self, q: torch.Tensor) -> float:
        return self.scale if self.scale is not None else q.shape[-1] ** -0.5

    def check_inputs(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        for label, t in (("q", q), ("k", k), ("v", v)):
            if t.dim() != 4:
                raise ValueError(
                    f"attention backend '{self.name}': {label} must have shape (B, H, N, d), got {tuple(t.shape)}"
                )
        if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
            raise ValueError(
                f"attention backend '{self.name}': incompatible shapes q={tuple(q.shape)} k={tuple(k.shape)} "
                f"v={tuple(v.shape)}; expected q (B,H,Nq,d), k (B,H,Nk,d), v (B,H,Nk,dv)"
            )

    def full_mask(self, mask: torch.Tensor | None, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor | None:
        """Combine a user mask and the causal mask into one boolean mask broadcastable to (B, H, Nq, Nk)."""
        n_q, n_k = q.shape[-2], k.shape[-2]
        if mask is not None:
            mask = mask.to(torch.bool)
            if mask.dim() == 2:  # (B, Nk) key padding
                if mask.shape != (q.shape[0], n_k):
                    raise ValueError(
                        f"attention backend '{self.name}': a 2-D mask must be (B, N)=({q.shape[0]}, {n_k}), "
                        f"got {tuple(mask.shape)}"
                    )
                mask = mask[:, None, None, :]
            elif mask.dim() != 4:
                raise ValueError(
                    f"attention backend '{self.name}': mask must be (B, N) or broadcastable to (B, H, N, N), "
                    f"got {tuple(mask.shape)}"
                )
        if self.causal:
            causal = causal_mask(n_q, n_k, q.device)
            mask = causal if mask is None else mask & causal
        return mask

    def forward(self, q, k, v, mask=None):  # pragma: no cover - abstract
        raise NotImplementedError


class MatrixAttention(AttentionBackend):
    """A backend that forms the dense attention matrix P = normalize(scale * q k^T, mask) and returns P v."""

    forms_matrix = True

    def normalize(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def attention_matrix(self, q, k, mask=None) -> torch.Tensor:
        self.check_inputs(q, k, k)
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale_for(q)
        return self.normalize(scores, self.full_mask(mask, q, k))

    def forward(self, q, k, v, mask=None):
        self.check_inputs(q, k, v)
        attn = self.attention_matrix(q, k, mask)
        if self.capture:
            self.last_attention = attn.detach()
        return torch.matmul(attn.to(v.dtype), v)


def masked_fill_scores(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return scores if mask is None else scores.masked_fill(~mask, float("-inf"))
