"""Task configs written before the one task base (a flat ``task.lr``, ``lr_schedule``, ...) read in today's shape,
so run directories from then still load: qdsbench-eval, analyze and the long-context evaluation rebuild the task
from the run's own config snapshot."""

from __future__ import annotations

from typing import Any


def _forecasting(old: dict[str, Any]) -> dict[str, Any]:
    optimizer = {"name": "adam", "lr": old.pop("lr", 5e-4)}
    return {"optimizer": optimizer, "scheduler": {"name": old.pop("lr_schedule", "type1")}, **old}


def _language_model(old: dict[str, Any]) -> dict[str, Any]:
    optimizer = {"name": "adamw", "lr": old.pop("lr", 1e-3), "weight_decay": old.pop("weight_decay", 0.01)}
    scheduler = {"name": "lm_cosine", "interval": "step", "min_lr_ratio": old.pop("min_lr_ratio", 0.1)}
    return {"optimizer": optimizer, "scheduler": scheduler, **old}


UPGRADES = {"forecasting": _forecasting, "language_model": _language_model}


def upgrade(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` (the task node without its name) in today's shape; already-new options come back unchanged."""
    if name not in UPGRADES or "optimizer" in options:
        return options
    return UPGRADES[name](dict(options))
