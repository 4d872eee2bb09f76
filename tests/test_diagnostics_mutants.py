"""Diagnostics and health-check holes found by mutation testing, closed against the definitions written out in NumPy
or in closed form, matrix by matrix: the effective rank as exp of the entropy of the singular values normalised to
sum 1 (so blind to the matrix's scale), identity and uniform distances as the max-abs entry of each matrix averaged
over the matrices, the sample spread as the unbiased standard deviation across samples.
"""

import math

import numpy as np
import pytest
import torch

from qdsbench import attention
from qdsbench.attention.diagnostics import attention_diagnostics
from qdsbench.attention.health import degenerate, matrix_stats


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _effective_rank(p: np.ndarray) -> float:
    """Mean over matrices of exp(-sum w log w), w = singular values / their sum."""
    ranks = []
    for m in p.reshape(-1, *p.shape[-2:]):
        s = np.linalg.svd(m, compute_uv=False)
        w = s / s.sum()
        ranks.append(math.exp(-sum(x * math.log(x) for x in w if x > 0)))
    return float(np.mean(ranks))


def test_effective_rank_of_sigmoid_matrices_with_small_entries_is_that_of_their_normalised_singular_values():
    """Sigmoid attention is not row-stochastic: with a strongly negative bias its singular values sum to well below 1,
    and the diagnostics the callback logs for it must still normalise them to sum 1, whatever P's scale."""
    q, k = _randn(2, 2, 5, 4, seed=1), _randn(2, 2, 7, 4, seed=2)
    p = attention.create("sigmoid", bias=-5.0).attention_matrix(q, k)
    nuclear = np.linalg.svd(p.numpy(), compute_uv=False).sum(-1)
    assert nuclear.max() < 0.5  # singular values summing below 1: the case this test is about
    want = _effective_rank(p.numpy())
    assert attention_diagnostics(p)["effective_rank"] == pytest.approx(want, rel=1e-10)
    assert attention_diagnostics(10 * p)["effective_rank"] == pytest.approx(want, rel=1e-10)


def _mixtures(weights, t):
    """(len(weights), t, t): (1 - a) I + a U, whose max-abs distances are a (1 - 1/t) to I and (1 - a)(1 - 1/t) to U."""
    eye, uniform = torch.eye(t, dtype=torch.float64), torch.full((t, t), 1.0 / t, dtype=torch.float64)
    return torch.stack([(1 - a) * eye + a * uniform for a in weights])


def test_identity_and_uniform_distances_are_per_matrix_max_abs_averaged_over_matrices():
    """Three matrices at different distances in a (batch, heads) layout: the mean of the per-matrix maxima, not the
    maximum over the whole batch."""
    weights, t = [0.02, 0.5, 0.9, 0.3, 0.7, 0.1], 4
    p = _mixtures(weights, t).reshape(2, 3, t, t)
    stats = matrix_stats(p)
    assert stats["identity_distance"] == pytest.approx(np.mean([a * (1 - 1 / t) for a in weights]), rel=1e-12)
    assert stats["uniform_distance"] == pytest.approx(np.mean([(1 - a) * (1 - 1 / t) for a in weights]), rel=1e-12)


def test_a_batch_is_identity_degenerate_when_its_matrices_are_so_on_average():
    """Nine identity matrices and one at max-abs distance 0.3: the mean of the maxima, 0.03, is within 0.05 of I (the
    stop names the batch degenerate), though the largest single distance is not."""
    stats = matrix_stats(_mixtures([0.0] * 9 + [0.4], 4))
    assert stats["identity_distance"] == pytest.approx(0.03, rel=1e-12)
    assert degenerate(stats) == "identity"


def test_sample_spread_of_exactly_two_matrices_is_their_unbiased_standard_deviation():
    """Two samples are the smallest batch with a spread: std with ddof=1 is |P1 - P2| / sqrt 2 entry by entry."""
    p = torch.softmax(2 * _randn(2, 5, 5, seed=3), -1)
    want = float(np.mean(np.abs(p[0].numpy() - p[1].numpy())) / math.sqrt(2))
    assert want == pytest.approx(float(np.std(p.numpy(), axis=0, ddof=1).mean()), rel=1e-12)
    assert want > 0.01
    assert matrix_stats(p)["sample_spread"] == pytest.approx(want, rel=1e-12)
    assert matrix_stats(p[:1])["sample_spread"] == 0.0  # one sample: no spread to measure
