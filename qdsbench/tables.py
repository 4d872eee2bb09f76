"""Writing tables: the one markdown renderer and the one atomic CSV / text writer of the package.

Campaign tables (:mod:`qdsbench.campaign.tables`), studies and benchmarks all write through these, so every
results file is complete or absent (temp file + rename), never half written.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from qdsbench.atomic import atomic_write_text


def fmt(value: Any, digits: int = 3, none: str = "—") -> str:
    """A cell: None/NaN as ``none`` (an em dash), floats with ``digits`` decimals, booleans as yes/no."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    labels: dict[str, str] | None = None,
    digits: int = 3,
    *,
    none: str = "—",
    cell: Callable[[Any], str] | None = None,
    escape_pipes: bool = False,
) -> str:
    """A GitHub markdown table of ``columns`` (headers renamed by ``labels``).

    Cells go through :func:`fmt` (``digits``, ``none``) unless ``cell`` formats them; ``escape_pipes`` writes a
    ``|`` inside a header or cell as ``\\|``.
    """
    labels = labels or {}
    cell = cell or (lambda value: fmt(value, digits, none))

    def text(value: str) -> str:
        return value.replace("|", "\\|") if escape_pipes else value

    lines = ["| " + " | ".join(text(labels.get(c, c)) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(text(cell(row.get(c))) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def csv_text(rows: Iterable[dict[str, Any]], fields: Sequence[str] | None = None, *, lineterminator: str = "\n") -> str:
    """CSV of ``rows``; the columns are ``fields`` or every key in first-seen order."""
    rows = list(rows)
    fields = list(fields) if fields else list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator=lineterminator, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(
    path: str | Path, rows: Iterable[dict[str, Any]], fields: Sequence[str] | None = None, *, lineterminator: str = "\n"
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, csv_text(rows, fields, lineterminator=lineterminator))
    return path


def read_csv(path: str | Path) -> list[dict[str, str | None]]:
    """Rows of a CSV this module wrote, every value as its text and an empty cell as None (what None was written as),
    so a table rendered from a committed CSV record shows exactly what it showed when measured."""
    with open(path, newline="") as fh:
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(fh)]


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample std; the std is None for a single value (a spread that was not measured)."""
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)
