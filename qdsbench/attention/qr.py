"""QR ("quantum-inspired") attention of QDSFormer: P = U * U (entrywise) with S = U R.

The square of a real orthogonal matrix is orthostochastic, hence exactly doubly stochastic; P is invariant to
the scale of S and to the signs QR picks. Rank-deficient scores get a fixed tiny perturbation (a seeded
pseudo-random matrix times ``noise`` x ||S||_F / n, so the result is deterministic; with a mask, the RMS of the
valid block ||S_valid||_F / n_valid, so padded scores do not move it); the paper's N(0, 1e-7) leaves std vs variance
open: we read it as a relative std. Padding (a mask) is handled exactly: masked rows and
columns are replaced by the identity, which Gram-Schmidt leaves untouched, so the valid block of P is itself
doubly stochastic.

Speed: P and its gradient come from one ``torch.autograd.Function`` (SquaredQ). The forward calls LAPACK's
Householder QR (geqrf) and forms Q (orgqr), what ``torch.linalg.qr`` does inside (the same Q), without its copies
and its explicit R; the backward is the Q-only QR adjoint written out: with C = Q^T (2 Q * gP),
gS = Q tril(C - C^T, -1) R^-T, two batched matmuls and one triangular solve; the noise matrix is built once per
(n, dtype, device). Tried and dropped: layout tricks (S made column-major for LAPACK, P v computed so that dL/dP
arrives column-major like Q) gave nothing outside a shared machine's noise; float32 matmuls in the backward moved
the gradient by 70-90 % on rank-deficient scores (N > d), where the float64 one moves by 2e-7 under a 1e-15
relative change of its input; Cholesky QR variants and block Gram-Schmidt were slower than LAPACK's Householder.
``reference_normalize`` keeps the previous implementation (torch.linalg.qr, autograd's QR backward) for the tests
and the benchmark.
"""

from __future__ import annotations

import functools

import torch

from qdsbench.attention.base import MatrixAttention, dense_attention_flops
from qdsbench.attention.registry import register

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def fixed_noise(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(20250422 + n)
    return torch.randn(n, n, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def _cached_noise(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return fixed_noise(n, dtype, device)  # built once, shared by every call: read only


class SquaredQ(torch.autograd.Function):
    """P = Q * Q (entrywise) for S = Q R, S square and invertible; P is returned in ``out_dtype``."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
        a, tau = torch.geqrf(s)  # R is the upper triangle of a, the Householder vectors sit below it
        q = torch.linalg.householder_product(a, tau)
        ctx.save_for_backward(a, q)
        return q.square().to(out_dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_p: torch.Tensor):
        a, q = ctx.saved_tensors
        # dS = dQ R + Q dR gives Q^T dS R^-1 = Omega + dR R^-1 with Omega = Q^T dQ antisymmetric and dR R^-1 upper,
        # so Omega = tril(X, -1) - tril(X, -1)^T for X = Q^T dS R^-1 and <gQ, dQ> = <tril(C - C^T, -1), X>.
        c = q.mT @ (q * grad_p.to(q.dtype))  # Q^T (gQ / 2), in the QR's dtype whatever P was returned in
        low = (c - c.mT).tril_(-1)
        batch = low.shape[:-2]
        low3 = low.reshape(-1, *low.shape[-2:])
        y = torch.baddbmm(low3, q.reshape(low3.shape), low3, beta=0, alpha=2).view(*batch, *low.shape[-2:])
        # y R^-T, solved as R x = y^T (only the upper triangle of a is read)
        return torch.linalg.solve_triangular(a, y.mT, upper=True, left=True).mT, None


@register("qr")
class QRAttention(MatrixAttention):
    supports_causal = False

    def __init__(self, scale: float | None = None, causal: bool = False, noise: float = 1e-7, dtype: str = "float64"):
        super().__init__(scale=scale, causal=causal)
        if dtype not in DTYPES:
            raise ValueError(f"qr dtype '{dtype}' is not valid; valid choices: {', '.join(DTYPES)}")
        if noise < 0:
            raise ValueError(f"qr noise={noise} must be >= 0")
        self.noise, self.dtype = noise, DTYPES[dtype]

    def flops(self, n, d):
        return dense_attention_flops(n, d)  # the bmms only: LAPACK's QR is not counted (nor measured)

    def reference_normalize(self, scores, mask=None):
        """The implementation before SquaredQ (torch.linalg.qr, autograd's generic QR backward): the reference the
        tests compare against and scripts/bench_attention.py times as qr(old)."""
        n = scores.shape[-1]
        s = scores.to(self.dtype)
        pair = None
        if mask is not None:
            valid = mask.expand_as(scores).any(-2)
            pair = valid[..., :, None] & valid[..., None, :]
        if self.noise > 0:
            if pair is None:
                scale = s.detach().flatten(-2).norm(dim=-1)[..., None, None] / n
            else:  # the RMS of the valid block only
                count = valid.sum(-1)[..., None, None].clamp_min(1).to(s.dtype)
                scale = torch.where(pair, s.detach(), 0.0).flatten(-2).norm(dim=-1)[..., None, None] / count
            s = s + self.noise * scale.clamp_min(1e-12) * fixed_noise(n, s.dtype, s.device)
        if pair is not None:
            s = torch.where(pair, s, torch.zeros_like(s)) + torch.diag_embed((~valid).to(s.dtype))
        u, _ = torch.linalg.qr(s)
        p = u.square()
        if pair is not None:
            p = p.masked_fill(~pair, 0.0)
        return p.to(scores.dtype)

    def normalize(self, scores, mask=None):
        if scores.shape[-1] != scores.shape[-2]:
            raise ValueError(f"qr attention needs square score matrices, got {tuple(scores.shape[-2:])}")
        n = scores.shape[-1]
        s = scores.to(self.dtype)
        if mask is not None:  # key padding: the valid tokens form a block, the rest becomes the identity
            valid = mask.expand_as(scores).any(-2)
            pair = valid[..., :, None] & valid[..., None, :]
        if self.noise > 0:
            if mask is None:
                norm = torch.linalg.vector_norm(s.detach(), dim=(-2, -1), keepdim=True)
                scale = (norm / n).clamp_min(1e-12) * self.noise
            else:  # ||S_valid||_F / N_valid: the RMS of the valid block, blind to the padded scores
                norm = torch.linalg.vector_norm(torch.where(pair, s.detach(), 0.0), dim=(-2, -1), keepdim=True)
                count = valid.sum(-1)[..., None, None].clamp_min(1).to(s.dtype)
                scale = (norm / count).clamp_min(1e-12) * self.noise
            noise = _cached_noise(n, s.dtype, s.device)
            # in place only on the fresh copy .to() made (never on the caller's tensor)
            s = s.addcmul(scale, noise) if s is scores else s.addcmul_(scale, noise)
        if mask is None:
            return SquaredQ.apply(s, scores.dtype)
        s = torch.where(pair, s, torch.zeros_like(s)) + torch.diag_embed((~valid).to(s.dtype))
        return SquaredQ.apply(s, scores.dtype).masked_fill(~pair, 0.0)
