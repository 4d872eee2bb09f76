"""Committed run records: what a finished campaign run leaves under ``results/<paper>/runs/<protocol>/``.

A record is small (no checkpoints) and self-contained: the unit's overrides and seed, the resolved config values
tables group by, provenance (git SHA, package versions, device), final / best / test metrics, the measured cost,
and a thinned learning curve. Records are written once, atomically, and never overwritten: tables are rebuilt from
them byte for byte on any machine.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from qdsbench.campaign.manifest import Unit
from qdsbench.config import flatten
from qdsbench.runrecord import METRICS_FILE, RUN_FILE, SUMMARY_FILE, atomic_write_json
from qdsbench.snapshot import read_snapshot

# Config sections that say what a run computes (tables group by these); paths, loggers and callbacks say where.
CONFIG_SECTIONS = ("data", "model", "attention", "task", "trainer", "seed", "experiment_name")
CURVE_POINTS = 60


def records_dir(results: Path, paper: str, protocol: str) -> Path:
    return Path(results) / paper / "runs" / protocol


def _config_values(run_dir: Path) -> dict[str, Any]:
    plain = OmegaConf.to_container(read_snapshot(run_dir), resolve=False)
    kept = {k: plain[k] for k in CONFIG_SECTIONS if k in plain}
    return {k: v for k, v in flatten(kept).items() if not (isinstance(v, str) and "${" in v)}


def thinned_curve(run_dir: Path, points: int = CURVE_POINTS) -> list[dict[str, Any]]:
    """Epoch-level metrics (one row per epoch with a validation metric), at most ``points`` rows."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    per_epoch: dict[int, dict[str, float]] = defaultdict(dict)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if not row.get("epoch") or not row.get("metric"):
                continue
            name = row["metric"]
            if name.startswith(("val/", "lr")) or name.endswith("_epoch") or name == "train/loss":
                try:
                    value = float(row["value"])
                except ValueError:
                    continue
                if math.isfinite(value):
                    per_epoch[int(row["epoch"])][name] = round(value, 6)
    epochs = sorted(e for e, m in per_epoch.items() if any(k.startswith("val/") for k in m))
    if len(epochs) > points:
        step = (len(epochs) - 1) / (points - 1)
        epochs = sorted({epochs[round(i * step)] for i in range(points)})
    return [{"epoch": e, **dict(sorted(per_epoch[e].items()))} for e in epochs]


def finished_run(unit_dir: Path) -> Path | None:
    """The finished run directory under a unit's work directory (resumes continue in the original one)."""
    for path in sorted(Path(unit_dir).rglob(RUN_FILE)):
        try:
            if json.loads(path.read_text()).get("status") == "finished" and (path.parent / SUMMARY_FILE).is_file():
                return path.parent
        except (OSError, ValueError):
            print(f"warning: skipping unreadable run record {path}", file=sys.stderr)
    return None


def build_record(unit: Unit, run_dir: Path) -> dict[str, Any]:
    run = json.loads((run_dir / RUN_FILE).read_text())
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    epochs = max(1, int(summary.get("epochs") or 0))  # Lightning's current_epoch after fit = epochs run
    fit = summary.get("fit_seconds")
    # older summaries of a resumed run time only its last attempt: its cost per epoch was not measured
    total = summary.get("fit_seconds_cumulative", None if run.get("resumed") else fit)
    final = dict(summary.get("final", {}))
    for index, layer in enumerate(run.get("attention_health") or []):  # P of static normalisers at initialisation
        final |= {f"init/layer{index}/{k}": v for k, v in layer.items()}
    return {
        "uid": unit.uid,
        "paper": unit.paper,
        "protocol": unit.protocol,
        "experiment": unit.name,
        "overrides": list(unit.overrides),
        "seed": unit.seed,
        "tables": list(unit.tables),
        "status": run.get("status"),
        "config": _config_values(run_dir),
        "metrics": {
            "final": final,
            "test": summary.get("test", {}),
            "best": summary.get("best", {}).get("score"),
            "monitor": summary.get("best", {}).get("monitor"),
        },
        "epochs": epochs,
        "global_step": summary.get("global_step"),
        "fit_seconds": total,
        "fit_seconds_last_attempt": fit,
        "seconds_per_epoch": round(total / epochs, 2) if total else None,
        "num_parameters": summary.get("num_parameters"),
        "resumed": len(run.get("resumed", [])),
        "git": run.get("git"),
        "packages": run.get("packages"),
        "device": run.get("device"),
        "start_time": run.get("start_time"),
        "end_time": run.get("end_time"),
        "curve": thinned_curve(run_dir),
    }


def write_record(results: Path, record: dict[str, Any]) -> Path | None:
    """Write a new record; an existing one is never replaced (returns None then)."""
    path = records_dir(results, record["paper"], record["protocol"]) / f"{record['uid']}.json"
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)
    return path


def load_records(results: Path, paper: str, protocol: str) -> dict[str, dict[str, Any]]:
    """uid -> record; unreadable files are skipped with a one-line warning naming each."""
    out = {}
    root = records_dir(results, paper, protocol)
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            out[record["uid"]] = record
        except (OSError, ValueError, KeyError) as err:
            print(f"warning: skipping unreadable campaign record {path}: {err}", file=sys.stderr)
    return out


def metric(record: dict[str, Any], name: str) -> float | None:
    """A metric by name: the test section wins over the final (last validation) one."""
    for section in ("test", "final"):
        value = record["metrics"].get(section, {}).get(name)
        if value is not None:
            return float(value)
    return None
