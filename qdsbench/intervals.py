"""Confidence intervals for accuracies measured on one test set.

A zero-shot conversion is evaluated on the same images as the model it came from, so the two accuracies are paired:
their difference has an interval built from the discordant images (Newcombe 1998, method 10: Wilson score limits for
each accuracy, combined with the phi correlation of the paired 2x2 table), much narrower than two independent
intervals would suggest when the models agree on most images. Wilson limits come from scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import binomtest


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def format(self, digits: int = 4) -> str:
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def wilson(successes: int, trials: int, level: float = 0.95) -> Interval:
    """Wilson score interval of a proportion (successes of trials)."""
    if trials <= 0:
        raise ValueError(f"trials={trials}: a proportion needs at least one trial")
    ci = binomtest(successes, trials).proportion_ci(confidence_level=level, method="wilson")
    return Interval(successes / trials, float(ci.low), float(ci.high))


def paired_difference(both: int, only_a: int, only_b: int, neither: int, level: float = 0.95) -> Interval:
    """Interval of accuracy(a) - accuracy(b) over the same items (Newcombe's method 10).

    ``both``: items both get right; ``only_a`` / ``only_b``: items only a / only b gets right; ``neither``."""
    n = both + only_a + only_b + neither
    a_right, b_right = both + only_a, both + only_b
    pa, pb = wilson(a_right, n, level), wilson(b_right, n, level)
    margins = a_right * (n - a_right) * b_right * (n - b_right)
    cross = both * neither - only_a * only_b
    # Newcombe's correction: a positive association counts only beyond n/2 (a negative one counts in full)
    cross = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = cross / math.sqrt(margins) if margins else 0.0
    d = pa.estimate - pb.estimate
    below_a, above_a = pa.estimate - pa.low, pa.high - pa.estimate
    below_b, above_b = pb.estimate - pb.low, pb.high - pb.estimate
    low = d - math.sqrt(max(below_a**2 - 2 * phi * below_a * above_b + above_b**2, 0.0))
    high = d + math.sqrt(max(above_a**2 - 2 * phi * above_a * below_b + below_b**2, 0.0))
    return Interval(d, max(low, -1.0), min(high, 1.0))
