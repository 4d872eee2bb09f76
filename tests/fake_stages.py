"""Stage functions for the campaign tests, run by the runner in a subprocess (tests/ on PYTHONPATH)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from qdsbench.campaign.pieces import Pieces, deadline_from_env

PLANNED = ("a", "b", "c")


def one_piece_per_call(argv: list[str]) -> None:
    """An incremental stage that, like one stopped by its deadline, finishes one piece per call (exit 0); the last
    call writes the final outputs. Exits 3 if the runner did not pass a deadline in the future."""
    out = Path(argv[argv.index("--out") + 1])
    deadline = deadline_from_env()
    if deadline is None or deadline <= time.time():
        sys.exit(3)
    pieces = Pieces(out / "smollm2_delta" / "pieces", out / "smollm2_delta" / "progress.json", deadline)
    todo = [name for name in PLANNED if not pieces.done(name)]
    pieces.write(todo[0], [{"piece": todo[0], "value": len(todo)}])
    pieces.report(PLANNED, seconds_left=100.0 * (len(todo) - 1))
    if len(todo) == 1:
        for suffix in (".csv", "_locality.csv", ".meta.json", ".md"):
            (out / f"smollm2_delta{suffix}").write_text("done\n")


def nothing(argv: list[str]) -> None:
    """A stage that exits 0 and writes nothing."""


def render_nothing(records: Path, out: Path) -> list[Path]:
    return []
