"""Training tasks (LightningModules) by name; every one is a ``tasks.base.Task``."""

from qdsbench.tasks import classification, cooccurrence, forecasting, language_model, tagging  # noqa: F401  (register)
from qdsbench.tasks.base import Task
from qdsbench.tasks.classification import ClassificationTask
from qdsbench.tasks.registry import TASKS, register


def create(name: str, **kwargs):
    return TASKS.create(name, **kwargs)


__all__ = ["ClassificationTask", "TASKS", "Task", "create", "register"]
