"""Every config option and every experiment preset composes, and the override order is the documented one."""

import pytest
from conftest import CONF_DIR, compose_config
from omegaconf import OmegaConf

GROUPS = ("data", "model", "attention", "task", "trainer", "logger", "callbacks", "debug")


def options(group: str) -> list[str]:
    folder = CONF_DIR / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


FORECAST_DATA = {o for o in options("data") if "seq_len:" in (CONF_DIR / "data" / f"{o}.yaml").read_text()}
FORECAST_MODELS = {"olinear", "dlinear", "itransformer"}
SEQUENCE_PARTNERS = {  # token-sequence data and models of the analysis study compose with each other
    "cooccurrence": ["data=cooccurrence", "model=yang_shallow", "task=cooccurrence"],
    "yang_shallow": ["data=cooccurrence", "model=yang_shallow", "task=cooccurrence"],
    "switch_tagging": ["data=switch_tagging", "model=tagger", "task=tagging"],
    "tagger": ["data=switch_tagging", "model=tagger", "task=tagging"],
}


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(group, option):
    partner = []
    if (group == "data" and option in FORECAST_DATA) or (group == "model" and option in FORECAST_MODELS):
        partner = ["data=etth1", "model=olinear", "task=forecasting"]  # forecasting models need forecasting data
    if group in ("data", "model") and option in SEQUENCE_PARTNERS:
        partner = SEQUENCE_PARTNERS[option]
    if (group == "data" and option.startswith("ruler_")) or (group == "model" and option == "decoder_lm"):
        partner = ["data=ruler_synth", "model=decoder_lm", "task=language_model", "attention=sdpa"]
    cfg = compose_config([*partner, f"{group}={option}", "paths.output_dir=/tmp/x"])
    OmegaConf.to_container(cfg, resolve=True)


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
