"""A run's config snapshot (``.hydra/config.yaml``) read in today's config shape.

Evaluation, resume=auto, campaign records and the dashboard all read old run directories; this is the one place that
knows the shapes configs had before (a flat ``task.lr``, a model node carrying the whole data node), so a run from an
older checkout loads, resumes and groups exactly like one started today.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

SNAPSHOT = Path(".hydra") / "config.yaml"


def _forecasting_task(old: dict[str, Any]) -> dict[str, Any]:
    optimizer = {"name": "adam", "lr": old.pop("lr", 5e-4)}
    return {"optimizer": optimizer, "scheduler": {"name": old.pop("lr_schedule", "type1")}, **old}


def _language_model_task(old: dict[str, Any]) -> dict[str, Any]:
    optimizer = {"name": "adamw", "lr": old.pop("lr", 1e-3), "weight_decay": old.pop("weight_decay", 0.01)}
    scheduler = {"name": "lm_cosine", "interval": "step", "min_lr_ratio": old.pop("min_lr_ratio", 0.1)}
    return {"optimizer": optimizer, "scheduler": scheduler, **old}


# Task nodes written before the one task base (tasks/base.py): their flat options, by task name.
TASK_UPGRADES = {"forecasting": _forecasting_task, "language_model": _language_model_task}


def upgrade_task(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` (the task node without its name) in today's shape; already-new options come back unchanged."""
    if name not in TASK_UPGRADES or "optimizer" in options:
        return options
    return TASK_UPGRADES[name](dict(options))


def upgrade_config(plain: dict[str, Any]) -> dict[str, Any]:
    """A whole (unresolved, plain) run config in today's shape: the task node upgraded, and the retired ``model.data``
    dropped (data now reaches models through the datamodule's model_inputs)."""
    plain = dict(plain)
    task = plain.get("task")
    if isinstance(task, dict) and "name" in task:
        options = {k: v for k, v in task.items() if k != "name"}
        plain["task"] = {"name": task["name"], **upgrade_task(task["name"], options)}
    if isinstance(plain.get("model"), dict):
        plain["model"] = {k: v for k, v in plain["model"].items() if k != "data"}
    return plain


def snapshot_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / SNAPSHOT


def read_snapshot(run_dir: str | Path) -> DictConfig:
    """The run's config in today's shape; one clear error when ``run_dir`` is not a qdsbench run directory."""
    path = snapshot_path(run_dir)
    if not path.is_file():
        raise ValueError(f"run_dir={run_dir} has no {SNAPSHOT}; pass a qdsbench run directory")
    try:
        plain = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as err:  # YAML syntax errors come in several types
        raise ValueError(f"{path} is not a readable config snapshot ({type(err).__name__}: {err})") from err
    if not isinstance(plain, dict):
        raise ValueError(f"{path} is not a config mapping")
    return OmegaConf.create(upgrade_config(plain))
