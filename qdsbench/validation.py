"""Checks on a composed config that must fail before any data is read or any directory is written.

Option names and types are checked by each registry against its factory's signature; this module adds the
value ranges that signatures cannot express (every task's lr is ``task.optimizer.lr``), and checks that every
group's `name` is registered and that the task's optimiser and lr schedule names exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from qdsbench import attention, data, models, tasks
from qdsbench.errors import UnknownNameError
from qdsbench.tasks.base import OPTIMIZERS
from qdsbench.tasks.schedules import SCHEDULES


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _epochs(value: Any) -> bool:
    return value is None or (isinstance(value, int) and (value >= 1 or value == -1))


def _non_negative_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and value >= 0)


# dotted key -> (predicate, what a valid value looks like)
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "trainer.max_epochs": (_epochs, "an integer >= 1 (or -1 for unlimited)"),
    "trainer.min_epochs": (_non_negative_int, "an integer >= 0"),
    "data.batch_size": (_positive, "an integer > 0"),
    "data.eval_batch_size": (lambda v: v is None or _positive(v), "an integer > 0"),
    "data.num_workers": (_non_negative_int, "an integer >= 0"),
    "task.optimizer.lr": (_positive, "a number > 0"),
    "model.depth": (lambda v: v is None or _positive(v), "an integer > 0"),
    "model.embed_dim": (lambda v: v is None or _positive(v), "an integer > 0"),
    "model.num_heads": (lambda v: v is None or _positive(v), "an integer > 0"),
    "num_threads": (lambda v: v is None or _positive(v), "null or an integer > 0"),
}

GROUP_REGISTRIES = {"data": data.DATASETS, "model": models.MODELS, "attention": attention.BACKENDS, "task": tasks.TASKS}
# dotted key -> the names it may take, for names that are not a config group's
NAMES = {"task.optimizer.name": OPTIMIZERS, "task.scheduler.name": SCHEDULES}


def validate(cfg: DictConfig) -> None:
    for group, registry in GROUP_REGISTRIES.items():
        node = cfg.get(group)
        if node is not None and node.get("name") is not None:
            registry.get(node.name)  # unknown name -> one line with the valid choices
    for key, names in NAMES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value not in names:
            raise UnknownNameError(f"unknown {key} {value!r}; valid choices: {', '.join(names)}")
    for key, (predicate, expected) in RANGES.items():
        value = OmegaConf.select(cfg, key, default="__absent__")
        if value != "__absent__" and not predicate(value):
            raise ValueError(f"{key}={value!r} is out of range; expected {expected}")
    if cfg.get("seed") is not None and not isinstance(cfg.seed, int):
        raise ValueError(f"seed={cfg.seed!r} must be an integer or null")
    model = cfg.get("model")
    if model is not None and model.get("embed_dim") and model.get("num_heads"):
        if model.embed_dim % model.num_heads:
            raise ValueError(f"model.embed_dim={model.embed_dim} is not divisible by model.num_heads={model.num_heads}")
