"""The table printed at the end of a run, so the result and where it lives are the last thing on screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def print_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    table = Table(title="qdsbench run summary", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for section in ("test", "final"):
        values = summary.get(section, {})
        for key, value in sorted(values.items()):
            if section == "final" and key.startswith("test/"):
                continue
            if _is_alias(key, values):
                continue
            table.add_row(f"{section}: {key}" if section == "final" else key, f"{value:.4f}")
    table.add_row("epochs", str(summary.get("epochs")))
    table.add_row("fit time (s)", f"{summary.get('fit_seconds', 0):.1f}")
    table.add_row("parameters", f"{summary.get('num_parameters', 0):,}")
    console = Console()
    console.print(table)
    console.print(f"run directory: [bold]{run_dir}[/bold]")


def _is_alias(key: str, values: dict[str, Any]) -> bool:
    """Lightning logs a metric with on_step and on_epoch as ``m_step`` and ``m_epoch`` beside ``m``: show ``m`` once."""
    for suffix in ("_step", "_epoch"):
        if key.endswith(suffix) and key[: -len(suffix)] in values:
            return True
    return False
