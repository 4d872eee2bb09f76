"""Next-token language modelling for the long-context decoder, with the answer tokens weighted apart.

Loss = mean NLL of the answer tokens + ``context_weight`` x mean NLL of the other tokens: the haystack is most of
the sequence, but the answer is what RULER scores. Validation reports teacher-forced answer exact match (all answer
tokens argmax-correct, which equals greedy decoding's exact match) per prompt length. The learning rate warms up
linearly then follows a cosine over the whole run (stepped per optimiser step).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from qdsbench.tasks.classification import NonFiniteLossError
from qdsbench.tasks.registry import register


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)


@register("language_model")
class LanguageModelTask(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        max_epochs: int = 1,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        total_steps: int = 1000,
        min_lr_ratio: float = 0.1,
        context_weight: float = 0.1,
        pad_id: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)

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

    def training_step(self, batch, batch_idx):
        out = self.losses(batch)
        if not torch.isfinite(out["loss"]):
            raise NonFiniteLossError(f"train loss is {out['loss'].item()} at step {self.global_step}; lower the lr")
        n = batch["tokens"].shape[0]
        for key in ("loss", "answer_loss", "context_loss"):
            self.log(f"train/{key}", out[key], on_step=True, on_epoch=False, prog_bar=key == "loss", batch_size=n)
        self.log("train/length", float(batch["prompt_len"]), on_step=True, on_epoch=False, batch_size=n)
        return out["loss"]

    def _eval(self, batch, stage: str):
        out = self.losses(batch)
        n, length = batch["tokens"].shape[0], batch["prompt_len"]
        self.log(f"{stage}/loss", out["loss"], on_epoch=True, batch_size=n, prog_bar=True)
        self.log(f"{stage}/answer_loss", out["answer_loss"], on_epoch=True, batch_size=n)
        self.log(f"{stage}/answer_exact", out["answer_exact"], on_epoch=True, batch_size=n, prog_bar=True)
        self.log(f"{stage}/answer_exact_N{length}", out["answer_exact"], on_epoch=True, batch_size=n)

    def validation_step(self, batch, batch_idx):
        self._eval(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval(batch, "test")

    def configure_optimizers(self):
        h = self.hparams
        decay = [p for name, p in self.net.named_parameters() if p.dim() >= 2]
        no_decay = [p for name, p in self.net.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": h.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=h.lr
        )

        def factor(step: int) -> float:
            if step < h.warmup_steps:
                return (step + 1) / h.warmup_steps
            progress = min(1.0, (step - h.warmup_steps) / max(1, h.total_steps - h.warmup_steps))
            return h.min_lr_ratio + (1 - h.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        return {"optimizer": opt, "lr_scheduler": {"scheduler": LambdaLR(opt, factor), "interval": "step"}}
