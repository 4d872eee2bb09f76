"""The README's "Adding a backend, model or dataset", followed as written in a copy of the package and conf/.

Its code blocks are the files (each headed by its path); written into the copy, and with no other file touched, the
training command the section shows must train, and ``--help`` must list the new options. So the section cannot
drift from the code, and a list that has to be edited by hand to add something would fail here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

SECTION = "### Adding a backend, model or dataset"
FAST = [
    "logger=none",
    "callbacks=minimal",
    "trainer.max_epochs=3",
    "trainer.enable_progress_bar=false",
    "task.optimizer.lr=1e-2",
]


def section_text() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    assert SECTION in text, "the README lost its section on adding a backend, model or dataset"
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def section_files() -> dict[str, str]:
    """path -> content of every python / yaml block whose first line is ``# <path>``."""
    blocks = re.findall(r"```(?:python|yaml)\n# (\S+)\n(.*?)```", section_text(), flags=re.S)
    return dict(blocks)


def section_command() -> list[str]:
    (command,) = re.findall(r"`qdsbench-train ([^`]+)`", section_text())
    return command.split()


def test_the_section_adds_one_new_module_and_config_per_kind():
    files = section_files()
    for package, group in (("attention", "attention"), ("models", "model"), ("data", "data")):
        modules = [p for p in files if p.startswith(f"qdsbench/{package}/")]
        configs = [p for p in files if p.startswith(f"conf/{group}/")]
        assert len(modules) == 1 and len(configs) == 1, (package, modules, configs)
        name = Path(configs[0]).stem
        assert f"{group}={name}" in section_command() and f'register("{name}")' in files[modules[0]]
    assert not [p for p in files if (REPO_ROOT / p).exists()], "the section must add new files, not shadow old ones"


@pytest.fixture(scope="module")
def copy_with_additions(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("extended")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "local")
    for folder in ("qdsbench", "conf"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=ignore)
    for path, content in section_files().items():
        (root / path).write_text(content)
    return root


def run_in(root: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "QDSBENCH_CONF": str(root / "conf")}
    return subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.train", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_the_new_options_read_from_conf(copy_with_additions):
    out = run_in(copy_with_additions, "--help", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for option in section_command():
        assert option.split("=")[1] in out.stdout


def test_the_sections_command_trains_with_the_new_backend_model_and_dataset(copy_with_additions):
    run_dir = copy_with_additions / "run"
    out = run_in(copy_with_additions, *section_command(), *FAST, f"hydra.run.dir={run_dir}", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished"
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    for option in section_command():
        group, name = option.split("=")
        assert re.search(rf"^{group}:\n(?:  .*\n)*?  name: {name}$", config, flags=re.M), option
    summary = json.loads((run_dir / "summary.json").read_text())
    accuracy = summary["test"]["test/acc"]
    assert accuracy > 2 / 8  # chance is 1/8: the brightened row is found, so the pieces are wired together
