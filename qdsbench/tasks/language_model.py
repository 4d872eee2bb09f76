"""Next-token language modelling for the long-context decoder, with the answer tokens weighted apart.

Loss = mean NLL of the answer tokens + ``context_weight`` x mean NLL of the other tokens: the haystack is most of
the sequence, but the answer is what RULER scores. Validation reports teacher-forced answer exact match (all answer
tokens argmax-correct, which equals greedy decoding's exact match) per prompt length. Weight decay applies to weight
matrices only; the schedule's step counts ``warmup_steps`` / ``total_steps`` are task keys because the curriculum
(experiment presets, a study's overrides) sets them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qdsbench.tasks.base import Task
from qdsbench.tasks.registry import register


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)


@register("language_model")
class LanguageModelTask(Task):
    def __init__(
        self,
        net: nn.Module,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        max_epochs: int = 1,
        warmup_steps: int = 100,
        total_steps: int = 1000,
        context_weight: float = 0.1,
        pad_id: int = 0,
    ):
        super().__init__(net, max_epochs, optimizer, scheduler)

    def losses(self, batch) -> dict[str, torch.Tensor]:
        tokens, answer = batch["tokens"], batch["answer_mask"]
        logits = self(tokens[:, :-1])
        targets = tokens[:, 1:]
        nll = token_nll(logits, targets)
        context = (targets != self.hparams.pad_id) & ~answer
        answer_loss = nll[answer].mean()
        context_loss = nll[context].mean()
        correct = (logits.argmax(-1) == targets) | ~answer
        return {
            "loss": answer_loss + self.hparams.context_weight * context_loss,
            "answer_loss": answer_loss,
            "context_loss": context_loss,
            "answer_exact": correct.all(-1).float().mean(),
        }

    def step(self, batch, stage: str) -> torch.Tensor:
        out = self.losses(batch)
        n, length = batch["tokens"].shape[0], batch["prompt_len"]
        if stage == "train":
            for key in ("loss", "answer_loss", "context_loss"):
                self.log(f"train/{key}", out[key], on_step=True, on_epoch=False, prog_bar=key == "loss", batch_size=n)
            self.log("train/length", float(length), on_step=True, on_epoch=False, batch_size=n)
            return out["loss"]
        self.log(f"{stage}/loss", out["loss"], on_epoch=True, batch_size=n, prog_bar=True)
        self.log(f"{stage}/answer_loss", out["answer_loss"], on_epoch=True, batch_size=n)
        self.log(f"{stage}/answer_exact", out["answer_exact"], on_epoch=True, batch_size=n, prog_bar=True)
        self.log(f"{stage}/answer_exact_N{length}", out["answer_exact"], on_epoch=True, batch_size=n)
        return out["loss"]

    def param_groups(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        decay = [p for p in self.net.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.net.parameters() if p.dim() < 2]
        return [
            {"params": decay, "weight_decay": options.get("weight_decay", 0.0)},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def schedule_options(self) -> dict[str, Any]:
        return {"warmup_steps": self.hparams.warmup_steps, "total_steps": self.hparams.total_steps}
