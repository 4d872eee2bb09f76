"""The dataset registry: ``data.name`` in Hydra picks a datamodule factory registered here."""

from qdsbench.registry import Registry

DATASETS = Registry("dataset")
register = DATASETS.register
