"""Sink + sliding-window causal attention (StreamingLLM-style), block-sparse.

Query i sees key j iff j <= i and (i - j < window or j < sinks): the window counts the query itself, and sink keys
are not counted inside the window. Each query gathers only its window and the sink keys, so the cost is
O(N (window + sinks) d), never a masked N x N matrix. ``attention_matrix`` builds the dense equivalent for tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qdsbench.attention.base import AttentionBackend
from qdsbench.attention.registry import register


@register("sink_window")
class SinkWindowAttention(AttentionBackend):
    def __init__(self, scale: float | None = None, causal: bool = True, window: int = 64, sinks: int = 4):
        super().__init__(scale=scale, causal=causal)
        if not causal:
            raise ValueError("sink_window is causal by definition; use causal=true")
        if window < 1 or sinks < 0:
            raise ValueError(f"sink_window needs window >= 1 and sinks >= 0, got window={window}, sinks={sinks}")
        self.window, self.sinks = window, sinks

    def dense_mask(self, n: int, device=None) -> torch.Tensor:
        i = torch.arange(n, device=device)[:, None]
        j = torch.arange(n, device=device)[None, :]
        return (j <= i) & ((i - j < self.window) | (j < self.sinks))

    def attention_matrix(self, q, k, mask=None):
        if mask is not None:
            raise ValueError("sink_window supports no extra mask; use mask=None")
        scores = (q @ k.transpose(-1, -2)) * self.scale_for(q)
        return torch.softmax(scores.masked_fill(~self.dense_mask(q.shape[-2], q.device), float("-inf")), -1)

    def forward(self, q, k, v, mask=None):
        self.check_inputs(q, k, v)
        if mask is not None:
            raise ValueError("sink_window supports no extra mask; use mask=None")
        if q.shape[-2] != k.shape[-2]:
            raise ValueError(f"sink_window needs as many queries as keys (a prefill), got {q.shape[-2]} and "
                             f"{k.shape[-2]}; decode with dense attention over the cache")
        out = block_sparse_sink_window(q, k, v, self.window, self.sinks, self.scale_for(q))
        if self.capture:
            self.last_attention = self.attention_matrix(q, k).detach()
        return out


def block_sparse_sink_window(q, k, v, window: int, sinks: int, scale: float) -> torch.Tensor:
    """Query blocks of ``window`` rows attend to [sinks, previous block, own block]: batched GEMMs, O(N (2W + S) d).

    A query at block position r sees at most W keys of the 2W in its two blocks; the others are masked, which wastes
    half the block work but keeps every product a dense matrix multiply (fast on CPU), unlike gathering per query.
    """
    *lead, n, d = q.shape
    w, s = window, min(sinks, n)
    nb = -(-n // w)
    pad_end = nb * w - n
    qb = F.pad(q, (0, 0, 0, pad_end)).unflatten(-2, (nb, w))  # (..., nb, w, d)
    kp = F.pad(k, (0, 0, w, pad_end))  # one block of zeros in front: block 0's "previous block"
    vp = F.pad(v, (0, 0, w, pad_end))
    kb = kp.unfold(-2, 2 * w, w).transpose(-1, -2)  # (..., nb, 2w, d): keys (b-1)w .. (b+1)w - 1
    vb = vp.unfold(-2, 2 * w, w).transpose(-1, -2)
    win_scores = (qb @ kb.transpose(-1, -2)) * scale  # (..., nb, w, 2w)
    b = torch.arange(nb, device=q.device)[:, None, None]
    i = b * w + torch.arange(w, device=q.device)[None, :, None]
    j = (b - 1) * w + torch.arange(2 * w, device=q.device)[None, None, :]
    win_valid = (j >= s) & (j <= i) & (i - j < w)  # sinks are attended through the sink part, never twice
    win_scores = win_scores.masked_fill(~win_valid, float("-inf"))
    sink_scores = (qb @ k[..., :s, :].unsqueeze(-3).transpose(-1, -2)) * scale  # (..., nb, w, s)
    sink_scores = sink_scores.masked_fill(~(torch.arange(s, device=q.device) <= i), float("-inf"))
    probs = torch.softmax(torch.cat([sink_scores, win_scores], -1), -1)
    out = probs[..., :s] @ v[..., :s, :].unsqueeze(-3) + probs[..., s:] @ vb
    return out.flatten(-3, -2)[..., :n, :]


def sink_window_flops(n: int, d: int, window: int, sinks: int) -> int:
    """Score + aggregation multiply-adds x 2 per head: linear in N."""
    return 4 * n * (window + sinks) * d
