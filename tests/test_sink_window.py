"""sink_window: both implementations (FlexAttention, hand-written blocks) equal the dense masked reference."""

import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask
from torch.utils.flop_counter import FlopCounterMode

from qdsbench import attention
from qdsbench.attention.flex import flex_sink_window, sink_window_block_mask, sink_window_mask_mod
from qdsbench.attention.sink_window import FLEX_MIN_N, block_sparse_sink_window

# odd lengths, several 128-tiles, windows shorter / longer than a tile, sinks none / few / past the window
CASES = [(1, 4, 2), (10, 4, 2), (37, 8, 4), (37, 1, 0), (20, 64, 4), (16, 3, 16), (301, 50, 0), (333, 129, 5)]
CASES += [(517, 200, 130), (300, 1, 7)]


def allowed_pairs(n, window, sinks):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (j <= i) & ((i - j < window) | (j < sinks))


def reference(q, k, v, window, sinks, key_mask=None):
    """Dense masked softmax attention in float64; rows with no visible key are zero (the softmax backend's rule)."""
    q, k, v = (t.double() for t in (q, k, v))
    allowed = allowed_pairs(q.shape[-2], window, sinks)
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :]
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    return torch.nan_to_num(torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1), nan=0.0) @ v


def qkv(n, dtype=torch.float32, batch=2, heads=3, d=8):
    g = torch.Generator().manual_seed(n)
    return [torch.randn(batch, heads, n, d, generator=g, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize("n,window,sinks", CASES)
def test_blocks_equal_dense_masked_reference(n, window, sinks):
    q, k, v = qkv(n, torch.float64)
    backend = attention.create("sink_window", window=window, sinks=sinks, impl="blocks")
    torch.testing.assert_close(backend(q, k, v), reference(q, k, v, window, sinks))
    torch.testing.assert_close(backend.attention_matrix(q, k) @ v, reference(q, k, v, window, sinks))
    q, k, v = qkv(n)
    out = block_sparse_sink_window(q, k, v, window, sinks, 8**-0.5)
    torch.testing.assert_close(out.double(), reference(q, k, v, window, sinks), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n,window,sinks", CASES)
def test_flex_equals_dense_masked_reference(n, window, sinks):
    """Compiled FlexAttention with the analytic BlockMask: full tiles skip the mask, so a wrong tile shows here."""
    q, k, v = qkv(n)
    out = flex_sink_window(q, k, v, window, sinks, 8**-0.5)
    torch.testing.assert_close(out.double(), reference(q, k, v, window, sinks), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n,window,sinks", [(301, 50, 0), (333, 129, 5), (517, 200, 130), (640, 256, 256)])
@pytest.mark.parametrize("block", [32, 128])
def test_block_mask_tiles_equal_torchs_create_block_mask(n, window, sinks, block):
    """Same kept tiles as torch's dense evaluation; ours are full where torch's are, except tiles past the end."""
    tiles = {}
    for label, bm in (
        ("ours", sink_window_block_mask(n, window, sinks, "cpu", block)),
        ("torch", create_block_mask(sink_window_mask_mod(window, sinks), None, None, n, n, "cpu", BLOCK_SIZE=block)),
    ):
        partial, full = (
            {(r, c) for r in range(num.shape[-1]) for c in idx[0, 0, r, : int(num[0, 0, r])].tolist()}
            for num, idx in ((bm.kv_num_blocks, bm.kv_indices), (bm.full_kv_num_blocks, bm.full_kv_indices))
        )
        tiles[label] = partial, full
    assert tiles["ours"][0] | tiles["ours"][1] == tiles["torch"][0] | tiles["torch"][1]
    ragged = {(r, c) for r, c in tiles["torch"][1] if (max(r, c) + 1) * block > n}
    assert tiles["ours"][1] == tiles["torch"][1] - ragged


@pytest.mark.parametrize("impl", ["flex", "blocks"])
@pytest.mark.parametrize("sinks", [0, 3])
def test_key_padding_mask(impl, sinks):
    """A (B, N) key-padding mask: the block kernel serves it (also under impl=flex); rows seeing no key are zero."""
    n, window = 150, 20
    q, k, v = qkv(n)
    key_mask = torch.ones(2, n, dtype=torch.bool)
    key_mask[0, 100:] = False  # right padding: queries past 119 see no kept key (without sinks)
    key_mask[1, 2:40] = False
    backend = attention.create("sink_window", window=window, sinks=sinks, impl=impl)
    expected = reference(q, k, v, window, sinks, key_mask)
    torch.testing.assert_close(backend(q, k, v, mask=key_mask).double(), expected, atol=1e-5, rtol=1e-5)
    matrix = backend.attention_matrix(q, k, mask=key_mask).double()
    torch.testing.assert_close(matrix @ v.double(), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="key-padding mask"):
        backend(q, k, v, mask=torch.ones(n, n, dtype=torch.bool))


def test_gradients_equal_the_dense_reference():
    q, k, v = (t.requires_grad_() for t in qkv(200, torch.float64))
    out = attention.create("sink_window", window=30, sinks=4)(q, k, v)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    expected = torch.autograd.grad(reference(q, k, v, 30, 4).square().sum(), (q, k, v))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b)


def test_backend_dispatch_flex_from_flex_min_n_and_delta_uses_the_same_kernel():
    """impl=flex takes FlexAttention for long float32 prefills without grad; Delta's sparse mode is that output."""
    n = FLEX_MIN_N
    q, k, v = qkv(n, batch=1, heads=1)
    with torch.no_grad():
        out = attention.create("sink_window", window=100, sinks=3)(q, k, v)
        assert torch.equal(out, flex_sink_window(q, k, v, 100, 3, 8**-0.5))
        assert torch.equal(out, attention.create("delta", window=100, sinks=3, mode="sparse")(q, k, v))
        blocks = attention.create("sink_window", window=100, sinks=3, impl="blocks")(q, k, v)
    torch.testing.assert_close(out, blocks, atol=1e-5, rtol=1e-5)
    short = qkv(n - 1, batch=1, heads=1)
    with torch.no_grad():  # below FLEX_MIN_N: the block kernel, no compile
        a = attention.create("sink_window", window=100, sinks=3)(*short)
        assert torch.equal(a, block_sparse_sink_window(*short, 100, 3, 8**-0.5))


def test_cost_is_linear_in_sequence_length():
    backend = attention.create("sink_window", window=16, sinks=4, impl="blocks")
    flops = []
    for n in (256, 512, 1024):
        q = torch.randn(1, 1, n, 32)
        with FlopCounterMode(display=False) as counter:
            backend(q, q, q)
        flops.append(counter.get_total_flops())
    assert flops[1] == 2 * flops[0] and flops[2] == 2 * flops[1]


def test_flex_tiles_grow_linearly_in_sequence_length():
    tiles = []
    for n in (4096, 8192, 16384):
        bm = sink_window_block_mask(n, 512, 64)
        tiles.append(int(bm.kv_num_blocks.sum() + bm.full_kv_num_blocks.sum()))
    assert tiles[1] - tiles[0] == (tiles[2] - tiles[1]) / 2  # a constant number of tiles per query block


def test_bad_options():
    with pytest.raises(ValueError, match="causal by definition"):
        attention.create("sink_window", causal=False)
    with pytest.raises(ValueError, match="window >= 1"):
        attention.create("sink_window", window=0)
    with pytest.raises(ValueError, match="valid choices: flex, blocks"):
        attention.create("sink_window", impl="triton")


def test_grouped_blocks_equal_one_batch_in_values_and_gradients():
    """Bounding the key copies (chunk_bytes) must not change the result or its gradient."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 150, 8, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    grads = []
    outs = []
    for chunk_bytes in (1 << 40, 1):  # one group of all blocks; one block per group
        out = block_sparse_sink_window(q, k, v, window=20, sinks=3, scale=0.3, block=32, chunk_bytes=chunk_bytes)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), (q, k, v)))
    torch.testing.assert_close(outs[0], outs[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    assert all(gr.abs().sum() > 0 for gr in grads[1])
