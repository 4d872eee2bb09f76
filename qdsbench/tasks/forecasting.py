"""Forecasting: OLinear's weighted L1 for train and validation, TSLib's MSE/MAE at test.

Test metrics are accumulated in float64 over all windows x horizon x channels (sums, not batch means), so the last
smaller batch weighs what it should. The official LR schedules (type1, type3, cosine) are in ``tasks/schedules.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from qdsbench.tasks.base import Task
from qdsbench.tasks.registry import register

LOSSES = ("weighted_l1", "mse", "l1")


@register("forecasting")
class ForecastingTask(Task):
    def __init__(
        self,
        net: nn.Module,
        max_epochs: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        loss: str = "weighted_l1",
        loss_alpha: float = 0.5,
    ):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}'; valid choices: {', '.join(LOSSES)}")
        super().__init__(net, max_epochs, optimizer, scheduler)
        self._sums: dict[str, torch.Tensor] = {}

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "mse":
            return torch.mean((pred - target) ** 2)
        error = (pred - target).abs()
        if self.hparams.loss == "weighted_l1":
            steps = torch.arange(pred.shape[1], device=pred.device, dtype=pred.dtype)
            error = error * (steps + 1).pow(-self.hparams.loss_alpha)[None, :, None]
        return error.mean()

    def step(self, batch, stage: str) -> torch.Tensor | None:
        x, y = batch
        if stage == "test":
            self._accumulate(self(x), y)
            return None
        loss = self.loss(self(x), y)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def on_test_epoch_start(self) -> None:
        self._sums = {k: torch.zeros((), dtype=torch.float64) for k in ("se", "ae", "count", "windows")}

    def _accumulate(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        diff = (pred - target).double()
        self._sums["se"] += diff.square().sum().cpu()
        self._sums["ae"] += diff.abs().sum().cpu()
        self._sums["count"] += diff.numel()
        self._sums["windows"] += len(pred)

    def on_test_epoch_end(self) -> None:
        count = self._sums["count"]
        self.log("test/mse", float(self._sums["se"] / count))
        self.log("test/mae", float(self._sums["ae"] / count))
        self.log("test/n_windows", float(self._sums["windows"]))  # test windows
        self.log("test/n_values", float(count))  # windows x horizon x channels: what the means are over
