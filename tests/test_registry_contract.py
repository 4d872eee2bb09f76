"""Every registered attention backend, model and dataset has a config file, composes, and builds.

The registries fill themselves by importing each package's modules, and conf/ is read by Hydra: only the name ties
one to the other. So, per kind: each registered name is what some config file of its group composes to, each config
file that is a choice composes to a registered name, and each name's config builds (a backend is constructed and
attends, a model has parameters, a datamodule sets up its training split and yields a batch). A dataset whose files
are absent skips with its one-line message, and only when the path that message names does not exist, so a dataset
present under QDSBENCH_DATA is always built; pretrained weights that are not installed skip the same way.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from qdsbench import attention, data, models
from qdsbench.builders import build_datamodule, build_net, to_dict
from qdsbench.config import compose, config_dir, group_options
from qdsbench.errors import DatasetMissingError, PretrainedWeightsMissing

CONF = Path(config_dir())
REGISTERED = {"attention": attention.available(), "model": models.available(), "data": data.available()}


def defaults_of(path: Path) -> list:
    return OmegaConf.to_container(OmegaConf.load(path)).get("defaults", []) or []


def bases(group: str) -> set[str]:
    """Files that other files of the group build on (``defaults: [_forecasting, _self_]``): parts, not choices."""
    used = set()
    for option in group_options(CONF, group):
        used |= {e for e in defaults_of(CONF / group / f"{option}.yaml") if isinstance(e, str) and e != "_self_"}
    return used


@functools.cache
def names_by_option(group: str) -> dict[str, str]:
    choices = [o for o in group_options(CONF, group) if o not in bases(group)]
    return {option: OmegaConf.select(compose("train", [f"{group}={option}"]), f"{group}.name") for option in choices}


def primary_option(group: str, name: str) -> str:
    """The config file named after the registered name, else the first that composes to it."""
    options = [o for o, n in names_by_option(group).items() if n == name]
    assert options, f"registered {group} '{name}' has no conf/{group}/*.yaml with name: {name}"
    return name if name in options else options[0]


@pytest.mark.parametrize("group", list(REGISTERED))
def test_every_registered_name_has_a_config_and_every_config_names_a_registered_one(group):
    composed = names_by_option(group)
    unregistered = {o: n for o, n in composed.items() if n not in REGISTERED[group]}
    assert not unregistered, f"conf/{group}/ files naming no registered {group}: {unregistered}"
    missing = sorted(set(REGISTERED[group]) - set(composed.values()))
    assert not missing, f"registered {group}s without a conf/{group}/<name>.yaml: {missing}"


def skip_if_absent(err: DatasetMissingError) -> None:
    """Skipping is for data that is really not there: a path that exists but was not read is a bug."""
    assert not Path(err.expected).exists(), f"{err} -- but {err.expected} exists"
    pytest.skip(str(err))


@pytest.mark.parametrize("name", REGISTERED["attention"])
def test_every_backend_composes_builds_and_attends(name):
    cfg = compose("train", [f"attention={primary_option('attention', name)}"])
    options = to_dict(cfg.attention)
    if "num_tokens" in options and options["num_tokens"] is None:  # a learned N x N mixer (NormLin) takes N from
        options["num_tokens"] = 8  # its data (iTransformer's variates); here: the 8 tokens attended below
    backend = attention.create(options.pop("name"), **options)
    q, k, v = torch.randn(3, 2, 2, 8, 4, generator=torch.Generator().manual_seed(0))
    out = backend(q, k, v)
    assert out.shape == v.shape and torch.isfinite(out).all()


def trained_as(model_option: str) -> list[str]:
    """The first experiment preset that trains this model (its data, task and shapes), else the model on the
    default data (MNIST's shapes; building a model reads no image)."""
    for experiment in group_options(CONF, "experiment"):
        entries = [e for e in defaults_of(CONF / "experiment" / f"{experiment}.yaml") if isinstance(e, dict)]
        if {k: v for e in entries for k, v in e.items()}.get("override /model") == model_option:
            return [f"experiment={experiment}"]
    return [f"model={model_option}"]


def model_params():
    for name in REGISTERED["model"]:
        slow = models.MODELS.get(name).__module__.endswith(".pretrained")  # loads 22M-160M weights: 40 s here
        yield pytest.param(name, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("name", model_params())
def test_every_model_composes_and_builds_with_the_data_it_is_trained_on(name):
    option = primary_option("model", name)
    cfg = compose("train", trained_as(option))
    assert cfg.model.name == name
    try:
        net = build_net(cfg)
    except DatasetMissingError as err:  # a model built from its data's rows (OLinear's Q)
        skip_if_absent(err)
    except PretrainedWeightsMissing as err:
        pytest.skip(str(err))
    assert isinstance(net, torch.nn.Module) and sum(p.numel() for p in net.parameters()) > 0


@pytest.mark.parametrize("name", REGISTERED["data"])
def test_every_dataset_composes_and_builds_or_says_what_is_missing(name, tmp_path):
    cfg = compose("train", [f"data={primary_option('data', name)}"])
    if "cache_dir" in cfg.data:  # generated datasets cache their evaluation sets; not into the repository
        cfg.data.cache_dir = str(tmp_path)
    datamodule = build_datamodule(cfg)
    try:
        datamodule.prepare_data()
        datamodule.setup("fit")
    except DatasetMissingError as err:
        skip_if_absent(err)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch is not None and len(batch) > 0
