"""Yang et al.'s co-occurrence training: logistic loss, plain full-batch gradient descent.

Every ``log_every`` steps (and every step below ``dense_steps``) it sends straight to the loggers all quantities of
``qdsbench.analysis.cooccurrence.quantities`` as ``train/<name>`` plus the gradient norms of W_Q, W_K, W_V and W
(``grad/<name>``); Phase-1 end T1 (first step with 100% training accuracy) is logged as ``train/T1`` once reached.
Validation/test log loss, accuracy and the per-type losses. The data module repeats the full training set
``steps_per_epoch`` times per epoch, so ``trainer.max_epochs x data.steps_per_epoch`` = GD steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from qdsbench.analysis import cooccurrence as dyn
from qdsbench.tasks.base import Task
from qdsbench.tasks.registry import register


@register("cooccurrence")
class CooccurrenceTask(Task):
    def __init__(
        self,
        net: nn.Module,
        max_epochs: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        attn_lr_mult: float = 1.0,
        log_every: int = 25,
        dense_steps: int = 300,
    ):
        super().__init__(net, max_epochs, optimizer, scheduler)
        if log_every < 1 or attn_lr_mult <= 0:
            raise ValueError(f"log_every={log_every} must be >= 1 and attn_lr_mult={attn_lr_mult} > 0")
        self.t1: int | None = None
        self._log_now = False

    def step(self, batch, stage: str) -> torch.Tensor | None:
        tokens, y, types = batch
        if stage != "train":
            values = dyn.quantities(self.net, tokens, y, types)
            keep = ("loss", "acc", "min_margin", *[f"loss_{n}" for n in dyn.TYPE_NAMES.values()])
            self.log_dict({f"{stage}/{k}": values[k] for k in keep}, on_step=False, on_epoch=True, batch_size=len(y))
            return None
        f = self(tokens)
        loss = dyn.logistic_loss(f, y).mean()
        step = self.global_step
        if self.t1 is None and bool(((y * f.detach()) > 0).all()):
            self.t1 = step
            self._emit({"train/T1": float(step)})
        self._log_now = dyn.should_log(step, self.hparams.log_every, self.hparams.dense_steps)
        if self._log_now:
            values = dyn.quantities(self.net, tokens, y, types)
            self._emit({f"train/{k}": v for k, v in values.items()})
        return loss

    def on_after_backward(self) -> None:
        if self._log_now:
            self._emit({f"grad/{k[5:]}": v for k, v in dyn.grad_norms(self.net).items()})

    def _emit(self, values: dict[str, float]) -> None:
        """Straight to the loggers at this step (self.log would re-emit on_step values at every later step)."""
        if self.trainer is not None and self.trainer.is_global_zero:
            for logger in self.trainer.loggers:
                logger.log_metrics(values, step=self.global_step)

    def param_groups(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        """W_Q and W_K at attn_lr_mult x lr (the notes' "amplified attention" knob)."""
        return dyn.param_groups(self.net, options["lr"], self.hparams.attn_lr_mult)
