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
        for key, value in sorted(summary.get(section, {}).items()):
            if section == "final" and key.startswith("test/"):
                continue
            table.add_row(f"{section}: {key}" if section == "final" else key, f"{value:.4f}")
    table.add_row("epochs", str(summary.get("epochs")))
    table.add_row("fit time (s)", f"{summary.get('fit_seconds', 0):.1f}")
    table.add_row("parameters", f"{summary.get('num_parameters', 0):,}")
    console = Console()
    console.print(table)
    console.print(f"run directory: [bold]{run_dir}[/bold]")
