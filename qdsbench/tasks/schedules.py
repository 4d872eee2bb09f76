"""Learning-rate schedules by name, built from torch's own schedulers (stepped once per epoch)."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, MultiStepLR

SCHEDULES = ("none", "multistep", "cosine_warmup")


def build_schedule(optimizer: torch.optim.Optimizer, name: str, max_epochs: int, **kw) -> LRScheduler | None:
    if name == "none":
        return None
    if name == "multistep":
        return MultiStepLR(optimizer, milestones=list(kw.get("milestones", [])), gamma=kw.get("gamma", 0.1))
    if name == "cosine_warmup":
        warmup = int(kw.get("warmup_epochs", 0))
        base_lr = optimizer.param_groups[0]["lr"]
        start = kw.get("warmup_lr", 1e-6) / base_lr
        floor = kw.get("min_lr", 0.0) / base_lr

        def factor(epoch: int) -> float:
            if epoch < warmup:
                return start + (1 - start) * epoch / max(warmup, 1)
            progress = (epoch - warmup) / max(max_epochs - warmup, 1)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        return LambdaLR(optimizer, factor)
    raise ValueError(f"unknown lr schedule '{name}'; valid choices: {', '.join(SCHEDULES)}")
