"""The front door: ``qdsbench <verb>`` dispatches to the console scripts; help and typos answer without torch."""

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from qdsbench.cli.main import VERBS, benches, main
from qdsbench.cli.preflight import split_overrides


def test_help_lists_every_verb_with_one_line(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for verb, (_, text) in VERBS.items():
        assert f"  {verb}" in out and text in out


def test_help_and_a_bad_verb_import_neither_torch_nor_lightning():
    code = (
        "import sys; from qdsbench.cli.main import main; main(['--help']);\n"
        "try:\n    main(['trian'])\nexcept SystemExit as e:\n    print(e)\n"
        "print('heavy', [m for m in ('torch', 'lightning') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT).stdout
    assert "qdsbench: error: unknown verb 'trian'; valid choices: train, eval, analyze" in out
    assert out.strip().endswith("heavy []")


def test_verbs_dispatch_to_the_console_scripts(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "--paper", "olinear", "--plan", "--tables", "ettx"])
    assert exit_info.value.code == 2
    assert "unknown table 'ettx' for paper olinear" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown benchmark 'nope'; valid choices: .*attention"):
        main(["bench", "nope"])
    assert {"attention", "qontot", "sparse"} <= set(benches())


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--cfg", "job", "attention=qr"], ["attention=qr"]),
        (["-c", "all", "-m", "seed=0,1"], ["seed=0,1"]),
        (["--info", "defaults", "model.depth=2"], ["model.depth=2"]),
        (["--info", "model.depth=2"], ["model.depth=2"]),
        (["-cn", "eval", "run_dir=x"], ["run_dir=x"]),
    ],
)
def test_the_preflight_knows_hydras_flags(argv, expected):
    assert split_overrides(argv)[0] == expected


def test_cfg_job_prints_the_composed_config_without_training(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.main", "train", "--cfg", "job", "experiment=digits_vit", "attention=qr"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "experiment_name: digits_vit" in out.stdout and "name: qr" in out.stdout
    assert not (tmp_path / "logs").exists()


def test_train_help_is_built_from_conf_without_torch_and_lists_every_backend():
    code = (
        "import sys; from qdsbench.cli import train; sys.argv = ['qdsbench-train', '--help']; train.main(); "
        "print('TORCH' if 'torch' in sys.modules or 'lightning' in sys.modules else 'NO_TORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("NO_TORCH")
    section = out.stdout.split("config groups")[1].split("flags:")[0].splitlines()[1:]
    groups: dict[str, str] = {}
    current = ""
    for line in section:
        if line.startswith(" " * 18):
            groups[current] += " " + line.strip()
        elif line.strip():
            current, text = line.split(None, 1)
            groups[current] = text
    from qdsbench import attention

    shown = {o.strip() for o in groups["attention"].replace("|", ",").split(",")}
    with_config = {n for n in attention.available() if (REPO_ROOT / "conf" / "attention" / f"{n}.yaml").is_file()}
    assert with_config and with_config <= shown
    assert groups["attention"].startswith("softmax |")  # the default first
    assert "qds_vit_sinkhorn" in groups["hparams_search"]
