"""Collect run records under log directories into two pandas frames.

runs: one row per run directory: ``cfg.<dotted key>`` config columns, status, seed, error, ``metric.<name>`` from
summary.json, and dataset/model/backend shortcuts. history: long form (run_dir, step, epoch, metric, value) from
metrics.csv. Running, failed and partial runs are kept; a run that only has W&B offline files is read from them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

from qdsbench.config import flatten
from qdsbench.paper.records import load_run
from qdsbench.report.wandb_offline import read_wandb_run

UNREADABLE = (OSError, ValueError, KeyError, YAMLError, OmegaConfBaseException, pd.errors.ParserError)
SHORTCUTS = {"dataset": "cfg.data.name", "model": "cfg.model.name", "backend": "cfg.attention.name"}


def _wandb_only(run_dir: Path) -> tuple[dict, list[dict]] | None:
    files = sorted(run_dir.glob("wandb/*run-*/run-*.wandb"))
    if not files:
        return None
    parsed = read_wandb_run(files[-1])
    row = {"run_dir": str(run_dir), "status": "unknown (W&B only)", "seed": parsed["config"].get("seed")}
    row.update({f"cfg.{k}": v for k, v in flatten(parsed["config"]).items()})
    row.update({f"metric.{k}": v for k, v in parsed["summary"].items() if isinstance(v, (int, float))})
    history = [{"run_dir": str(run_dir), "step": h.get("trainer/global_step", h.get("_step")), "epoch": h.get("epoch"),
                "metric": k, "value": v}
               for h in parsed["history"] for k, v in h.items()
               if isinstance(v, (int, float)) and not k.startswith("_") and k not in ("epoch", "trainer/global_step")]
    return row, history


def _history(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "metrics.csv"
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=["run_dir", "step", "epoch", "metric", "value"])
    frame = pd.read_csv(path)
    frame.insert(0, "run_dir", str(run_dir))
    return frame[["run_dir", "step", "epoch", "metric", "value"]]


def collect(log_dirs: str | Path | list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    roots = [Path(p) for p in ([log_dirs] if isinstance(log_dirs, (str, Path)) else log_dirs)]
    rows, histories = [], []
    seen: set[Path] = set()
    for root in roots:
        candidates = {p.parent for p in root.rglob("run.json")} | {p.parent.parent.parent for p in
                                                                   root.rglob("wandb/*run-*/run-*.wandb")}
        for run_dir in sorted(candidates):
            if run_dir in seen:
                continue
            seen.add(run_dir)
            try:  # one half-written or non-UTF-8 file must not block the dashboard: skip that run, say which
                row = load_run(run_dir)
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
                histories.append(pd.DataFrame(wandb[1], columns=["run_dir", "step", "epoch", "metric", "value"]))
    runs = pd.DataFrame(rows)
    for short, column in SHORTCUTS.items():
        runs[short] = runs[column] if column in runs else None
    history = (pd.concat([h for h in histories if len(h)], ignore_index=True) if any(len(h) for h in histories)
               else pd.DataFrame(columns=["run_dir", "step", "epoch", "metric", "value"]))
    return runs, history


def grouped(runs: pd.DataFrame, metric: str, by: tuple[str, ...] = ("dataset", "model", "backend")) -> pd.DataFrame:
    """mean, std (sample) and seed count of a metric over finished runs, per group."""
    column = f"metric.{metric}"
    if column not in runs or runs.empty:
        return pd.DataFrame(columns=[*by, "mean", "std", "n"])
    done = runs[(runs["status"] == "finished") & runs[column].notna()]
    frame = done.groupby(list(by), dropna=False)[column].agg(["mean", "std", "count"]).reset_index()
    return frame.rename(columns={"count": "n"})
