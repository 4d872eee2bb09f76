"""The model registry: ``model.name`` in Hydra picks a factory registered here."""

from qdsbench.registry import Registry

MODELS = Registry("model")
register = MODELS.register
