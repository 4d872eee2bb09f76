"""Run records: a config holding any value OmegaConf accepts (a Path, an Enum) hashes by its content, and the run
directory's lock is the file ``.lock`` in it (the name tests/test_fault_catalogue.py and anyone inspecting a run
rely on): whoever holds that file's lock keeps the run. Written to kill the mutants in results/quality/mutation.md."""

from __future__ import annotations

import csv
import enum
import errno
import fcntl
import json
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from qdsbench import runrecord
from qdsbench.errors import RunDirectoryInUseError
from qdsbench.runrecord import config_hash, lock_run_dir


class Mode(enum.Enum):
    FAST = 1
    SLOW = 2


def test_a_config_with_path_and_enum_values_hashes_by_their_content():
    h = config_hash(OmegaConf.create({"data": Path("/d/a"), "mode": Mode.FAST}))
    assert h == config_hash(OmegaConf.create({"mode": Mode.FAST, "data": Path("/d/a")}))
    assert h != config_hash(OmegaConf.create({"data": Path("/d/b"), "mode": Mode.FAST}))
    assert h != config_hash(OmegaConf.create({"data": Path("/d/a"), "mode": Mode.SLOW}))


def test_the_lock_is_the_runs_dot_lock_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "a+") as held:  # another holder of the run: a lock on its .lock file, owner pid inside
        held.write("4242\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunDirectoryInUseError, match=r"in use by another process \(pid 4242\)"):
            lock_run_dir(run)
    assert sorted(p.name for p in run.iterdir()) == [".lock"]


# --- the record's lifecycle and provenance, in process (no training run): what reports and resumes read ---------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "tracked.txt").write_text("one\n")
    _git(root, "add", "tracked.txt")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return root


def test_git_state_names_the_head_commit_and_only_tracked_edits_make_it_dirty(repo, tmp_path):
    assert runrecord.git_state(repo) == {"sha": _git(repo, "rev-parse", "HEAD"), "dirty": False}
    (repo / "untracked.txt").write_text("new\n")
    assert runrecord.git_state(repo)["dirty"] is False
    (repo / "tracked.txt").write_text("two\n")
    assert runrecord.git_state(repo)["dirty"] is True
    outside = tmp_path / "not_a_repo"
    outside.mkdir()
    assert runrecord.git_state(outside) == {"sha": None, "dirty": None}


def test_package_versions_reads_each_tracked_package_and_none_for_a_missing_one(monkeypatch):
    import torch

    monkeypatch.setattr(runrecord, "TRACKED_PACKAGES", ("torch", "no-such-package-qdsbench-test"))
    versions = runrecord.package_versions()
    assert (
        versions
        == {
            "torch": torch.__version__.split("+")[0],  # the distribution version, without a local build label
            "no-such-package-qdsbench-test": None,
            "python": "{}.{}.{}".format(*sys.version_info[:3]),
        }
    )


def test_device_info_reports_this_cpu_process():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        info = runrecord.device_info()
    finally:
        torch.set_num_threads(previous)
    assert info["torch_threads"] == 1
    assert info["cpu_count"] == os.cpu_count() and info["platform"].startswith(platform.system())
    assert info["cuda"] is torch.cuda.is_available()
    assert ("gpu" in info) is info["cuda"]


def _cfg(**extra):
    return OmegaConf.create({"seed": 7, "model": {"depth": 2}, **extra})


def test_a_started_record_holds_identity_provenance_and_an_empty_outcome(tmp_path, repo):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    cfg = _cfg(experiment_name="qds/table1", task_name="other", _command="qdsbench-train x=1")
    record = runrecord.RunRecord.start(tmp_path / "a" / "b" / "run", cfg, repo=repo)
    on_disk = json.loads((tmp_path / "a" / "b" / "run" / "run.json").read_text())
    assert on_disk == record.payload
    assert re.fullmatch(r"[0-9a-f]{12}", on_disk["run_id"])
    assert datetime.fromisoformat(on_disk["start_time"]) >= before
    assert datetime.fromisoformat(on_disk["start_time"]).utcoffset() == timedelta(0)
    expected = {
        "experiment": "qds/table1",
        "config_hash": config_hash(cfg),
        "seed": 7,
        "git": {"sha": _git(repo, "rev-parse", "HEAD"), "dirty": False},
        "command": "qdsbench-train x=1",
        "sweep": None,
        "end_time": None,
        "status": "running",
        "error": None,
        "checkpoints": {"best": None, "last": None},
        "run_dir": str((tmp_path / "a" / "b" / "run").resolve()),
    }
    assert {k: on_disk[k] for k in expected} == expected
    assert set(on_disk["packages"]) == set(runrecord.TRACKED_PACKAGES) | {"python"}
    assert on_disk["device"]["cpu_count"] == os.cpu_count()


@pytest.mark.parametrize(
    ("extra", "experiment"),
    [({"task_name": "sweep_task"}, "sweep_task"), ({}, "train"), ({"experiment_name": None, "task_name": "t"}, "t")],
)
def test_the_experiment_name_falls_back_to_the_task_name_then_train(tmp_path, extra, experiment):
    record = runrecord.RunRecord.start(tmp_path / "run", _cfg(**extra), repo=tmp_path)
    assert record.payload["experiment"] == experiment


def test_a_sweep_member_records_its_sweep_as_plain_data(tmp_path):
    record = runrecord.RunRecord.start(tmp_path / "run", _cfg(_sweep={"name": "grid", "index": 3}), repo=tmp_path)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["sweep"] == {"name": "grid", "index": 3}
    assert record.payload["sweep"] == {"name": "grid", "index": 3}


def test_starting_where_a_record_exists_refuses_and_changes_nothing(tmp_path):
    runrecord.RunRecord.start(tmp_path / "run", _cfg(), repo=tmp_path).finish("completed")
    before = (tmp_path / "run" / "run.json").read_bytes()
    refusal = (
        r"already holds a run record \(status completed\); "
        r"nothing was changed there: pick a new hydra.run.dir or resume that run"
    )
    with pytest.raises(RunDirectoryInUseError, match=refusal):
        runrecord.RunRecord.start(tmp_path / "run", _cfg(), repo=tmp_path)
    assert (tmp_path / "run" / "run.json").read_bytes() == before


def test_a_record_without_a_status_is_refused_as_status_unknown(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    with pytest.raises(RunDirectoryInUseError, match=r"\(status unknown\)"):
        runrecord.RunRecord.start(tmp_path / "run", _cfg(), repo=tmp_path)


def test_the_record_of_a_run_started_without_a_repo_describes_the_working_directory(tmp_path, repo, monkeypatch):
    monkeypatch.chdir(repo)
    record = runrecord.RunRecord.start(tmp_path / "run", _cfg())
    assert record.payload["git"] == {"sha": _git(repo, "rev-parse", "HEAD"), "dirty": False}


def test_a_hung_or_missing_git_leaves_the_git_state_unknown(monkeypatch, tmp_path):
    def hung(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout"))

    monkeypatch.setattr(runrecord.subprocess, "run", hung)
    assert runrecord.git_state(tmp_path) == {"sha": None, "dirty": None}


def test_a_run_directory_that_cannot_be_created_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("in the way\n")
    with pytest.raises(runrecord.RunRecordWriteError, match=r"cannot create run directory .*file/run") as caught:
        runrecord.RunRecord.start(tmp_path / "file" / "run", _cfg(), repo=tmp_path)
    assert caught.value.errno == errno.ENOTDIR  # an OSError still: callers may branch on its errno


def test_update_finish_and_summary_persist_and_load_reads_them_back(tmp_path):
    record = runrecord.RunRecord.start(tmp_path / "run", _cfg(), repo=tmp_path)
    record.update(checkpoints={"best": "checkpoints/best.ckpt", "last": None})
    record.finish("failed", error=ValueError("boom"))
    loaded = runrecord.RunRecord.load(tmp_path / "run")
    assert loaded.run_dir == tmp_path / "run"
    assert loaded.payload["checkpoints"] == {"best": "checkpoints/best.ckpt", "last": None}
    assert loaded.payload["status"] == "failed" and loaded.payload["error"] == "ValueError: boom"
    assert datetime.fromisoformat(loaded.payload["end_time"]) >= datetime.fromisoformat(loaded.payload["start_time"])
    loaded.finish("completed")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["error"] == "ValueError: boom"  # kept
    record.write_summary({"val/acc": 0.5})
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == {"val/acc": 0.5}


def _rows(run_dir: Path) -> list[list[str]]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.reader(fh))


class _Clock:
    """time.time() as the logger sees it: advanced by hand, so wall times are exact."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = _Clock()
    monkeypatch.setattr(runrecord.time, "time", fake)
    return fake


def test_the_logger_appends_one_long_form_row_per_scalar_under_one_header(tmp_path, clock):
    logger = runrecord.RunRecordLogger(tmp_path)
    clock.now += 2.5
    assert (logger.name, logger.version, logger.save_dir, logger.experiment) == ("run_record", "", str(tmp_path), None)
    logger.log_hyperparams({"lr": 1.0})
    assert not (tmp_path / "metrics.csv").exists()
    logger.log_metrics({"train/loss": torch_scalar(0.25), "epoch": 1.0}, step=10)
    logger.log_metrics({"val/acc": 0.5}, step=None)
    rows = _rows(tmp_path)
    assert rows[0] == ["step", "epoch", "metric", "value", "wall_time"]
    assert [r[:4] for r in rows[1:]] == [["10", "1", "train/loss", "0.25"], ["", "", "val/acc", "0.5"]]
    assert [float(r[4]) for r in rows[1:]] == [2.5, 2.5]  # seconds since the logger started
    assert logger.last_values == {"train/loss": 0.25, "val/acc": 0.5}


def test_a_resumed_logger_skips_what_the_history_holds_and_continues_its_clock(tmp_path, clock):
    logger = runrecord.RunRecordLogger(tmp_path, logged={("10", "lr"), ("", "val/acc")}, elapsed=100.0)
    clock.now += 1.25
    logger.log_metrics({"lr": 0.1, "train/loss": 2.0}, step=10)
    logger.log_metrics({"val/acc": 0.75}, step=None)
    logger.log_metrics({"lr": 0.05}, step=11)
    rows = _rows(tmp_path)[1:]
    assert [r[2:4] for r in rows] == [["train/loss", "2.0"], ["lr", "0.05"]]
    assert [float(r[4]) for r in rows] == [101.25, 101.25]
    assert logger.last_values == {"lr": 0.05, "train/loss": 2.0, "val/acc": 0.75}  # skipped rows still count


def test_the_null_record_of_other_ranks_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    null = runrecord.NullRecord()
    null.update(status="x")
    null.finish("failed", error=ValueError("x"))
    null.write_summary({"a": 1})
    assert null.payload == {} and list(tmp_path.iterdir()) == []


def torch_scalar(value: float):
    import torch

    return torch.tensor(value)
