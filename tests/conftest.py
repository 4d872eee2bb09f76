"""Shared fixtures: offline, single-threaded, deterministic; Hydra configs composed without running Hydra."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["WANDB_MODE"] = os.environ.get("QDSBENCH_TEST_WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"


def compose_config(overrides: list[str], config_name: str = "train"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the train config for a quick digits run writing into tmp_path."""

    def _make(*overrides: str, run_name: str = "run"):
        return compose_config(
            [
                "experiment=digits_vit",
                "logger=none",
                "callbacks=minimal",
                "trainer.accelerator=cpu",
                "trainer.enable_progress_bar=false",
                f"paths.output_dir={tmp_path / run_name}",
                f"paths.log_dir={tmp_path}",
                *overrides,
            ]
        )

    return _make


def run_cli(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, timeout: int = 300):
    """Run a console script from the venv the tests run in; returns CompletedProcess."""
    exe = Path(sys.executable).parent / args[0]
    cmd = [str(exe) if exe.exists() else shutil.which(args[0]) or args[0], *args[1:]]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def shared_data_dir() -> Path:
    """The read-only directory of real datasets (CI: ../shared/data via QDSBENCH_DATA)."""
    path = os.environ.get("QDSBENCH_DATA")
    if not path or not Path(path).is_dir():
        pytest.skip("QDSBENCH_DATA does not point to the provided datasets")
    return Path(path)
