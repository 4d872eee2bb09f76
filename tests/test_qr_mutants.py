"""QR attention holes found by mutation testing, each closed against the module docstring and qr.yaml ("the QR runs
in this precision"): P = Q * Q of S = Q R taken from NumPy's float64 QR (``np.linalg.qr``), padded keys replaced by
the valid block's own P, and the LAPACK calls' input dtype seen by a spy, for both ``normalize`` and the
``reference_normalize`` the other QR tests compare against.
"""

import numpy as np
import pytest
import torch

from qdsbench import attention


def _ill_conditioned(n: int, seed: int, cond: float) -> torch.Tensor:
    """U diag(1 .. 1/cond) V^T with random orthogonal U, V: full rank, so Q (hence P) is unique up to column signs."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return u @ torch.diag(torch.logspace(0, -np.log10(cond), n, dtype=torch.float64)) @ v.T


def _p_numpy(s: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Matrix by matrix: P = Q * Q of the valid block's float64 QR, 0 on every padded row and column."""
    out = np.zeros_like(s)
    for index in np.ndindex(s.shape[:-2]):
        keep = valid[index]
        q, _ = np.linalg.qr(s[index][np.ix_(keep, keep)])
        out[index][np.ix_(keep, keep)] = q**2
    return out


@pytest.mark.parametrize("method", ["normalize", "reference_normalize"])
def test_float32_scores_are_orthogonalised_in_float64_and_p_comes_back_in_float32(method):
    """dtype=float64 (the default): Q of an ill-conditioned (cond 1e4) float32 S is as exact as float64 makes it,
    ~3e-8 from NumPy's, where a float32 QR is off by ~1e-4; P is returned in the scores' dtype, with a mask too."""
    s = torch.stack([_ill_conditioned(8, seed, 1e4) for seed in range(2)])[:, None].float()  # (2, 1, 8, 8)
    padded = s.clone()
    padded[1, 0] = 100 * torch.randn(8, 8, generator=torch.Generator().manual_seed(3))  # ignored but for the block
    padded[1, 0, :6, :6] = _ill_conditioned(6, 5, 1e4).float()  # batch 1: 6 valid keys, their block ill-conditioned
    padding = torch.ones(2, 1, 1, 8, dtype=torch.bool)
    padding[1, ..., 6:] = False
    fn = getattr(attention.create("qr", noise=0.0), method)
    for scores, mask in ((s, None), (padded, padding)):
        p = fn(scores, mask)
        assert p.dtype == torch.float32
        valid = np.broadcast_to(np.ones(8, dtype=bool) if mask is None else padding[:, :, 0].numpy(), (2, 1, 8))
        want = _p_numpy(scores.double().numpy(), valid)
        np.testing.assert_allclose(p.double().numpy(), want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("option,lapack", [("float64", torch.float64), ("float32", torch.float32)])
def test_the_qr_runs_in_the_configured_dtype_whatever_the_scores_dtype(monkeypatch, option, lapack):
    """qr.yaml: "the QR runs in this precision". The fixed noise (on by default) must not promote float32 to
    float64 (bench_attention times qr(float32) for its speed), nor the scores' own dtype replace the option's;
    and P is always returned in the scores' dtype."""
    seen = []
    geqrf, linalg_qr = torch.geqrf, torch.linalg.qr
    monkeypatch.setattr(torch, "geqrf", lambda a: seen.append(a.dtype) or geqrf(a))
    monkeypatch.setattr(torch.linalg, "qr", lambda a, *args, **kwargs: seen.append(a.dtype) or linalg_qr(a))
    backend = attention.create("qr", dtype=option)
    padding = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])[:, None, None, :]
    calls = 0
    for dtype in (torch.float32, torch.float64):
        s = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=dtype)
        for mask in (None, padding):
            for fn in (backend.normalize, backend.reference_normalize):
                assert fn(s, mask).dtype == dtype
                calls += 1
    assert seen == [lapack] * calls


def test_qr_in_float32_differentiates_float64_scores():
    """dtype=float32 with float64 scores: the backward's Q (float32) met the incoming float64 gradient in a matmul
    (RuntimeError); the gradient must come back in the scores' dtype and equal the float32 reference path's."""
    s = torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    backend = attention.create("qr", dtype="float32")
    (grad,) = torch.autograd.grad((backend.normalize(s) * weight).sum(), s)
    (want,) = torch.autograd.grad((backend.reference_normalize(s) * weight).sum(), s)
    assert grad.dtype == torch.float64
    torch.testing.assert_close(grad, want, rtol=1e-4, atol=1e-5)
