"""Performer, Nystrom and iterative_pinv holes found by mutation testing, each closed against a reference that shares
no code with qdsbench/attention/kernelized.py: the FAVOR+ ratio written out in NumPy float64 from the module
docstring's features exp(w^T x - |x|^2 / 2) / sqrt(r), the Nystromformer factors with ``np.linalg.pinv``, the
Newton-Schulz iteration one matrix at a time, and conf/attention/<name>.yaml for what ``create(name)`` builds.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from qdsbench import attention
from qdsbench.attention.kernelized import iterative_pinv

ATTENTION_CONF = Path(__file__).resolve().parents[1] / "conf" / "attention"


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _favor(q, k, v, r, seed, scale):
    """FAVOR+ one (batch, head) at a time: phi(x) = exp(w^T x - |x|^2 / 2) / sqrt(r) of x scale^(1/2), w the seeded
    N(0, I) draw, out_i = sum_j phi(q_i).phi(k_j) v_j / sum_j phi(q_i).phi(k_j); no stabiliser (float64 needs none)."""
    omega = torch.randn(r, q.shape[-1], generator=torch.Generator().manual_seed(seed)).double().numpy()

    def phi(x):
        x = x * math.sqrt(scale)
        return np.exp(x @ omega.T - (x**2).sum(-1, keepdims=True) / 2) / math.sqrt(r)

    out = np.zeros(v.shape)
    for index in np.ndindex(q.shape[:-2]):
        w = phi(q[index]) @ phi(k[index]).T
        out[index] = w @ v[index] / w.sum(-1, keepdims=True)
    return out


def _newton_schulz(m, iterations):
    """Nystromformer's iteration: Z0 = X^T / (||X||_1 ||X||_inf), Z <- Z (13 I - XZ (15 I - XZ (7 I - XZ))) / 4."""
    eye = np.eye(m.shape[-1])
    z = m.T / (np.abs(m).sum(0).max() * np.abs(m).sum(1).max())
    for _ in range(iterations):
        xz = m @ z
        z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
    return z


@pytest.mark.parametrize("name", ["performer", "nystrom"])
def test_create_without_options_builds_what_the_config_group_sets(name):
    """`create(name)` (studies, tests) must build what `attention=<name>` builds. test_code_defaults_equal_the_
    config_group reads inspect.signature, which mutmut's trampoline keeps at the original defaults; the built
    backend holds the defaults that actually ran."""
    config = OmegaConf.to_container(OmegaConf.load(ATTENTION_CONF / f"{name}.yaml"))
    backend = attention.create(config.pop("name"))
    assert config and {key: getattr(backend, key) for key in config} == config


def test_performer_applies_a_configured_scale_to_q_k():
    """scale=0.3 instead of 1/sqrt(d) = 0.5: q and k are each pre-scaled by 0.3^(1/2)."""
    q, k, v = (_randn(2, 2, 9, 4, seed=seed) for seed in range(3))
    backend = attention.create("performer", scale=0.3, num_features=16, redraw=False, seed=7)
    want = _favor(q.numpy(), k.numpy(), v.numpy(), 16, 7, 0.3)
    np.testing.assert_allclose(backend(q, k, v).numpy(), want, rtol=1e-6)


def test_performer_heads_and_batch_elements_are_independent():
    """One (batch, head) with large projections w.q (here |q| ~ 6) must not change the others: each block's
    exp(.) is stabilised by its own largest projection, not by one shared with another input of the batch."""
    q, k, v = (_randn(2, 2, 9, 4, seed=seed) for seed in range(3, 6))
    q, k = 0.5 * q, 0.5 * k
    q[1, 1], k[1, 1] = 6 * q[1, 1], 6 * k[1, 1]
    backend = attention.create("performer", num_features=16, redraw=False, seed=2)
    got, want = backend(q, k, v).numpy(), _favor(q.numpy(), k.numpy(), v.numpy(), 16, 2, 0.5)
    for index in ((0, 0), (0, 1), (1, 0)):
        np.testing.assert_allclose(got[index], want[index], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("magnitude", [0.02, 0.7])
def test_performer_in_float16_keeps_its_normaliser_in_range(magnitude):
    """Half precision (models/pretrained.py runs the backends in float16) tops out at 65504. With FAVOR+'s 1/sqrt(r)
    phi(q).phi(k) estimates exp(q.k): for small q, k (0.02) the normaliser sum_j phi(q).phi(k_j) is ~N = 64, and
    sqrt(r) instead makes it r^2 = 4096 times larger; subtracting each block's largest projection keeps every
    feature <= 1/sqrt(r), and adding it instead multiplies the normaliser by e^(2 max w.q + 2 max w.k), past 65504
    for every row at 0.7."""
    q, k, v = (_randn(2, 2, 64, 4, seed=seed) for seed in range(6, 9))
    q, k, v = (magnitude * q).half(), (magnitude * k).half(), v.half()
    got = attention.create("performer", redraw=False, seed=4)(q, k, v)
    assert got.dtype == torch.float16
    want = _favor(q.double().numpy(), k.double().numpy(), v.double().numpy(), 64, 4, 0.5)
    np.testing.assert_allclose(got.double().numpy(), want, rtol=0, atol=3e-3)


def test_performer_on_unit_normal_inputs_of_a_64_dim_head_equals_favor_plus():
    """The case attention heads are in (d = 64, |q| ~ 8): with one stabiliser shared by all queries every row's
    normaliser fell below the 1e-6 guard and the output shrank to ~2% of FAVOR+'s (0.004 vs 0.24 mean |out|)."""
    q, k, v = (_randn(1, 2, 256, 64, seed=seed, dtype=torch.float32) for seed in range(20, 23))
    got = attention.create("performer", redraw=False, seed=0)(q, k, v)
    want = _favor(q.double().numpy(), k.double().numpy(), v.double().numpy(), 64, 0, 1 / 8)
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-3, atol=1e-5)


def test_performer_stabilises_each_query_row_on_its_own_so_long_queries_keep_their_weights():
    """A query's largest exponent max_w (w.x - |x|^2 / 2) falls as |x| grows past ~2.4: with one stabiliser for all
    queries of a head, the long queries' features underflow to ~1e-7 and their normaliser under the 1e-6 guard."""
    q, k, v = (_randn(1, 1, 6, 16, seed=seed, dtype=torch.float32) for seed in range(24, 27))
    q = q * torch.tensor([1.0, 1.0, 1.0, 1.0, 3.0, 4.0])[:, None]  # |x| = |q| 16^(-1/4) ~ 2, ..., 6, 8
    got = attention.create("performer", redraw=False, seed=1)(q, k, v)
    want = _favor(q.double().numpy(), k.double().numpy(), v.double().numpy(), 64, 1, 1 / 4)
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-3, atol=1e-5)


def test_nystrom_applies_a_configured_scale_to_all_three_kernels():
    """scale=0.3: softmax(0.3 Q K_l^T) pinv(softmax(0.3 Q_l K_l^T)) softmax(0.3 Q_l K^T) V, landmarks the means of
    token pairs (4 landmarks of 8 tokens); 60 iterations make the iterative pinv the exact one."""
    q, k, v = (_randn(2, 2, 8, 4, seed=seed) for seed in range(9, 12))
    qn, kn, vn = (t.numpy() for t in (q, k, v))
    ql, kl = (t.reshape(2, 2, 4, 2, 4).mean(-2) for t in (qn, kn))

    def softmax(s):
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    k1, k2, k3 = (softmax(0.3 * a @ b.swapaxes(-1, -2)) for a, b in ((qn, kl), (ql, kl), (ql, kn)))
    want = k1 @ np.linalg.pinv(k2) @ (k3 @ vn)
    got = attention.create("nystrom", scale=0.3, num_landmarks=4, pinv_iterations=60)(q, k, v).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_iterative_pinv_starts_each_matrix_of_a_batch_from_its_own_norms():
    """Z0 = X^T / (||X||_1 ||X||_inf) per matrix, so a batch is its matrices one by one and the iteration is
    scale-equivariant: pinv6(c X) = pinv6(X) / c. Matrices that are not row-stochastic (row sums 1, 3, 1/5)."""
    x = torch.softmax(2 * _randn(6, 6, seed=12), -1)
    batch = torch.stack([x, 3 * x, x / 5])
    got = iterative_pinv(batch).numpy()
    np.testing.assert_allclose(got, np.stack([_newton_schulz(m, 6) for m in batch.numpy()]), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[1], got[0] / 3, rtol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_iterative_pinv_and_nystrom_run_in_half_precision(dtype):
    """The pretrained models' float16 / bfloat16: the identity of the iteration is built in the kernel's dtype (a
    float32 one would mix dtypes in the matmul), and the result is the float64 iteration of the same input to the
    precision of the type."""
    x = torch.softmax(2 * _randn(3, 6, 6, seed=13), -1).to(dtype)
    got = iterative_pinv(x)
    assert got.dtype == dtype
    want = np.stack([_newton_schulz(m, 6) for m in x.double().numpy()])
    assert np.abs(got.double().numpy() - want).max() <= 0.01 * np.abs(want).max()
    q, k, v = (_randn(1, 2, 40, 8, seed=seed, dtype=dtype) for seed in range(14, 17))
    out = attention.create("nystrom", num_landmarks=4)(q, k, v)
    assert out.dtype == dtype and torch.isfinite(out).all()
