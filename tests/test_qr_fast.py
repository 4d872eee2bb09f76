"""The fast QR attention (one autograd.Function, hand-written QR adjoint) against the previous implementation,
kept as QRAttention.reference_normalize (torch.linalg.qr and autograd's generic QR backward)."""

import pytest
import torch

from qdsbench import attention
from qdsbench.attention.qr import _cached_noise, fixed_noise


def reference_normalize(backend, scores, mask=None):
    return backend.reference_normalize(scores, mask)


def qk(n, d, dtype, b=3, h=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g, dtype=dtype) for _ in range(2)]


def value_and_grad(fn, q, k, weights):
    q = q.clone().requires_grad_()
    p = fn(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5)
    (p * weights).sum().backward()
    return p.detach(), q.grad


@pytest.mark.parametrize(
    "dtype,options,tol",
    [
        (torch.float64, {}, 1e-10),
        (torch.float32, {}, 1e-5),
        (torch.float32, {"dtype": "float32"}, 1e-5),
        (torch.float64, {"noise": 0.0}, 1e-10),
    ],
)
@pytest.mark.parametrize("n", [8, 50])
def test_equals_the_reference_values_and_gradients(dtype, options, tol, n):
    backend = attention.create("qr", **options)
    q, k = qk(n, 64, dtype)  # d > n: full rank, so Q and its gradient are well conditioned
    weights = torch.randn(n, n, generator=torch.Generator().manual_seed(1), dtype=dtype)
    p_new, g_new = value_and_grad(backend.normalize, q, k, weights)
    p_old, g_old = value_and_grad(lambda s: reference_normalize(backend, s), q, k, weights)
    assert p_new.dtype == dtype
    assert (p_new - p_old).abs().max() < tol
    assert (g_new - g_old).norm() / g_old.norm() < tol


def test_rank_deficient_scores_stay_exactly_doubly_stochastic_and_close_to_the_reference():
    # N = 197 > d = 64: the scores have rank 64, only the fixed noise makes them invertible (condition ~1e10), so
    # the noise-driven columns of Q are sensitive to rounding; P is still doubly stochastic to float64 precision
    backend = attention.create("qr")
    q, k = qk(197, 64, torch.float64, b=2, h=1)
    s = q @ k.transpose(-1, -2) / 8
    p = backend.normalize(s)
    assert (p >= 0).all() and (p.sum(-1) - 1).abs().max() < 1e-12 and (p.sum(-2) - 1).abs().max() < 1e-12
    assert (p - reference_normalize(backend, s)).abs().max() < 1e-6


def test_gradcheck_with_and_without_a_mask():
    backend = attention.create("qr")
    s = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(backend.normalize, (s,), eps=1e-6, atol=1e-5)
    mask = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    mask[0, ..., 4:] = False
    assert torch.autograd.gradcheck(lambda x: backend.normalize(x, mask), (s,), eps=1e-6, atol=1e-5)
    torch.testing.assert_close(backend.normalize(s, mask), reference_normalize(backend, s, mask), rtol=0, atol=1e-12)


def test_inputs_and_the_cached_noise_are_left_untouched():
    backend = attention.create("qr")
    s = torch.randn(2, 8, 8, dtype=torch.float64)  # already in the compute dtype: .to() returns s itself
    before = s.clone()
    backend.normalize(s)
    backend.normalize(s.float())
    assert torch.equal(s, before)
    assert torch.equal(_cached_noise(8, torch.float64, s.device), fixed_noise(8, torch.float64, s.device))


def test_unbatched_scores_and_a_full_backend_call():
    backend = attention.create("qr")
    s = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)
    p = backend.normalize(s)
    p[0].sum().backward()
    assert p.shape == (5, 5) and torch.isfinite(s.grad).all()
    q, k, v = (t.requires_grad_() for t in qk(16, 8, torch.float32, b=2) + qk(16, 8, torch.float32, b=2, seed=1)[:1])
    backend(q, k, v).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("masked", [False, True])
def test_backend_call_equals_the_reference_path(dtype, tol, masked):
    # the whole backend call (scores, SquaredQ, P v): values and q, k, v gradients agree with the old path
    backend = attention.create("qr")
    q, k = qk(12, 16, dtype)
    v = qk(12, 16, dtype, seed=3)[0]
    mask = None
    if masked:
        mask = torch.ones(3, 12, dtype=torch.bool)
        mask[1, 9:] = False
    weights = torch.randn(12, 16, generator=torch.Generator().manual_seed(4), dtype=dtype)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        (out * weights).sum().backward()
        return [out.detach()] + [t.grad for t in leaves]

    def old(q, k, v):
        scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
        return backend.reference_normalize(scores, backend.full_mask(mask, q, k)) @ v

    for new_t, old_t in zip(run(lambda q, k, v: backend(q, k, v, mask=mask)), run(old)):
        assert new_t.is_contiguous() and (new_t - old_t).abs().max() <= tol * max(1.0, old_t.abs().max())
    backend.capture = True
    backend(q, k, v, mask=mask)
    torch.testing.assert_close(backend.last_attention, backend.attention_matrix(q, k, mask))
