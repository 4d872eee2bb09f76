"""Every command the README shows in its shell blocks still works, in a fast variant.

``qdsbench-train`` lines are composed with ``--cfg job`` (a sweep's first value per swept key; ``-m`` dropped), so a
renamed group, option or key in the README fails here; other entry points must exist, and their fixed options must
be ones their parser knows. One training line also really runs (``debug=fdr``: one batch of everything).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

BIN = REPO_ROOT / ".venv" / "bin"


def readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line.split(" #")[0].strip().rstrip("\\").strip() for block in blocks for line in block.splitlines()]
    return [line.removeprefix(".venv/bin/") for line in lines if re.match(r"(\.venv/bin/)?qdsbench", line)]


def fast_variant(command: str) -> list[str]:
    """A train line as one composition: no -m, the first value of every comma list (outside brackets)."""
    args = []
    for token in command.split()[1:]:
        if token in ("-m", "--multirun"):
            continue
        if "=" in token and "," in token and "[" not in token and "(" not in token:
            key, values = token.split("=", 1)
            token = f"{key}={values.split(',')[0]}"
        args.append(token)
    return args


TRAIN = [c for c in readme_commands() if c.startswith("qdsbench-train")]
OTHER = [c for c in readme_commands() if not c.startswith("qdsbench-train")]


def test_the_readme_shows_commands():
    assert len(TRAIN) >= 5 and OTHER


@pytest.mark.parametrize("command", TRAIN)
def test_readme_train_command_composes(command):
    args = fast_variant(command)
    extra = [] if any(a.startswith("--") for a in args) else ["--cfg", "job"]
    out = subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.train", *args, *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, f"{command}: {out.stderr.strip()[-2000:]}"
    assert out.stdout.strip(), command


@pytest.mark.parametrize("command", OTHER)
def test_readme_other_commands_exist_and_know_their_flags(command):
    program = command.split()[0]
    assert shutil.which(program, path=str(BIN)), f"{program} is not installed in .venv/bin"
    flags = [t for t in command.split()[1:] if t.startswith("--")]
    if flags:  # argparse entry points: every flag the README uses is in their --help
        shown = subprocess.run([str(BIN / program), "--help"], capture_output=True, text=True, timeout=180).stdout
        for flag in flags:
            assert flag.split("=")[0] in shown, f"{command}: {flag} is not an option of {program}"


def test_the_readme_digits_run_trains(tmp_path):
    (command,) = [c for c in TRAIN if c.split()[1:] == ["experiment=digits_vit"]]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "qdsbench.cli.train",
            *command.split()[1:],
            "debug=fdr",
            "logger=none",
            "extras.print_config=false",
            f"paths.log_dir={tmp_path}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(tmp_path.glob("*/runs/*/run.json"))  # debug modes log under their own task name
