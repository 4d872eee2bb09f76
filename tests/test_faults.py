"""What a fault must not lose (issue #21), beyond the one-line guarantees of tests/test_fault_catalogue.py: a
pre-empted run resumes to the history of a run never stopped, in the same W&B run; a moved or copied run is
evaluated with its own weights; a run directory's lock is held by one process and freed with it."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, compose_config, run_cli

from qdsbench.runrecord import RunDirectoryInUseError, lock_run_dir

BASE = [
    "experiment=digits_vit",
    "trainer.enable_progress_bar=false",
    "trainer.max_epochs=3",
    "callbacks.model_summary=null",
    "callbacks.progress_bar=null",
    "callbacks.attention_diagnostics=null",
]
FAULT = ["+callbacks.fault._target_=qdsbench.callbacks.FaultInjection", "+callbacks.fault.kill_at_step=30"]


def train(*args: str, logger: str = "none", timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline" if logger == "wandb" else "disabled"}
    return subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.train", *BASE, f"logger={logger}", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def history(run_dir: Path) -> list[tuple[str, str, str, str]]:
    """metrics.csv as (step, epoch, metric, value) rows in file order; wall_time left out."""
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [tuple(row[:4]) for row in list(csv.reader(fh))[1:]]


def wall_times(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [float(row[4]) for row in list(csv.reader(fh))[1:]]


def test_a_sigterm_killed_run_resumes_to_the_uninterrupted_history_in_the_same_wandb_run(tmp_path):
    """Pre-emption loses nothing: the resumed run's metrics.csv holds exactly the rows of a run never stopped (each
    (step, metric) once, the learning rate included), its wall_time never goes back, and W&B sees one run."""
    logs = tmp_path  # resume=auto looks for unfinished runs under paths.log_dir
    killed = train(
        f"paths.log_dir={logs}",
        f"hydra.run.dir={tmp_path}/a",
        *FAULT,
        "+callbacks.fault.signal_name=SIGTERM",
        logger="wandb",
    )
    assert killed.returncode == 143, killed.stderr[-2000:]
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["status"] == "interrupted" and "SIGTERM" in record["error"]
    wandb_id = record["wandb_id"]
    assert wandb_id, "run.json records no W&B id"
    step = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]  # loadable
    with open(tmp_path / "a" / "metrics.csv", newline="") as fh:  # the first attempt's time up to its checkpoint
        first_attempt = max(float(r[4]) for r in list(csv.reader(fh))[1:] if r[0] and int(r[0]) <= step)
    resumed = train(f"paths.log_dir={logs}", f"hydra.run.dir={tmp_path}/b", "resume=auto", logger="wandb")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["status"] == "finished" and record["wandb_id"] == wandb_id
    offline = sorted((tmp_path / "a" / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(d.name.endswith(f"-{wandb_id}") for d in offline), offline
    assert all((d / f"run-{wandb_id}.wandb").is_file() for d in offline)
    straight = train(f"paths.log_dir={tmp_path}/other", f"hydra.run.dir={tmp_path}/other/c")
    assert straight.returncode == 0, straight.stderr[-2000:]
    # same seed, same data order: every logged value of the interrupted + resumed run is the uninterrupted run's
    resumed_rows, straight_rows = history(tmp_path / "a"), history(tmp_path / "other" / "c")
    assert any(row[2].startswith("lr-") for row in straight_rows)  # the row a resume used to log twice is there
    assert sorted(resumed_rows) == sorted(straight_rows)
    assert len({(step, metric) for step, _, metric, _ in resumed_rows}) == len(resumed_rows)
    times = wall_times(tmp_path / "a")
    assert times == sorted(times), "wall_time restarted at the resume"
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert first_attempt > 0  # both attempts are counted:
    assert summary["fit_seconds_cumulative"] == pytest.approx(summary["fit_seconds"] + first_attempt, abs=0.02)


@pytest.mark.parametrize("callbacks", ["minimal", "default", "forecasting"])
def test_last_ckpt_is_the_latest_epoch_even_when_the_best_is_an_earlier_one(make_cfg, tmp_path, callbacks):
    """resume=auto reads last.ckpt: it must hold the latest epoch, not a copy of the best one (Lightning 2.6's
    save_last). Monitoring the step in mode min makes the first epoch the best, whatever the data does."""
    from qdsbench.train import train as train_in_process

    cfg = make_cfg(
        f"callbacks={callbacks}",
        "callbacks.model_checkpoint.monitor=step",
        "callbacks.model_checkpoint.mode=min",
        "trainer.max_epochs=3",
        *(["callbacks.early_stopping=null"] if callbacks == "forecasting" else []),
    )
    train_in_process(cfg)
    checkpoints = tmp_path / "run" / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert last["epoch"] == 2 and last["global_step"] == summary["global_step"]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]  # the best kept too


def test_a_second_process_cannot_take_a_locked_run_directory(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from qdsbench.runrecord import lock_run_dir; lock_run_dir(Path(sys.argv[1])); "
            "print('locked', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryInUseError, match=rf"in use by another process \(pid {holder.pid}\)"):
            lock_run_dir(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    lock_run_dir(tmp_path)  # free again once the holder is gone


def _evaluate(run_dir: Path, out: Path) -> dict:
    """qdsbench-eval run_dir=<run_dir> in this process: the eval record it writes."""
    from qdsbench.evaluate import evaluate

    before = set((run_dir / "eval").glob("*.json")) if (run_dir / "eval").is_dir() else set()
    evaluate(compose_config([f"run_dir={run_dir}", f"paths.output_dir={out}", "trainer.accelerator=cpu"], "eval"))
    (new,) = set((run_dir / "eval").glob("*.json")) - before
    return json.loads(new.read_text())


def test_a_moved_or_copied_run_is_evaluated_with_its_own_weights(make_cfg, tmp_path):
    """run.json names checkpoints relative to the run directory: a moved run still evaluates, a copy uses its own
    checkpoint (not the original's, changed or deleted), and records written with absolute paths are re-rooted."""
    from qdsbench.train import train as train_in_process

    train_in_process(make_cfg("trainer.max_epochs=1"))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert not Path(record["checkpoints"]["best"]).is_absolute(), record["checkpoints"]
    tested = json.loads((tmp_path / "run" / "summary.json").read_text())["test"]["test/acc"]

    moved = tmp_path / "moved"
    shutil.move(tmp_path / "run", moved)
    result = run_cli("qdsbench-eval", f"run_dir={moved}", f"hydra.run.dir={tmp_path / 'e'}")
    assert result.returncode == 0, result.stderr[-2000:]
    (payload,) = [json.loads(p.read_text()) for p in (moved / "eval").glob("*.json")]
    assert (moved / payload["checkpoint"]).is_file() and payload["metrics"]["test/acc"] == pytest.approx(tested)

    copy = tmp_path / "copy"
    shutil.copytree(moved, copy)
    best = moved / record["checkpoints"]["best"]
    state = torch.load(best, weights_only=False)
    state["state_dict"] = {k: torch.zeros_like(v) for k, v in state["state_dict"].items()}
    torch.save(state, best)  # the original's weights changed: the copy must not see it
    assert _evaluate(copy, tmp_path / "e")["metrics"]["test/acc"] == pytest.approx(tested)
    assert _evaluate(moved, tmp_path / "e")["metrics"]["test/acc"] != pytest.approx(tested)

    old_style = tmp_path / "old_style"  # a record written before paths were relative, then copied
    shutil.copytree(copy, old_style)
    legacy = json.loads((copy / "run.json").read_text())
    legacy["run_dir"] = str(moved)
    legacy["checkpoints"] = {k: str(moved / v) for k, v in legacy["checkpoints"].items()}
    (old_style / "run.json").write_text(json.dumps(legacy))
    shutil.rmtree(copy)
    assert _evaluate(old_style, tmp_path / "e")["metrics"]["test/acc"] == pytest.approx(tested)
    shutil.rmtree(moved)  # the original gone: the copy still evaluates from its own files
    assert _evaluate(old_style, tmp_path / "e")["metrics"]["test/acc"] == pytest.approx(tested)
