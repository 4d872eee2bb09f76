"""Training end to end on the embedded digits data: run record, determinism, seeds, eval, no overwrite."""

import json

import pytest
from conftest import REPO_ROOT, run_cli

from qdsbench.runrecord import RunDirectoryInUseError, RunRecord
from qdsbench.train import train

RUN_FIELDS = {
    "run_id",
    "experiment",
    "config_hash",
    "seed",
    "git",
    "packages",
    "device",
    "start_time",
    "end_time",
    "status",
    "checkpoints",
    "error",
    "command",
    "run_dir",
}


def test_training_reduces_loss_and_learns(make_cfg, tmp_path):
    metrics = train(make_cfg("trainer.max_epochs=6"))
    history = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    losses = [float(line.split(",")[3]) for line in history[1:] if ",train/loss_epoch," in line]
    assert len(losses) == 6 and losses[-1] < 0.6 * losses[0]
    assert metrics["test/acc"] > 0.5  # 10 classes: chance is 0.1


def test_a_run_builds_its_datamodule_once_and_the_model_sees_that_one(make_cfg, shared_data_dir, monkeypatch):
    """OLinear's inputs (window sizes, variates, its Q) come from the datamodule the run trains on, not a second one."""
    from qdsbench import builders

    built, asked = [], []
    create = builders.data.create

    def counting_create(*args, **kwargs):
        datamodule = create(*args, **kwargs)
        index, model_inputs = len(built), datamodule.model_inputs
        datamodule.model_inputs = lambda: asked.append(index) or model_inputs()
        built.append(datamodule)
        return datamodule

    monkeypatch.setattr(builders.data, "create", counting_create)
    overrides = ["experiment=olinear/ili", f"paths.data_dir={shared_data_dir}", "model.d_model=16", "model.d_ff=16"]
    train(make_cfg(*overrides, "trainer.max_epochs=1", "callbacks=forecasting", run_name="ili"))
    assert len(built) == 1 and asked == [0]


def test_same_seed_gives_identical_metrics(make_cfg):
    a = train(make_cfg("trainer.max_epochs=1", "seed=0", run_name="a"))
    b = train(make_cfg("trainer.max_epochs=1", "seed=0", run_name="b"))
    assert a == b


def test_seed_zero_is_honoured_and_differs_from_seed_one(make_cfg):
    zero = train(make_cfg("trainer.max_epochs=1", "seed=0", run_name="zero"))
    one = train(make_cfg("trainer.max_epochs=1", "seed=1", run_name="one"))
    assert zero["train/loss"] != one["train/loss"]


def test_existing_run_directory_is_not_overwritten(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=1")
    train(cfg)
    run_dir = tmp_path / "run"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(RunDirectoryInUseError, match="already holds a run record"):
        train(cfg)
    assert before == {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def test_failed_run_is_recorded(make_cfg, tmp_path):
    cfg = make_cfg("data.val_size=5000")
    with pytest.raises(ValueError, match="val_size=5000"):
        train(cfg)
    record = RunRecord.load(tmp_path / "run").payload
    assert record["status"] == "failed" and "val_size=5000" in record["error"] and record["end_time"]


def test_cli_train_writes_complete_run_record_then_eval(tmp_path):
    result = run_cli(
        "qdsbench-train",
        "experiment=digits_vit",
        "trainer.max_epochs=2",
        "logger=wandb",
        "callbacks=minimal",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = tmp_path / "run"
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / ".hydra" / "overrides.yaml").is_file()
    record = json.loads((run_dir / "run.json").read_text())
    assert RUN_FIELDS <= set(record)
    assert record["status"] == "finished" and record["seed"] == 0 and record["git"]["sha"]
    assert record["checkpoints"]["best"] and record["checkpoints"]["last"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 <= summary["test"]["test/acc"] <= 1 and summary["best"]["monitor"] == "val/acc"
    assert "val/acc" in (run_dir / "metrics.csv").read_text()
    assert list(run_dir.glob("wandb/offline-run-*/run-*.wandb")), "no offline W&B run was written"

    evaluated = run_cli("qdsbench-eval", f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    (eval_file,) = (run_dir / "eval").glob("*.json")
    payload = json.loads(eval_file.read_text())
    assert payload["metrics"]["test/acc"] == pytest.approx(summary["test"]["test/acc"], abs=1e-6)


def test_cli_missing_dataset_is_one_line(tmp_path):
    result = run_cli(
        "qdsbench-train",
        "data=cifar10",
        f"paths.data_dir={tmp_path}",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("qdsbench: error")]
    assert len(lines) == 1 and str(tmp_path / "cifar-10-batches-py") in lines[0] and "cs.toronto.edu" in lines[0]


def test_cli_unknown_backend_is_one_line(tmp_path):
    result = run_cli(
        "qdsbench-train",
        "experiment=digits_vit",
        "attention.name=nope",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("qdsbench: error")]
    assert "'nope'" in line and "softmax" in line
    assert REPO_ROOT.exists()
