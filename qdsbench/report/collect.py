"""Collect run records under log directories into two pandas frames.

runs: one row per run directory: ``cfg.<dotted key>`` config columns, status, seed, error, experiment, config_hash,
command, overrides (the run's ``.hydra/overrides.yaml``), its sweep (dir, job), ``metric.<name>`` from summary.json,
and dataset/model/backend/task shortcuts; then :func:`qdsbench.report.groups.annotate` adds what makes runs comparable
(kind, hidden, group, group_label, name). history: long form (run_dir, step, epoch, metric, value) from metrics.csv.
Running, failed and partial runs are kept; a run that only has W&B offline files is read from them. Logger-internal
values (names starting with ``_``, such as W&B's ``_runtime``) are dropped.
"""

from __future__ import annotations

import io
import json
import shlex
import sys
from pathlib import Path

import pandas as pd
import yaml
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

from qdsbench.config import flatten
from qdsbench.paper.records import load_run
from qdsbench.report.groups import annotate, grouped  # noqa: F401 (grouped re-exported)
from qdsbench.report.wandb_offline import read_wandb_run

UNREADABLE = (OSError, ValueError, KeyError, YAMLError, OmegaConfBaseException, pd.errors.ParserError)
SHORTCUTS = {
    "dataset": "cfg.data.name",
    "model": "cfg.model.name",
    "backend": "cfg.attention.name",
    "task": "cfg.task.name",
}
HISTORY_COLUMNS = ["run_dir", "step", "epoch", "metric", "value"]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _public(values: dict) -> dict:
    return {k: v for k, v in values.items() if not str(k).startswith("_")}


def _record_extras(run_dir: Path) -> dict:
    """What run.json and .hydra/overrides.yaml say beyond load_run's row: identity, command line, sweep."""
    record = json.loads((run_dir / "run.json").read_text())
    sweep = record.get("sweep") or {}
    overrides_path = run_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.load(overrides_path.read_text(), Loader=_LOADER) if overrides_path.is_file() else None
    if not isinstance(overrides, list) and isinstance(record.get("command"), str):  # the command line says them too
        overrides = [t for t in shlex.split(record["command"])[1:] if "=" in t and not t.startswith("-")]
    return {
        "config_hash": record.get("config_hash"),
        "command": record.get("command"),
        "start_time": record.get("start_time"),
        "sweep_dir": sweep.get("dir"),
        "sweep_job": sweep.get("job"),
        "overrides": [str(o) for o in overrides] if isinstance(overrides, list) else None,
    }


def _wandb_only(run_dir: Path) -> tuple[dict, list[dict]] | None:
    files = sorted(run_dir.glob("wandb/*run-*/run-*.wandb"))
    if not files:
        return None
    parsed = read_wandb_run(files[-1])
    config = _public(parsed["config"])
    row = {"run_dir": str(run_dir), "status": "unknown (W&B only)", "seed": config.get("seed"), "overrides": None}
    row.update({f"cfg.{k}": v for k, v in flatten(config).items()})
    row.update({f"metric.{k}": v for k, v in _public(parsed["summary"]).items() if isinstance(v, (int, float))})
    history = [
        {
            "run_dir": str(run_dir),
            "step": h.get("trainer/global_step", h.get("_step")),
            "epoch": h.get("epoch"),
            "metric": k,
            "value": v,
        }
        for h in parsed["history"]
        for k, v in h.items()
        if isinstance(v, (int, float)) and not k.startswith("_") and k not in ("epoch", "trainer/global_step")
    ]
    return row, history


def _history(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "metrics.csv"
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    raw = path.read_bytes()
    if not raw.endswith(b"\n"):  # a writer killed mid-row: keep the complete rows, say which file lost its last one
        print(
            f"warning: {path}: the last row is incomplete (a run killed while writing?); it is left out",
            file=sys.stderr,
        )
        raw = raw[: raw.rfind(b"\n") + 1]
    frame = pd.read_csv(io.BytesIO(raw))
    frame.insert(0, "run_dir", str(run_dir))
    frame = frame[HISTORY_COLUMNS]
    return frame[~frame["metric"].astype(str).str.startswith("_")]


def _inside_a_run(run_dir: Path, root: Path) -> bool:
    """A W&B directory below a run (``<run>/analysis/<time>/wandb``) belongs to that run: it is not a run itself."""
    return any(
        (parent / "run.json").is_file() for parent in run_dir.parents if parent == root or root in parent.parents
    )


def _candidates(root: Path) -> list[Path]:
    recorded = {p.parent for p in root.rglob("run.json")}
    wandb = {p.parent.parent.parent for p in root.rglob("wandb/*run-*/run-*.wandb")} - recorded
    return sorted(recorded | {d for d in wandb if not _inside_a_run(d, root)})


def collect(log_dirs: str | Path | list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    roots = [Path(p) for p in ([log_dirs] if isinstance(log_dirs, (str, Path)) else log_dirs)]
    rows, histories = [], []
    seen: set[Path] = set()
    for root in roots:
        for run_dir in _candidates(root):
            if run_dir in seen:
                continue
            seen.add(run_dir)
            try:  # one half-written or non-UTF-8 file must not block the dashboard: skip that run, say which
                row = load_run(run_dir)
                if row is not None:
                    row.update(_record_extras(run_dir))
                history = _history(run_dir) if row is not None else None
            except UNREADABLE as err:
                print(f"warning: skipping unreadable run {run_dir}: {type(err).__name__}: {err}", file=sys.stderr)
                continue
            if row is not None:
                rows.append(row)
                histories.append(history)
                continue
            wandb = _wandb_only(run_dir)
            if wandb is not None:
                rows.append(wandb[0])
                histories.append(pd.DataFrame(wandb[1], columns=HISTORY_COLUMNS))
    runs = pd.DataFrame(rows)
    runs = runs[[c for c in runs.columns if not c.startswith(("metric._", "cfg._"))]]
    for short, column in SHORTCUTS.items():
        runs[short] = runs[column] if column in runs else None
    history = (
        pd.concat([h for h in histories if len(h)], ignore_index=True)
        if any(len(h) for h in histories)
        else pd.DataFrame(columns=HISTORY_COLUMNS)
    )
    return annotate(runs), history
