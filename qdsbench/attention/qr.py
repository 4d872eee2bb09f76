"""QR ("quantum-inspired") attention of QDSFormer: P = U * U (entrywise) with S = U R.

The square of a real orthogonal matrix is orthostochastic, hence exactly doubly stochastic; P is invariant to
the scale of S and to the signs QR picks. Rank-deficient scores get a fixed tiny perturbation (a seeded
pseudo-random matrix times ``noise`` x ||S||_F / n, so the result is deterministic); the paper's N(0, 1e-7)
leaves std vs variance open: we read it as a relative std. Padding (a mask) is handled exactly: masked rows and
columns are replaced by the identity, which Gram-Schmidt leaves untouched, so the valid block of P is itself
doubly stochastic.
"""

from __future__ import annotations

import torch

from qdsbench.attention.base import MatrixAttention
from qdsbench.attention.registry import register

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def fixed_noise(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(20250422 + n)
    return torch.randn(n, n, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


@register("qr")
class QRAttention(MatrixAttention):
    supports_causal = False

    def __init__(self, scale: float | None = None, causal: bool = False, noise: float = 1e-7,
                 dtype: str = "float64"):
        super().__init__(scale=scale, causal=causal)
        if dtype not in DTYPES:
            raise ValueError(f"qr dtype '{dtype}' is not valid; valid choices: {', '.join(DTYPES)}")
        if noise < 0:
            raise ValueError(f"qr noise={noise} must be >= 0")
        self.noise, self.dtype = noise, DTYPES[dtype]

    def normalize(self, scores, mask=None):
        if scores.shape[-1] != scores.shape[-2]:
            raise ValueError(f"qr attention needs square score matrices, got {tuple(scores.shape[-2:])}")
        n = scores.shape[-1]
        s = scores.to(self.dtype)
        if self.noise > 0:
            scale = s.detach().flatten(-2).norm(dim=-1)[..., None, None] / n
            s = s + self.noise * scale.clamp_min(1e-12) * fixed_noise(n, s.dtype, s.device)
        pair = None
        if mask is not None:  # key padding: the valid tokens form a block, the rest becomes the identity
            valid = mask.expand_as(scores).any(-2)
            pair = valid[..., :, None] & valid[..., None, :]
            s = torch.where(pair, s, torch.zeros_like(s)) + torch.diag_embed((~valid).to(s.dtype))
        u, _ = torch.linalg.qr(s)
        p = u.square()
        if pair is not None:
            p = p.masked_fill(~pair, 0.0)
        return p.to(scores.dtype)
