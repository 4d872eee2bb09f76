"""Datasets behind ``data.name``; adding one is a module here (``@register``) plus ``conf/data/<name>.yaml``.

A datamodule also says what its models may know (``model_inputs()``, see inputs.py) and which task its batches are
for (the class attribute ``task``); tests/test_configs.py pairs data, models and tasks by these.
"""

import importlib
import pkgutil

from qdsbench.data.registry import DATASETS, register
from qdsbench.errors import DatasetCorruptError, DatasetMissingError

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in {"registry"}:
        importlib.import_module(f"{__name__}.{_info.name}")


def available() -> list[str]:
    return DATASETS.available()


def create(name: str, **kwargs):
    return DATASETS.create(name, **kwargs)


__all__ = ["DatasetCorruptError", "DatasetMissingError", "available", "create", "register"]
