"""Delta attention: the identities of the Delta notes (1.3, 5.9), exactly, in float64."""

import pytest
import torch
import torch.nn.functional as F

from qdsbench import attention
from qdsbench.attention.delta import pair_counts, split_points


def qkv(n, seed=0, heads=3, d=8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, heads, n, d, generator=g, dtype=torch.float64) for _ in range(3))


def full(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@pytest.mark.parametrize("n", [1, 17, 100])
def test_gamma_one_is_full_attention(n):
    q, k, v = qkv(n)
    for tail in (True, False):
        out = attention.create("delta", window=4, sinks=2, gamma=1, tail_min=8, tail=tail)(q, k, v)
        torch.testing.assert_close(out, full(q, k, v))


@pytest.mark.parametrize("mode", ["sparse", "recompute", "delta", "tail_only"])
def test_window_covering_the_sequence_is_full_attention(mode):
    q, k, v = qkv(90, seed=1)
    out = attention.create("delta", window=90, sinks=0, gamma=8, tail_min=16, mode=mode)(q, k, v)
    torch.testing.assert_close(out, full(q, k, v))


@pytest.mark.parametrize("n,gamma,tail_min", [(100, 8, 16), (64, 16, 16), (77, 5, 0)])
def test_anchor_and_tail_rows_are_exact(n, gamma, tail_min):
    q, k, v = qkv(n, seed=2)
    out = attention.create("delta", window=6, sinks=2, gamma=gamma, tail_min=tail_min)(q, k, v)
    s_p, anchors = split_points(n, gamma, tail_min, True)
    assert n - s_p == n % gamma + max(tail_min, gamma)
    exact = torch.cat([anchors, torch.arange(s_p, n)])
    torch.testing.assert_close(out[..., exact, :], full(q, k, v)[..., exact, :])


def test_delta_rows_are_sparse_plus_their_anchor_correction():
    q, k, v = qkv(60, seed=3)
    sparse = attention.create("sink_window", window=5, sinks=1)(q, k, v)
    out = attention.create("delta", window=5, sinks=1, gamma=10, tail_min=10)(q, k, v)
    ref = full(q, k, v)
    for t in (1, 9, 13, 37):
        a = 10 * (t // 10)
        torch.testing.assert_close(out[..., t, :], sparse[..., t, :] + ref[..., a, :] - sparse[..., a, :])


def test_recompute_differs_from_sparse_only_at_anchors_and_tail():
    n, gamma = 100, 8
    q, k, v = qkv(n, seed=4)
    sparse = attention.create("delta", window=6, sinks=2, gamma=gamma, tail_min=16, mode="sparse")(q, k, v)
    recompute = attention.create("delta", window=6, sinks=2, gamma=gamma, tail_min=16, mode="recompute")(q, k, v)
    s_p, anchors = split_points(n, gamma, 16, True)
    changed = (recompute - sparse).abs().amax((0, 1, 3)) > 1e-12
    expected = torch.zeros(n, dtype=torch.bool)
    expected[anchors] = True
    expected[s_p:] = True
    expected[:6] = False  # the first queries see their whole prefix inside the window: sparse is already exact
    assert torch.equal(changed, expected)


def test_tail_only_changes_only_the_tail():
    q, k, v = qkv(50, seed=5)
    sparse = attention.create("sink_window", window=4, sinks=1)(q, k, v)
    out = attention.create("delta", window=4, sinks=1, gamma=8, tail_min=8, mode="tail_only")(q, k, v)
    s_p, _ = split_points(50, 8, 8, True)
    torch.testing.assert_close(out[..., :s_p, :], sparse[..., :s_p, :])
    torch.testing.assert_close(out[..., s_p:, :], full(q, k, v)[..., s_p:, :])


@pytest.mark.parametrize("n,gamma", [(1024, 16), (4096, 64), (1000, 7)])
def test_extra_pairs_are_n_squared_over_two_gamma(n, gamma):
    counts = pair_counts(n, window=64, sinks=4, gamma=gamma, tail=False)
    assert counts["tail"] == 0
    assert abs(counts["anchors"] - n * n / (2 * gamma)) <= n  # sum over anchors a of (a + 1): rounding is O(N)
    assert counts["sparse"] == sum(min(i + 1, 64) + max(0, min(i + 1 - 64, 4)) for i in range(n))


def test_pair_counts_match_the_dense_mask():
    backend = attention.create("sink_window", window=7, sinks=3)
    assert pair_counts(40, 7, 3, 4)["sparse"] == int(backend.dense_mask(40).sum())


def test_correction_helps_only_with_correlated_queries():
    """Notes 1.7: Delta beats recompute when neighbouring queries are similar (AR(1) queries), not for i.i.d."""
    g = torch.Generator().manual_seed(0)
    n, d = 1024, 32
    k, v = torch.randn(2, 1, 1, n, d, generator=g).unbind(0)

    def cos_to_full(q, mode):
        out = attention.create("delta", window=64, sinks=4, gamma=16, tail_min=16, mode=mode)(q, k, v)
        return F.cosine_similarity(out, full(q, k, v), dim=-1).mean().item()

    noise = torch.randn(1, 1, n, d, generator=g) * 2
    ar = noise.clone()
    for t in range(1, n):
        ar[..., t, :] = 0.99 * ar[..., t - 1, :] + (1 - 0.99**2) ** 0.5 * noise[..., t, :]
    assert cos_to_full(ar, "delta") > cos_to_full(ar, "recompute") + 0.05
    assert cos_to_full(noise, "delta") < cos_to_full(noise, "recompute") + 0.02


def test_bad_options_name_the_valid_choices():
    with pytest.raises(ValueError, match="valid choices: sparse, recompute, delta, tail_only"):
        attention.create("delta", mode="dense")
    with pytest.raises(ValueError, match="gamma >= 1"):
        attention.create("delta", gamma=0)
    q, k, v = qkv(8)
    with pytest.raises(ValueError, match="prefill"):
        attention.create("delta")(q[..., :1, :], k, v)


def test_without_tail_every_row_to_the_last_is_corrected_from_its_anchor():
    """tail=false (the paper's description, notail.md): no dense tail, the last query too is sparse + correction."""
    n, gamma = 59, 8  # the last query (58) is not an anchor
    q, k, v = qkv(n, seed=6)
    sparse = attention.create("sink_window", window=5, sinks=1)(q, k, v)
    out = attention.create("delta", window=5, sinks=1, gamma=gamma, tail_min=16, tail=False)(q, k, v)
    ref = full(q, k, v)
    a = torch.arange(n) // gamma * gamma
    torch.testing.assert_close(out, sparse + ref[..., a, :] - sparse[..., a, :])
    assert (out[..., -1, :] - ref[..., -1, :]).abs().max() > 1e-6  # the last row is not exact
    recompute = attention.create("delta", window=5, sinks=1, gamma=gamma, tail=False, mode="recompute")(q, k, v)
    changed = (recompute - sparse).abs().amax((0, 1, 3)) > 1e-12
    expected = torch.zeros(n, dtype=torch.bool)
    expected[torch.arange(0, n, gamma)] = True
    expected[:5] = False  # inside the first window sparse is already exact
    assert torch.equal(changed, expected)
