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
            raise ValueError(
                f"sink_window needs as many queries as keys (a prefill), got {q.shape[-2]} and "
                f"{k.shape[-2]}; decode with dense attention over the cache"
            )
        out = block_sparse_sink_window(q, k, v, self.window, self.sinks, self.scale_for(q))
        if self.capture:
            self.last_attention = self.attention_matrix(q, k).detach()
        return out


def block_sparse_sink_window(
    q, k, v, window: int, sinks: int, scale: float, block: int | None = None, chunk_bytes: int = 8 << 20
) -> torch.Tensor:
    """Query blocks of ``block`` rows attend to [sinks, the W + block keys ending at the block]: batched SDPA.

    Each block's keys are a strided view (unfold) of the sequence, so the work is O(N (W + block + S) d) and every
    product is a dense kernel, unlike gathering per query. Blocks go into SDPA's batch dimension as 4-D tensors:
    with a 5-D layout torch falls back to the math kernel (materialised scores, 2-3x slower on the CPU). The block
    trades mask waste (block / W extra keys) against per-block overhead; ``min(128, max(32, W))`` was fastest on
    the 2-core CPU (scripts/bench_sparse.py). The batched keys copy each key (W + block + S) / block times, so
    blocks are processed in groups whose key and value copies stay under ``chunk_bytes``: peak memory stays
    O(N d) instead of O(N (W + S) d).
    """
    B, H, n, d = q.shape
    dv = v.shape[-1]
    w, s = window, min(sinks, n)
    b = block or min(128, max(32, w))
    nb = -(-n // b)
    pad_end = nb * b - n
    qb = F.pad(q, (0, 0, 0, pad_end)).unflatten(-2, (nb, b))  # (B, H, nb, b, d)
    kb = F.pad(k, (0, 0, w, pad_end)).unfold(-2, w + b, b).transpose(-1, -2)  # views: (B, H, nb, W + b, d)
    vb = F.pad(v, (0, 0, w, pad_end)).unfold(-2, w + b, b).transpose(-1, -2)
    keys = w + b + s
    per_block = B * H * keys * (d + dv) * q.element_size()
    group = max(1, min(nb, chunk_bytes // max(per_block, 1)))
    out = q.new_empty(B, H, nb, b, dv)
    for g0 in range(0, nb, group):
        g1 = min(nb, g0 + group)
        m = g1 - g0
        blk = torch.arange(g0, g1, device=q.device)[:, None, None]
        i = blk * b + torch.arange(b, device=q.device)[None, :, None]  # query index
        j = blk * b - w + torch.arange(w + b, device=q.device)[None, None, :]  # key index of each window slot
        mask = (j >= s) & (j >= 0) & (j <= i) & (i - j < w)  # sinks are attended through the sink part only
        kg, vg = kb[:, :, g0:g1], vb[:, :, g0:g1]
        if s:
            kg = torch.cat([k[..., :s, :].unsqueeze(-3).expand(B, H, m, s, d), kg], -2)
            vg = torch.cat([v[..., :s, :].unsqueeze(-3).expand(B, H, m, s, dv), vg], -2)
            sink = (torch.arange(s, device=q.device)[None, None, :] <= i).expand(m, b, s)
            mask = torch.cat([sink, mask], -1)
        o = F.scaled_dot_product_attention(
            qb[:, :, g0:g1].transpose(1, 2).reshape(B * m, H, b, d),
            kg.transpose(1, 2).reshape(B * m, H, keys, d),
            vg.transpose(1, 2).reshape(B * m, H, keys, dv),
            attn_mask=mask.repeat(B, 1, 1)[:, None],
            scale=scale,
        )
        out[:, :, g0:g1] = o.reshape(B, m, H, b, dv).transpose(1, 2)
    return out.flatten(2, 3)[..., :n, :]


def sink_window_flops(n: int, d: int, window: int, sinks: int) -> int:
    """Score + aggregation multiply-adds x 2 per head: linear in N."""
    return 4 * n * (window + sinks) * d
