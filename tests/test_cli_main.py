"""The front door: ``qdsbench <verb>`` dispatches to the console scripts; help and typos answer without torch."""

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from omegaconf import OmegaConf

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


@pytest.mark.parametrize(
    "override, message",
    [
        ("attention=monarhc", "unknown attention 'monarhc'; valid choices: cosformer, delta"),
        ("attention.blok_size=3", "unknown config key 'attention.blok_size'; valid keys of attention: block_size"),
    ],
)
def test_convert_takes_trainings_attention_group_and_its_typos_fail_in_one_line(tmp_path, override, message):
    argv = ["convert", str(tmp_path), *(["attention=monarch"] if override.startswith("attention.") else []), override]
    out = subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.main", *argv], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 2 and out.stderr.startswith("qdsbench: error: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "convert").exists()


def test_convert_without_a_backend_says_so():
    out = subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.main", "convert", "run_dir=x"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "You must specify 'attention'" in out.stderr


def test_convert_writes_its_result_config_and_log_into_the_runs_convert_dir(make_cfg, tmp_path):
    from qdsbench.train import train

    train(make_cfg("trainer.max_epochs=1"))
    run_dir = tmp_path / "run"
    argv = ["convert", str(run_dir), "attention=softmax", "layers=[1]", "max_samples=40"]
    out = subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.main", *argv], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (job,) = (run_dir / "convert").iterdir()
    assert (
        job.name.endswith("_softmax") and (job / ".hydra" / "config.yaml").is_file() and (job / "convert.log").is_file()
    )
    result = json.loads((job / "result.json").read_text())
    # softmax -> softmax changes nothing: the converted model is the original
    assert result["samples"] == 40 and result["layers"] == [1] and result["backend"]["name"] == "softmax"
    assert result["accuracy"] == result["original_accuracy"] and max(result["relative_output_error"]) < 1e-5


@pytest.mark.parametrize("config_name", ["analyze", "convert", "eval_longctx"])
def test_verbs_on_a_finished_run_keep_their_log_and_config_inside_that_run(config_name):
    """conf/hydra/default.yaml writes <job name>.log into Hydra's output dir: that dir must lie in the run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    extra = ["attention=softmax"] if config_name == "convert" else []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name, ["run_dir=/runs/r", *extra], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.hydra.run.dir.startswith("/runs/r/") and cfg.hydra.sweep.dir.startswith("/runs/r/")
    handler = OmegaConf.to_container(cfg.hydra.job_logging.handlers.file)
    assert handler["filename"] == "${hydra.runtime.output_dir}/${hydra.job.name}.log"
