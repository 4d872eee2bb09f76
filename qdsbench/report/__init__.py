"""Compare runs from their run records: collector, offline W&B reader, static HTML dashboard, README tables."""

from qdsbench.report.collect import collect

__all__ = ["collect"]
