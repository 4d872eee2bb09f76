"""Sink + sliding-window causal attention (StreamingLLM-style), block-sparse.

Query i sees key j iff j <= i and (i - j < window or j < sinks): the window counts the query itself, and sink keys
are not counted inside the window. Only the tiles of (query, key) blocks that hold kept pairs are computed, so the
cost is O(N (window + sinks) d), never a masked N x N matrix. Two implementations: ``impl="flex"`` (torch's compiled
FlexAttention with a cached BlockMask, ``qdsbench.attention.flex``) and ``impl="blocks"`` (the hand-written kernel
below: query blocks in SDPA's batch dimension). Cases FlexAttention does not serve (float64, a key-padding mask,
gradients: ``flex_supports``) and prefills shorter than ``FLEX_MIN_N`` run on the block kernel. ``attention_matrix``
builds the dense equivalent for tests. A ``mask`` may be a (B, N) key-padding mask (True = keep); a query that sees no
kept key gets a zero row, as in ``softmax``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qdsbench.attention.base import AttentionBackend
from qdsbench.attention.registry import register

IMPLS = ("flex", "blocks")
FLEX_MIN_N = 4096  # shorter prefills run the block kernel: the one-time compile (30 s+) would not pay back


@register("sink_window")
class SinkWindowAttention(AttentionBackend):
    def __init__(
        self, scale: float | None = None, causal: bool = True, window: int = 64, sinks: int = 4, impl: str = "flex"
    ):
        super().__init__(scale=scale, causal=causal)
        if not causal:
            raise ValueError("sink_window is causal by definition; use causal=true")
        if window < 1 or sinks < 0:
            raise ValueError(f"sink_window needs window >= 1 and sinks >= 0, got window={window}, sinks={sinks}")
        if impl not in IMPLS:
            raise ValueError(f"unknown sink_window impl '{impl}'; valid choices: {', '.join(IMPLS)}")
        self.window, self.sinks, self.impl = window, sinks, impl

    def dense_mask(self, n: int, device=None) -> torch.Tensor:
        i = torch.arange(n, device=device)[:, None]
        j = torch.arange(n, device=device)[None, :]
        return (j <= i) & ((i - j < self.window) | (j < self.sinks))

    def kept_pair_flops(self, n: int, d: int) -> int:
        """4 d per kept (query, key) pair (q.k and p v) for one head: torch's FlopCounterMode sees none of this
        kernel's work (its tiles run through SDPA calls the counter does not count), so studies add this instead."""
        return 4 * d * int(self.dense_mask(n).sum())

    def key_mask(self, mask, q) -> torch.Tensor | None:
        """The (B, N) key-padding mask of the contract; other mask shapes would break the block structure."""
        if mask is None:
            return None
        if mask.dim() != 2 or mask.shape != (q.shape[0], q.shape[-2]):
            raise ValueError(
                f"sink_window supports only a (B, N)=({q.shape[0]}, {q.shape[-2]}) key-padding mask, got "
                f"{tuple(mask.shape)}"
            )
        return mask.to(device=q.device, dtype=torch.bool)

    def attention_matrix(self, q, k, mask=None):
        key_mask = self.key_mask(mask, q)
        allowed = self.dense_mask(q.shape[-2], q.device)
        if key_mask is not None:
            allowed = allowed & key_mask[:, None, None, :]
        scores = (q @ k.transpose(-1, -2)) * self.scale_for(q)
        return torch.nan_to_num(torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1), nan=0.0)

    def forward(self, q, k, v, mask=None):
        self.check_inputs(q, k, v)
        key_mask = self.key_mask(mask, q)
        if q.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"sink_window needs as many queries as keys (a prefill), got {q.shape[-2]} and "
                f"{k.shape[-2]}; decode with dense attention over the cache"
            )
        out = sink_window_attention(q, k, v, self.window, self.sinks, self.scale_for(q), key_mask, self.impl)
        if self.capture:
            self.last_attention = self.attention_matrix(q, k, mask).detach()
        return out


def sink_window_attention(
    q, k, v, window: int, sinks: int, scale: float, key_mask: torch.Tensor | None = None, impl: str = "flex"
) -> torch.Tensor:
    """The backend's kernel choice: FlexAttention where it serves the case, else the hand-written block kernel."""
    if impl == "flex":
        from qdsbench.attention.flex import flex_sink_window, flex_supports

        if q.shape[-2] >= FLEX_MIN_N and flex_supports(q, k, v, key_mask):
            return flex_sink_window(q, k, v, window, sinks, scale)
    return block_sparse_sink_window(q, k, v, window, sinks, scale, key_mask=key_mask)


def block_sparse_sink_window(
    q,
    k,
    v,
    window: int,
    sinks: int,
    scale: float,
    block: int | None = None,
    chunk_bytes: int = 8 << 20,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Query blocks of ``block`` rows attend to [sinks, the W + block keys ending at the block]: batched SDPA.

    Each block's keys are a strided view (unfold) of the sequence, so the work is O(N (W + block + S) d) and every
    product is a dense kernel, unlike gathering per query. Blocks go into SDPA's batch dimension as 4-D tensors:
    with a 5-D layout torch falls back to the math kernel (materialised scores, 2-3x slower on the CPU). The block
    trades mask waste (block / W extra keys) against per-block overhead; ``min(128, max(32, W))`` was fastest on
    the 2-core CPU (scripts/bench_sparse.py). The batched keys copy each key (W + block + S) / block times, so
    blocks are processed in groups whose key and value copies stay under ``chunk_bytes``: peak memory stays
    O(N d) instead of O(N (W + S) d). ``key_mask`` (B, N), True = keep, is unfolded like the keys; rows that see no
    kept key are zero.
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
    kmb = None if key_mask is None else F.pad(key_mask, (w, pad_end)).unfold(-1, w + b, b)  # (B, nb, W + b)
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
        mask = mask.expand(B, m, b, keys)
        if kmb is not None:
            kg_mask = kmb[:, g0:g1]
            if s:
                kg_mask = torch.cat([key_mask[:, None, :s].expand(B, m, s), kg_mask], -1)
            mask = mask & kg_mask[:, :, None, :]
        mask = mask.reshape(B * m, 1, b, keys)
        o = F.scaled_dot_product_attention(
            qb[:, :, g0:g1].transpose(1, 2).reshape(B * m, H, b, d),
            kg.transpose(1, 2).reshape(B * m, H, keys, d),
            vg.transpose(1, 2).reshape(B * m, H, keys, dv),
            attn_mask=mask,
            scale=scale,
        )
        if kmb is not None:  # rows with no kept key: zero, not SDPA's NaN
            o = o.masked_fill(~mask.any(-1, keepdim=True), 0.0)
        out[:, :, g0:g1] = o.reshape(B, m, H, b, dv).transpose(1, 2)
    return out.flatten(2, 3)[..., :n, :]
