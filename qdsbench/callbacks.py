"""Callbacks of qdsbench's own (Lightning's built-ins are configured directly in conf/callbacks/)."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl

SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")


class FaultInjection(pl.Callback):
    """Kills the training process at a given global step: how the resume tests simulate pre-emption."""

    def __init__(self, kill_at_step: int, signal_name: str = "SIGKILL"):
        if signal_name not in SIGNALS:
            raise ValueError(f"unknown signal '{signal_name}'; valid choices: {', '.join(SIGNALS)}")
        self.kill_at_step, self.signal_name = kill_at_step, signal_name

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.kill_at_step:
            os.kill(os.getpid(), getattr(signal, self.signal_name))
