"""Delta (Δ) attention (Willette et al., NeurIPS 2025): a correction on top of the sink + window sparse prefill.

Anchor queries 0, γ, 2γ, ... get exact causal attention (query-sparse, key-dense rows); every query t in an anchor's
block gets ``sparse[t] + (dense[a] - sparse[a])`` with ``a = γ floor(t / γ)``. The last ``N mod γ + max(tail_min, γ)``
queries are computed densely (paper App. C, the authors' ``cut_n``; ``tail=false`` corrects every query instead).
Modes for the ablations: ``sparse`` (plain sink_window), ``recompute`` (paper Eq. 5: exact anchor and tail rows only),
``delta`` (Eqs. 6-7), ``tail_only`` (sparse plus the dense tail: not in the paper, it isolates the tail's share).
Extra work over the sparse part is about N^2 / (2γ) query-key pairs for the anchors plus the tail rows.
This is a prefill method: decoding uses dense attention over the KV cache (``models/decoder.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qdsbench.attention.base import AttentionBackend
from qdsbench.attention.registry import register
from qdsbench.attention.sink_window import sink_window_attention

MODES = ("sparse", "recompute", "delta", "tail_only")


def split_points(n: int, gamma: int, tail_min: int, tail: bool) -> tuple[int, torch.Tensor]:
    """(s_p, anchors): queries below s_p are corrected from anchors 0, γ, ...; queries from s_p on are dense."""
    cut = min(n, n % gamma + max(tail_min, gamma)) if tail else 0
    s_p = n - cut
    return s_p, torch.arange(0, s_p, gamma)


def dense_rows(
    q_rows: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor, scale: float
) -> torch.Tensor:
    """Exact causal attention of selected queries: row r sees keys 0..positions[r] (query-sparse, key-dense)."""
    mask = torch.arange(k.shape[-2], device=k.device)[None, :] <= positions.to(k.device)[:, None]
    return F.scaled_dot_product_attention(q_rows, k, v, attn_mask=mask, scale=scale)


def pair_counts(
    n: int, window: int, sinks: int, gamma: int, tail_min: int = 128, tail: bool = True, mode: str = "delta"
) -> dict[str, int]:
    """Query-key pairs each part computes (causal full attention = N (N + 1) / 2)."""
    i = torch.arange(n)
    sparse = int(
        (
            torch.minimum(i + 1, torch.tensor(window))
            + torch.clamp(torch.minimum(i + 1 - window, torch.tensor(sinks)), min=0)
        ).sum()
    )
    s_p, anchors = split_points(n, gamma, tail_min, tail)
    anchor_pairs = int((anchors + 1).sum()) if mode in ("recompute", "delta") else 0
    tail_pairs = int((torch.arange(s_p, n) + 1).sum()) if mode != "sparse" else 0
    return {
        "full": n * (n + 1) // 2,
        "sparse": sparse,
        "anchors": anchor_pairs,
        "tail": tail_pairs,
        "total": sparse + anchor_pairs + tail_pairs,
    }


@register("delta")
class DeltaAttention(AttentionBackend):
    def __init__(
        self,
        scale: float | None = None,
        causal: bool = True,
        window: int = 64,
        sinks: int = 4,
        gamma: int = 16,
        tail_min: int = 128,
        tail: bool = True,
        mode: str = "delta",
    ):
        super().__init__(scale=scale, causal=causal)
        if not causal:
            raise ValueError("delta is a causal prefill method; use causal=true")
        if mode not in MODES:
            raise ValueError(f"unknown delta mode '{mode}'; valid choices: {', '.join(MODES)}")
        if window < 1 or sinks < 0 or gamma < 1 or tail_min < 0:
            raise ValueError(
                f"delta needs window >= 1, sinks >= 0, gamma >= 1, tail_min >= 0; got window={window}, "
                f"sinks={sinks}, gamma={gamma}, tail_min={tail_min}"
            )
        self.window, self.sinks, self.gamma, self.tail_min, self.tail, self.mode = (
            window,
            sinks,
            gamma,
            tail_min,
            tail,
            mode,
        )

    def forward(self, q, k, v, mask=None):
        self.check_inputs(q, k, v)
        if mask is not None:
            raise ValueError("delta supports no extra mask; use mask=None")
        n = q.shape[-2]
        if k.shape[-2] != n:
            raise ValueError(
                f"delta is a prefill method and needs as many queries as keys, got {n} and "
                f"{k.shape[-2]}; decode with dense attention over the cache"
            )
        scale = self.scale_for(q)
        out = sink_window_attention(q, k, v, self.window, self.sinks, scale)  # the sink_window backend's kernel
        if self.mode == "sparse":
            return out
        s_p, anchors = split_points(n, self.gamma, self.tail_min, self.tail)
        anchors = anchors.to(q.device)
        tail_idx = torch.arange(s_p, n, device=q.device)
        use_anchors = self.mode in ("recompute", "delta")
        idx = torch.cat([anchors, tail_idx]) if use_anchors else tail_idx
        if len(idx) == 0:
            return out
        exact = dense_rows(q[..., idx, :], k, v, idx, scale)
        n_anchor = len(anchors) if use_anchors else 0
        if self.mode == "delta":
            correction = exact[..., :n_anchor, :] - out[..., anchors, :]  # one per block of γ queries
            block = torch.arange(s_p, device=q.device) // self.gamma
            head = out[..., :s_p, :] + correction[..., block, :]
            return torch.cat([head, exact[..., n_anchor:, :]], dim=-2)
        out = out.clone()
        out[..., idx, :] = exact
        return out
