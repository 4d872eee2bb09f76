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
        n, w, s = q.shape[-2], self.window, min(self.sinks, q.shape[-2])
        scale = self.scale_for(q)
        # windows of keys/values ending at each query: (B, H, N, w, d), left-padded with zeros
        k_win = F.pad(k, (0, 0, w - 1, 0)).unfold(-2, w, 1).transpose(-1, -2)
        v_win = F.pad(v, (0, 0, w - 1, 0)).unfold(-2, w, 1).transpose(-1, -2)
        win_scores = torch.einsum("...nd,...nwd->...nw", q, k_win) * scale
        i = torch.arange(n, device=q.device)[:, None]
        j = i - (w - 1) + torch.arange(w, device=q.device)[None, :]  # key index of each window slot
        win_valid = (j >= 0) & (j >= s)  # sinks are attended through the sink part, never twice
        win_scores = win_scores.masked_fill(~win_valid, float("-inf"))
        sink_scores = (q @ k[..., :s, :].transpose(-1, -2)) * scale  # (B, H, N, s)
        sink_valid = torch.arange(s, device=q.device)[None, :] <= i
        sink_scores = sink_scores.masked_fill(~sink_valid, float("-inf"))
        probs = torch.softmax(torch.cat([sink_scores, win_scores], -1), -1)
        out = probs[..., :s] @ v[..., :s, :] + torch.einsum("...nw,...nwd->...nd", probs[..., s:], v_win)
        if self.capture:
            self.last_attention = self.attention_matrix(q, k).detach()
        return out


def sink_window_flops(n: int, d: int, window: int, sinks: int) -> int:
    """Score + aggregation multiply-adds x 2 per head: linear in N."""
    return 4 * n * (window + sinks) * d
