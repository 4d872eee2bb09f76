"""MonarchAttention (Yaras et al., NeurIPS 2025): softmax attention's variational objective maximised over
Monarch-structured row-stochastic matrices A[(m',i),(m,j)] = L_i[m',m] R_m[i,j], by alternating closed-form R and L
steps starting from L = I (so T=1's R-step is block-local attention). The fast path keeps only O(N d) state and
never forms the N x N matrix; ``attention_matrix`` builds it explicitly for tests and analysis. N is padded to
M * b tokens before ("pre", the paper's ViT setting) or after ("post") the sequence. Non-causal only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from qdsbench.attention.base import AttentionBackend
from qdsbench.attention.registry import register

PADS = ("pre", "post")


def monarch_flops(n: int, d: int, block_size: int, num_steps: int) -> int:
    """Attention bmm FLOPs per head (d_v = d), the formula that matches the authors' measured numbers."""
    m = math.ceil(n / block_size)
    n_p = m * block_size
    return (num_steps - 1) * 4 * n_p * d * (block_size + m) + 6 * n_p * block_size * d + 4 * n_p * m * d


@register("monarch")
class MonarchAttention(AttentionBackend):
    supports_causal = False

    def __init__(
        self,
        scale: float | None = None,
        causal: bool = False,
        block_size: int | None = None,
        num_steps: int = 1,
        pad: str = "pre",
    ):
        super().__init__(scale=scale, causal=causal)
        if pad not in PADS:
            raise ValueError(f"monarch pad '{pad}' is not valid; valid choices: {', '.join(PADS)}")
        if num_steps < 1 or (block_size is not None and block_size < 1):
            raise ValueError(f"monarch needs num_steps >= 1 and block_size >= 1, got {num_steps}, {block_size}")
        self.block_size, self.num_steps, self.pad = block_size, num_steps, pad

    def geometry(self, n: int) -> tuple[int, int, int]:
        if self.block_size is not None and self.block_size > n:
            raise ValueError(
                f"monarch block_size={self.block_size} is larger than the sequence length N={n}; "
                f"valid range: 1 <= block_size <= {n} (block_size={n} is exact softmax)"
            )
        b = self.block_size or max(1, round(math.sqrt(n)))
        m = math.ceil(n / b)
        return b, m, m * b - n

    def flops(self, n, d):
        return monarch_flops(n, d, self.geometry(n)[0], self.num_steps)

    def _padded(self, x: torch.Tensor, extra: int) -> torch.Tensor:
        return F.pad(x, (0, 0, extra, 0) if self.pad == "pre" else (0, 0, 0, extra))

    def _factors(self, q, k):
        """(R, L, masks) for q, k of shape (B, H, N, d)."""
        n = q.shape[-2]
        b, m, extra = self.geometry(n)
        s = self.scale_for(q)
        valid = torch.ones(n, dtype=torch.bool, device=q.device)
        valid = F.pad(valid, (extra, 0) if self.pad == "pre" else (0, extra), value=False).view(m, b)
        qb = self._padded(q, extra).unflatten(-2, (m, b))  # (B,H,M,b,d)
        kb = self._padded(k, extra).unflatten(-2, (m, b))
        qt = qb.transpose(-2, -3)  # (B,H,b,M,d): qt[i, m'] = q_(m', i)
        key_bias = torch.zeros(m, b, dtype=q.dtype, device=q.device).masked_fill(~valid, float("-inf"))
        query_mask = valid.T.to(q.dtype)[:, :, None]  # (b, M', 1)
        alpha_r, c = qb, torch.ones(qb.shape[:-1], dtype=q.dtype, device=q.device)
        alpha_safe, tiny = None, torch.finfo(q.dtype).tiny
        for step in range(self.num_steps):
            if alpha_safe is None:
                logits = s * torch.einsum("...mid,...mjd->...mij", alpha_r, kb) / c[..., None] + key_bias[:, None, :]
            else:  # where c underflowed, alpha_r / c from its log-domain form (see below)
                ok = (c >= tiny)[..., None]
                logits = (
                    torch.where(
                        ok,
                        s * torch.einsum("...mid,...mjd->...mij", alpha_r, kb) / torch.where(ok, c[..., None], 1.0),
                        s * torch.einsum("...mid,...mjd->...mij", alpha_safe, kb),
                    )
                    + key_bias[:, None, :]
                )
            r = torch.softmax(logits, dim=-1)  # (B,H,M,b,b)
            alpha_l = s * torch.einsum("...mij,...mjd->...imd", r, kb)  # (B,H,b,M,d)
            # sum_j r log r. Padded (or underflowed) keys have r == 0 exactly: xlogy's value there is 0, but its
            # derivative log(r) + 1 is -inf, and softmax's backward turns 0 * -inf into NaN. Feeding log a 1 where
            # r == 0 keeps the value bit for bit (xlogy(0, y) == 0) and gives those entries a zero gradient.
            neg_entropy = torch.special.xlogy(r, torch.where(r > 0, r, 1.0)).sum(-1).transpose(-1, -2)  # (B,H,b,M)
            z = torch.einsum("...ipd,...imd->...ipm", qt, alpha_l) - neg_entropy[..., None, :]
            l_mat = torch.softmax(z, -1)
            l_mat = l_mat * query_mask  # padded queries contribute nothing
            if step < self.num_steps - 1:
                c = l_mat.sum(-2).transpose(-1, -2)
                alpha_r = torch.einsum("...ipm,...ipd->...imd", l_mat, qt).transpose(-2, -3)
                # The R-step needs alpha_r / c, the L-weighted mean of the queries. For large scores a column of L
                # can underflow (c == 0, 0 / 0 = NaN) or leave c subnormal: there the same mean is taken with the
                # weights softmax over m' of log L = log_softmax(z) (padded queries -inf), which cannot underflow.
                alpha_safe = None
                if bool((c < tiny).any()):
                    log_l = torch.log_softmax(z, -1).masked_fill(query_mask == 0, float("-inf"))
                    alpha_safe = torch.einsum("...ipm,...ipd->...imd", torch.softmax(log_l, -2), qt).transpose(-2, -3)
        return r, l_mat, (b, m, extra)

    def _strip(self, x: torch.Tensor, n: int, extra: int, dim: int = -2) -> torch.Tensor:
        return x.narrow(dim, extra if self.pad == "pre" else 0, n)

    def forward(self, q, k, v, mask=None):
        self.check_inputs(q, k, v)
        if mask is not None:
            raise ValueError("monarch attention supports no attention mask (padding is internal); use mask=None")
        if q.shape[-2] != k.shape[-2]:
            raise ValueError("monarch attention needs self-attention (Nq == Nk)")
        n = q.shape[-2]
        r, l_mat, (b, m, extra) = self._factors(q, k)
        vb = self._padded(v, extra).unflatten(-2, (m, b))
        y = torch.einsum("...mij,...mjd->...imd", r, vb)  # (B,H,b,M,dv)
        out = torch.einsum("...ipm,...imd->...pid", l_mat, y).flatten(-3, -2)  # (B,H,M*b,dv)
        out = self._strip(out, n, extra)
        if self.capture:
            self.last_attention = self.attention_matrix(q, k).detach()
        return out

    def attention_matrix(self, q, k, mask=None):
        """Explicit A (B, H, N, N) = L_i[m', m] R_m[i, j] (padding stripped): O(N^2) memory, for analysis only."""
        n = q.shape[-2]
        r, l_mat, (b, m, extra) = self._factors(q, k)
        a = torch.einsum("...ipm,...mij->...pimj", l_mat, r).reshape(*q.shape[:-2], m * b, m * b)
        return self._strip(self._strip(a, n, extra, -2), n, extra, -1)
