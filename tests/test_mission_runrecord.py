"""Run records name their files relative to the run (a moved or copied run reads its own files) and hash configs by
content only: the properties, against hand-written expectations (the holes mutation testing found in runrecord)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from qdsbench.runrecord import HASH_EXCLUDED_KEYS, config_hash, path_in_run, resolve_in_run


def test_paths_inside_the_run_are_recorded_relative_and_others_as_given(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert path_in_run(run / "checkpoints" / "last.ckpt", run) == "checkpoints/last.ckpt"
    assert path_in_run(tmp_path / "elsewhere.ckpt", run) == str(tmp_path / "elsewhere.ckpt")
    assert path_in_run(None, run) is None and path_in_run("", run) is None


def test_recorded_paths_resolve_against_the_directory_given():
    assert resolve_in_run("c/a.ckpt", "/new") == Path("/new/c/a.ckpt")
    assert resolve_in_run("/old/run/c/a.ckpt", "/new", "/old/run") == Path("/new/c/a.ckpt")  # old absolute record
    assert resolve_in_run("/x/a.ckpt", "/new", "/old/run") == Path("/x/a.ckpt")  # outside the recorded run: as is
    assert resolve_in_run("/old/run/a.ckpt", "/new") == Path("/old/run/a.ckpt")  # no recorded dir: nothing to move
    assert resolve_in_run("", "/new") is None and resolve_in_run(None, "/new") is None


def test_config_hash_is_of_content_not_key_order_and_ignores_run_bookkeeping():
    base = {"model": {"depth": 1, "dim": 128}, "seed": 0, "data": {"dir": "/d"}}
    h = config_hash(OmegaConf.create(base))
    assert h == config_hash(OmegaConf.create({"data": {"dir": "/d"}, "seed": 0, "model": {"dim": 128, "depth": 1}}))
    assert len(h) == 16 and int(h, 16) >= 0
    assert h != config_hash(OmegaConf.create({**base, "model": {"depth": 2, "dim": 128}}))
    for key in HASH_EXCLUDED_KEYS:  # where a run is written or logged is not what it computes
        assert config_hash(OmegaConf.create({**base, key: {"anything": 1}})) == h, key
    interpolated = OmegaConf.create({"a": 1, "b": "${a}"})
    assert config_hash(interpolated) != config_hash(OmegaConf.create({"a": 1, "b": 1}))  # hashed unresolved
