"""Image classification as a LightningModule: cross-entropy, torchmetrics accuracy, configurable optimiser."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import nn

from qdsbench.tasks.schedules import build_schedule

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class NonFiniteLossError(FloatingPointError):
    pass


class ClassificationTask(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        max_epochs: int,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        if optimizer["name"] not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{optimizer['name']}'; valid choices: {', '.join(OPTIMIZERS)}")
        self.loss = nn.CrossEntropyLoss()
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_acc": torchmetrics.classification.MulticlassAccuracy(num_classes=num_classes, average="micro")
                for stage in ("train", "val", "test")
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"{stage} loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; "
                "lower task.optimizer.lr or check the data"
            )
        self.metrics[f"{stage}_acc"](logits, y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(f"{stage}/acc", self.metrics[f"{stage}_acc"], on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        opt_cfg = dict(self.hparams.optimizer)
        optimizer = OPTIMIZERS[opt_cfg.pop("name")](self.parameters(), **opt_cfg)
        sched_cfg = dict(self.hparams.scheduler)
        schedule = build_schedule(optimizer, sched_cfg.pop("name"), self.hparams.max_epochs, **sched_cfg)
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
