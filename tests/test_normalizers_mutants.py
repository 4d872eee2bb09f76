"""Softmax, sigmoid, NormSoftmax and NormLin holes found by mutation testing, each closed against the formula as the
module docstrings state it, written out row by row in NumPy (softmax over the kept keys, unbiased variance via
``np.var(ddof=1)``, sigmoid with bias -log N over the keys some query may attend), or against the refusal naming the
bad value.
"""

import math

import numpy as np
import pytest
import torch
from attention_reference import normsoftmax_reference

from qdsbench import attention
from qdsbench.attention.sigmoid import SigmoidAttention


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", ["softmax", "normsoftmax_std", "normsoftmax_var"])
def test_without_a_mask_a_nan_score_stays_visible_instead_of_becoming_a_zero_row(name):
    """Zero rows are for queries whose keys are all masked; without a mask a diverged score must not be hidden."""
    scores = _randn(1, 1, 3, 4, seed=1)
    scores[0, 0, 1, 2] = float("nan")
    p = attention.create(name).normalize(scores)
    assert torch.isnan(p[0, 0, 1]).all()
    torch.testing.assert_close(p[0, 0, [0, 2]].sum(-1), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("statistic", ["var", "std"])
def test_normsoftmax_spread_of_two_keys_is_unbiased_with_and_without_a_mask(statistic):
    """Two (valid) keys are the smallest case where the unbiased divisor count - 1 differs from count and from 2."""
    backend = attention.create(f"normsoftmax_{statistic}", max_temperature=100.0)  # the cap never binds here
    two = 3 * _randn(1, 2, 4, 2, seed=2)
    want = normsoftmax_reference(two[0].numpy(), statistic, 100.0)
    np.testing.assert_allclose(backend.normalize(two)[0].numpy(), want, rtol=1e-12)
    scores = 3 * _randn(1, 1, 4, 5, seed=3)
    keep = np.array([True, False, True, False, False])  # two valid keys out of five
    mask = torch.from_numpy(keep)[None, None, None, :]
    want = normsoftmax_reference(scores[0, 0].numpy(), statistic, 100.0, allowed=keep)
    np.testing.assert_allclose(backend.normalize(scores, mask)[0, 0].numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("statistic", ["var", "std"])
def test_normsoftmax_on_its_own_caps_at_sqrt_of_the_key_count_when_queries_and_keys_differ(statistic):
    scores = 10 * _randn(1, 1, 3, 9, seed=4)  # spread far above any cap: the cap sqrt(9 keys) = 3 binds
    got = attention.create(f"normsoftmax_{statistic}").normalize(scores)
    want = normsoftmax_reference(scores[0, 0].numpy(), statistic, 3.0)
    np.testing.assert_allclose(got[0, 0].numpy(), want, rtol=1e-10)


@pytest.mark.parametrize("statistic", ["var", "std"])
def test_normsoftmax_in_float16_gives_uniform_weights_to_a_row_of_equal_scores_or_one_valid_key(statistic):
    """Zero spread sets the temperature to eps = 1e-6; an unshifted score of 3 / 1e-6 overflows float16 to inf and
    the softmax to NaN. The row's weights are uniform over its valid keys whatever the temperature."""
    backend = attention.create(f"normsoftmax_{statistic}")
    equal = torch.full((1, 1, 2, 4), 3.0, dtype=torch.float16)
    torch.testing.assert_close(backend.normalize(equal), torch.full_like(equal, 0.25))
    scores = torch.tensor([[[[3.0, -2.0, 5.0, 1.0]]]], dtype=torch.float16)
    one_key = torch.tensor([False, False, True, False])[None, None, None, :]
    got = backend.normalize(scores, one_key)
    torch.testing.assert_close(got, one_key.to(torch.float16).expand_as(scores))
    # and a generic float16 row agrees with the float64 computation to float16's precision
    generic = 3 * _randn(1, 2, 5, 6, seed=9)
    want = backend.normalize(generic)
    torch.testing.assert_close(backend.normalize(generic.half()).double(), want, atol=2e-3, rtol=1e-2)


@pytest.mark.parametrize("statistic", ["var", "std"])
def test_normsoftmax_gradients_are_finite_and_exact_when_a_row_has_one_key_or_equal_scores(statistic):
    """Query 0 of a causal mask sees one key: its spread is 0, and sqrt's derivative there is infinite; the row's
    weight is 1 whatever the temperature, so its true gradient through the temperature is 0, not NaN."""
    backend = attention.create(f"normsoftmax_{statistic}", causal=True)
    q, k, v = (_randn(1, 2, 5, 3, seed=s).requires_grad_() for s in (10, 11, 12))
    torch.autograd.gradcheck(backend, (q, k, v))
    equal = torch.zeros(1, 1, 3, 4, dtype=torch.float64, requires_grad=True)  # every row: equal scores
    mask = torch.tensor([True, True, False, True])[None, None, None, :]
    for m in (None, mask):
        (grad,) = torch.autograd.grad((backend.normalize(equal, m) * _randn(1, 1, 3, 4, seed=13)).sum(), equal)
        assert torch.isfinite(grad).all()


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_sigmoid_matrix_is_non_causal_by_default_uses_the_configured_scale_and_minus_log_n_keys():
    q, k = _randn(1, 2, 3, 4, seed=5), _randn(1, 2, 5, 4, seed=6)  # 3 queries, 5 keys: bias -log 5
    scores = (q @ k.mT).numpy()
    np.testing.assert_allclose(SigmoidAttention().attention_matrix(q, k).numpy(), _sigmoid(scores / 2 - math.log(5)))
    scaled = attention.create("sigmoid", scale=0.3).attention_matrix(q, k)
    np.testing.assert_allclose(scaled.numpy(), _sigmoid(0.3 * scores - math.log(5)))
    np.testing.assert_allclose(
        SigmoidAttention().normalize(torch.from_numpy(scores)).numpy(), _sigmoid(scores - math.log(5))
    )


def test_sigmoid_with_a_single_visible_key_has_bias_minus_log_one():
    scores = _randn(1, 1, 4, 4, seed=7)
    mask = torch.zeros(1, 1, 1, 4, dtype=torch.bool)
    mask[..., 2] = True  # N = 1 key visible: bias -log 1 = 0
    want = np.zeros((4, 4))
    want[:, 2] = _sigmoid(scores[0, 0, :, 2].numpy())
    np.testing.assert_allclose(attention.create("sigmoid").normalize(scores, mask)[0, 0].numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("n_q,n_k", [(3, 4), (4, 3)])
def test_normlin_refuses_a_query_or_key_count_other_than_its_token_count(n_q, n_k):
    backend = attention.create("normlin", num_tokens=4)
    with pytest.raises(ValueError, match=rf"num_tokens=4, got {n_q} queries and {n_k} keys"):
        backend.attention_matrix(_randn(1, 1, n_q, 2), _randn(1, 1, n_k, 2))
