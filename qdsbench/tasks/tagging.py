"""Per-token classification (tagging) as a LightningModule, with accuracy split by query type.

Batches are ``(tokens, labels, query_type)`` (labels -100 are ignored); logs ``<stage>/loss``, ``<stage>/acc`` and
``<stage>/acc_<type>`` for every named query type of the data module (e.g. context / plain in switch-tagging).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from qdsbench.tasks.classification import OPTIMIZERS, NonFiniteLossError
from qdsbench.tasks.registry import register

IGNORE = -100


@register("tagging")
class TaggingTask(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        max_epochs: int,
        optimizer: dict[str, Any] | None = None,
        query_types: dict[int, str] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        optimizer = dict(optimizer or {"name": "adam", "lr": 1e-3})
        if optimizer.get("name") not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{optimizer.get('name')}'; valid choices: {', '.join(OPTIMIZERS)}")
        self.query_types = {int(k): v for k, v in (query_types or {1: "context", 2: "plain"}).items()}

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)

    def _step(self, batch, stage: str) -> torch.Tensor:
        tokens, labels, qtype = batch
        logits = self(tokens)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"{stage} loss is {loss.item()} at step {self.global_step}; lower the lr")
        valid = labels != IGNORE
        correct = (logits.argmax(-1) == labels) & valid
        self.log(
            f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=int(valid.sum())
        )
        self.log(
            f"{stage}/acc",
            correct.sum() / valid.sum().clamp_min(1),
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=int(valid.sum()),
        )
        for kind, name in self.query_types.items():
            where = valid & (qtype == kind)
            if where.any():
                self.log(
                    f"{stage}/acc_{name}",
                    correct[where].float().mean(),
                    on_step=False,
                    on_epoch=True,
                    batch_size=int(where.sum()),
                )
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        options = dict(self.hparams.optimizer or {"name": "adam", "lr": 1e-3})
        return OPTIMIZERS[options.pop("name")](self.parameters(), **options)
