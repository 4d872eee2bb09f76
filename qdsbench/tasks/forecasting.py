"""Forecasting as a LightningModule: OLinear's weighted L1 for train and validation, TSLib's MSE/MAE at test.

Test metrics are accumulated in float64 over all windows x horizon x channels (sums, not batch means), so the last
smaller batch weighs what it should. LR schedules follow the official code: ``type1`` halves after epoch 2,
``type3`` decays x0.9 after epoch 3, ``cosine``; epoch e here is TSLib's e+1 (their off-by-one, copied).
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from qdsbench.tasks.classification import NonFiniteLossError
from qdsbench.tasks.registry import register

LOSSES = ("weighted_l1", "mse", "l1")
LR_SCHEDULES = ("type1", "type3", "cosine", "constant")


def lr_factor(schedule: str, epoch: int, max_epochs: int) -> float:
    """Factor for the epoch that follows 0-indexed ``epoch`` (TSLib calls adjust_learning_rate(epoch + 1))."""
    e = epoch + 1
    if schedule == "type1":
        return 0.5 ** max(e - 1, 0) if e >= 2 else 1.0
    if schedule == "type3":
        return 1.0 if e < 3 else 0.9 ** (e - 3)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * e / max_epochs))
    return 1.0


class ForecastingTask(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        max_epochs: int,
        lr: float = 5e-4,
        loss: str = "weighted_l1",
        loss_alpha: float = 0.5,
        lr_schedule: str = "type1",
    ):
        super().__init__()
        for label, value, choices in (("loss", loss, LOSSES), ("lr_schedule", lr_schedule, LR_SCHEDULES)):
            if value not in choices:
                raise ValueError(f"unknown {label} '{value}'; valid choices: {', '.join(choices)}")
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self._sums: dict[str, torch.Tensor] = {}

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "mse":
            return torch.mean((pred - target) ** 2)
        error = (pred - target).abs()
        if self.hparams.loss == "weighted_l1":
            steps = torch.arange(pred.shape[1], device=pred.device, dtype=pred.dtype)
            error = error * (steps + 1).pow(-self.hparams.loss_alpha)[None, :, None]
        return error.mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"train loss is {loss.item()} at step {self.global_step}; lower task.lr")
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", self.loss(self(x), y), on_epoch=True, prog_bar=True, batch_size=len(x))

    def on_test_epoch_start(self) -> None:
        self._sums = {k: torch.zeros((), dtype=torch.float64) for k in ("se", "ae", "count", "windows")}

    def test_step(self, batch, batch_idx):
        x, y = batch
        diff = (self(x) - y).double()
        self._sums["se"] += diff.square().sum().cpu()
        self._sums["ae"] += diff.abs().sum().cpu()
        self._sums["count"] += diff.numel()
        self._sums["windows"] += len(x)

    def on_test_epoch_end(self) -> None:
        count = self._sums["count"]
        self.log("test/mse", float(self._sums["se"] / count))
        self.log("test/mae", float(self._sums["ae"] / count))
        self.log("test/n_windows", float(self._sums["windows"]))  # test windows
        self.log("test/n_values", float(count))  # windows x horizon x channels: what the means are over

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        schedule = LambdaLR(
            optimizer, lambda e: lr_factor(self.hparams.lr_schedule, e - 1, self.hparams.max_epochs) if e > 0 else 1.0
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


register("forecasting")(ForecastingTask)
