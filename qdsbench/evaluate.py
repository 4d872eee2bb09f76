"""Re-evaluate a finished run from its directory: its own config snapshot, its own checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf

from qdsbench.atomic import claim_new_stem
from qdsbench.builders import build_datamodule, build_task
from qdsbench.errors import UserError
from qdsbench.runrecord import RUN_FILE, atomic_write_json, now_iso, path_in_run, resolve_in_run
from qdsbench.snapshot import read_snapshot

SPLITS = ("test", "val")


def resolve_checkpoint(run_dir: Path, ckpt_path: str | None) -> Path:
    """``ckpt_path`` as given, else the record's best (or last) checkpoint as a file of ``run_dir`` itself: a moved
    run finds its weights, a copy uses its own (records with absolute paths are re-rooted, see resolve_in_run)."""
    if ckpt_path:
        candidate = Path(ckpt_path)
    else:
        record = _read_record(run_dir)
        ckpts = record.get("checkpoints") or {}
        recorded = ckpts.get("best") or ckpts.get("last")
        candidate = resolve_in_run(recorded, run_dir, record.get("run_dir")) or run_dir / "checkpoints" / "last.ckpt"
    if not candidate.is_file():
        raise ValueError(f"checkpoint {candidate} does not exist; pass ckpt_path=<file.ckpt>")
    return candidate


def _read_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is unreadable ({type(err).__name__}: {err}); pass ckpt_path=<file.ckpt>") from None


def load_task(run_dir: str | Path, ckpt_path: str | None = None, overrides: dict[str, Any] | None = None):
    """(cfg, task with trained weights, datamodule) for a finished run: the notebook entry point."""
    run_dir = Path(run_dir)
    cfg = read_snapshot(run_dir)
    for key, value in (overrides or {}).items():
        OmegaConf.update(cfg, key, value, force_add=True)
    checkpoint = resolve_checkpoint(run_dir, ckpt_path)
    datamodule = build_datamodule(cfg)
    task = build_task(cfg, datamodule=datamodule)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        task.load_state_dict(state["state_dict"])
    except Exception as err:  # corrupt or foreign files
        raise ValueError(f"checkpoint {checkpoint} could not be loaded ({type(err).__name__}: {err})") from err
    return cfg, task, datamodule, checkpoint


def evaluate(cfg: DictConfig) -> dict[str, float]:
    from qdsbench import console

    console.silence_known_warnings()
    console.route_lightning_logs()  # Lightning's records through Hydra's handlers: printed once, kept in the log
    if OmegaConf.is_missing(cfg, "run_dir") or not cfg.get("run_dir"):
        raise UserError("qdsbench-eval needs run_dir=<run directory> (a directory under logs/ holding run.json)")
    if cfg.split not in SPLITS:
        raise ValueError(f"split={cfg.split} is not valid; valid choices: {', '.join(SPLITS)}")
    run_dir = Path(cfg.run_dir)
    overrides = OmegaConf.to_container(cfg.overrides) if cfg.get("overrides") else {}
    run_cfg, task, datamodule, checkpoint = load_task(run_dir, cfg.get("ckpt_path"), overrides)
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), verbose=False)
    trainer = pl.Trainer(**{k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if k != "_target_"})
    run = trainer.test if cfg.split == "test" else trainer.validate
    results = run(task, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    out_dir = run_dir / "eval"
    stamp = claim_new_stem(out_dir, now_iso().replace(":", "-"), ".json")
    payload = {
        "checkpoint": path_in_run(checkpoint, run_dir),
        "split": cfg.split,
        "overrides": overrides,
        "metrics": metrics,
        "time": now_iso(),
    }
    atomic_write_json(out_dir / f"{stamp}.json", payload)
    print(json.dumps(payload, indent=2))
    return metrics
