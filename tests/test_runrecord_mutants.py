"""Run records: a config holding any value OmegaConf accepts (a Path, an Enum) hashes by its content, and the run
directory's lock is the file ``.lock`` in it (the name tests/test_fault_catalogue.py and anyone inspecting a run
rely on): whoever holds that file's lock keeps the run. Written to kill the mutants in results/quality/mutation.md."""

from __future__ import annotations

import enum
import fcntl
from pathlib import Path

import pytest
from omegaconf import OmegaConf

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
