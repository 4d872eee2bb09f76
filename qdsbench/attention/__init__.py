"""Attention backends behind one switch: ``create(name, **kwargs)`` and ``attention=<name>`` in Hydra.

Adding a backend is one module in this package (decorated with ``@register``) plus ``conf/attention/<name>.yaml``.
"""

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

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


def from_config(config: Mapping[str, Any], **overrides: Any) -> AttentionBackend:
    """A backend from an ``attention`` config (``name`` + options, as Hydra's group holds it); ``overrides`` win.
    Every model builds its backends here, so a missing name reads the same everywhere."""
    options = {**config, **overrides}
    name = options.pop("name", None)
    if name is None:
        raise ValueError("attention config needs a 'name'; valid choices: " + ", ".join(available()))
    return create(name, **options)


__all__ = ["AttentionBackend", "MatrixAttention", "available", "create", "from_config", "register"]
