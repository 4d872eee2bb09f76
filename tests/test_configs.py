"""Every config option and every experiment preset composes, and the override order is the documented one.

Which data, model and task go together is derived, not listed: a data option provides its config keys and the
fields its datamodule's ``model_inputs()`` fills, and names the task its batches are for (``datamodule.task``); a
model (or task) config needs the ``${data.X}`` keys it interpolates, and a model factory the ``@needs`` fields.
"""

import re
from functools import cache

import pytest
from conftest import CONF_DIR, compose_config
from omegaconf import OmegaConf

from qdsbench import data, models, tasks
from qdsbench.cli.preflight import check_group_values
from qdsbench.config import group_options
from qdsbench.errors import PreflightError

GROUPS = ("data", "model", "attention", "task", "trainer", "logger", "callbacks", "debug")
INTERPOLATED = re.compile(r"\$\{data\.(\w+)\}")  # ${oc.select:data.X,default} is optional, not a need


def options(group: str) -> list[str]:
    return group_options(CONF_DIR, group)


def test_files_others_inherit_are_named_as_bases_and_never_offered():
    """A file with ``name: ???`` is a part (data/_forecasting), not a choice: its name starts with ``_`` so that
    help, preflight and the error messages leave it out, and ``data=_forecasting`` is refused naming the choices."""
    for group in GROUPS:
        for path in (CONF_DIR / group).rglob("*.yaml"):
            config = OmegaConf.load(path)
            incomplete = OmegaConf.is_missing(config, "name")
            assert incomplete == path.name.startswith("_"), path
    assert "_forecasting" not in options("data") and {"etth1", "ili", "mnist"} <= set(options("data"))
    with pytest.raises(PreflightError, match=r"unknown data '_forecasting'; valid choices: .*etth1") as err:
        check_group_values(CONF_DIR, ["data=_forecasting"])
    assert "_medmnist" not in str(err.value)


@cache
def node(group: str, option: str):
    return compose_config([f"{group}={option}", "paths.output_dir=/tmp/x"])[group]


@cache
def provides(data_option: str) -> frozenset[str]:
    spec = OmegaConf.to_container(node("data", data_option), resolve=True)
    module = data.create(spec.pop("name"), **spec)
    return frozenset(node("data", data_option)) | module.model_inputs().provided()


@cache
def data_task(data_option: str) -> str:
    spec = OmegaConf.to_container(node("data", data_option), resolve=True)
    return data.create(spec.pop("name"), **spec).task


@cache
def needs(group: str, option: str) -> frozenset[str]:
    cfg = node(group, option)
    declared = getattr(models.MODELS.get(cfg.name), "needs", ()) if group == "model" else ()
    return frozenset(INTERPOLATED.findall(str(OmegaConf.to_container(cfg, resolve=False)))) | set(declared)


def task_for(data_option: str) -> str:
    """The first task option (sorted) whose registered task is the one the data's batches are for."""
    return next(t for t in options("task") if node("task", t).name == data_task(data_option))


def combination(group: str, option: str) -> list[str]:
    """Overrides that put ``group=option`` in a valid data + model + task combination."""
    if group == "model":
        data_option = next(d for d in options("data") if needs("model", option) <= provides(d))
        return [f"data={data_option}", f"model={option}", f"task={task_for(data_option)}"]
    if group == "task":
        name = node("task", option).name
        data_option = next(d for d in options("data") if data_task(d) == name and needs("task", option) <= provides(d))
        return [*combination("data", data_option), f"task={option}"]
    if group == "data":
        fitting = [m for m in options("model") if needs("model", m) <= provides(option)]
        model = sorted(fitting, key=lambda m: -len(needs("model", m)))[0]  # the most specific fit
        return [f"data={option}", f"model={model}", f"task={task_for(option)}"]
    return [f"{group}={option}"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(group, option):
    cfg = compose_config([*combination(group, option), "paths.output_dir=/tmp/x"])
    OmegaConf.to_container(cfg, resolve=True)


def test_every_data_config_names_a_registered_dataset_and_a_registered_task():
    assert {node("data", o).name for o in options("data")} == set(data.available())
    assert {data_task(o) for o in options("data")} <= set(tasks.TASKS.available())


def test_every_model_config_names_a_registered_model_and_fits_some_data():
    assert {node("model", o).name for o in options("model")} == set(models.available())
    for option in options("model"):
        assert any(needs("model", option) <= provides(d) for d in options("data")), option


@pytest.mark.parametrize("option", options("data"))
def test_model_inputs_are_the_data_configs_own_values(option):
    """One source of truth: the shapes a model gets are the ones the data config declares (and interpolates)."""
    spec = OmegaConf.to_container(node("data", option), resolve=True)
    inputs = data.create(spec.pop("name"), **spec).model_inputs()
    assert inputs.provided(), f"data '{option}' gives its models nothing"
    shared = inputs.provided() & set(spec)
    assert {k: getattr(inputs, k) for k in shared} == {k: spec[k] for k in shared}


@pytest.mark.parametrize("option", [o for o in options("data") if data_task(o) == "language_model"])
def test_the_decoder_lm_vocabulary_is_the_ruler_vocabulary(option):
    """decoder_lm's vocab_size is written in its config, not interpolated: it must equal what the data tokenises to."""
    spec = OmegaConf.to_container(node("data", option), resolve=True)
    assert node("model", "decoder_lm").vocab_size == data.create(spec.pop("name"), **spec).model_inputs().vocab_size


def test_inherited_data_configs_compose_to_their_full_values():
    """The families inherit a base; a spot check against the values the flat files had."""
    ili = OmegaConf.to_container(node("data", "ili"), resolve=False)
    assert ili == {
        "name": "ili",
        "data_dir": "${paths.data_dir}",
        "seq_len": 36,
        "pred_len": 24,
        "num_variates": 7,
        "batch_size": 4,
        "eval_batch_size": None,
        "test_batch_size": 16,
        "num_workers": 0,
        "verify_md5": True,
        "shuffle_seed": "${seed}",
    }
    organ = OmegaConf.to_container(node("data", "organamnist"), resolve=False)
    assert list(organ)[:5] == ["name", "data_dir", "image_size", "in_chans", "num_classes"]
    assert (organ["name"], organ["image_size"], organ["in_chans"], organ["num_classes"]) == ("organamnist", 28, 1, 11)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_with_debug(experiment):
    cfg = compose_config([f"experiment={experiment}", "debug=fdr", "paths.output_dir=/tmp/x"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["trainer"]["fast_dev_run"] is True  # debug is applied last


def test_experiment_overrides_base_groups():
    cfg = compose_config(["experiment=digits_vit", "paths.output_dir=/tmp/x"])
    assert cfg.data.name == "digits" and cfg.model.num_stripes == 4


def test_model_shape_follows_data():
    cfg = compose_config(["data=cifar10", "paths.output_dir=/tmp/x"])
    assert (cfg.model.image_size, cfg.model.in_chans, cfg.model.num_classes) == (32, 3, 10)


def test_every_attention_config_names_a_registered_backend():
    from qdsbench import attention

    for option in options("attention"):
        cfg = compose_config([f"attention={option}", "paths.output_dir=/tmp/x"])
        assert cfg.attention.name in attention.available()
