"""The task base's contract: every task is one, one optimiser/schedule shape, the named schedules' closed forms,
the finite-loss check, and old-shape run configs still building."""

import math
from pathlib import Path

import pytest
import torch
from conftest import compose_config
from omegaconf import OmegaConf
from torch import nn

from qdsbench import tasks
from qdsbench.builders import build_task
from qdsbench.errors import NonFiniteLossError
from qdsbench.snapshot import read_snapshot, snapshot_path
from qdsbench.tasks.base import Task
from qdsbench.tasks.classification import ClassificationTask
from qdsbench.tasks.forecasting import ForecastingTask
from qdsbench.tasks.language_model import LanguageModelTask
from qdsbench.validation import validate

LR = 0.1
TASK_PARTNERS = {  # what each conf/task option composes with
    "classification": [],
    "classification_cosine": [],
    "cooccurrence": ["data=cooccurrence", "model=yang_shallow"],
    "forecasting": ["data=etth1", "model=olinear"],
    "language_model": ["data=ruler_synth", "model=decoder_lm", "attention=sdpa"],
    "tagging": ["data=switch_tagging", "model=tagger"],
}


def test_every_registered_task_is_a_base_task_with_its_optimizer_setup():
    assert set(tasks.TASKS.available()) == {
        "classification",
        "cooccurrence",
        "forecasting",
        "language_model",
        "tagging",
    }
    for name in tasks.TASKS.available():
        cls = tasks.TASKS.get(name)
        assert issubclass(cls, Task), name
        for method in ("configure_optimizers", "training_step", "validation_step", "test_step"):
            assert getattr(cls, method) is getattr(Task, method), f"{name} redefines {method}"


@pytest.mark.parametrize("option", sorted(TASK_PARTNERS))
def test_every_task_config_has_its_lr_range_checked(option):
    cfg = compose_config([*TASK_PARTNERS[option], f"task={option}", "task.optimizer.lr=-1", "paths.output_dir=/tmp/x"])
    with pytest.raises(ValueError, match=r"task.optimizer.lr=-1 is out of range"):
        validate(cfg)


def lrs_of(task: Task, count: int) -> tuple[list[float], str]:
    """The lr in each of the first ``count`` scheduler periods, and the period (epoch / step)."""
    config = task.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(count):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return seen, config["lr_scheduler"]["interval"]


def forecasting(scheduler: dict, max_epochs: int = 8) -> ForecastingTask:
    return ForecastingTask(nn.Linear(2, 2), max_epochs, {"name": "adam", "lr": LR}, scheduler)


T = 8
CLOSED_FORMS = {  # lr in epoch k (0-indexed); TSLib sets the lr of epoch k as adjust_learning_rate(epoch=k)
    "type1": lambda k: LR * 0.5 ** max(k - 1, 0),
    "type3": lambda k: LR * (1.0 if k < 3 else 0.9 ** (k - 3)),
    "cosine": lambda k: LR / 2 * (1 + math.cos(math.pi * k / T)),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_tslib_schedules_match_their_formulas(name):
    seen, interval = lrs_of(forecasting({"name": name}, max_epochs=T), T + 1)
    assert interval == "epoch"
    assert seen == pytest.approx([CLOSED_FORMS[name](k) for k in range(T + 1)], rel=1e-12)


def test_multistep_and_cosine_warmup_match_their_formulas():
    task = ClassificationTask(
        nn.Linear(2, 2), 2, {"name": "sgd", "lr": LR}, {"name": "multistep", "milestones": [2, 5], "gamma": 0.1}, 8
    )
    seen, _ = lrs_of(task, 8)
    assert seen == pytest.approx([LR * 0.1 ** sum(k >= m for m in (2, 5)) for k in range(8)], rel=1e-12)

    warm, low, floor, epochs = 3, 1e-3, 1e-2, 10
    sched = {"name": "cosine_warmup", "warmup_epochs": warm, "warmup_lr": low, "min_lr": floor}
    seen, _ = lrs_of(ClassificationTask(nn.Linear(2, 2), 2, {"name": "sgd", "lr": LR}, sched, epochs), epochs + 2)

    def expected(k):
        if k < warm:
            return low + (LR - low) * k / warm
        return floor + (LR - floor) / 2 * (1 + math.cos(math.pi * min(k - warm, epochs - warm) / (epochs - warm)))

    assert seen == pytest.approx([expected(k) for k in range(epochs + 2)], rel=1e-12)


def test_language_model_schedule_is_per_step_from_its_step_counts():
    warmup, total, ratio = 4, 20, 0.1
    net = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    optimizer = {"name": "adamw", "lr": LR, "weight_decay": 0.5}
    scheduler = {"name": "lm_cosine", "interval": "step", "min_lr_ratio": ratio}
    task = LanguageModelTask(net, optimizer, scheduler, warmup_steps=warmup, total_steps=total)
    seen, interval = lrs_of(task, total + 3)

    def expected(s):
        if s < warmup:
            return LR * (s + 1) / warmup
        cosine = (1 + math.cos(math.pi * min(s - warmup, total - warmup) / (total - warmup))) / 2
        return LR * (ratio + (1 - ratio) * cosine)

    assert interval == "step"
    assert seen == pytest.approx([expected(s) for s in range(total + 3)], rel=1e-12)
    groups = task.configure_optimizers()["optimizer"].param_groups
    assert [(len(g["params"]), g["weight_decay"]) for g in groups] == [(1, 0.5), (3, 0.0)]  # decay: the matrix only


def test_no_scheduler_keeps_the_optimizer_alone_and_unknown_names_fail_at_construction():
    assert isinstance(forecasting({"name": "constant"}).configure_optimizers(), torch.optim.Adam)
    with pytest.raises(ValueError, match="unknown lr schedule 'linear'"):
        forecasting({"name": "linear"})
    with pytest.raises(ValueError, match="unknown option 'warmup_epoch' for lr schedule 'cosine_warmup'"):
        forecasting({"name": "cosine_warmup", "warmup_epoch": 5})
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        ForecastingTask(nn.Linear(2, 2), 3, {"name": "adamax", "lr": LR})


@pytest.mark.parametrize("overrides", [["task=classification_cosine"], ["task.scheduler.name=none"]])
def test_a_switched_schedule_leaves_the_base_schedules_options_out(overrides):
    """Hydra merges task.scheduler, so switching schedule keeps classification.yaml's milestones and gamma."""
    cfg = compose_config([*overrides, "paths.output_dir=/tmp/x"])
    assert {"milestones", "gamma"} <= set(cfg.task.scheduler)
    config = build_task(cfg, net=nn.Linear(2, 2)).configure_optimizers()
    if cfg.task.scheduler.name == "none":
        assert isinstance(config, torch.optim.Adam)
    else:
        assert config["optimizer"].param_groups[0]["lr"] == cfg.task.scheduler.warmup_lr


@pytest.mark.parametrize("stage", ["train", "val", "test"])
def test_non_finite_loss_raises_a_clear_error(stage):
    net = nn.Linear(4, 3)
    task = ClassificationTask(net, 3, {"name": "sgd", "lr": LR}, {"name": "none"}, 1)
    batch = (torch.ones(2, 4), torch.tensor([0, 2]))
    step = {"train": task.training_step, "val": task.validation_step, "test": task.test_step}[stage]
    step(batch, 0)  # finite: passes
    with torch.no_grad():
        net.weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteLossError, match=rf"^{stage} loss is nan at epoch 0, step 0; lower task.optimizer.lr"):
        step(batch, 0)


def _from_snapshot(tmp_path: Path, config: dict):
    """``config`` written as a run directory's snapshot, read back the way evaluation and resume read it."""
    run_dir = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    snapshot_path(run_dir).parent.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), snapshot_path(run_dir))
    return read_snapshot(run_dir)


def test_old_shape_run_configs_build_the_same_task(tmp_path):
    """A run directory's config snapshot from before the base (flat task.lr) still rebuilds its task."""
    old = {"name": "forecasting", "lr": 1e-4, "loss": "mse", "lr_schedule": "type3"}
    new = {
        "name": "forecasting",
        "optimizer": {"name": "adam", "lr": 1e-4},
        "scheduler": {"name": "type3"},
        "loss": "mse",
    }
    before, after = (
        build_task(_from_snapshot(tmp_path, {"task": t, "trainer": {"max_epochs": 6}}), net=nn.Linear(2, 2))
        for t in (old, new)
    )
    assert dict(before.hparams) == dict(after.hparams)
    assert lrs_of(before, 6) == lrs_of(after, 6)
    lm = {"name": "language_model", "lr": 2e-3, "weight_decay": 0.01, "warmup_steps": 5, "total_steps": 20}
    snapshot = _from_snapshot(tmp_path, {"task": {**lm, "min_lr_ratio": 0.1}, "trainer": {}, "model": {"data": {}}})
    assert "data" not in snapshot.model  # the retired model.data is dropped on reading
    task = build_task(snapshot, net=nn.Linear(2, 2))
    assert task.hparams.optimizer == {"name": "adamw", "lr": 2e-3, "weight_decay": 0.01}
    assert lrs_of(task, 3)[0] == pytest.approx([2e-3 * (s + 1) / 5 for s in range(3)], rel=1e-12)


def test_a_missing_or_broken_snapshot_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"has no \.hydra/config\.yaml; pass a qdsbench run directory"):
        read_snapshot(tmp_path)
    snapshot_path(tmp_path).parent.mkdir()
    snapshot_path(tmp_path).write_text("task: [unclosed\n")
    with pytest.raises(ValueError, match=r"config\.yaml is not a readable config snapshot"):
        read_snapshot(tmp_path)
