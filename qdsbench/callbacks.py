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


class AttentionDiagnostics(pl.Callback):
    """Every ``every_n_steps`` training steps, log per-layer diagnostics of the attention matrices
    (marginal errors, entropy, distance to uniform and identity, effective rank) as ``attn/<layer>/<name>``."""

    def __init__(self, every_n_steps: int = 200):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be >= 1")
        self.every_n_steps = every_n_steps

    @staticmethod
    def _backends(module):
        from qdsbench.attention.base import MatrixAttention
        from qdsbench.models.backend_attention import attention_layers

        return [(i, layer.backend) for i, layer in enumerate(attention_layers(module))
                if isinstance(layer.backend, MatrixAttention)]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        capture = trainer.global_step % self.every_n_steps == 0
        for _, backend in self._backends(pl_module):
            backend.capture = capture

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        from qdsbench.attention.diagnostics import attention_diagnostics

        for index, backend in self._backends(pl_module):
            if backend.capture and backend.last_attention is not None:
                for name, value in attention_diagnostics(backend.last_attention).items():
                    pl_module.log(f"attn/layer{index}/{name}", value, on_step=True, on_epoch=False)
            backend.capture, backend.last_attention = False, None
