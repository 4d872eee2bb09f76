"""The campaign tables of ``results/<paper>/`` (qdsbench.campaign.tables) for the per-paper pages of the report."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import pandas as pd

MAX_NOTE_LINES = 8
MAX_FIGURE_BYTES = 2_000_000


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and (math.isnan(value) or math.isinf(value)) else value


def _title_and_notes(md: Path, fallback: str) -> tuple[str, list[str]]:
    """The markdown twin's title and the prose under it (protocol, seeds, what n and the verdict mean)."""
    if not md.is_file():
        return fallback, []
    lines = md.read_text().splitlines()
    title = lines[0].lstrip("# ").strip() if lines else fallback
    notes = []
    for line in lines[1:]:
        if line.startswith("|"):
            break
        if line.strip():
            notes.append(line.strip())
    return title, notes[:MAX_NOTE_LINES]


def paper_tables(results_dir: Path) -> list[dict[str, Any]]:
    tables = []
    for expected in sorted(Path(results_dir).glob("*/expected.csv")):
        for path in sorted(expected.parent.glob("*.csv")):
            if path.name == "expected.csv" or path.name.startswith("expressivity"):
                continue
            frame = pd.read_csv(path)
            if not any(c.endswith(":verdict") for c in frame.columns):  # campaign tables only
                continue
            title, notes = _title_and_notes(path.with_suffix(".md"), path.stem)
            # the table drawn (figure: true) and its forecasts vs truth (the olinear predictions stage)
            figures = sorted(path.parent.glob(f"{path.stem}_vs_*.png")) + sorted(
                path.parent.glob(f"{path.stem}_predictions.png")
            )
            tables.append(
                {
                    "paper": expected.parent.name,
                    "name": path.stem,
                    "title": title,
                    "notes": notes,
                    "columns": list(frame.columns),
                    "rows": [[_clean(v) for v in row] for row in frame.itertuples(index=False)],
                    "figures": [
                        {"name": f.name, "data": base64.b64encode(f.read_bytes()).decode()}
                        for f in figures
                        if f.stat().st_size < MAX_FIGURE_BYTES
                    ],
                }
            )
    return tables
