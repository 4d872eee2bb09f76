"""The base of every task: one optimiser and LR schedule built from ``task.optimizer`` / ``task.scheduler``, one
finite-loss check, and train / val / test steps that all go through the subclass's ``step``.

``task.optimizer`` is ``{name, lr, <other options of the torch optimiser>}``; ``task.scheduler`` is ``{name,
interval (epoch | step, default epoch), <options of the schedule>}`` with the names in ``tasks/schedules.py``, or
absent for a constant lr.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from qdsbench.errors import NonFiniteLossError, UnknownNameError
from qdsbench.tasks.schedules import build_schedule, own_options

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
INTERVALS = ("epoch", "step")


class Task(pl.LightningModule):
    """Subclasses write ``step(batch, stage)``: log, and return the loss (checked finite) or None."""

    def __init__(
        self, net: nn.Module, max_epochs: int, optimizer: dict[str, Any], scheduler: dict[str, Any] | None = None
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])  # also the subclass's arguments (Lightning reads its frame)
        self.net = net
        if optimizer.get("name") not in OPTIMIZERS:
            raise UnknownNameError(
                f"unknown optimizer '{optimizer.get('name')}'; valid choices: {', '.join(OPTIMIZERS)}"
            )
        name, interval, options = self._schedule_config()
        if interval not in INTERVALS:
            raise ValueError(f"task.scheduler.interval={interval!r} is not one of: {', '.join(INTERVALS)}")
        own_options(name, options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def step(self, batch, stage: str) -> torch.Tensor | None:
        raise NotImplementedError

    def param_groups(self, options: dict[str, Any]) -> Iterable:
        """What the optimiser gets: all parameters, or groups with their own options."""
        return self.parameters()

    def schedule_options(self) -> dict[str, Any]:
        """Schedule options the task holds itself (the language model's step counts)."""
        return {}

    def _checked_step(self, batch, stage: str) -> torch.Tensor | None:
        loss = self.step(batch, stage)
        if loss is not None and not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"{stage} loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; "
                "lower task.optimizer.lr or check the data"
            )
        return loss

    def training_step(self, batch, batch_idx):
        return self._checked_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._checked_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._checked_step(batch, "test")

    def _schedule_config(self) -> tuple[str, str, dict[str, Any]]:
        options = dict(self.hparams.scheduler or {"name": "none"})
        name, interval = options.pop("name"), options.pop("interval", "epoch")
        own = self.schedule_options()
        clash = sorted(set(own) & set(options))
        if clash:
            raise ValueError(f"task.scheduler.{clash[0]} is set by task.{clash[0]}; remove it from task.scheduler")
        return name, interval, {**options, **own}

    def configure_optimizers(self):
        options = dict(self.hparams.optimizer)
        optimizer = OPTIMIZERS[options.pop("name")](self.param_groups(options), **options)
        name, interval, schedule_options = self._schedule_config()
        schedule = build_schedule(optimizer, name, self.hparams.max_epochs, **schedule_options)
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": interval}}
