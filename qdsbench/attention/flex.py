"""Sink + window causal attention through torch's FlexAttention (``torch.nn.attention.flex_attention``), compiled.

The BlockMask is built analytically from the block grid (O((N / 128)^2), milliseconds) and cached per (N, window,
sinks, device): ``create_block_mask`` evaluates the mask on all N^2 pairs in eager mode (30 s at 16K here). Blocks
wholly inside the pattern are "full" (no mask_mod), the diagonal, window-edge and sequence-end blocks are "partial".
``flex_attention`` is compiled once per process with dynamic shapes, and window / sinks enter the mask_mod as captured
0-d tensors, so new lengths, batch sizes, heads or configs reuse the one kernel instead of recompiling (about 30-70 s
on the 2-core CPU). Cases it does not serve (see ``flex_supports``) go to the hand-written block kernel.
"""

from __future__ import annotations

import functools

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention


def tile_for(window: int) -> int:
    """Square tile of the BlockMask: 32 below W = 1024 (less waste at the window's edges and in the sink tile: W = 128
    and 512 ran 1.6-1.8x faster than with 128 tiles at 16K), FlexAttention's default 128 from there (fewer tiles;
    equal or faster at W = 2048). Each tile size is one compile."""
    return 32 if window < 1024 else 128


DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def sink_window_mask_mod(window: torch.Tensor, sinks: torch.Tensor):
    """Key j visible to query i iff j <= i and (i - j < window or j < sinks); tensors, so no recompile per config."""

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & ((q_idx - kv_idx < window) | (kv_idx < sinks))

    return mask_mod


@functools.lru_cache(maxsize=32)
def sink_window_block_mask(n: int, window: int, sinks: int, device: str = "cpu", block: int | None = None) -> BlockMask:
    """The BlockMask of the sink + window pattern, from interval arithmetic on each (query block, key block) tile."""
    block = block or tile_for(window)
    nb = -(-n // block)
    start = torch.arange(nb) * block
    i0, i1 = start[:, None], torch.clamp(start + block - 1, max=n - 1)[:, None]  # query rows of each tile
    j0, j1 = start[None, :], torch.clamp(start + block - 1, max=n - 1)[None, :]  # key columns of each tile
    # some pair has 0 <= i - j < window, or a sink key j <= i
    any_pair = ((i1 >= j0) & (i0 - j1 < window)) | ((j0 < sinks) & (j0 <= i1))
    # every pair is causal, and every non-sink key is inside the window
    all_pairs = (j1 <= i0) & ((j1 < sinks) | (i1 - torch.clamp(j0, min=sinks) < window))
    ragged = (i0 + block > n) | (j0 + block > n)  # tiles past the sequence end keep the mask_mod
    full = any_pair & all_pairs & ~ragged
    partial = any_pair & ~full

    def counts_and_indices(tiles: torch.Tensor):
        tiles = tiles[None, None]  # (B = 1, H = 1, query blocks, key blocks): broadcast over batch and heads
        order = torch.argsort((~tiles).to(torch.int8), dim=-1, stable=True)  # the selected key blocks first
        return tiles.sum(-1, dtype=torch.int32).to(device), order.to(torch.int32).to(device)

    kv_num, kv_idx = counts_and_indices(partial)
    full_num, full_idx = counts_and_indices(full)
    mask_mod = sink_window_mask_mod(torch.tensor(window, device=device), torch.tensor(sinks, device=device))
    return BlockMask.from_kv_blocks(
        kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block, mask_mod=mask_mod, seq_lengths=(n, n)
    )


@functools.cache
def compiled_flex_attention():
    """Compiled once per process; dynamic shapes so that each new N does not trigger a recompile."""
    return torch.compile(flex_attention, dynamic=True)


def flex_supports(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None) -> bool:
    """Float32 / half precision, no extra mask, and no gradient: the cases verified against the dense reference.

    float64 is left to the block kernel (the compiled CPU template targets float32 and half types); a key-padding
    mask would need every tile to carry the mask_mod, i.e. a second compiled kernel for a rare case; and training
    through the compiled CPU backward was not verified here.
    """
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    return key_mask is None and q.dtype in DTYPES and not needs_grad


def flex_sink_window(q, k, v, window: int, sinks: int, scale: float) -> torch.Tensor:
    """Sink + window attention of a prefill (as many queries as keys) with the cached BlockMask."""
    block_mask = sink_window_block_mask(q.shape[-2], window, sinks, str(q.device))
    return compiled_flex_attention()(q, k, v, block_mask=block_mask, scale=scale)
