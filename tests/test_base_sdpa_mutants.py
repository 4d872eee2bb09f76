"""Mutation-testing holes in base.py and sdpa.py, closed against a reference that shares no code with them: a float64
softmax over each query's allowed keys written row by row, with the causal rule of base.causal_mask's docstring
(query i of Nq sees key j of Nk iff j <= i + Nk - Nq: a prefill continues the keys already there). The meta device
stands in for an accelerator: a mask built on the CPU for inputs elsewhere fails there as it would on a GPU.
"""

import pytest
import torch

from qdsbench import attention


def _reference(q, k, v, scale, causal=False):
    """(B, H, Nq, dv) in float64, one query row at a time."""
    q, k, v = (t.double() for t in (q, k, v))
    n_q, n_k = q.shape[-2], k.shape[-2]
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=torch.float64)
    for i in range(n_q):
        keys = [j for j in range(n_k) if not causal or j <= i + n_k - n_q]
        weights = torch.softmax(scale * (q[..., i : i + 1, :] @ k[..., keys, :].mT), -1)  # (B, H, 1, len)
        out[..., i, :] = (weights @ v[..., keys, :])[..., 0, :]
    return out


def _qkv(n_q, n_k=None, batch=2, heads=2, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_k = n_k or n_q
    return [torch.randn(batch, heads, n, d, generator=g, dtype=torch.float64) for n in (n_q, n_k, n_k)]


def test_sdpa_fused_causal_path_uses_the_configured_scale():
    """No mask, causal, as many queries as keys: the fused is_causal kernel; 0.3 is not its default 1 / sqrt(d)."""
    q, k, v = _qkv(7, seed=1)
    torch.testing.assert_close(
        attention.create("sdpa", causal=True, scale=0.3)(q, k, v), _reference(q, k, v, 0.3, True)
    )


def test_sdpa_causal_prefill_aligns_to_the_last_key_whatever_the_head_count():
    """Fewer queries than keys, with H = Nk: only Nq == Nk may take the fused (top-left aligned) causal kernel."""
    q, k, v = _qkv(2, 6, heads=6, seed=2)
    out = attention.create("sdpa", causal=True)(q, k, v)
    torch.testing.assert_close(out, _reference(q, k, v, 0.5, causal=True))


def test_sdpa_matrix_without_a_mask_keeps_nan_rows_like_the_fused_kernel():
    """An infinite query entry makes its scores +-inf, so softmax gives a NaN row: the fused kernel's output row is
    NaN (math and CPU flash kernels alike), and with no mask the matrix must not hide it as a zero row."""
    q, k, v = _qkv(5, seed=3)
    q[0, 1, 2, 0] = float("inf")
    backend = attention.create("sdpa")
    p, out = backend.attention_matrix(q, k), backend(q, k, v)
    assert out[0, 1, 2].isnan().all() and out.isnan().sum() == 4
    assert torch.equal((p @ v).isnan(), out.isnan())


def test_matrix_backends_return_the_values_dtype():
    """out = P v in v's dtype when P is computed in q's: float32 queries and keys, float64 values."""
    q, k, v = _qkv(6, seed=4)
    out = attention.create("softmax")(q.float(), k.float(), v)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, _reference(q.float(), k.float(), v, 0.5), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "sdpa"])
def test_causal_masks_are_built_on_the_inputs_device(name):
    q = torch.empty(2, 3, 6, 4, device="meta")
    key_mask = torch.ones(2, 6, dtype=torch.bool, device="meta")
    backend = attention.create(name, causal=True)
    assert backend.attention_matrix(q, q).device.type == "meta"
    assert backend.attention_matrix(q, q, key_mask).device.type == "meta"
    assert backend(q[..., -2:, :], q, q).device.type == "meta"  # Nq < Nk: the explicit causal mask
    assert backend(q, q, q, key_mask).device.type == "meta"
