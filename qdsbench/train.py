"""Fit, then test on the best checkpoint, keeping the run record true at every step (also when it fails)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from qdsbench import console
from qdsbench.builders import build_callbacks, build_datamodule, build_loggers, build_task
from qdsbench.callbacks import FitLogInterval, LastCheckpoint, progress_bar
from qdsbench.checkpoint_io import AtomicCheckpointIO
from qdsbench.errors import UserError
from qdsbench.resume import LAST_CHECKPOINT, checkpoint_step, resolve_resume, truncate_history
from qdsbench.runrecord import (
    RUN_FILE,
    NullRecord,
    RunRecord,
    RunRecordLogger,
    lock_run_dir,
    path_in_run,
    resolve_in_run,
)
from qdsbench.snapshot import snapshot_path
from qdsbench.summary import print_summary
from qdsbench.validation import validate

log = logging.getLogger(__name__)


def seed_and_threads(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    if cfg.get("seed") is not None:  # 0 is a valid seed
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)


def _checkpoint_callback(trainer: pl.Trainer) -> ModelCheckpoint | None:
    """The best-model checkpoint (the first ModelCheckpoint that is not the every-epoch LastCheckpoint)."""
    return next(
        (
            c
            for c in trainer.checkpoint_callbacks
            if isinstance(c, ModelCheckpoint) and not isinstance(c, LastCheckpoint)
        ),
        None,
    )


def _last_checkpoint_path(trainer: pl.Trainer, checkpoint: ModelCheckpoint | None) -> str | None:
    """The latest epoch's file: LastCheckpoint's one file, else (a config without it) the monitor's save_last."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, LastCheckpoint):
            return callback.best_model_path or None
    return checkpoint.last_model_path if checkpoint else None


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if (torch.is_tensor(v) and v.numel() == 1) or isinstance(v, float)}


def _open_record(cfg: DictConfig) -> tuple[RunRecord | NullRecord, dict[str, Any], str | None]:
    """Start a new run record, or reopen the one being resumed (and point the config's paths at it).

    Also returns what the history logger of a resumed run needs (the rows it must not repeat, the wall time it
    continues from) and the directory the resumed record was written in (a run may have been moved since)."""
    if rank_zero_only.rank != 0:
        return NullRecord(), {}, None
    resume_dir = resolve_resume(cfg)
    if resume_dir is None:
        if cfg.get("resume") == "auto":
            log.info("resume=auto: no unfinished run with this config; starting a new one")
        return RunRecord.start(cfg.paths.output_dir, cfg), {}, None
    lock_run_dir(resume_dir)  # before anything is written: a second resumer refuses here
    new_dir = Path(cfg.paths.output_dir)
    new_dir.mkdir(parents=True, exist_ok=True)
    (new_dir / "RESUMED_INTO").write_text(f"{resume_dir.resolve()}\n")
    record = RunRecord.load(resume_dir)
    written_in = record.payload.get("run_dir")
    checkpoint = resume_dir / LAST_CHECKPOINT
    logged, elapsed = truncate_history(resume_dir, checkpoint_step(checkpoint))
    record.update(
        status="running",
        error=None,
        end_time=None,
        run_dir=str(resume_dir.resolve()),
        resumed=[*record.payload.get("resumed", []), {"time": time.time(), "from": LAST_CHECKPOINT.as_posix()}],
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(resume_dir)
        cfg.ckpt_path = str(checkpoint)
    return record, {"logged": logged, "elapsed": elapsed}, written_in


def _check_ckpt_path(cfg: DictConfig) -> None:
    """``ckpt_path=`` must name a file before anything is written (Lightning would fail only after setup)."""
    ckpt = cfg.get("ckpt_path")
    if ckpt and not Path(str(ckpt)).is_file():
        raise UserError(f"ckpt_path={ckpt} does not exist; pass the path of a .ckpt file (or resume=<run dir>)")


def _wandb_keys(cfg: DictConfig) -> list[str]:
    loggers = cfg.get("logger") or {}
    return [k for k, v in loggers.items() if v is not None and str(v.get("_target_", "")).endswith("WandbLogger")]


def _attach_wandb(cfg: DictConfig, record: RunRecord | NullRecord) -> None:
    """One W&B run per run record: the id is chosen before W&B starts and kept in run.json, so that a resumed run
    (``resume=``, or ``ckpt_path=`` into another run) continues the same W&B run, online or offline."""
    keys = _wandb_keys(cfg)
    if not keys or isinstance(record, NullRecord):
        return
    wandb_id = record.payload.get("wandb_id") or _checkpoint_wandb_id(cfg.get("ckpt_path")) or record.payload["run_id"]
    with open_dict(cfg):
        for key in keys:
            node = cfg.logger[key]
            if node.get("id"):
                wandb_id = node.id  # the user's own id wins
            node.id = wandb_id
            node.resume = node.get("resume") or "allow"
    record.update(wandb_id=wandb_id)


def _checkpoint_wandb_id(ckpt_path: str | None) -> str | None:
    """The W&B id of the run a checkpoint belongs to (``<run dir>/checkpoints/<file>.ckpt``), if it has one."""
    if not ckpt_path:
        return None
    record = Path(str(ckpt_path)).resolve().parent.parent / RUN_FILE
    try:
        return json.loads(record.read_text()).get("wandb_id")
    except (OSError, ValueError):
        return None


def _in_this_run(path: str | None, run_dir: Path, written_in: str | None) -> str | None:
    return str(resolve_in_run(path, run_dir, written_in)) if path else None


def _check_static_attention(
    task: pl.LightningModule, datamodule: pl.LightningDataModule, record, stop: bool = True
) -> None:
    """Static normalisers get P measured on one training batch before any training (and a stop if degenerate)."""
    from qdsbench.attention.health import check_static_attention, static_backends

    net = getattr(task, "net", task)
    if not static_backends(net):
        return
    datamodule.setup("fit")
    inputs = next(iter(datamodule.train_dataloader()))[0]
    stats = check_static_attention(net, inputs, stop=stop)
    record.update(attention_health=stats)
    for index, layer in enumerate(stats):
        log.info("static attention layer %d at init: %s", index, ", ".join(f"{k} {v:.4f}" for k, v in layer.items()))


def _snapshot_config(cfg: DictConfig, run_dir: Path) -> None:
    """Runs started from Python (not the CLI) get the same `.hydra/config.yaml` snapshot Hydra writes."""
    path = snapshot_path(run_dir)
    if rank_zero_only.rank == 0 and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, path)


def _setup_console(cfg: DictConfig, run_dir: Path) -> None:
    """Lightning's log records through Hydra's handlers (console and train.log, once each), warnings too under
    Hydra, and the config tree at start (``extras.print_config``, also written to ``<run dir>/config_tree.log``)."""
    from hydra.core.hydra_config import HydraConfig

    console.silence_known_warnings()  # again: pytest, for one, resets the filters qdsbench's import set
    console.route_lightning_logs()
    if HydraConfig.initialized():
        console.capture_warnings()
    extras = cfg.get("extras") or {}
    if extras.get("print_config", False) and rank_zero_only.rank == 0:
        console.print_config_tree(cfg, save_to=run_dir / "config_tree.log")


def _callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """The configured callbacks, plus FitLogInterval, plus qdsbench's progress bar (a rich bar on a terminal, one line
    per epoch otherwise) where Lightning would add its default TQDM bar."""
    from lightning.pytorch.callbacks import ProgressBar

    callbacks = [*build_callbacks(cfg), FitLogInterval()]
    wants_bar = cfg.get("trainer") is None or cfg.trainer.get("enable_progress_bar", True) is not False
    if wants_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(progress_bar())
    return callbacks


def train(cfg: DictConfig) -> dict[str, float]:
    validate(cfg)
    _check_ckpt_path(cfg)
    record, history, written_in = _open_record(cfg)
    run_dir = Path(cfg.paths.output_dir)
    _attach_wandb(cfg, record)
    _snapshot_config(cfg, run_dir)
    started = time.time()
    try:
        _setup_console(cfg, run_dir)
        seed_and_threads(cfg)
        datamodule = build_datamodule(cfg)
        datamodule.prepare_data()  # a missing dataset fails here, before any model is built
        task = build_task(cfg, datamodule=datamodule)
        _check_static_attention(task, datamodule, record, stop=bool(cfg.get("check_attention", True)))
        loggers = build_loggers(cfg)
        trainer: pl.Trainer = instantiate(
            cfg.trainer,
            callbacks=_callbacks(cfg),
            logger=[RunRecordLogger(run_dir, **history), *loggers],
            plugins=[AtomicCheckpointIO()],
        )
        with interrupts_raise():
            trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        fit_seconds = time.time() - started
        checkpoint = _checkpoint_callback(trainer)
        # a resumed run that was moved restores the paths Lightning saved before the move: re-root them here
        best = _in_this_run(checkpoint.best_model_path if checkpoint else None, run_dir, written_in)
        last = _in_this_run(_last_checkpoint_path(trainer, checkpoint), run_dir, written_in)
        record.update(checkpoints={"best": path_in_run(best, run_dir), "last": path_in_run(last, run_dir)})
        final = _scalars(trainer.callback_metrics)
        test_metrics: dict[str, float] = {}
        if cfg.get("test", True):
            results = trainer.test(task, datamodule=datamodule, ckpt_path=best, verbose=False)
            test_metrics = _scalars(results[0]) if results else {}
        best_score = checkpoint.best_model_score if checkpoint else None
        summary = {
            "final": final,
            "test": test_metrics,
            "best": {
                "monitor": checkpoint.monitor if checkpoint else None,
                "score": float(best_score) if best_score is not None else None,
                "checkpoint": path_in_run(best, run_dir),
            },
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "fit_seconds": round(fit_seconds, 2),  # this process only
            # with the attempts before a resume (the wall time of the history kept at its checkpoint)
            "fit_seconds_cumulative": round(float(history.get("elapsed", 0.0)) + fit_seconds, 2),
            "total_seconds": round(time.time() - started, 2),
            "num_parameters": sum(p.numel() for p in task.parameters()),
        }
        record.write_summary(summary)
        record.finish("finished")
        if rank_zero_only.rank == 0:
            print_summary(run_dir, summary)
        return {**final, **test_metrics}
    except RunInterrupted as err:
        # Pre-emption (Slurm sends SIGTERM) or Ctrl-C: the last checkpoint is complete; resume=auto continues it.
        record.finish("interrupted", error=err)
        log.error("run interrupted by %s; continue it with resume=auto (or resume=%s)", err.signal_name, run_dir)
        raise SystemExit(128 + err.signum) from None
    except BaseException as err:
        record.finish("failed", error=err)
        raise
    finally:
        _finish_wandb()


class RunInterrupted(BaseException):
    """Raised inside fit by SIGTERM / SIGINT (a BaseException, so nothing in between swallows it)."""

    def __init__(self, signum: int):
        self.signum, self.signal_name = signum, signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")


@contextmanager
def interrupts_raise():
    """SIGTERM and SIGINT become RunInterrupted while training (Lightning chains to this handler)."""

    def handler(signum, _frame):
        raise RunInterrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _finish_wandb() -> None:
    """Close a W&B run if one is open, so multiruns start clean."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
