"""The bad-input catalogue: each case gives one clear line (naming the bad value and, where there is a list, the
valid choices) and loses or corrupts nothing that was already written."""

import errno
import json

import pytest
import torch
from conftest import CONF_DIR, compose_config, run_cli

from qdsbench import attention, data, models
from qdsbench.cli.errors import USER_ERRORS
from qdsbench.cli.preflight import preflight
from qdsbench.models.backend_attention import set_backend
from qdsbench.runrecord import RunRecord, RunRecordWriteError, atomic_write_json
from qdsbench.tasks.schedules import build_schedule
from qdsbench.train import train

QUICK = ["experiment=digits_vit", "logger=none", "callbacks=minimal", "trainer.enable_progress_bar=false"]


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("qdsbench: error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


# --- command line: caught before anything is built or written -------------------------------------------
CLI_CASES = [
    (["data=imagenet"], ["'imagenet'", "mnist", "cifar10"]),
    (["model=resnet"], ["'resnet'", "vit"]),
    (["attention=softmaxx"], ["'softmaxx'", "softmax", "sdpa"]),
    (["-m", "attention=softmax,nope"], ["'nope'", "softmax"]),
    (["experiment=nope"], ["'nope'", "digits_vit"]),
    (["model.dept=3"], ["'model.dept'", "depth"]),
    (["trainer.max_epochs=-2"], ["trainer.max_epochs=-2", ">= 1"]),
    (["data.batch_size=0"], ["data.batch_size=0", "> 0"]),
    (["task.optimizer.lr=-1"], ["task.optimizer.lr=-1", "> 0"]),
    (["attention.name=nope"], ["'nope'", "softmax"]),
    (["task.optimizer.name=adamax"], ["'adamax'", "adam", "adamw", "sgd"]),
    (["model.tokenizer=hexagons"], ["'hexagons'", "patch", "stripes"]),
    (["model.embed_dim=64", "model.num_heads=3"], ["embed_dim=64", "num_heads=3"]),
    (["+data.batchsize=3"], ["'batchsize'", "batch_size"]),
    (["+attention.temperature=2"], ["'temperature'", "scale"]),
]


def command_line_error(argv: list[str], tmp_path) -> str:
    """What `qdsbench-train <argv>` reports, run in-process (the same preflight, validation and build steps)."""
    overrides = [*QUICK, *argv, f"paths.log_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}"]
    try:
        preflight(CONF_DIR, "train", overrides)
        train(compose_config([o for o in overrides if o != "-m"]))
    except USER_ERRORS as err:
        return str(err)
    raise AssertionError(f"no error for {argv}")


@pytest.mark.parametrize("overrides,expected", CLI_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_option_is_one_line(tmp_path, overrides, expected):
    message = command_line_error(overrides, tmp_path)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, message
    assert not list(tmp_path.rglob("checkpoints"))


@pytest.mark.parametrize("overrides", [["attention=softmaxx"], ["model.dept=3"], ["trainer.max_epochs=-2"]])
def test_cli_prints_exactly_that_line(tmp_path, overrides):
    result = run_cli("qdsbench-train", *QUICK, *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert one_error_line(result) == f"qdsbench: error: {command_line_error(overrides, tmp_path / 'x')}"


# --- library calls -------------------------------------------------------------------------------------------
def test_wrong_tensor_shape_to_backend():
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"q must have shape \(B, H, N, d\), got \(2, 5, 8\)"):
        attention.create("softmax")(x, x, x)


def test_mismatched_q_k_shapes():
    q, k = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 6)
    with pytest.raises(ValueError, match="incompatible shapes"):
        attention.create("softmax")(q, k, k)


def test_bad_mask_shape():
    q = torch.randn(2, 1, 4, 8)
    with pytest.raises(ValueError, match=r"2-D mask must be \(B, N\)=\(2, 4\)"):
        attention.create("softmax")(q, q, q, mask=torch.ones(2, 5, dtype=torch.bool))


def test_qontot_sequence_not_power_of_two_without_pad():
    if "qontot" not in attention.available():
        pytest.skip("qontot backend not available")
    backend = attention.create("qontot", n_data_qubits=3, n_aux_qubits=1, layers=1, pad=False)
    q = torch.randn(1, 1, 7, 4)
    with pytest.raises(ValueError) as info:
        backend(q, q, q)
    assert "\n" not in str(info.value) and "7" in str(info.value) and "pad" in str(info.value)


def test_unknown_lr_schedule():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="unknown lr schedule 'linear'; valid choices: none, multistep, cosine_warmup"):
        build_schedule(opt, "linear", 10)


def test_unknown_layer_set_for_conversion():
    net = models.create(
        "vit", attention={"name": "softmax"}, image_size=8, in_chans=1, num_classes=10, num_stripes=4, depth=2
    )
    with pytest.raises(ValueError, match="unknown layer set 'middle'"):
        set_backend(net, {"name": "sdpa"}, "middle")
    with pytest.raises(ValueError, match=r"layer indices \[5\] out of range"):
        set_backend(net, {"name": "sdpa"}, [0, 5])


def test_missing_dataset_file(tmp_path):
    with pytest.raises(data.DatasetMissingError, match=str(tmp_path / "cifar-100-python")):
        data.create("cifar100", data_dir=str(tmp_path)).prepare_data()


def test_truncated_dataset_file(tmp_path):
    from qdsbench.data import mnist_offline

    raw = mnist_offline.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    images = torch.randint(0, 255, (10, 28, 28), dtype=torch.uint8).numpy()
    for name in mnist_offline.RAW_FILES:
        mnist_offline.write_idx(raw / name, images if "images" in name else images[:, 0, 0])
    damaged = raw / "train-images-idx3-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    with pytest.raises(data.DatasetCorruptError, match="truncated") as info:
        data.create("mnist", data_dir=str(tmp_path)).prepare_data()
    assert "\n" not in str(info.value) and "qdsbench-prepare mnist" in str(info.value)


def test_nan_loss_stops_and_marks_run_failed(make_cfg, tmp_path):
    with pytest.raises(FloatingPointError, match="train loss is nan.*task.optimizer.lr"):
        train(make_cfg("task.optimizer.lr=1e12", "trainer.max_epochs=3"))
    record = RunRecord.load(tmp_path / "run").payload
    assert record["status"] == "failed" and "nan" in record["error"]


def test_corrupt_checkpoint_for_eval(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=1")
    train(cfg)
    run_dir = tmp_path / "run"
    assert (run_dir / ".hydra" / "config.yaml").is_file()  # train() snapshots the config like the CLI
    best = json.loads((run_dir / "run.json").read_text())["checkpoints"]["best"]
    with open(best, "r+b") as fh:
        fh.truncate(100)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = run_cli("qdsbench-eval", f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'eval'}")
    line = one_error_line(result)
    assert best in line and "could not be loaded" in line
    assert before == {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def test_eval_of_a_directory_that_is_not_a_run(tmp_path):
    line = one_error_line(run_cli("qdsbench-eval", f"run_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'e'}"))
    assert str(tmp_path) in line and ".hydra/config.yaml" in line


def test_resume_from_a_directory_that_is_not_a_run(tmp_path):
    result = run_cli("qdsbench-train", *QUICK, f"resume={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    line = one_error_line(result)
    assert f"resume={tmp_path}" in line and "resume=auto" in line


def test_reused_run_directory_is_refused_and_untouched(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=1")
    train(cfg)
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match="already holds a run record"):
        train(cfg)
    assert before == {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}


def test_read_only_output_directory(make_cfg, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("pathlib.Path.mkdir", refuse)
    with pytest.raises(RunRecordWriteError, match="cannot create run directory .*Read-only file system"):
        train(make_cfg())


def test_disk_full_keeps_the_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"test/acc": 0.9})
    real_fsync = __import__("os").fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(RunRecordWriteError, match="No space left on device"):
        atomic_write_json(target, {"test/acc": 0.1})
    monkeypatch.setattr("os.fsync", real_fsync)
    assert json.loads(target.read_text()) == {"test/acc": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left behind


def test_results_directory_untouched_by_a_failed_run(make_cfg, tmp_path):
    # The run writes into the directory that already holds a results file (paths.output_dir = tmp_path / "results"),
    # so the failed run really reaches it: its failed record lands beside the file, which stays byte for byte.
    results = tmp_path / "results"
    results.mkdir()
    (results / "table.md").write_text("| a |\n")
    with pytest.raises(ValueError, match="val_size=100000"):
        train(make_cfg("data.val_size=100000", run_name="results"))
    assert RunRecord.load(results).payload["status"] == "failed"
    assert (results / "table.md").read_text() == "| a |\n"


def test_fault_injection_rejects_unknown_signal():
    from qdsbench.callbacks import FaultInjection

    with pytest.raises(ValueError, match="unknown signal 'SIGFOO'; valid choices: SIGKILL, SIGTERM, SIGINT"):
        FaultInjection(kill_at_step=1, signal_name="SIGFOO")
