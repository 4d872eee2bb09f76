"""Image classification: cross-entropy and torchmetrics accuracy."""

from __future__ import annotations

from typing import Any

import torch
import torchmetrics
from torch import nn

from qdsbench.tasks.base import Task
from qdsbench.tasks.registry import register


@register("classification")
class ClassificationTask(Task):
    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        max_epochs: int,
    ):
        super().__init__(net, max_epochs, optimizer, scheduler)
        self.loss = nn.CrossEntropyLoss()
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_acc": torchmetrics.classification.MulticlassAccuracy(num_classes=num_classes, average="micro")
                for stage in ("train", "val", "test")
            }
        )

    def step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        self.metrics[f"{stage}_acc"](logits, y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(f"{stage}/acc", self.metrics[f"{stage}_acc"], on_step=False, on_epoch=True, prog_bar=True)
        return loss
