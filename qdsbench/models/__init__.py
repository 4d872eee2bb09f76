"""Models behind ``model.name``; adding one is a module here (``@register``) plus ``conf/model/<name>.yaml``."""

import importlib
import pkgutil

from qdsbench.models.registry import MODELS, register

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in {"registry"}:
        importlib.import_module(f"{__name__}.{_info.name}")


def available() -> list[str]:
    return MODELS.available()


def create(name: str, **kwargs):
    return MODELS.create(name, **kwargs)


__all__ = ["available", "create", "register"]
