"""The fault catalogue of issue #21 ("never lose work"): every bad input and fault, one case each, checked for the
three guarantees: one clear line naming the bad value or file (and the valid choices where there are some), a
non-zero exit status, and nothing already written changed (every file of a finished run and of a results folder
hashed before and after).

Commands run in this process (``main()`` of the console script with ``sys.argv`` set), which is the same code as the
console script minus the interpreter start; the exit status is the SystemExit the entry point raises. Library calls
count as exiting 2 when they raise one of the errors entry points turn into ``qdsbench: error: <line>`` and exit 2.
A few cases skip a damaged file with a warning and go on (a report over many runs, resume=auto looking for a run):
there the guarantee is the warning naming the file and exit status 0, the point of the fix being not to stop.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import CONF_DIR, compose_config

from qdsbench.errors import USER_ERRORS

QUICK = [
    "experiment=digits_vit",
    "logger=none",
    "callbacks=minimal",
    "trainer.enable_progress_bar=false",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "extras.print_config=false",
]
ERROR = ("qdsbench: error:", "ERROR:")
WARNING = ("warning:",)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One tiny finished run (best and last checkpoints, metrics.csv, summary.json), copied into every case."""
    from qdsbench.train import train

    root = tmp_path_factory.mktemp("finished")
    train(compose_config([*QUICK, f"paths.output_dir={root / 'run'}", f"paths.log_dir={root}"]))
    return root / "run"


@dataclass
class World:
    """A case's tmp folder: logs/ holding a copy of the finished run, results/ holding a table, out/ for new runs."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.logs / "train" / "runs" / "finished"

    @property
    def results(self) -> Path:
        return self.root / "results"

    def out(self, name: str = "new") -> Path:
        return self.root / "out" / name

    def fmt(self, text: str) -> str:
        return text.format(run=self.run, logs=self.logs, root=self.root, out=self.out())


@dataclass
class Outcome:
    code: int
    text: str  # stdout and stderr together


def _snapshot(world: World) -> dict[str, bytes]:
    """Every file already written (a lock file is the process's bookkeeping, not work)."""
    return {
        str(p.relative_to(world.root)): hashlib.sha256(p.read_bytes()).digest()
        for p in sorted(world.root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _code(err: SystemExit) -> int:
    return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)


def run_main(main: Callable[[], object], prog: str, argv: list[str], capsys, monkeypatch) -> Outcome:
    """A console script's main() in this process: its exit status and everything it printed."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", [prog, *argv])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as err:
        code = _code(err)
    finally:
        GlobalHydra.instance().clear()
    captured = capsys.readouterr()
    return Outcome(code, captured.out + captured.err)


def library(call: Callable[[], object]) -> Outcome:
    """A library call: a user error is what an entry point prints as one line and exits 2 with."""
    try:
        call()
    except USER_ERRORS as err:
        return Outcome(2, f"qdsbench: error: {err}")
    return Outcome(0, "")


class Ctx:
    """What a case's action gets: its world and the means to run commands in this process."""

    def __init__(self, world: World, capsys, monkeypatch):
        self.w, self.capsys, self.monkeypatch = world, capsys, monkeypatch

    def train(self, *argv: str, quick: bool = True, run_dir: Path | None = None) -> Outcome:
        from qdsbench.cli.train import main

        where = [f"paths.log_dir={self.w.logs}"]
        if not any(a.startswith("-m") for a in argv):
            where.append(f"hydra.run.dir={run_dir or self.w.out()}")
        else:
            where.append(f"hydra.sweep.dir={self.w.out('sweep')}")
        return run_main(
            main, "qdsbench-train", [*(QUICK if quick else []), *where, *argv], self.capsys, self.monkeypatch
        )

    def eval(self, *argv: str) -> Outcome:
        from qdsbench.cli.eval import main

        return run_main(
            main, "qdsbench-eval", [*argv, f"hydra.run.dir={self.w.out('eval')}"], self.capsys, self.monkeypatch
        )

    def report(self) -> Outcome:
        from qdsbench.report.cli import main

        out = self.w.out("report")
        return run_main(
            lambda: main(["--logs", str(self.w.logs), "--out", str(out)]),
            "qdsbench-report",
            [],
            self.capsys,
            self.monkeypatch,
        )


@dataclass
class Case:
    id: str
    act: Callable[[Ctx], Outcome]
    says: tuple[str, ...]  # fragments of the one line ({run}, {logs}, {root}, {out} are the world's paths)
    code: int = 2
    setup: Callable[[World], object] | None = None
    may_change: tuple[str, ...] = ()  # files (relative to the world) a case may legitimately rewrite
    may_add: str | None = None  # a folder of a finished run or results where the case may add files
    prefix: tuple[str, ...] = ERROR
    xfail: str | None = None


# --- setups -----------------------------------------------------------------------------------------------------
def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def damaged_run(file: str, data: bytes) -> Callable[[World], None]:
    """A second run under logs/ (a copy of the finished one) whose ``file`` is half-written, empty or not UTF-8."""

    def setup(w: World) -> None:
        bad = w.logs / "train" / "runs" / "damaged"
        shutil.copytree(w.run, bad)
        write(bad / file, data)

    return setup


HALF, EMPTY, LATIN1 = b'{"status": "fini', b"", b'{"status": "\xff\xfe"}'
CSV_HALF = b"step,epoch,metric,value,wall_time\n1,0,val/acc,0.5,1.0\n2,0,val/a"  # killed mid-row
CSV_LATIN1 = b"step,epoch\n\xff\xfe,\x00\n"


def corrupt_checkpoint(w: World) -> None:
    best = w.run / json.loads((w.run / "run.json").read_text())["checkpoints"]["best"]
    with open(best, "r+b") as fh:
        fh.truncate(100)


def interrupted(w: World) -> None:
    record = json.loads((w.run / "run.json").read_text())
    record["status"] = "interrupted"
    (w.run / "run.json").write_text(json.dumps(record))


def truncated_mnist(w: World) -> None:
    from qdsbench.data import mnist_offline

    raw = mnist_offline.raw_dir(w.root / "data")
    raw.mkdir(parents=True)
    images = torch.randint(0, 255, (10, 28, 28), dtype=torch.uint8).numpy()
    for name in mnist_offline.RAW_FILES:
        mnist_offline.write_idx(raw / name, images if "images" in name else images[:, 0, 0])
    damaged = raw / "train-images-idx3-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:-100])


def ili_csv(cell: str) -> Callable[[World], None]:
    """A forecasting CSV whose row 3 (file line 4) holds ``cell`` in column b."""

    def setup(w: World) -> None:
        rows = ["date,a,b,OT"] + [f"2020-01-0{i + 1},{i}.0,{'{cell}' if i == 2 else f'{i}.5'},1.0" for i in range(6)]
        write(w.root / "data" / "ILI" / "national_illness.csv", "\n".join(rows).replace("{cell}", cell).encode())

    return setup


def experiment_file(text: str) -> Callable[[World], None]:
    """A copy of conf/ with one more experiment file (the repository's conf/ is not touched)."""

    def setup(w: World) -> None:
        shutil.copytree(CONF_DIR, w.root / "conf")
        write(w.root / "conf" / "experiment" / "typo.yaml", text.encode())

    return setup


# --- actions that need more than one command line ------------------------------------------------------------
def two_resumers(c: Ctx) -> Outcome:
    """Another process holds the run (a resume=auto started a moment earlier): this one must refuse."""
    code = (
        "import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "f.seek(0); f.truncate(); f.write(f'{os.getpid()}\\n'); f.flush(); print('locked', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(c.w.run / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        return c.train(f"resume={c.w.run}", "trainer.max_epochs=2")
    finally:
        holder.kill()
        holder.wait()


def disk_full_at_checkpoint(c: Ctx) -> Outcome:
    """The disk fills while a resumed run writes its next checkpoint: last.ckpt must stay the previous one."""
    real_save = torch.save

    def full(obj, f, *args, **kwargs):
        if hasattr(f, "write") and "ckpt" in str(getattr(f, "name", "")):
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    c.monkeypatch.setattr(torch, "save", full)
    return c.train(f"resume={c.w.run}", "trainer.max_epochs=2")


UNWRITABLE = Path("/sys/qdsbench-catalogue")  # sysfs refuses new directories, even to root (chmod would not)


def read_only_root(c: Ctx) -> Outcome:
    """A log root that cannot be written (a read-only mount, a full quota)."""
    return c.train(run_dir=UNWRITABLE / "train" / "runs" / "x")


def reused_dir_from_python(c: Ctx) -> Outcome:
    from qdsbench.train import train

    return library(lambda: train(compose_config([*QUICK, f"paths.output_dir={c.w.run}", f"paths.log_dir={c.w.logs}"])))


def read_only_output_from_python(c: Ctx) -> Outcome:
    from qdsbench.train import train

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    cfg = compose_config([*QUICK, f"paths.output_dir={c.w.out()}", f"paths.log_dir={c.w.logs}"])
    c.monkeypatch.setattr(Path, "mkdir", refuse)
    return library(lambda: train(cfg))


def disk_full_json(c: Ctx) -> Outcome:
    from qdsbench.runrecord import atomic_write_json

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    c.monkeypatch.setattr(os, "fsync", full)
    return library(lambda: atomic_write_json(c.w.run / "summary.json", {"test/acc": 0.1}))


def sweep_with_experiment_typo(c: Ctx) -> Outcome:
    from qdsbench.cli.preflight import preflight

    return library(lambda: preflight(c.w.root / "conf", "train", ["experiment=typo"]))


def signal_at_step(name: str) -> Callable[[Ctx], Outcome]:
    return lambda c: c.train(
        "+callbacks.fault._target_=qdsbench.callbacks.FaultInjection",
        "+callbacks.fault.kill_at_step=1",
        f"+callbacks.fault.signal_name={name}",
    )


def read_forecast(c: Ctx) -> Outcome:
    from qdsbench.data.forecasting import read_values

    return library(lambda: read_values("ili", c.w.root / "data", verify_md5=False))


def lib(call: Callable[[], object]) -> Callable[[Ctx], Outcome]:
    return lambda c: library(call)


def _backend(name: str, **kwargs):
    from qdsbench import attention

    return attention.create(name, **kwargs)


def _vit():
    from qdsbench import models

    return models.create(
        "vit", attention={"name": "softmax"}, image_size=8, in_chans=1, num_classes=10, num_stripes=4, depth=2
    )


def _set_backend(layers):
    from qdsbench.models.backend_attention import set_backend

    return lambda: set_backend(_vit(), {"name": "sdpa"}, layers)


def _qontot_not_power_of_two():
    from qdsbench import attention

    if "qontot" not in attention.available():
        pytest.skip("qontot backend not available")
    q = torch.randn(1, 1, 7, 4)
    _backend("qontot", n_data_qubits=3, n_aux_qubits=1, layers=1, pad=False)(q, q, q)


def _schedule():
    from qdsbench.tasks.schedules import build_schedule

    build_schedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), "linear", 10)


def _shape(q, k, mask=None):
    return lambda: _backend("softmax")(q, k, k, mask=mask)


def _fault_signal():
    from qdsbench.callbacks import FaultInjection

    FaultInjection(kill_at_step=1, signal_name="SIGFOO")


def _progress_style():
    from qdsbench.callbacks import progress_bar

    progress_bar("fancy")


def _missing_cifar100(c: Ctx) -> Outcome:
    return c.train("data=cifar100", f"paths.data_dir={c.w.root / 'nodata'}")


def _sweep(*argv: str) -> Callable[[Ctx], Outcome]:
    return lambda c: c.train("-m", *argv)


def _cli(*argv: str) -> Callable[[Ctx], Outcome]:
    return lambda c: c.train(*argv)


CASES = [
    # --- the command line: unknown groups, options, keys, values ---------------------------------------------
    Case("data=imagenet", _cli("data=imagenet"), ("'imagenet'", "mnist", "cifar10")),
    Case("model=resnet", _cli("model=resnet"), ("'resnet'", "vit")),
    Case("attention=softmaxx", _cli("attention=softmaxx"), ("'softmaxx'", "softmax", "sdpa")),
    Case("experiment=nope", _cli("experiment=nope"), ("'nope'", "digits_vit")),
    Case("misspelled key model.dept", _cli("model.dept=3"), ("'model.dept'", "depth")),
    Case(  # Hydra names one unknown key at a time: listing the valid keys must not trip over the second
        "two misspelled keys",
        _cli("trainer.max_epohs=1", "trainer.precison=32"),
        ("'trainer.max_epohs'", "max_epochs"),
    ),
    Case("misspelled new key +data.batchsize", _cli("+data.batchsize=3"), ("'batchsize'", "batch_size")),
    Case("unknown backend option +attention.temperature", _cli("+attention.temperature=2"), ("'temperature'", "scale")),
    Case("trainer.max_epochs=-2", _cli("trainer.max_epochs=-2"), ("trainer.max_epochs=-2", ">= 1")),
    Case("data.batch_size=0", _cli("data.batch_size=0"), ("data.batch_size=0", "> 0")),
    Case("task.optimizer.lr=-1", _cli("task.optimizer.lr=-1"), ("task.optimizer.lr=-1", "> 0")),
    Case("attention.name=nope", _cli("attention.name=nope"), ("'nope'", "softmax")),
    Case("task.optimizer.name=adamax", _cli("task.optimizer.name=adamax"), ("'adamax'", "adam", "adamw", "sgd")),
    Case("model.tokenizer=hexagons", _cli("model.tokenizer=hexagons"), ("'hexagons'", "patch", "stripes")),
    Case(
        "embed_dim not divisible by num_heads",
        _cli("model.embed_dim=64", "model.num_heads=3"),
        ("embed_dim=64", "num_heads=3"),
    ),
    Case(
        "failed run inside a results folder",  # the failed record lands beside the table, which stays as it was
        lambda c: c.train("data.val_size=100000", run_dir=c.w.results / "qds"),
        ("val_size=100000",),
        may_add="results/qds/",
    ),
    Case(
        "monarch block size larger than N",
        _cli("attention=monarch", "attention.block_size=64"),
        ("block_size=64", "N=5"),
    ),
    Case("sweep with an unknown option", _sweep("attention=softmax,nope"), ("'nope'", "softmax")),
    Case("sweep with a misspelled key", _sweep("model.dept=2,3"), ("'model.dept'", "depth")),
    Case(
        "misspelled option inside an experiment file",
        sweep_with_experiment_typo,
        ("'attention/softmaxx'", "softmax", "sdpa"),
        setup=experiment_file("# @package _global_\ndefaults:\n  - override /attention: softmaxx\n"),
    ),
    Case(
        "misspelled group inside an experiment file",
        sweep_with_experiment_typo,
        ("'attenton'", "attention"),
        setup=experiment_file("# @package _global_\ndefaults:\n  - override /attenton: softmax\n"),
    ),
    # --- run directories, resume, checkpoints ---------------------------------------------------------------
    Case(
        "hydra.run.dir already holds a run",
        lambda c: c.train("attention=sinkhorn", run_dir=c.w.run),
        ("{run}", "already holds a run record"),
    ),
    Case("run dir reused from Python", reused_dir_from_python, ("{run}", "already holds a run record")),
    Case(
        "two resumers of one run",
        two_resumers,
        ("{run}", "in use by another process"),
        setup=interrupted,
    ),
    Case("resume= a directory that is not a run", _cli("resume={root}"), ("resume={root}", "resume=auto")),
    Case(
        "resume= a run without last.ckpt",
        _cli("resume={run}"),
        ("resume={run}", "last.ckpt"),
        setup=lambda w: (w.run / "checkpoints" / "last.ckpt").unlink(),
    ),
    Case("ckpt_path= a missing file", _cli("ckpt_path={root}/missing.ckpt"), ("ckpt_path={root}/missing.ckpt",)),
    Case(
        "resume=auto past a non-UTF-8 run.json",
        lambda c: c.train("resume=auto", "debug=fdr"),
        ("{logs}/train/runs/damaged/run.json",),
        code=0,
        prefix=WARNING,
        setup=damaged_run("run.json", LATIN1),
    ),
    Case(
        "resume=auto past a half-written run.json",
        lambda c: c.train("resume=auto", "debug=fdr"),
        ("{logs}/train/runs/damaged/run.json",),
        code=0,
        prefix=WARNING,
        setup=damaged_run("run.json", HALF),
    ),
    Case(
        "disk full while writing a checkpoint",
        disk_full_at_checkpoint,
        ("cannot write checkpoint", "{run}/checkpoints", "No space left on device"),
        setup=interrupted,
        may_change=("logs/train/runs/finished/run.json", "logs/train/runs/finished/metrics.csv"),
    ),
    Case("disk full while writing a JSON record", disk_full_json, ("{run}/summary.json", "No space left on device")),
    Case("read-only log root", read_only_root, (f"cannot create run directory {UNWRITABLE}",)),
    Case(
        "read-only output directory from Python",
        read_only_output_from_python,
        ("cannot create run directory", "Read-only file system"),
    ),
    # --- signals ------------------------------------------------------------------------------------------------
    Case("SIGTERM", signal_at_step("SIGTERM"), ("interrupted by SIGTERM", "resume=auto"), code=143),
    Case("SIGINT", signal_at_step("SIGINT"), ("interrupted by SIGINT", "resume=auto"), code=130),
    Case(
        "NaN loss", _cli("task.optimizer.lr=1e12", "trainer.max_epochs=3"), ("train loss is nan", "task.optimizer.lr")
    ),
    # --- data -----------------------------------------------------------------------------------------------------
    Case("missing dataset", _missing_cifar100, ("{root}/nodata/cifar-100-python",)),
    Case(
        "truncated dataset file",
        _cli("data=mnist", "paths.data_dir={root}/data"),
        ("truncated", "qdsbench-prepare mnist"),
        setup=truncated_mnist,
    ),
    Case(
        "NaN cell in a CSV",
        read_forecast,
        ("national_illness.csv", "line 4"),
        setup=ili_csv("nan"),
    ),
    Case(
        "empty CSV cell",
        read_forecast,
        ("national_illness.csv", "line 4"),
        setup=ili_csv(""),
    ),
    Case(
        "non-numeric CSV cell",
        read_forecast,
        ("national_illness.csv", "line 4", "'abc'"),
        setup=ili_csv("abc"),
    ),
    # --- evaluation ---------------------------------------------------------------------------------------------
    Case("eval without run_dir", lambda c: c.eval(), ("run_dir=",)),
    Case(
        "eval of a directory that is not a run",
        lambda c: c.eval(f"run_dir={c.w.root}"),
        ("{root}", ".hydra/config.yaml"),
    ),
    Case(
        "eval of a corrupt checkpoint",
        lambda c: c.eval(f"run_dir={c.w.run}"),
        ("{run}/checkpoints/", "could not be loaded"),
        setup=corrupt_checkpoint,
    ),
    Case(
        "eval ckpt_path= a missing file",
        lambda c: c.eval(f"run_dir={c.w.run}", f"ckpt_path={c.w.root}/missing.ckpt"),
        ("{root}/missing.ckpt",),
    ),
    Case("eval split=train", lambda c: c.eval(f"run_dir={c.w.run}", "split=train"), ("split=train", "test, val")),
    # --- the report over damaged records: skip the run, name the file, go on ------------------------------------
    *[
        Case(
            f"report past {kind} {file}",
            lambda c: c.report(),
            ("{logs}/train/runs/damaged",),
            code=0,
            prefix=WARNING,
            setup=damaged_run(file, data),
        )
        for file, cases in (
            ("run.json", (("a half-written", HALF), ("an empty", EMPTY), ("a non-UTF-8", LATIN1))),
            ("summary.json", (("a half-written", HALF), ("an empty", EMPTY), ("a non-UTF-8", LATIN1))),
            ("metrics.csv", (("a half-written", CSV_HALF), ("a non-UTF-8", CSV_LATIN1))),
        )
        for kind, data in cases
    ],
    # --- library calls ----------------------------------------------------------------------------------------
    Case(
        "3-D tensor to a backend",
        lib(_shape(torch.randn(2, 5, 8), torch.randn(2, 5, 8))),
        ("q must have shape (B, H, N, d), got (2, 5, 8)",),
    ),
    Case(
        "q and k of different widths",
        lib(_shape(torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 6))),
        ("incompatible shapes",),
    ),
    Case(
        "mask of the wrong shape",
        lib(_shape(torch.randn(2, 1, 4, 8), torch.randn(2, 1, 4, 8), torch.ones(2, 5, dtype=torch.bool))),
        ("2-D mask must be (B, N)=(2, 4)",),
    ),
    Case("qontot N not a power of two without pad", lib(_qontot_not_power_of_two), ("7", "pad")),
    Case("unknown lr schedule", lib(_schedule), ("'linear'", "none, multistep, cosine_warmup")),
    Case("unknown layer set", lib(_set_backend("middle")), ("'middle'",)),
    Case("layer index out of range", lib(_set_backend([0, 5])), ("layer indices [5] out of range",)),
    Case("unknown fault-injection signal", lib(_fault_signal), ("'SIGFOO'", "SIGKILL, SIGTERM, SIGINT")),
    Case("unknown progress bar style", lib(_progress_style), ("'fancy'", "auto, rich, lines")),
]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
        for c in CASES
    ],
)
def test_fault(case: Case, finished, tmp_path, capsys, monkeypatch):
    world = World(tmp_path)
    shutil.copytree(finished, world.run)
    write(world.results / "qds" / "table.md", b"| run | acc |\n| a | 0.9 |\n")
    if case.setup:
        case.setup(world)
    before = _snapshot(world)
    ctx = Ctx(world, capsys, monkeypatch)
    monkeypatch.chdir(tmp_path)
    outcome = case.act(_formatted(ctx))
    monkeypatch.undo()
    after = _snapshot(world)

    assert outcome.code == case.code, outcome.text[-3000:]
    assert "Traceback" not in outcome.text, outcome.text[-3000:]
    lines = [line for line in outcome.text.splitlines() if line.startswith(case.prefix)]
    assert len(lines) == 1, outcome.text[-3000:]
    for fragment in case.says:
        assert world.fmt(fragment) in lines[0], lines[0]
    changed = {p for p in before if before[p] != after.get(p)} - set(case.may_change)
    assert not changed, f"already written files changed: {sorted(changed)}"
    new = [
        p
        for p in after
        if p not in before
        and p.startswith(("logs/train/runs/finished/", "results/"))
        and not (case.may_add and p.startswith(case.may_add))
    ]
    assert not new, f"files added to a finished run or results: {new}"


def _formatted(ctx: Ctx) -> Ctx:
    """Command lines name the world's paths as {run}, {root}, ...: format them when the command runs."""
    train, evaluate = ctx.train, ctx.eval
    ctx.train = lambda *argv, **kw: train(*(ctx.w.fmt(a) for a in argv), **kw)
    ctx.eval = lambda *argv: evaluate(*(ctx.w.fmt(a) for a in argv))
    return ctx
