"""Delta attention (Willette et al. 2025, /work/shared/papers/delta_attention.md): the sparse sink + window output
plus, for every query of a block of gamma, the anchor's (dense - sparse) correction, the last N mod gamma +
max(tail_min, gamma) queries dense; here with the defaults of conf/attention/delta.yaml against a NumPy brute force
of that formula, counts as integers, indices that follow the tensors to their device, and tail_only's dense tail
(sparse rows, then exact rows) down to a tail of a single query.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from attention_reference import softmax_over_allowed
from omegaconf import OmegaConf

from qdsbench import attention
from qdsbench.attention.delta import dense_rows, pair_counts

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "attention" / "delta.yaml"


def _delta_reference(q, k, v, window, sinks, gamma, tail_min, scale):
    """The paper's Eqs. 6-7 with the dense tail (App. C), written out with explicit masks."""
    n = q.shape[-2]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    causal = j <= i
    scores = q @ k.swapaxes(-1, -2) * scale
    sparse = softmax_over_allowed(scores, np.broadcast_to(causal & ((i - j < window) | (j < sinks)), scores.shape)) @ v
    dense = softmax_over_allowed(scores, np.broadcast_to(causal, scores.shape)) @ v
    s_p = n - min(n, n % gamma + max(tail_min, gamma))
    out = dense.copy()  # the tail (queries s_p..N-1) is dense
    for t in range(s_p):
        a = gamma * (t // gamma)
        out[..., t, :] = sparse[..., t, :] + dense[..., a, :] - sparse[..., a, :]
    return out


def _config_options() -> dict:
    config = OmegaConf.to_container(OmegaConf.load(CONFIG))
    config.pop("name")
    return config


def test_delta_built_without_options_is_the_config_group_and_the_papers_formula():
    """N = 400 is long enough for every default to show: window 64 and 4 sinks in the sparse part, anchors every
    16 queries, a tail of 400 mod 16 + 128 = 128 dense queries."""
    options = _config_options()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 400, 4, generator=g, dtype=torch.float64) for _ in range(3))
    default = attention.create("delta")(q, k, v)
    torch.testing.assert_close(default, attention.create("delta", **options)(q, k, v), rtol=0, atol=0)
    want = _delta_reference(
        q.numpy(), k.numpy(), v.numpy(), options["window"], options["sinks"], options["gamma"], options["tail_min"], 0.5
    )
    np.testing.assert_allclose(default.numpy(), want, rtol=1e-9, atol=1e-12)


def test_pair_counts_are_integers():
    """Counts of query-key pairs are ints (N (N + 1) / 2 for full causal attention is always whole)."""
    for n in (1, 7, 300):
        counts = pair_counts(n, 16, 4, 8)
        assert all(type(value) is int for value in counts.values()), counts
        assert counts["full"] == sum(range(1, n + 1))
    assert f"{pair_counts(7, 4, 1, 2)['full']}" == "28"  # printed as a count, not 28.0


def test_dense_rows_accept_positions_on_another_device_than_the_tensors():
    """An index built on the CPU is moved to the keys' device (the meta device stands in for an accelerator)."""
    q, k, v = (torch.empty(1, 2, 9, 4, device="meta") for _ in range(3))
    positions = torch.tensor([0, 3, 8])
    out = dense_rows(q[..., :3, :], k, v, positions, 0.5)
    assert out.device.type == "meta" and out.shape == (1, 2, 3, 4)


def test_delta_runs_on_the_device_of_its_inputs():
    """split_points builds the anchors on the CPU; every mode must move them to q's device (meta here)."""
    q, k, v = (torch.empty(1, 2, 40, 4, device="meta") for _ in range(3))
    for mode in ("recompute", "delta", "tail_only"):
        out = attention.create("delta", window=8, sinks=2, gamma=4, tail_min=8, mode=mode)(q, k, v)
        assert out.device.type == "meta" and out.shape == (1, 2, 40, 4), mode


@pytest.mark.parametrize("gamma,tail_min,tail_rows", [(1, 0, 1), (1, 1, 1), (3, 4, 6)])
def test_tail_only_is_sparse_with_exactly_the_last_n_mod_gamma_plus_max_tail_min_gamma_rows_dense(
    gamma, tail_min, tail_rows
):
    """tail_only = the sink + window output with the last N mod gamma + max(tail_min, gamma) queries exact; with
    gamma = 1 and tail_min <= 1 that tail is the last query alone, which must still be made exact (a one-row tail is
    no reason to return the sparse output)."""
    n, window, sinks = 20, 3, 1
    assert n % gamma + max(tail_min, gamma) == tail_rows
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, 2, n, 4, generator=g, dtype=torch.float64) for _ in range(3))
    backend = attention.create("delta", window=window, sinks=sinks, gamma=gamma, tail_min=tail_min, mode="tail_only")
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    scores = q.numpy() @ k.numpy().swapaxes(-1, -2) * 0.5
    sparse_pairs = (j <= i) & ((i - j < window) | (j < sinks))
    allowed = np.where(i >= n - tail_rows, j <= i, sparse_pairs)  # rows of the tail see every earlier key
    want = softmax_over_allowed(scores, np.broadcast_to(allowed, scores.shape)) @ v.numpy()
    np.testing.assert_allclose(backend(q, k, v).numpy(), want, rtol=1e-9, atol=1e-12)
