"""Callbacks (and a logger) of qdsbench's own; Lightning's built-ins are configured directly in conf/callbacks/."""

from __future__ import annotations

import logging
import os
import signal
import time

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, ProgressBar, RichProgressBar
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")
progress_log = logging.getLogger("qdsbench.progress")
summary_log = logging.getLogger("qdsbench.summary")


class FaultInjection(pl.Callback):
    """Kills the training process at a given global step: how the resume tests simulate pre-emption."""

    def __init__(self, kill_at_step: int, signal_name: str = "SIGKILL"):
        if signal_name not in SIGNALS:
            raise ValueError(f"unknown signal '{signal_name}'; valid choices: {', '.join(SIGNALS)}")
        self.kill_at_step, self.signal_name = kill_at_step, signal_name

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.kill_at_step:
            os.kill(os.getpid(), getattr(signal, self.signal_name))


class LastCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt`` after every validation, whatever the monitored metric did: what resume=auto reads.

    Since Lightning 2.6 ``ModelCheckpoint(save_last=True)`` writes last.ckpt only when a top-k checkpoint is saved
    at the same step, so with ``save_top_k=1`` it is a copy of the best epoch and a resume would repeat every epoch
    after it. This checkpoint monitors nothing and keeps one file under one name; it runs after the best-model
    checkpoint (listed after it), so the state it saves already holds that epoch's best score."""

    def __init__(self, dirpath: str):
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)


class AttentionDiagnostics(pl.Callback):
    """Every ``every_n_steps`` training steps, log per-layer diagnostics of the attention matrices
    (marginal errors, entropy, distance to uniform and identity, effective rank) as ``attn/<layer>/<name>``.
    Only matrices the backends form in their forward anyway are kept (``Capture(matrices="formed")``), so a step
    with diagnostics builds no extra N x N matrix."""

    def __init__(self, every_n_steps: int = 200):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be >= 1")
        self.every_n_steps = every_n_steps
        self._capture = None

    def _stop(self):
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.__exit__(None, None, None)
        return capture

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        from qdsbench.analysis.capture import Capture

        self._stop()
        if trainer.global_step % self.every_n_steps == 0:
            self._capture = Capture(pl_module, matrices="formed", inputs=False, hidden=False).__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        from qdsbench.attention.diagnostics import attention_diagnostics

        capture = self._stop()
        for record in capture.layers if capture is not None else []:
            if record.attention:  # the last forward's matrix, as the backend formed it
                for name, value in attention_diagnostics(record.attention[-1]).items():
                    pl_module.log(f"attn/layer{record.index}/{name}", value, on_step=True, on_epoch=False)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._stop()  # a step that raised leaves no hooks on the model


def _shown_metrics(raw: dict) -> dict[str, float]:
    """Progress-bar metrics for one line: ``x_epoch`` named ``x``, per-step values dropped where an epoch value
    exists; train, then val, then the rest, each stage in the order the task logs them."""
    metrics: dict[str, float] = {}
    for key, value in raw.items():
        if not isinstance(value, (int, float)) or key == "v_num":
            continue
        if key.endswith("_epoch"):
            metrics[key[: -len("_epoch")]] = float(value)
        elif not (key.endswith("_step") and f"{key[: -len('_step')]}_epoch" in raw):
            metrics.setdefault(key, float(value))
    stages = ("train/", "val/")
    rank = {key: next((i for i, p in enumerate(stages) if key.startswith(p)), len(stages)) for key in metrics}
    return dict(sorted(metrics.items(), key=lambda kv: rank[kv[0]]))  # sorted() is stable: logging order kept


def _values(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def epoch_line(trainer: pl.Trainer, seconds: float) -> str:
    """``epoch 3/10  train/loss 0.41  val/loss 0.39  val/acc 0.88  (12.3 s)``"""
    total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
    head = f"epoch {trainer.current_epoch + 1}" + (f"/{total}" if total else "")
    values = _values(_shown_metrics(trainer.progress_bar_metrics))
    return f"{head}  {values}  ({seconds:.1f} s)" if values else f"{head}  ({seconds:.1f} s)"


class _EpochLog:
    """Logs one line per training epoch (after its validation) to ``qdsbench.progress``: the console and train.log,
    or train.log alone when ``console`` is false (a live bar already shows the numbers)."""

    console = True

    def _epoch_started(self) -> None:
        self._epoch_start = time.monotonic()

    def _epoch_ended(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self._emit(
            epoch_line(trainer, time.monotonic() - getattr(self, "_epoch_start", time.monotonic())), self.console
        )

    def _tested(self, trainer: pl.Trainer) -> None:
        """The test metrics, for train.log only (the run summary table shows them on the console)."""
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("test/") and getattr(v, "numel", lambda: 1)() == 1
        }
        if metrics and trainer.is_global_zero:
            self._emit(f"test  {_values(metrics)}", console=False)

    @staticmethod
    def _emit(line: str, console: bool) -> None:
        if progress_log.hasHandlers():
            progress_log.info(line, extra={"console": console})
        elif console:  # no logging configured (a plain Python session): the line still reaches stdout
            print(line, flush=True)


class EpochLines(_EpochLog, ProgressBar):
    """The progress "bar" of a run whose stdout is not a terminal (a log file, a pipe, Slurm's output): one line per
    epoch instead of bars redrawn in place (which a file shows as metrics wrapped over many lines)."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_started()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._enabled:
            self._epoch_ended(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        if self._enabled:
            self._tested(trainer)


class RichBar(_EpochLog, RichProgressBar):
    """Lightning's rich progress bar on a terminal; the same per-epoch line goes to train.log (not the console)."""

    console = False

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._epoch_started()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._epoch_ended(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        super().on_test_end(trainer, pl_module)
        self._tested(trainer)


PROGRESS_STYLES = ("auto", "rich", "lines")


def progress_bar(style: str = "auto", **rich_kwargs) -> ProgressBar:
    """``auto``: the rich bar when stdout is a terminal, one line per epoch otherwise; ``rich`` or ``lines`` force
    one of them. ``rich_kwargs`` go to Lightning's RichProgressBar (refresh_rate, leave, theme)."""
    from qdsbench.console import is_terminal

    if style not in PROGRESS_STYLES:
        raise ValueError(f"unknown progress bar style '{style}'; valid choices: {', '.join(PROGRESS_STYLES)}")
    if style == "rich" or (style == "auto" and is_terminal()):
        return RichBar(**rich_kwargs)
    return EpochLines()


class FitLogInterval(pl.Callback):
    """``trainer.log_every_n_steps`` at most the number of training batches per epoch, so that short epochs (tests,
    digits, debug runs) still log training steps, and Lightning does not warn that the interval exceeds the epoch.

    Runs in ``setup``, after the datamodule's own setup and before Lightning counts the batches (and warns)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or trainer.fast_dev_run:
            return
        batches = self._batches_per_epoch(trainer)
        if batches is not None and 0 < batches < trainer.log_every_n_steps:
            trainer.log_every_n_steps = batches

    @staticmethod
    def _batches_per_epoch(trainer) -> int | None:
        source = trainer.datamodule if trainer.datamodule is not None else trainer.lightning_module
        try:
            batches = len(source.train_dataloader())
        except (TypeError, NotImplementedError, AttributeError):  # an iterable without length, or no loader here
            return None
        overfit = trainer.overfit_batches
        limit = overfit if overfit else trainer.limit_train_batches
        if isinstance(limit, int):
            return min(batches, limit)
        return max(1, int(batches * float(limit))) if limit else None


class CompactModelSummary(ModelSummary):
    """Lightning's model summary with only columns that hold information here: name, type and parameters of
    the modules that have parameters, to ``max_depth``. FLOPs (and input / output sizes) appear only when the model
    sets ``example_input_array``, without which Lightning's FLOPs column is all 0. Logged, so it is in train.log."""

    def on_fit_start(self, trainer, pl_module) -> None:
        if not self._max_depth or not trainer.is_global_zero:
            return
        summary_log.info(
            "model summary (modules with parameters, depth %d)\n%s",
            self._max_depth,
            self.table(self._summary(trainer, pl_module)),
        )

    @staticmethod
    def table(summary) -> str:
        from lightning.pytorch.utilities.model_summary import get_human_readable_count

        def count(number: int) -> str:
            return get_human_readable_count(int(number)).strip()

        with_sizes = getattr(summary._model, "example_input_array", None) is not None
        flops = summary.total_flops if hasattr(summary, "total_flops") else 0
        per_layer_flops = [sum(x.values()) for x in summary.flop_counts.values()] if flops else []
        columns: list[tuple[str, list[str]]] = [("Name", []), ("Type", []), ("Params", [])]
        if flops:
            columns.append(("FLOPs", []))
        if with_sizes:
            columns += [("In sizes", []), ("Out sizes", [])]
        for index, (name, kind, params) in enumerate(zip(summary.layer_names, summary.layer_types, summary.param_nums)):
            if not params:
                continue
            row = [name, kind, count(params)]
            if flops:
                row.append(count(per_layer_flops[index]))
            if with_sizes:
                row += [str(summary.in_sizes[index]), str(summary.out_sizes[index])]
            for (_, cells), cell in zip(columns, row):
                cells.append(cell)
        widths = [max([len(title), *map(len, cells)]) for title, cells in columns]
        right = {"Params", "FLOPs"}

        def fmt(cells: list[str]) -> str:
            return "  ".join(
                c.rjust(w) if t in right else c.ljust(w) for c, w, (t, _) in zip(cells, widths, columns)
            ).rstrip()

        lines = [fmt([title for title, _ in columns]), "  ".join("-" * w for w in widths)]
        lines += [fmt([cells[i] for _, cells in columns]) for i in range(len(columns[0][1]))]
        frozen = summary.total_parameters - summary.trainable_parameters
        totals = (
            f"{count(summary.total_parameters)} parameters ({count(frozen)} frozen), "
            f"{summary.model_size:,.3f} MB" + (f", {count(flops)} FLOPs per example batch" if flops else "")
        )
        return "\n".join([*lines, totals])


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger without its ``anonymous=None`` default in ``wandb.init``: W&B ignores the setting
    and prints "The anonymous setting has no effect" whenever the key is passed, even as None. Passing
    ``anonymous=true`` still passes it."""

    def __init__(self, *args, anonymous: bool | None = None, **kwargs):
        super().__init__(*args, anonymous=anonymous, **kwargs)
        if not anonymous:
            self._wandb_init.pop("anonymous", None)
