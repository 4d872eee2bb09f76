"""A spread that was never measured is never printed: a one-seed cell shows its value and n, no "± 0.0".

Through the campaign writer's own cell pipeline (seed_stats -> cell -> rendered text), and over every committed
results table. The archived single-seed tables under results/olinear/legacy_cpu_budget/ were written by an earlier
writer and are kept byte for byte as records of those sessions; they are the only files that still say "± 0.0 (n=1)".
"""

import re

from conftest import REPO_ROOT

from qdsbench.campaign import tables

ONE_SEED_SPREAD = re.compile(r"± ?[0-9.]+ \(n=1[)/]")


def test_a_one_seed_cell_renders_without_a_spread():
    filling = tables._ours(tables._cell({2023: 2.0}, 5, None, 4))
    complete = tables._ours(tables._cell({2023: 2.0}, 1, None, 4))
    assert (filling, complete) == ("2.0 (n=1/5)", "2.0 (n=1)")
    assert tables._ours(tables._cell({2023: 2.0, 2024: 2.0}, 2, None, 4)) == "2.0 ± 0.0 (n=2)"  # measured: 0


def test_no_committed_table_prints_a_spread_for_one_seed():
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in sorted((REPO_ROOT / "results").rglob("*.md"))
        if not {"legacy_cpu_budget", "quality"} & set(path.parts)  # quality/ quotes the old form
        and ONE_SEED_SPREAD.search(path.read_text())
    ]
    assert offenders == []
    legacy = sorted((REPO_ROOT / "results" / "olinear" / "legacy_cpu_budget").glob("*.md"))
    assert legacy and any(ONE_SEED_SPREAD.search(p.read_text()) for p in legacy)  # the regex does find the old form
