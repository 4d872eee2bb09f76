"""The run record: the files in every run directory that reports and resumes trust.

``run.json`` (identity, provenance, status), ``metrics.csv`` (long-form history, appended as training goes, so a
killed run keeps what it logged) and ``summary.json`` (final and best metrics). JSON files are written
atomically (temp file + rename) so a crash never leaves half a record.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import subprocess
import time
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from qdsbench.atomic import RunRecordWriteError, atomic_write_json, atomic_write_text  # noqa: F401 (re-exported)
from qdsbench.errors import RunDirectoryInUseError

RUN_FILE, SUMMARY_FILE, METRICS_FILE = "run.json", "summary.json", "metrics.csv"
TRACKED_PACKAGES = (
    "torch",
    "torchvision",
    "lightning",
    "hydra-core",
    "omegaconf",
    "timm",
    "qiskit",
    "qiskit-aer",
    "wandb",
    "numpy",
    "qdsbench",
)
# Keys that say where or how a run is recorded, not what it computes: left out of the config hash.
HASH_EXCLUDED_KEYS = (
    "_command",
    "_sweep",
    "paths",
    "logger",
    "callbacks",
    "hydra",
    "resume",
    "ckpt_path",
    "tags",
    "extras",
)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def config_hash(cfg: DictConfig) -> str:
    plain = OmegaConf.to_container(cfg, resolve=False)
    for key in HASH_EXCLUDED_KEYS:
        plain.pop(key, None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def device_info() -> dict[str, Any]:
    import torch

    info = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def path_in_run(path: str | Path | None, run_dir: str | Path) -> str | None:
    """A file inside the run directory as a path relative to it, so that a moved or copied run names its own
    files (a path outside the run stays absolute)."""
    if not path:
        return None
    try:
        return Path(path).resolve().relative_to(Path(run_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve_in_run(path: str | Path | None, run_dir: str | Path, recorded_run_dir: str | None = None) -> Path | None:
    """A path from a run record as a file of ``run_dir``: relative paths are joined to it; absolute ones (records
    written before paths were relative) are re-rooted there when they lie under the directory the record was
    written in, so a copy never reads the original's files."""
    if not path:
        return None
    path = Path(path)
    if not path.is_absolute():
        return Path(run_dir) / path
    if recorded_run_dir:
        try:
            return Path(run_dir) / path.relative_to(recorded_run_dir)
        except ValueError:
            pass
    return path


_HELD_LOCKS: dict[str, Any] = {}


def lock_run_dir(run_dir: Path) -> None:
    """Hold an exclusive lock on a run directory for the life of this process: a second process that wants the
    same run (two ``resume=auto`` started together) refuses with one line instead of interleaving its history."""
    import fcntl

    key = str(Path(run_dir).resolve())
    if key in _HELD_LOCKS:
        return
    handle = open(Path(run_dir) / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise RunDirectoryInUseError(
            f"run directory {run_dir} is in use by another process (pid {owner}); nothing was changed there"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _HELD_LOCKS[key] = handle


class RunRecord:
    """Creates and updates run.json; refuses to reuse a directory that already holds a run record."""

    def __init__(self, run_dir: Path, payload: dict[str, Any]):
        self.run_dir, self.payload = run_dir, payload

    @classmethod
    def start(cls, run_dir: str | Path, cfg: DictConfig, repo: str | Path = ".") -> RunRecord:
        run_dir = Path(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunRecordWriteError(err.errno, f"cannot create run directory {run_dir}: {err.strerror}") from err
        lock_run_dir(run_dir)
        existing = run_dir / RUN_FILE
        if existing.exists():
            status = json.loads(existing.read_text()).get("status", "unknown")
            raise RunDirectoryInUseError(
                f"run directory {run_dir} already holds a run record (status {status}); "
                "nothing was changed there: pick a new hydra.run.dir or resume that run"
            )
        payload = {
            "run_id": uuid.uuid4().hex[:12],
            "experiment": cfg.get("experiment_name") or cfg.get("task_name", "train"),
            "config_hash": config_hash(cfg),
            "seed": cfg.get("seed"),
            "git": git_state(Path(repo)),
            "packages": package_versions(),
            "device": device_info(),
            "command": cfg.get("_command"),
            "sweep": OmegaConf.to_container(cfg._sweep) if cfg.get("_sweep") else None,
            "start_time": now_iso(),
            "end_time": None,
            "status": "running",
            "error": None,
            "checkpoints": {"best": None, "last": None},
            "run_dir": str(run_dir.resolve()),
        }
        record = cls(run_dir, payload)
        record.save()
        return record

    @classmethod
    def load(cls, run_dir: str | Path) -> RunRecord:
        run_dir = Path(run_dir)
        return cls(run_dir, json.loads((run_dir / RUN_FILE).read_text()))

    def save(self) -> None:
        atomic_write_json(self.run_dir / RUN_FILE, self.payload)

    def update(self, **fields: Any) -> None:
        self.payload.update(fields)
        self.save()

    def finish(self, status: str, error: BaseException | None = None) -> None:
        fields: dict[str, Any] = {"status": status, "end_time": now_iso()}
        if error is not None:
            fields["error"] = f"{type(error).__name__}: {error}"
        self.update(**fields)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir / SUMMARY_FILE, summary)


class RunRecordLogger(Logger):
    """A Lightning logger appending every logged scalar to ``metrics.csv`` as (step, epoch, metric, value, time)."""

    FIELDS = ("step", "epoch", "metric", "value", "wall_time")

    def __init__(self, run_dir: str | Path, logged: set[tuple[str, str]] | None = None, elapsed: float = 0.0):
        """``logged``: the (step, metric) pairs a resumed run's history already holds at its checkpoint step (the
        resumed run logs some again, such as the learning rate); ``elapsed``: the wall time it continues from."""
        super().__init__()
        self._path = Path(run_dir) / METRICS_FILE
        self._start = time.time() - elapsed
        self._logged = set(logged or ())
        self.last_values: dict[str, float] = {}

    @property
    def name(self) -> str:
        return "run_record"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self._path.parent)

    @property
    @rank_zero_experiment
    def experiment(self) -> None:
        return None

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:  # the .hydra/ snapshot already holds them
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        new_file = not self._path.exists()
        epoch = metrics.get("epoch")
        elapsed = round(time.time() - self._start, 3)
        with open(self._path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new_file:
                writer.writerow(self.FIELDS)
            for key, value in metrics.items():
                if key == "epoch":
                    continue
                value = float(value)
                self.last_values[key] = value
                if ("" if step is None else str(step), key) in self._logged:
                    continue
                writer.writerow((step, None if epoch is None else int(epoch), key, value, elapsed))


class NullRecord:
    """The record of a non-zero DDP rank: rank 0 alone writes run files."""

    payload: dict[str, Any] = {}

    def update(self, **fields: Any) -> None:
        pass

    def finish(self, status: str, error: BaseException | None = None) -> None:
        pass

    def write_summary(self, summary: dict[str, Any]) -> None:
        pass
