"""Find the run to continue: ``resume=auto`` (newest unfinished run with the same config hash) or a run directory."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from qdsbench.runrecord import METRICS_FILE, RUN_FILE, config_hash

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def _candidates(log_dir: Path) -> list[Path]:
    return [p.parent for p in log_dir.rglob(RUN_FILE)] if log_dir.is_dir() else []


def find_resumable(cfg: DictConfig) -> Path | None:
    """The newest run under ``paths.log_dir`` with this config hash, not finished, with a last checkpoint."""
    wanted = config_hash(cfg)
    best: tuple[str, Path] | None = None
    for run_dir in _candidates(Path(cfg.paths.log_dir)):
        try:
            record = json.loads((run_dir / RUN_FILE).read_text())
        except (OSError, ValueError) as err:  # half-written or non-UTF-8: not this run, but say so
            print(f"warning: resume=auto skips unreadable {run_dir / RUN_FILE}: {err}", file=sys.stderr)
            continue
        if record.get("status") == "finished":
            continue
        if record.get("config_hash") != wanted and _hash_in_todays_shape(run_dir) != wanted:
            continue
        if not (run_dir / LAST_CHECKPOINT).is_file():
            continue
        key = record.get("start_time") or ""
        if best is None or key > best[0]:
            best = (key, run_dir)
    return best[1] if best else None


def _hash_in_todays_shape(run_dir: Path) -> str | None:
    """The config hash a run started before a config-shape change would have today (snapshot.read_snapshot), so an
    interrupted run of an older checkout still resumes."""
    from qdsbench.snapshot import read_snapshot

    try:
        return config_hash(read_snapshot(run_dir))
    except ValueError:
        return None


def resolve_resume(cfg: DictConfig) -> Path | None:
    target = cfg.get("resume")
    if target in (None, False, "", "none"):
        return None
    if target == "auto":
        return find_resumable(cfg)
    run_dir = Path(str(target))
    if not (run_dir / RUN_FILE).is_file():
        raise ValueError(f"resume={target} is not a run directory (no {RUN_FILE}); use resume=auto or a run dir")
    if not (run_dir / LAST_CHECKPOINT).is_file():
        raise ValueError(f"resume={target} has no {LAST_CHECKPOINT} to continue from")
    return run_dir


def checkpoint_step(checkpoint: Path) -> int:
    return int(torch.load(checkpoint, map_location="cpu", weights_only=False).get("global_step", 0))


def truncate_history(run_dir: Path, step: int) -> tuple[set[tuple[str, str]], float]:
    """Drop history rows logged after the checkpoint: the resumed run logs those steps again.

    Returns the (step, metric) pairs kept at the checkpoint step, which the resumed run must not log a second time
    (the learning rate is logged again when the next epoch starts), and the wall time of the last kept row, from
    which the resumed run's wall_time continues."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return set(), 0.0
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return set(), 0.0
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0] != "" and int(r[0]) <= step]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(kept)
    os.replace(tmp, path)
    logged = {(r[0], r[2]) for r in kept[1:] if len(r) > 2 and r[0] == str(step)}
    times = [float(r[4]) for r in kept[1:] if len(r) > 4 and r[4] != ""]
    return logged, max(times, default=0.0)
