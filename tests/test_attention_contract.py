"""The backend contract of the foundation: shapes, scale, masks, registry errors, softmax == sdpa."""

import pytest
import torch

from qdsbench import attention


def qkv(b=2, h=3, n=7, d=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g, dtype=dtype) for _ in range(3)]


def test_available_lists_the_foundation_backends():
    assert {"softmax", "sdpa"} <= set(attention.available())


def test_softmax_matches_sdpa():
    q, k, v = qkv(dtype=torch.float32)
    out_softmax = attention.create("softmax")(q, k, v)
    out_sdpa = attention.create("sdpa")(q, k, v)
    assert out_softmax.shape == q.shape
    torch.testing.assert_close(out_softmax, out_sdpa, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_matches_sdpa_with_masks(causal):
    q, k, v = qkv(dtype=torch.float32)
    key_mask = torch.ones(2, 7, dtype=torch.bool)
    key_mask[0, 5:] = False
    a = attention.create("softmax", causal=causal)(q, k, v, mask=key_mask)
    b = attention.create("sdpa", causal=causal)(q, k, v, mask=key_mask)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_softmax_matrix_is_row_stochastic_and_respects_mask():
    q, k, _ = qkv()
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, -2:] = False
    p = attention.create("softmax").attention_matrix(q, k, mask=mask)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 3, 7, dtype=p.dtype))
    assert p[1, :, :, -2:].abs().max() == 0


def test_scale_is_applied_inside_the_backend():
    q, k, v = qkv()
    reference = torch.softmax(q @ k.transpose(-1, -2) * 0.5, dim=-1) @ v
    torch.testing.assert_close(attention.create("softmax", scale=0.5)(q, k, v), reference)
    default = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1) @ v
    torch.testing.assert_close(attention.create("softmax")(q, k, v), default)


def test_gradients_flow_to_q_k_v():
    q, k, v = (t.requires_grad_() for t in qkv())
    attention.create("softmax")(q, k, v).square().sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (q, k, v))


def test_unknown_backend_is_one_clear_line():
    with pytest.raises(ValueError) as info:
        attention.create("softmaxx")
    message = str(info.value)
    assert "\n" not in message and "softmaxx" in message and "softmax" in message and "sdpa" in message


def test_unknown_backend_option_is_one_clear_line():
    expected = "unknown option 'temperature' for attention backend 'softmax'; valid options: causal, scale"
    with pytest.raises(ValueError, match=expected):
        attention.create("softmax", temperature=2.0)


@pytest.mark.parametrize("shape", [(2, 7, 8), (2, 3, 7, 8, 1)])
def test_wrong_rank_is_rejected(shape):
    x = torch.randn(*shape)
    with pytest.raises(ValueError, match=r"\(B, H, N, d\)"):
        attention.create("softmax")(x, x, x)
