"""The Hydra-facing side of the long-context evaluation: load the run, evaluate one method, write its rows."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from qdsbench.atomic import claim_new_stem
from qdsbench.evaluate import load_task
from qdsbench.longctx.evaluate import Evaluator, evaluate_methods, method_label
from qdsbench.runrecord import atomic_write_json, now_iso


def default_cache_dir() -> str:
    return str(Path(os.environ.get("QDSBENCH_CACHE", "cache")) / "ruler")


def load_decoder(
    run_dir: str | Path, ckpt_path: str | None = None, samples: int | None = None, cache_dir: str | None = None
):
    """The run's decoder and data module; evaluation sets are cached in ``cache_dir`` (not the run's data_dir)."""
    overrides = {"data.cache_dir": cache_dir or default_cache_dir()}
    if samples:
        overrides["data.test_samples"] = samples
    cfg, task, datamodule, checkpoint = load_task(run_dir, ckpt_path, overrides)
    if cfg.model.name != "decoder_lm":
        raise ValueError(
            f"run {run_dir} trained model '{cfg.model.name}'; the long-context evaluation needs "
            f"model=decoder_lm (experiment=delta/train)"
        )
    return cfg, task.net.eval(), datamodule, checkpoint


def rows_to_csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def run_eval(cfg: DictConfig) -> list[dict]:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    method = OmegaConf.to_container(cfg.attention, resolve=True)
    if method["name"] not in ("sdpa", "softmax", "sink_window", "delta"):
        raise ValueError(
            f"attention={method['name']} is not a prefill method here; valid choices: sdpa, sink_window, delta"
        )
    _, model, datamodule, checkpoint = load_decoder(cfg.run_dir, cfg.get("ckpt_path"), cfg.samples)
    evaluator = Evaluator(model, datamodule.generator.vocab.eos, cfg.last_k)
    rows = evaluate_methods(evaluator, datamodule, [method], list(cfg.lengths), cfg.get("tasks"), cfg.batch_size)
    rows = [r for r in rows if r["method"] == method_label(method)]
    out_dir = Path(cfg.run_dir) / "longctx_eval"
    stem = claim_new_stem(out_dir, f"{method_label(method)}_{now_iso().replace(':', '-')}", ".json")
    (out_dir / f"{stem}.csv").write_text(rows_to_csv(rows))
    atomic_write_json(
        out_dir / f"{stem}.json", {"checkpoint": str(checkpoint), "method": method, "rows": rows, "time": now_iso()}
    )
    if cfg.get("wandb", True):
        log_wandb(rows, method, out_dir, stem, Path(cfg.run_dir))
    for length in sorted({r["length"] for r in rows}):
        scores = [r["score"] for r in rows if r["length"] == length]
        print(
            f"{method_label(method)} N={length}: mean score {sum(scores) / len(scores):.1f} over {len(scores)} "
            f"tasks -> {out_dir / stem}.csv"
        )
    return rows


def log_wandb(rows: list[dict], method: dict, out_dir: Path, stem: str, run_dir: Path) -> None:
    """One W&B run per evaluation (job_type=eval_longctx), offline unless WANDB_MODE says otherwise."""
    mode = os.environ.get("WANDB_MODE", "offline")
    if mode == "disabled" or not rows:
        return
    import wandb

    run = wandb.init(
        project="qdsbench",
        job_type="eval_longctx",
        dir=str(out_dir),
        mode=mode,
        name=stem,
        group=run_dir.name,
        config={"run_dir": str(run_dir), **method},
        reinit="finish_previous",
    )
    try:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        run.log({"longctx/rows": wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])})
        for r in rows:
            run.log(
                {
                    f"longctx/{r['task']}/{r['length']}/score": r["score"],
                    f"longctx/{r['task']}/{r['length']}/answer_nll": r["answer_nll"],
                }
            )
    finally:
        run.finish()
