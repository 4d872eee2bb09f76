"""Faults that must never lose work: pre-emption signals, a reused run directory, two resumers, a failed write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT

from qdsbench.checkpoint_io import AtomicCheckpointIO
from qdsbench.runrecord import RunDirectoryInUseError, lock_run_dir

BASE = [
    "experiment=digits_vit",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.max_epochs=3",
    "callbacks.model_summary=null",
    "callbacks.progress_bar=null",
    "callbacks.attention_diagnostics=null",
    "callbacks.lr_monitor=null",
]
FAULT = ["+callbacks.fault._target_=qdsbench.callbacks.FaultInjection", "+callbacks.fault.kill_at_step=30"]


def train(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.train", *BASE, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def metrics(run_dir: Path) -> list[str]:
    return [line for line in (run_dir / "metrics.csv").read_text().splitlines()[1:] if ",val/" in line]


@pytest.mark.parametrize("signal_name, status_code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_preemption_signal_marks_interrupted_exits_nonzero_and_resumes_to_the_same_metrics(
    tmp_path, signal_name, status_code
):
    logs = tmp_path  # resume=auto looks for unfinished runs under paths.log_dir
    killed = train(
        f"paths.log_dir={logs}", f"hydra.run.dir={tmp_path}/a", *FAULT, f"+callbacks.fault.signal_name={signal_name}"
    )
    assert killed.returncode == status_code, killed.stderr[-2000:]
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["status"] == "interrupted" and signal_name in record["error"]
    torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=False)  # complete, loadable
    resumed = train(f"paths.log_dir={logs}", f"hydra.run.dir={tmp_path}/b", "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((tmp_path / "a" / "run.json").read_text())["status"] == "finished"
    straight = train(f"paths.log_dir={tmp_path}/other", f"hydra.run.dir={tmp_path}/other/c")
    assert straight.returncode == 0
    # same seed, same data order: an interrupted + resumed run logs the same validation metrics as one that was not
    strip = [",".join(line.split(",")[:4]) for line in metrics(tmp_path / "a")]
    assert strip == [",".join(line.split(",")[:4]) for line in metrics(tmp_path / "other" / "c")]


def test_a_used_run_directory_is_refused_before_hydra_writes_into_it(tmp_path):
    first = train(f"paths.log_dir={tmp_path}", f"hydra.run.dir={tmp_path}/a", "trainer.max_epochs=1")
    assert first.returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    again = train(f"paths.log_dir={tmp_path}", f"hydra.run.dir={tmp_path}/a", "attention=sinkhorn")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith(f"qdsbench: error: run directory {tmp_path}/a already")
    assert {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()} == before


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


def test_a_failed_checkpoint_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    good = path.read_bytes()

    def full_disk(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def _bad_runs(root: Path) -> None:
    for name in ("half", "latin1"):
        (root / name / ".hydra").mkdir(parents=True)
        (root / name / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (root / "half" / "run.json").write_text('{"status": "fini')
    (root / "latin1" / "run.json").write_bytes(b'{"status": "\xff\xfe"}')
    (root / "empty_csv" / ".hydra").mkdir(parents=True)
    (root / "empty_csv" / "run.json").write_text('{"status": "finished", "seed": 1}')
    (root / "empty_csv" / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (root / "empty_csv" / "metrics.csv").write_text("step,epoch\n1,2,3,4\n\x00,")


def test_report_and_resume_skip_unreadable_records_naming_each(tmp_path, capsys):
    from omegaconf import OmegaConf

    from qdsbench.report.collect import collect
    from qdsbench.resume import find_resumable

    _bad_runs(tmp_path)
    runs, _ = collect(tmp_path)
    err = capsys.readouterr().err
    assert f"skipping unreadable run {tmp_path / 'half'}" in err and f"{tmp_path / 'latin1'}" in err
    assert f"skipping unreadable run {tmp_path / 'empty_csv'}" in err and runs.empty
    assert find_resumable(OmegaConf.create({"paths": {"log_dir": str(tmp_path)}, "seed": 1})) is None
    err = capsys.readouterr().err
    assert f"resume=auto skips unreadable {tmp_path / 'half' / 'run.json'}" in err
