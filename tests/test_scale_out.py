"""Sweeps through launchers, DDP on CPU, and resume after a kill: results are the same as a plain run."""

import json
from pathlib import Path

import pytest
from conftest import run_cli

QUICK = [
    "experiment=digits_vit",
    "logger=none",
    "callbacks=minimal",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
]


def records(log_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(log_dir.rglob("run.json"))]


def summary_of(record: dict) -> dict:
    return json.loads((Path(record["run_dir"]) / "summary.json").read_text())


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_sweep_through_launcher(tmp_path, launcher):
    result = run_cli(
        "qdsbench-train",
        "-m",
        f"launcher={launcher}",
        *QUICK,
        "trainer.max_epochs=1",
        "seed=0,1",
        f"paths.log_dir={tmp_path}",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    done = records(tmp_path)
    assert sorted(r["seed"] for r in done) == [0, 1] and all(r["status"] == "finished" for r in done)


def test_sweep_with_a_failing_job_completes_the_others(tmp_path):
    result = run_cli(
        "qdsbench-train",
        "-m",
        *QUICK,
        "trainer.max_epochs=1",
        "data.val_size=100,5000,150",
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode != 0  # Hydra reports the failure at the end of the sweep
    statuses = sorted(r["status"] for r in records(tmp_path))
    assert statuses == ["failed", "finished", "finished"]
    (failed,) = [r for r in records(tmp_path) if r["status"] == "failed"]
    assert "val_size=5000" in failed["error"]


def test_ddp_spawn_two_gloo_processes_match_one_process(tmp_path):
    common = [*QUICK, "trainer.max_epochs=2", "data.shuffle=false", "test=true"]
    single = run_cli("qdsbench-train", *common, "data.batch_size=64", f"hydra.run.dir={tmp_path / 'single'}")
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = run_cli(
        "qdsbench-train",
        *common,
        "trainer=ddp_spawn",
        "trainer.enable_progress_bar=false",
        "data.batch_size=32",
        f"hydra.run.dir={tmp_path / 'ddp'}",
        timeout=600,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = json.loads((tmp_path / "single" / "summary.json").read_text())
    two = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    # Same global batches in the same order: the weights follow the same path up to float reduction order.
    assert abs(one["final"]["val/acc"] - two["final"]["val/acc"]) <= 0.01
    assert abs(one["test"]["test/acc"] - two["test"]["test/acc"]) <= 0.01
    assert abs(one["final"]["val/loss"] - two["final"]["val/loss"]) <= 0.02
    assert len(list((tmp_path / "ddp").glob("metrics.csv"))) == 1  # rank 0 alone writes the record


def test_killed_run_resumes_to_identical_metrics(tmp_path):
    args = [*QUICK, "trainer.max_epochs=4"]
    # 20 steps per epoch: killed in the middle of epoch 2, after last.ckpt was written at step 40.
    killed = run_cli(
        "qdsbench-train",
        *args,
        f"paths.log_dir={tmp_path / 'faulty'}",
        "+callbacks.fault._target_=qdsbench.callbacks.FaultInjection",
        "+callbacks.fault.kill_at_step=50",
    )
    assert killed.returncode != 0
    (record,) = records(tmp_path / "faulty")
    assert record["status"] == "running"  # SIGKILL leaves no chance to write: resume=auto must find it
    resumed = run_cli("qdsbench-train", *args, f"paths.log_dir={tmp_path / 'faulty'}", "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (record,) = records(tmp_path / "faulty")  # continued in the same run directory
    assert record["status"] == "finished" and len(record["resumed"]) == 1
    plain = run_cli("qdsbench-train", *args, f"paths.log_dir={tmp_path / 'plain'}")
    assert plain.returncode == 0, plain.stderr[-3000:]
    (reference,) = records(tmp_path / "plain")
    got, want = summary_of(record), summary_of(reference)
    assert got["test"] == want["test"]
    assert got["final"]["val/acc"] == want["final"]["val/acc"]
    assert got["final"]["val/loss"] == want["final"]["val/loss"]
    history = (Path(record["run_dir"]) / "metrics.csv").read_text().splitlines()
    val_rows = [line for line in history if ",val/acc," in line]
    assert len(val_rows) == 4  # one per epoch, none duplicated by the resume
