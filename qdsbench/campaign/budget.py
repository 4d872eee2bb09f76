"""When a unit of work may start: its estimate, with a margin, must fit in what is left of the budget.

A run cut by the budget is lost when the next session starts on a fresh checkout (only finished records are
committed), and the estimates come from records made on other machines. Measured: the static QontOT depth-2 cell
ran at 97 s per epoch on one session's machine and 117-127 s on the next; the five depth-1 seeds' fits spread from
2157 s to 3229 s, 1.33x their mean (which is the estimate). The runner (runs) and incremental stages (pieces) use
the same rule.
"""

from __future__ import annotations

BUDGET_MARGIN = 1.3


def fits_in_budget(estimate_s: float | None, left_s: float) -> bool:
    """Whether work estimated at ``estimate_s`` seconds should start with ``left_s`` left (no estimate yet: start
    it, its first record measures the cell)."""
    return estimate_s is None or BUDGET_MARGIN * estimate_s <= left_s
