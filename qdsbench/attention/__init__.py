"""Attention backends behind one switch: ``create(name, **kwargs)`` and ``attention=<name>`` in Hydra.

Adding a backend is one module in this package (decorated with ``@register``) plus ``conf/attention/<name>.yaml``.
"""

import importlib
import pkgutil

from qdsbench.attention.base import AttentionBackend, MatrixAttention
from qdsbench.attention.registry import BACKENDS, register


def _import_backends() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in {"base", "registry"} and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_backends()


def available() -> list[str]:
    return BACKENDS.available()


def create(name: str, **kwargs) -> AttentionBackend:
    return BACKENDS.create(name, **kwargs)


__all__ = ["AttentionBackend", "MatrixAttention", "available", "create", "register"]
