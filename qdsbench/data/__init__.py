"""Datasets behind ``data.name``; adding one is a module here (``@register``) plus ``conf/data/<name>.yaml``."""

import importlib
import pkgutil

from qdsbench.data.errors import DatasetCorruptError, DatasetMissingError
from qdsbench.data.registry import DATASETS, register

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in {"registry", "errors"}:
        importlib.import_module(f"{__name__}.{_info.name}")


def available() -> list[str]:
    return DATASETS.available()


def create(name: str, **kwargs):
    return DATASETS.create(name, **kwargs)


__all__ = ["DatasetCorruptError", "DatasetMissingError", "available", "create", "register"]
