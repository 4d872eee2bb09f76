"""Read finished run directories into flat rows: config values by dotted key, status and summary metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from qdsbench.config import flatten
from qdsbench.snapshot import read_snapshot, snapshot_path


def load_run(run_dir: Path) -> dict[str, Any] | None:
    """One row per run; None for directories that are not (yet) qdsbench runs."""
    record_path, config_path = run_dir / "run.json", snapshot_path(run_dir)
    if not record_path.is_file() or not config_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    config = OmegaConf.to_container(read_snapshot(run_dir), resolve=False)
    row = {f"cfg.{k}": v for k, v in flatten(config).items()}
    row.update(
        {
            "run_dir": str(run_dir),
            "status": record.get("status"),
            "seed": record.get("seed"),
            "error": record.get("error"),
            "experiment": record.get("experiment"),
        }
    )
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        for section in ("final", "test"):
            row.update({f"metric.{k}": v for k, v in summary.get(section, {}).items()})
        row["best_score"] = (summary.get("best") or {}).get("score")
        row["fit_seconds"] = summary.get("fit_seconds")
    return row


def load_runs(log_dir: str | Path) -> list[dict[str, Any]]:
    root = Path(log_dir)
    rows = [load_run(p.parent) for p in sorted(root.rglob("run.json"))] if root.is_dir() else []
    return [r for r in rows if r is not None]
