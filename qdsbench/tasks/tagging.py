"""Per-token classification (tagging), with accuracy split by query type.

Batches are ``(tokens, labels, query_type)`` (labels -100 are ignored); logs ``<stage>/loss``, ``<stage>/acc`` and
``<stage>/acc_<type>`` for every named query type of the data module (e.g. context / plain in switch-tagging).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qdsbench.tasks.base import Task
from qdsbench.tasks.registry import register

IGNORE = -100


@register("tagging")
class TaggingTask(Task):
    def __init__(
        self,
        net: nn.Module,
        max_epochs: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        query_types: dict[int, str] | None = None,
    ):
        super().__init__(net, max_epochs, optimizer, scheduler)
        self.query_types = {int(k): v for k, v in (query_types or {1: "context", 2: "plain"}).items()}

    def step(self, batch, stage: str) -> torch.Tensor:
        tokens, labels, qtype = batch
        logits = self(tokens)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        valid = labels != IGNORE
        correct = (logits.argmax(-1) == labels) & valid
        count = int(valid.sum())
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=count)
        acc = correct.sum() / valid.sum().clamp_min(1)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=count)
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
