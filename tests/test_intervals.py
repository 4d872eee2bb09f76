"""Accuracy intervals: the Wilson limits against the textbook closed form, and both intervals against what defines
them, their coverage of the true value over many simulated test sets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qdsbench.intervals import paired_difference, wilson

Z95 = 1.959963984540054


def test_wilson_is_the_closed_form_score_interval():
    for k, n in ((0, 10), (3, 10), (481, 500), (9672, 10000), (10, 10)):
        p = k / n
        centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2))
        got = wilson(k, n)
        assert got.estimate == p
        assert got.low == pytest.approx(centre - half, abs=1e-9)
        assert got.high == pytest.approx(centre + half, abs=1e-9)


def test_wilson_refuses_an_empty_test_set():
    with pytest.raises(ValueError, match="trials=0"):
        wilson(0, 0)


def _simulated_tables(cells: list[float], n: int, reps: int) -> np.ndarray:
    return np.random.default_rng(0).multinomial(n, cells, size=reps)


@pytest.mark.parametrize("cells", [(0.85, 0.05, 0.02, 0.08), (0.40, 0.10, 0.10, 0.40), (0.95, 0.0, 0.03, 0.02)])
def test_paired_difference_covers_the_true_difference_about_95_percent(cells):
    """Cells: P(both right), P(only a), P(only b), P(neither). Newcombe's method 10 is close to nominal here."""
    truth = cells[1] - cells[2]
    tables = _simulated_tables(list(cells), 400, 2000)
    hits = 0
    for both, only_a, only_b, neither in tables:
        ci = paired_difference(int(both), int(only_a), int(only_b), int(neither))
        assert ci.low <= ci.estimate <= ci.high
        assert ci.estimate == pytest.approx((only_a - only_b) / 400)
        hits += ci.low <= truth <= ci.high
    assert 0.93 <= hits / len(tables) <= 0.975


def test_paired_interval_is_narrower_than_independent_intervals_when_the_models_agree():
    """Same accuracies (0.90 and 0.88), one pair of models agreeing on all but 20 of 1000 items: the paired interval
    must be far narrower than the one that ignores the pairing (phi = 0, Newcombe's unpaired method)."""
    paired = paired_difference(both=880, only_a=20, only_b=0, neither=100)
    a, b = wilson(900, 1000), wilson(880, 1000)
    unpaired_width = math.hypot(a.estimate - a.low, b.high - b.estimate) + math.hypot(
        a.high - a.estimate, b.estimate - b.low
    )
    assert paired.estimate == pytest.approx(0.02)
    assert paired.high - paired.low < 0.5 * unpaired_width
    assert paired.low > 0  # 20 discordant images, all one way: a is better


def test_wilson_covers_a_proportion_about_95_percent():
    counts = np.random.default_rng(1).binomial(300, 0.97, size=2000)
    hits = sum(wilson(int(k), 300).low <= 0.97 <= wilson(int(k), 300).high for k in counts)
    assert 0.93 <= hits / len(counts) <= 0.975


def test_a_weak_positive_association_counts_as_none():
    """Newcombe's method 10 counts a positive both*neither - only_a*only_b only beyond n/2: here it is 2 <= 6/2, so
    the paired interval is the unpaired square-and-add one."""
    paired = paired_difference(both=3, only_a=1, only_b=1, neither=1)
    a = b = wilson(4, 6)
    assert paired.low == pytest.approx(-math.hypot(a.estimate - a.low, b.high - b.estimate))
    assert paired.high == pytest.approx(math.hypot(a.high - a.estimate, b.estimate - b.low))


def test_a_strong_positive_association_is_shrunk_by_half_the_sample():
    """both*neither - only_a*only_b = 9 > 7/2: phi uses 9 - 3.5 over the margins' root (4*3*3*4 = 144)."""
    paired = paired_difference(both=3, only_a=1, only_b=0, neither=3)
    a, b, phi = wilson(4, 7), wilson(3, 7), (9 - 3.5) / 12
    da, ub = a.estimate - a.low, b.high - b.estimate
    assert paired.low == pytest.approx(1 / 7 - math.sqrt(da**2 - 2 * phi * da * ub + ub**2))
