"""resume=auto across a config-shape change: a run interrupted under the old shape (flat task.lr / lr_schedule, a
model.data copy of the data node) is still found by today's composed config, and only by the same settings."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from qdsbench.config import compose
from qdsbench.resume import find_resumable
from qdsbench.runrecord import RUN_FILE, config_hash


def _old_shape_run(root, cfg, lr: float):
    """A run directory as the checkout before the task base wrote it: its snapshot in the old shape."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    task = plain["task"]
    plain["task"] = {
        "name": task["name"],
        "lr": lr,
        "loss": task["loss"],
        "loss_alpha": task["loss_alpha"],
        "lr_schedule": task["scheduler"]["name"],
    }
    plain["model"]["data"] = "${data}"
    old = OmegaConf.create(plain)
    run = root / "runs" / "old"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    OmegaConf.save(old, run / ".hydra" / "config.yaml")
    record = {"config_hash": config_hash(old), "status": "interrupted", "start_time": "2026-12-01T00:00:00+00:00"}
    (run / RUN_FILE).write_text(json.dumps(record))
    return run


@pytest.mark.parametrize("same_lr", [True, False])
def test_an_old_shape_interrupted_run_resumes_only_with_the_same_settings(tmp_path, same_lr):
    cfg = compose("train", ["experiment=olinear/ili", f"paths.log_dir={tmp_path}", "resume=auto"])
    lr = cfg.task.optimizer.lr if same_lr else cfg.task.optimizer.lr * 2
    run = _old_shape_run(tmp_path, cfg, lr)
    assert json.loads((run / RUN_FILE).read_text())["config_hash"] != config_hash(cfg)  # the stored hash is stale
    assert find_resumable(cfg) == (run if same_lr else None)
