"""A run's console and log (issue 22 item 5): no library noise, one line per epoch off a terminal, each message once,
the run's log in train.log, the config tree, debug=profiler, conf/local/ ignored by git, an SPDX license."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

# Small digits runs: 5 training batches of 64, 100 validation / test examples.
TINY = ["experiment=digits_vit", "trainer.max_epochs=2", "data.max_train_samples=320", "data.max_eval_samples=100"]
NOISE = (
    "GPU available",
    "TPU available",
    "litlogger",
    "anonymous setting",
    "LeafSpec",
    "log_every_n_steps",
    "FLOPs",
    "v_num",
    "it/s",
    "INFO:",
    "[INFO]",
)
TREE = ("CONFIG", "├", "│", "└", "    ")  # the config tree's lines (which name log_every_n_steps, for one)
EPOCH = re.compile(r"^epoch (\d+)/2  train/loss \S+  train/acc \S+  val/loss \S+  val/acc \S+  \(\d+\.\d s\)$")


def run_train(tmp_path, *overrides: str, name: str = "run") -> tuple[subprocess.CompletedProcess, object]:
    """``python -m qdsbench.cli.train`` with stdout and stderr in one pipe (not a terminal), as a log file sees it."""
    run_dir = tmp_path / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "COLUMNS": "100"}
    result = subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.train", *TINY, *overrides, f"hydra.run.dir={run_dir}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return result, run_dir


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default config (W&B offline, default callbacks), print_config on: the run the issue was filed on."""
    return run_train(tmp_path_factory.mktemp("console"))


def test_console_has_no_noise_and_one_line_per_epoch(default_run):
    result, _ = default_run
    out = result.stdout
    outside_tree = "\n".join(line for line in out.splitlines() if not line.startswith(TREE))
    for noise in NOISE:
        assert noise not in outside_tree, f"{noise!r} in the console output:\n{outside_tree[-3000:]}"
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all(EPOCH.match(line) for line in epochs), epochs
    assert [EPOCH.match(line).group(1) for line in epochs] == ["1", "2"]
    summary = out[out.index("model summary") :].splitlines()
    assert summary[1].split() == ["Name", "Type", "Params"] and "net.blocks" in out and "metrics.val_acc" not in out


def test_train_log_holds_the_run_and_each_message_is_printed_once(default_run):
    result, run_dir = default_run
    log = (run_dir / "train.log").read_text()
    records = re.findall(r"^\[[^]]+\]\[([^]]+)\]\[(\w+)\] - (.*)$", log, flags=re.M)
    names = {name for name, _, _ in records}
    assert {"qdsbench.summary", "qdsbench.progress", "lightning.pytorch.utilities.rank_zero"} <= names, names
    assert sum(message.startswith("epoch ") for _, _, message in records) == 2
    assert any(message.startswith("test  test/loss") for _, _, message in records)
    messages = [message for _, _, message in records]
    assert len(messages) == len(set(messages)), "a record was written twice to train.log"
    console = result.stdout.splitlines()
    for message in messages:
        if not message.startswith("test  "):  # the test line is train.log's; the console has the summary table
            # on the console as the bare message, or after its level ("WARNING: ...")
            printed = sum(line == message or line.endswith(f": {message}") for line in console)
            assert printed == 1, f"{message!r} printed {printed} times"


def test_config_tree_printed_and_saved(default_run):
    result, run_dir = default_run
    assert result.stdout.startswith("CONFIG\n")
    tree = (run_dir / "config_tree.log").read_text()
    assert tree.startswith("CONFIG\n") and "├── data" in tree and "name: digits" in tree
    assert "(top level)" in tree and "experiment_name: digits_vit" in tree
    assert not [line for line in tree.splitlines() if line != line.rstrip()], "padded lines in config_tree.log"


def test_print_config_false_and_debug_profiler(tmp_path):
    result, run_dir = run_train(tmp_path, "debug=profiler", "extras.print_config=false")
    assert "CONFIG" not in result.stdout and not (run_dir / "config_tree.log").exists()
    profile = (run_dir / "fit-profile.txt").read_text()
    assert "FIT Profiler Report" in profile and "run_training_epoch" in profile
    assert sum(line.startswith("epoch ") for line in result.stdout.splitlines()) == 2


def test_progress_bar_style_follows_the_terminal(monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from qdsbench.callbacks import EpochLines, progress_bar

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert isinstance(progress_bar(), RichProgressBar)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert isinstance(progress_bar(), EpochLines)
    assert isinstance(progress_bar("rich"), RichProgressBar)
    with pytest.raises(ValueError, match="valid choices: auto, rich, lines"):
        progress_bar("tqdm")


def test_shown_metrics_drop_step_values_and_order_stages():
    from qdsbench.callbacks import _shown_metrics

    raw = {
        "v_num": "abcd",
        "train/loss_step": 1.2,
        "val/loss": 0.4,
        "val/acc": 0.9,
        "train/loss_epoch": 1.1,
        "train/acc": 0.8,
        "lr": 0.1,
    }
    assert list(_shown_metrics(raw).items()) == [
        ("train/loss", 1.1),
        ("train/acc", 0.8),
        ("val/loss", 0.4),
        ("val/acc", 0.9),
        ("lr", 0.1),
    ]


def test_lightning_noise_filter(caplog):
    import logging

    from qdsbench.console import LITLOGGER_TIP, LightningNoiseFilter

    noise = LightningNoiseFilter()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, __file__, 1, message, (), None)

    assert not noise.filter(record(LITLOGGER_TIP + "(https://pypi.org/project/litlogger/) to enable LitLogger"))
    cpu = record("GPU available: False, used: False")
    assert not noise.filter(cpu) and cpu.levelname == "DEBUG"
    assert noise.filter(record("GPU available: True (cuda), used: True"))
    with caplog.at_level(logging.DEBUG, logger="qdsbench"):
        assert noise.filter(record("TPU available: False, using: 0 TPU cores"))


def test_conf_local_is_git_ignored_except_its_readme():
    ignored = subprocess.run(["git", "check-ignore", "-q", "conf/local/default.yaml"], cwd=REPO_ROOT)
    kept = subprocess.run(["git", "check-ignore", "-q", "conf/local/README.md"], cwd=REPO_ROOT)
    assert ignored.returncode == 0 and kept.returncode == 1
    assert "- optional local: default" in (REPO_ROOT / "conf" / "train.yaml").read_text()


def test_pyproject_license_is_an_spdx_string():
    text = (REPO_ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "Apache-2.0"', text, flags=re.M), "project.license is not an SPDX string"


def test_run_summary_shows_a_metric_once_not_its_step_and_epoch_aliases(capsys, tmp_path):
    from qdsbench.summary import print_summary

    summary = {
        "test": {"test/acc": 0.5},
        "final": {"train/loss": 1.25, "train/loss_step": 1.5, "train/loss_epoch": 1.25, "val/acc_epoch": 0.4},
    }
    print_summary(tmp_path, summary)
    out = capsys.readouterr().out
    assert "final: train/loss " in out and "train/loss_step" not in out and "train/loss_epoch" not in out
    assert "val/acc_epoch" in out  # no plain val/acc beside it: not an alias
