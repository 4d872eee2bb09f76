"""Fit, then test on the best checkpoint, keeping the run record true at every step (also when it fails)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from qdsbench.builders import build_callbacks, build_datamodule, build_loggers, build_task
from qdsbench.runrecord import RunRecord, RunRecordLogger
from qdsbench.summary import print_summary

log = logging.getLogger(__name__)


def seed_and_threads(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    if cfg.get("seed") is not None:  # 0 is a valid seed
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)


def _checkpoint_callback(trainer: pl.Trainer) -> ModelCheckpoint | None:
    return trainer.checkpoint_callback if isinstance(trainer.checkpoint_callback, ModelCheckpoint) else None


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if torch.is_tensor(v) and v.numel() == 1 or isinstance(v, float)}


def train(cfg: DictConfig) -> dict[str, float]:
    run_dir = Path(cfg.paths.output_dir)
    record = RunRecord.start(run_dir, cfg)
    started = time.time()
    try:
        seed_and_threads(cfg)
        datamodule = build_datamodule(cfg)
        datamodule.prepare_data()  # a missing dataset fails here, before any model is built
        task = build_task(cfg)
        record_logger = RunRecordLogger(run_dir)
        trainer: pl.Trainer = instantiate(
            cfg.trainer, callbacks=build_callbacks(cfg), logger=[record_logger, *build_loggers(cfg)]
        )
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        fit_seconds = time.time() - started
        checkpoint = _checkpoint_callback(trainer)
        best = checkpoint.best_model_path if checkpoint and checkpoint.best_model_path else None
        last = checkpoint.last_model_path if checkpoint and checkpoint.last_model_path else None
        record.update(checkpoints={"best": best, "last": last})
        final = _scalars(trainer.callback_metrics)
        test_metrics: dict[str, float] = {}
        if cfg.get("test", True):
            results = trainer.test(task, datamodule=datamodule, ckpt_path=best, verbose=False)
            test_metrics = _scalars(results[0]) if results else {}
        summary = {
            "final": final,
            "test": test_metrics,
            "best": {
                "monitor": checkpoint.monitor if checkpoint else None,
                "score": float(checkpoint.best_model_score) if checkpoint and checkpoint.best_model_score is not None
                else None,
                "checkpoint": best,
            },
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "fit_seconds": round(fit_seconds, 2),
            "total_seconds": round(time.time() - started, 2),
            "num_parameters": sum(p.numel() for p in task.parameters()),
        }
        record.write_summary(summary)
        record.finish("finished")
        print_summary(run_dir, summary)
        return {**final, **test_metrics}
    except BaseException as err:
        record.finish("failed", error=err)
        raise
    finally:
        _finish_wandb()


def _finish_wandb() -> None:
    """Close a W&B run if one is open, so multiruns start clean."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
