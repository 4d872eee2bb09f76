"""Mutation-testing holes in sink_window.py and flex.py, closed against a reference that shares no code with them:
the sink + window pattern written pair by pair in Python (query i sees key j iff j <= i and (i - j < window or
j < sinks), the module docstring's rule) and a float64 softmax over each query's allowed keys, row by row.

FlexAttention at FLEX_MIN_N keys compiles for a minute on the CPU, so the dispatch tests put a stand-in with its
semantics (the pattern, no key-padding mask, the scale it is given) in place of ``flex_sink_window``; the flex
functions themselves run on torch's eager FlexAttention. The meta device stands in for an accelerator: a mask built
on the CPU for inputs elsewhere fails there as it would on a GPU.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

from qdsbench import attention
from qdsbench.attention import flex
from qdsbench.attention.sink_window import FLEX_MIN_N, block_sparse_sink_window


def _visible(i: int, j: int, window: int, sinks: int) -> bool:
    return j <= i and (i - j < window or j < sinks)


def _pattern(n: int, window: int, sinks: int) -> torch.Tensor:
    return torch.tensor([[_visible(i, j, window, sinks) for j in range(n)] for i in range(n)])


def _reference_rows(q, k, v, window, sinks, scale, key_mask=None, rows=None):
    """(B, H, len(rows), dv) in float64: for each query row, softmax of scale * q.k over its visible kept keys."""
    n = q.shape[-2]
    rows = range(n) if rows is None else rows
    q, k, v = (t.double() for t in (q, k, v))
    out = torch.zeros(*q.shape[:2], len(rows), v.shape[-1], dtype=torch.float64)
    for r, i in enumerate(rows):
        keys = [j for j in range(i + 1) if _visible(i, j, window, sinks)]
        for b in range(q.shape[0]):
            kept = [j for j in keys if key_mask is None or bool(key_mask[b, j])]
            if not kept:
                continue  # no visible kept key: a zero row
            scores = scale * (k[b, :, kept] @ q[b, :, i, :, None])[..., 0]  # (H, kept)
            out[b, :, r] = torch.softmax(scores, -1)[..., None, :].matmul(v[b, :, kept])[..., 0, :]
    return out


def _reference_matrix(q, k, window, sinks, scale, key_mask=None):
    n = q.shape[-2]
    eye = torch.eye(n, dtype=torch.float64).expand(*q.shape[:2], n, n)
    return _reference_rows(q, k, eye, window, sinks, scale, key_mask)  # P e_j: column j of P


def _qkv(n, batch=2, heads=2, d=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, n, d, generator=g, dtype=torch.float64).to(dtype) for _ in range(3)]


@pytest.mark.parametrize("window,sinks", [(3, 2), (1, 0), (5, 0), (2, 9)])
def test_flex_mask_mod_is_the_pattern_pair_by_pair(window, sinks):
    n = 11
    mask_mod = flex.sink_window_mask_mod(torch.tensor(window), torch.tensor(sinks))
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    assert torch.equal(mask_mod(0, 0, i, j), _pattern(n, window, sinks))


def test_flex_tile_is_32_below_window_1024_and_128_from_there():
    """tile_for's documented rule, and the BlockMask's tile follows it (n = 301: lengths no other test caches)."""
    assert [flex.tile_for(w) for w in (1, 512, 1023, 1024, 1025, 4096)] == [32, 32, 32, 128, 128, 128]
    assert flex.sink_window_block_mask(301, 1023, 3, "cpu").BLOCK_SIZE == (32, 32)
    assert flex.sink_window_block_mask(301, 1024, 3, "cpu").BLOCK_SIZE == (128, 128)


def test_flex_sink_window_uses_the_scale_it_is_given(monkeypatch):
    """Through torch's eager FlexAttention (the same op uncompiled): 0.3 is not SDPA's default 1 / sqrt(d)."""
    monkeypatch.setattr(flex, "compiled_flex_attention", lambda: flex_attention)
    q, k, v = _qkv(37, dtype=torch.float32, seed=1)
    out = flex.flex_sink_window(q, k, v, 8, 4, 0.3)
    torch.testing.assert_close(out.double(), _reference_rows(q, k, v, 8, 4, 0.3), atol=1e-5, rtol=1e-5)


def test_flex_block_mask_is_built_on_the_inputs_device(monkeypatch):
    """FlexAttention needs its BlockMask on the inputs' device (CUDA refuses a CPU one); meta inputs, a recording
    kernel in place of the compiled one."""
    seen = []

    def kernel(q, k, v, block_mask=None, scale=None):
        seen.append(block_mask)
        return torch.empty_like(q)

    monkeypatch.setattr(flex, "compiled_flex_attention", lambda: kernel)
    q = torch.empty(1, 2, 45, 8, device="meta")
    flex.flex_sink_window(q, q, q, 5, 2, 0.3)
    (block_mask,) = seen
    tensors = (block_mask.kv_num_blocks, block_mask.kv_indices, block_mask.full_kv_num_blocks)
    assert all(t.device.type == "meta" for t in tensors)


@pytest.fixture
def stand_in_flex(monkeypatch):
    """flex_sink_window replaced by the block kernel without a key mask (what FlexAttention computes); records calls."""
    calls = []

    def fake(q, k, v, window, sinks, scale):
        calls.append(scale)
        return block_sparse_sink_window(q, k, v, window, sinks, scale)

    monkeypatch.setattr(flex, "flex_sink_window", fake)
    return calls


ROWS = [*range(12), 40, 41, FLEX_MIN_N - 2, FLEX_MIN_N - 1]  # the start (sinks, padding) and the end


def test_a_key_padding_mask_at_flex_lengths_runs_on_the_block_kernel(stand_in_flex):
    """FlexAttention serves no key mask: impl=flex still honours it at N >= FLEX_MIN_N (grad mode on, no grads)."""
    q, k, v = _qkv(FLEX_MIN_N, batch=2, heads=1, dtype=torch.float32, seed=2)
    key_mask = torch.ones(2, FLEX_MIN_N, dtype=torch.bool)
    key_mask[0, 3:10] = False
    key_mask[1, 36:42] = False
    key_mask[1, :2] = False
    out = attention.create("sink_window", window=6, sinks=2)(q, k, v, key_mask)
    want = _reference_rows(q, k, v, 6, 2, 0.5, key_mask, ROWS)
    torch.testing.assert_close(out[..., ROWS, :].double(), want, atol=1e-5, rtol=1e-5)
    assert stand_in_flex == []


def test_long_float32_prefills_go_to_flex_with_the_backend_scale(stand_in_flex):
    q, k, v = _qkv(FLEX_MIN_N, batch=1, heads=2, dtype=torch.float32, seed=3)
    with torch.no_grad():
        out = attention.create("sink_window", window=6, sinks=2, scale=0.3)(q, k, v)
    assert stand_in_flex == [0.3]
    want = _reference_rows(q, k, v, 6, 2, 0.3, rows=ROWS)
    torch.testing.assert_close(out[..., ROWS, :].double(), want, atol=1e-5, rtol=1e-5)


def test_impl_blocks_never_enters_flex(monkeypatch):
    def refuse(*args):
        raise AssertionError("impl=blocks ran FlexAttention")

    monkeypatch.setattr(flex, "flex_sink_window", refuse)
    q, k, v = _qkv(FLEX_MIN_N, batch=1, heads=1, dtype=torch.float32, seed=4)
    with torch.no_grad():
        out = attention.create("sink_window", window=6, sinks=2, impl="blocks")(q, k, v)
    want = _reference_rows(q, k, v, 6, 2, 0.5, rows=ROWS)
    torch.testing.assert_close(out[..., ROWS, :].double(), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["flex", "blocks"])
def test_the_configured_scale_reaches_the_block_kernel(impl):
    """A short prefill runs the block kernel under either impl; 0.3 is not the default 1 / sqrt(d) = 0.5."""
    q, k, v = _qkv(20, seed=5)
    backend = attention.create("sink_window", window=4, sinks=2, scale=0.3, impl=impl)
    torch.testing.assert_close(backend(q, k, v), _reference_rows(q, k, v, 4, 2, 0.3))
    torch.testing.assert_close(backend.attention_matrix(q, k), _reference_matrix(q, k, 4, 2, 0.3))


def test_captured_attention_honours_the_key_mask():
    q, k, v = _qkv(10, seed=6)
    key_mask = torch.ones(2, 10, dtype=torch.bool)
    key_mask[1, 1:5] = False
    backend = attention.create("sink_window", window=3, sinks=1, impl="blocks")
    backend.capture = True
    backend(q, k, v, key_mask)
    torch.testing.assert_close(backend.last_attention, _reference_matrix(q, k, 3, 1, 0.5, key_mask))


def test_a_wrong_mask_shape_is_refused_naming_batch_and_length():
    q = torch.zeros(2, 3, 5, 4)  # B = 2, H = 3, N = 5
    with pytest.raises(ValueError, match=r"\(B, N\)=\(2, 5\) key-padding mask, got \(2, 4\)"):
        attention.create("sink_window")(q, q, q, torch.ones(2, 4, dtype=torch.bool))


def test_masks_follow_the_inputs_device():
    """Inputs on the meta device, the key-padding mask on the CPU: the backend moves the mask, builds its pattern on
    the inputs' device, and every result stays there."""
    q = torch.empty(2, 3, 9, 4, device="meta")
    key_mask = torch.ones(2, 9, dtype=torch.bool)
    backend = attention.create("sink_window", window=3, sinks=1, impl="blocks")
    assert backend(q, q, q, key_mask).device.type == "meta"
    assert backend.attention_matrix(q, q).device.type == "meta"
    assert backend.attention_matrix(q, q, key_mask).device.type == "meta"


@pytest.fixture
def sdpa_calls(monkeypatch):
    """Records the (q, k, v, mask) shapes and dtypes of each SDPA call the block kernel makes, results unchanged."""
    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        calls.append((q, k, v, attn_mask))
        return real(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    return calls


@pytest.mark.parametrize("blocks_per_group", [1.5, 3, 100])
def test_each_group_copies_at_most_chunk_bytes_and_each_query_block_runs_once(sdpa_calls, blocks_per_group):
    """The docstring's memory bound: a group's key and value copies stay under chunk_bytes (at least one block per
    group); the groups partition the query blocks, so the work stays O(N (W + block + S) d)."""
    batch, heads, n, d, window, sinks, block = 2, 3, 200, 4, 20, 3, 32
    q, k, v = _qkv(n, batch=batch, heads=heads, d=d, seed=7)
    one_block = batch * heads * (window + block + sinks) * 2 * d * 8  # float64 key + value rows of one query block
    chunk_bytes = int(blocks_per_group * one_block)
    out = block_sparse_sink_window(q, k, v, window, sinks, 0.3, block=block, chunk_bytes=chunk_bytes)
    torch.testing.assert_close(out, _reference_rows(q, k, v, window, sinks, 0.3))
    for _, kg, vg, _ in sdpa_calls:
        assert (kg.numel() + vg.numel()) * 8 <= chunk_bytes
    assert sum(qg.shape[0] for qg, *_ in sdpa_calls) == batch * math.ceil(n / block)


@pytest.mark.parametrize("window,block", [(5, 32), (64, 64), (200, 128)])
def test_default_block_is_min_128_max_32_window(sdpa_calls, window, block):
    """The documented default block, min(128, max(32, W)): the rows of each query block SDPA sees."""
    q, k, v = _qkv(260, batch=1, heads=1, seed=8)
    out = block_sparse_sink_window(q, k, v, window, 2, 0.5)
    assert {qg.shape[-2] for qg, *_ in sdpa_calls} == {block}
    rows = [0, 1, 100, 259]
    torch.testing.assert_close(out[..., rows, :], _reference_rows(q, k, v, window, 2, 0.5, rows=rows))


def test_rows_without_a_kept_key_are_zero_even_where_sdpa_gives_nan(monkeypatch):
    """torch < 2.5 (pyproject allows 2.4) returns NaN for a query whose attn_mask row is all False; the block kernel
    zeroes those rows itself. SDPA wrapped to give that NaN."""
    real = F.scaled_dot_product_attention

    def nan_rows(q, k, v, attn_mask=None, **kwargs):
        out = real(q, k, v, attn_mask=attn_mask, **kwargs)
        return out.masked_fill(~attn_mask.any(-1, keepdim=True), float("nan"))

    monkeypatch.setattr(F, "scaled_dot_product_attention", nan_rows)
    q, k, v = _qkv(40, seed=9)
    key_mask = torch.ones(2, 40, dtype=torch.bool)
    key_mask[1, :6] = False  # batch 1: queries 0..5 see no kept key (no sinks kept either)
    key_mask[0, 20:30] = False  # batch 0: queries 23..29 see only the two sinks
    out = block_sparse_sink_window(q, k, v, 4, 2, 0.5, key_mask=key_mask)
    assert not out.isnan().any()
    torch.testing.assert_close(out, _reference_rows(q, k, v, 4, 2, 0.5, key_mask))
