"""Training tasks (LightningModules) by name."""

from qdsbench.tasks.classification import ClassificationTask
from qdsbench.tasks.registry import TASKS, register

register("classification")(ClassificationTask)

from qdsbench.tasks import cooccurrence, forecasting, language_model, tagging  # noqa: E402,F401  (register their names)


def create(name: str, **kwargs):
    return TASKS.create(name, **kwargs)


__all__ = ["ClassificationTask", "TASKS", "create", "register"]
