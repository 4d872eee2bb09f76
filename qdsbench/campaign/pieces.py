"""A long stage as pieces: each piece's record is written (atomically) when the piece completes, so the stage resumes
where it stopped, in another session or on another machine, once its finished pieces are committed.

The campaign runner gives an incremental stage (a manifest stage with ``progress:``) its deadline in
``QDSBENCH_STAGE_DEADLINE`` (Unix seconds); the stage starts a piece only if the piece's estimate fits before it
(with budget.py's margin), and rewrites the progress file after each piece (pieces done, total, seconds left by
its estimate), which ``qdsbench-reproduce --plan`` reads. A stage that stops at its deadline exits 0 with its final
outputs not yet written: the runner then records nothing and the stage stays ``partial``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qdsbench.atomic import atomic_write_text
from qdsbench.campaign.budget import fits_in_budget
from qdsbench.tables import read_csv, write_csv

DEADLINE_ENV = "QDSBENCH_STAGE_DEADLINE"


def deadline_from_env() -> float | None:
    value = os.environ.get(DEADLINE_ENV)
    return float(value) if value else None


class Pieces:
    """The pieces of one stage under ``directory`` (``<piece>.csv``), and its progress file."""

    def __init__(self, directory: Path, progress: Path, deadline: float | None = None):
        self.directory, self.progress, self.deadline = Path(directory), Path(progress), deadline

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.csv"

    def done(self, name: str) -> bool:
        return self.path(name).is_file()

    def rows(self, name: str) -> list[dict[str, Any]]:
        return read_csv(self.path(name))

    def fits(self, estimate_s: float | None) -> bool:
        """Whether a piece of about ``estimate_s`` seconds ends before the deadline, with the budget's margin (no
        deadline, no estimate: yes)."""
        return self.deadline is None or fits_in_budget(estimate_s, self.deadline - time.time())

    def write(self, name: str, rows: Sequence[dict[str, Any]]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return write_csv(self.path(name), list(rows), lineterminator="\r\n")

    def report(self, planned: Sequence[str], seconds_left: float | None) -> None:
        """Rewrite the progress file: which of the ``planned`` pieces are done, and the estimate of the rest."""
        done = sum(self.done(n) for n in planned)
        payload = {"done": done, "total": len(planned), "seconds_left": seconds_left}
        self.progress.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.progress, json.dumps(payload, indent=2) + "\n")


def read_progress(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
