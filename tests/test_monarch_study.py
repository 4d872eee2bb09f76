"""The Monarch conversion study (qdsbench.studies.monarch): it trains or resumes its run, records the paired counts
every interval is drawn from, and reports the training time across resumes."""

from __future__ import annotations

import csv
import json
import subprocess

import pytest

from qdsbench.studies import monarch
from qdsbench.train import train


def _calls(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: calls.append(argv))
    return calls


def test_a_finished_run_is_not_trained_again_and_an_interrupted_one_is_resumed(tmp_path, monkeypatch):
    calls = _calls(monkeypatch)
    fresh, interrupted, finished = tmp_path / "fresh", tmp_path / "interrupted", tmp_path / "finished"
    (interrupted / "checkpoints").mkdir(parents=True)
    finished.mkdir()
    (finished / "summary.json").write_text("{}")
    monarch.ensure_trained(finished)
    assert calls == []
    monarch.ensure_trained(fresh, "monarch/vit_long", ["trainer.max_epochs=1"])
    assert "experiment=monarch/vit_long" in calls[0] and f"hydra.run.dir={fresh}" in calls[0]
    assert not any(a.startswith("resume=") for a in calls[0]) and calls[0][-1] == "trainer.max_epochs=1"
    monarch.ensure_trained(interrupted)
    assert f"experiment={monarch.DEFAULT_EXPERIMENT}" in calls[1] and f"resume={interrupted}" in calls[1]


def test_the_grid_records_paired_counts_that_add_up_and_the_training_time(make_cfg, tmp_path, monkeypatch):
    train(
        make_cfg(
            "trainer.max_epochs=1",
            "model.tokenizer=patch",
            "model.patch_size=2",
            "model.depth=2",
            "data.eval_batch_size=100",
        )
    )
    run_dir, out = tmp_path / "run", tmp_path / "out"
    points = [({"name": "softmax"}, "all"), ({"name": "monarch", "block_size": 4, "num_steps": 1}, "all")]
    monkeypatch.setattr(monarch, "grid", lambda: points)
    argv = [str(run_dir), "--out", str(out), "--experiment", "monarch/vit_long", "--diagnostic-samples", "150"]
    monarch.main([*argv, "--train", "--train-override", "num_threads=1"])  # finished: --train trains nothing
    with open(out / "conversion.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    meta = json.loads((out / "conversion.meta.json").read_text())
    assert [r["backend"] for r in rows] == ["softmax", "monarch"]
    for r in rows:
        counts = {k: int(r[k]) for k in monarch.PAIRED}
        n = int(r["samples"])
        assert sum(counts.values()) == n == meta["samples"]
        assert counts["both_correct"] + counts["original_only"] == meta["original_correct"]
        assert float(r["accuracy"]) == pytest.approx((counts["both_correct"] + counts["converted_only"]) / n, abs=1e-4)
    same = rows[0]  # the unconverted backend: identical predictions, so no discordant image
    assert float(same["top1_agreement"]) == 1 and same["original_only"] == same["converted_only"] == "0"
    with open(run_dir / "metrics.csv", newline="") as fh:
        last = max(float(r["wall_time"]) for r in csv.DictReader(fh))
    assert meta["training_minutes"] == pytest.approx(last / 60)
    assert meta["experiment"] == "monarch/vit_long" and "--max-samples" not in meta["command"]
    assert meta["diagnostic_samples"] == 150 < meta["samples"]  # the first 150 images, across batches of 100
    assert "--diagnostic-samples 150" in meta["command"] and meta["command"].endswith("--train-override num_threads=1")
    text = (out / "conversion.md").read_text()
    assert "| +0.0000 [" in text  # softmax's change against itself
    assert text.count("| all |") == 2
