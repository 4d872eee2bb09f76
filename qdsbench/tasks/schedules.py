"""Learning-rate schedules by name, all in one place: ``task.scheduler.name`` picks one, its other keys are options.

A maker returns a torch scheduler or None (the lr stays constant). ``t`` below is the scheduler's step count: epochs,
or optimiser steps under ``task.scheduler.interval: step``; the lr during epoch (step) t is lr x factor(t).
TSLib's ``type1`` / ``type3`` / ``cosine`` keep its off-by-one: it calls adjust_learning_rate(epoch + 1) after each
epoch, so the factor it computes for epoch e is used in epoch e (0-indexed here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, MultiStepLR

from qdsbench.errors import UnknownNameError
from qdsbench.registry import accepted_keywords

Maker = Callable[..., LRScheduler | None]
SCHEDULES: dict[str, Maker] = {}


def schedule(name: str) -> Callable[[Maker], Maker]:
    def register(maker: Maker) -> Maker:
        SCHEDULES[name] = maker
        return maker

    return register


def _cosine(progress: float, floor: float) -> float:
    """Half a cosine from 1 (progress 0) down to ``floor`` (progress >= 1)."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


@schedule("none")
def _constant(optimizer: torch.optim.Optimizer, max_epochs: int) -> None:
    return None


@schedule("multistep")
def _multistep(optimizer: torch.optim.Optimizer, max_epochs: int, milestones=(), gamma: float = 0.1) -> LRScheduler:
    return MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)


@schedule("cosine_warmup")
def _cosine_warmup(
    optimizer: torch.optim.Optimizer,
    max_epochs: int,
    warmup_epochs: int = 0,
    warmup_lr: float = 1e-6,
    min_lr: float = 0.0,
) -> LRScheduler:
    """timm's: linear from warmup_lr to lr over warmup_epochs, then cosine down to min_lr at max_epochs."""
    warmup = int(warmup_epochs)
    base_lr = optimizer.param_groups[0]["lr"]
    start, floor = warmup_lr / base_lr, min_lr / base_lr

    def factor(t: int) -> float:
        if t < warmup:
            return start + (1 - start) * t / max(warmup, 1)
        return _cosine((t - warmup) / max(max_epochs - warmup, 1), floor)

    return LambdaLR(optimizer, factor)


@schedule("lm_cosine")
def _lm_cosine(
    optimizer: torch.optim.Optimizer,
    max_epochs: int,
    warmup_steps: int = 100,
    total_steps: int = 1000,
    min_lr_ratio: float = 0.1,
) -> LRScheduler:
    """The decoder LM's: warm-up (t + 1) / warmup_steps (the first step already trains), then cosine down to
    min_lr_ratio x lr at total_steps."""

    def factor(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        return _cosine((t - warmup_steps) / max(1, total_steps - warmup_steps), min_lr_ratio)

    return LambdaLR(optimizer, factor)


schedule("constant")(_constant)  # TSLib's name for none


@schedule("type1")
def _type1(optimizer: torch.optim.Optimizer, max_epochs: int) -> LRScheduler:
    """TSLib's type1: lr for two epochs, then halved every epoch."""
    return LambdaLR(optimizer, lambda t: 0.5 ** (t - 1) if t >= 2 else 1.0)


@schedule("type3")
def _type3(optimizer: torch.optim.Optimizer, max_epochs: int) -> LRScheduler:
    """TSLib's type3: lr for three epochs, then x0.9 every epoch."""
    return LambdaLR(optimizer, lambda t: 1.0 if t < 3 else 0.9 ** (t - 3))


@schedule("cosine")
def _cosine_tslib(optimizer: torch.optim.Optimizer, max_epochs: int) -> LRScheduler:
    """TSLib's cosine: no warm-up, down to 0 at max_epochs."""
    return LambdaLR(optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * t / max_epochs)))


def option_names(name: str) -> set[str]:
    if name not in SCHEDULES:
        raise UnknownNameError(f"unknown lr schedule '{name}'; valid choices: {', '.join(SCHEDULES)}")
    return set(accepted_keywords(SCHEDULES[name]) or ()) - {"optimizer", "max_epochs"}


def own_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less those of other schedules: a config that switches schedule (``task.scheduler.name=none``, an
    experiment over classification.yaml's multistep) keeps the base node's options, as Hydra merges nodes and its
    ``_delete_`` there is only a marker. An option no schedule takes is a typo: one line."""
    accepted = option_names(name)
    known = set().union(*(option_names(other) for other in SCHEDULES), {"_delete_"})
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"unknown option '{unknown[0]}' for lr schedule '{name}'; valid options: {', '.join(sorted(accepted))}"
        )
    return {k: v for k, v in options.items() if k in accepted}


def build_schedule(optimizer: torch.optim.Optimizer, name: str, max_epochs: int, **options) -> LRScheduler | None:
    options = own_options(name, options)
    return SCHEDULES[name](optimizer, max_epochs, **options)
