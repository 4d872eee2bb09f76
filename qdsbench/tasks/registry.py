"""The task registry: ``task.name`` picks the LightningModule that wraps a model."""

from qdsbench.registry import Registry

TASKS = Registry("task")
register = TASKS.register
