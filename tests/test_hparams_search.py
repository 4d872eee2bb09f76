"""Optuna hyperparameter search through Hydra's sweeper: trials are ordinary runs, the best trial is the best run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import CONF_DIR, REPO_ROOT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

TRAIN = [sys.executable, "-m", "qdsbench.cli.train"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    logs = tmp_path_factory.mktemp("hs")
    out = subprocess.run(
        [
            *TRAIN,
            "experiment=digits_vit",
            "hparams_search=qds_vit_sinkhorn",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=2",
            "trainer.max_epochs=1",
            "logger=none",
            "callbacks=minimal",
            "test=false",
            f"paths.log_dir={logs}",
            "num_threads=1",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep_dir,) = (logs / "train" / "multiruns").iterdir()
    return sweep_dir


def test_three_trials_are_runs_and_the_best_is_the_best_run(sweep):
    trials = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in trials] == ["0", "1", "2"]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"task.optimizer.lr", "model.depth", "attention.n_iter"}
    accuracies = {}
    for trial in trials:
        record = json.loads((trial / "run.json").read_text())
        assert record["status"] == "finished"
        accuracies[trial.name] = json.loads((trial / "summary.json").read_text())["final"]["val/acc"]
        overrides = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        # the run record names this trial's own values and a command that reruns it alone
        assert record["command"].split()[1:-1] == overrides and record["command"].endswith("hydra.mode=RUN")
        assert record["sweep"]["dir"] == str(sweep) and record["sweep"]["job"] == int(trial.name)
    assert results["best_value"] == pytest.approx(max(accuracies.values()), abs=1e-6)
    best = max(accuracies, key=accuracies.get)
    best_overrides = yaml.safe_load((sweep / best / ".hydra" / "overrides.yaml").read_text())
    assert f"model.depth={results['best_params']['model.depth']}" in best_overrides


def test_search_space_keys_exist_in_the_configs_they_tune():
    """A misspelt parameter would silently add a new key: every searched key must already exist."""
    for preset, experiment in (("qds_vit_sinkhorn", "digits_vit"), ("olinear", "olinear/ili")):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", [f"experiment={experiment}", f"hparams_search={preset}"], return_hydra_config=True)
        params = cfg.hydra.sweeper.params
        assert len(params) >= 2
        for key in params:
            node = cfg
            for part in key.split("."):
                assert part in node, f"{preset}: {key} is not a key of experiment {experiment}"
                node = node[part]
        assert cfg.optimized_metric in ("val/acc", "val/loss")


def test_unknown_search_preset_names_the_choices():
    out = subprocess.run([*TRAIN, "hparams_search=nope"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "qdsbench: error: unknown hparams_search 'nope'; valid choices: olinear, qds_vit_sinkhorn"
    )
