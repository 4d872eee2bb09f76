"""Build the run's objects from a composed config; shared by train, eval and later tools (convert, analyze)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from qdsbench import data, models, tasks


def to_dict(node: Any) -> dict[str, Any]:
    if node is None:
        return {}
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    kwargs = to_dict(cfg.data)
    return data.create(kwargs.pop("name"), **kwargs)


def build_net(cfg: DictConfig, datamodule: pl.LightningDataModule | None = None):
    """Every model factory receives the ``attention`` node (models without attention ignore it). A factory marked
    ``@needs(...)`` also gets ``inputs=datamodule.model_inputs()`` (the data's shapes, OLinear's Q): the one way data
    reaches a model. Without a datamodule one is built from ``cfg.data`` (constructing it reads no file)."""
    kwargs = to_dict(cfg.model)
    name = kwargs.pop("name")
    needed = getattr(models.MODELS.get(name), "needs", None)
    if needed is not None:
        datamodule = datamodule if datamodule is not None else build_datamodule(cfg)
        inputs = datamodule.model_inputs()
        inputs.check(name, needed, cfg.data.name)
        kwargs["inputs"] = inputs
    return models.create(name, attention=to_dict(cfg.attention), **kwargs)


def build_net_from_overrides(overrides: list[str], seed: int = 0):
    """The model ``qdsbench train <overrides>`` would train, initialised from ``seed``: benchmarks and tests time or
    inspect a preset's own model (``experiment=qds/table1 model.depth=1 attention=qontot``), never a copy of its
    keyword arguments that drifts from the config."""
    import torch

    from qdsbench.config import compose

    cfg = compose("train", overrides)
    torch.manual_seed(seed)
    return build_net(cfg)


def build_task(cfg: DictConfig, net=None, datamodule: pl.LightningDataModule | None = None) -> pl.LightningModule:
    """The task around ``net`` (else the model of ``cfg``, given ``datamodule``'s inputs: pass the datamodule the
    run trains on, so that OLinear's Q is computed once, from the same data)."""
    kwargs = to_dict(cfg.task)
    name = kwargs.pop("name")
    net = net if net is not None else build_net(cfg, datamodule)
    return tasks.create(name, net=net, max_epochs=cfg.trainer.get("max_epochs") or 1, **kwargs)


def _instantiate_dict(node: DictConfig | None) -> list:
    """Callbacks and loggers are dicts of named entries so that one can be nulled from the command line."""
    if not node:
        return []
    return [instantiate(entry) for entry in node.values() if entry is not None and "_target_" in entry]


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """``trainer.enable_progress_bar=false`` also drops a configured progress-bar callback (Lightning refuses both)."""
    from lightning.pytorch.callbacks import ProgressBar

    callbacks = _instantiate_dict(cfg.get("callbacks"))
    if cfg.get("trainer") is not None and cfg.trainer.get("enable_progress_bar") is False:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks


def build_loggers(cfg: DictConfig) -> list:
    return _instantiate_dict(cfg.get("logger"))
