"""A campaign table as a figure: each metric against the table's ``average_over`` key (e.g. MSE vs horizon).

Drawn from the same rows the table writer builds from the committed records (mean and seed std per cell, the paper's
value where expected.csv has one), so the figure can never disagree with its table. A manifest table opts in with
``figure: true``; the PNG lands next to the table as ``<table>_vs_<key>.png``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from qdsbench.atomic import atomic_write_bytes


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def figure_path(table_path: Path, over: str) -> Path:
    return table_path.with_name(f"{table_path.stem}_vs_{over.rsplit('.', 1)[-1]}.png")


def series(rows: list[dict[str, Any]], spec: Any, metric: str) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """Per column value, its cells ordered by the ``average_over`` value (the "avg" rows have no x and are left out)."""
    out: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for row in rows:
        x = _number(row.get(spec.average_over))
        if x is not None:
            out.setdefault(str(row[spec.column]), []).append((x, row[metric]))
    return {label: sorted(points, key=lambda p: p[0]) for label, points in sorted(out.items())}


def plot_over(rows: list[dict[str, Any]], spec: Any, title: str, path: Path) -> Path | None:
    """One panel per metric: x = the ``average_over`` values, one line per column value, error bars = seed std.

    Nothing is drawn (None) while no cell of the table has a measured value."""
    metrics = list(spec.metric) if not isinstance(spec.metric, str) else [spec.metric]
    if not any(row[m]["mean"] is not None for row in rows for m in metrics):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    any_paper = any(row[m].get("paper") is not None for row in rows for m in metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.6), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        lines = series(rows, spec, name)
        for i, (label, points) in enumerate(lines.items()):
            measured = [(x, c) for x, c in points if c["mean"] is not None]
            color = f"C{i}"
            if measured:
                n = sorted({c["n"] for _, c in measured})
                ax.errorbar(
                    [x for x, _ in measured],
                    [c["mean"] for _, c in measured],
                    yerr=[c["std"] or 0.0 for _, c in measured],
                    marker="o",
                    capsize=3,
                    color=color,
                    label=f"{label} (n={'/'.join(map(str, n))})",
                )
            paper = [(x, c["paper"]) for x, c in points if c.get("paper") is not None]
            if paper:
                ax.plot([x for x, _ in paper], [p for _, p in paper], "x--", color=color, alpha=0.7)
        ax.set_xlabel(spec.average_over)
        ax.set_ylabel(f"{name} (mean ± seed std)")
        ax.set_xticks(sorted({x for points in lines.values() for x, _ in points}))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, title="x--: the paper's value" if any_paper else None, title_fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})  # no version stamp: rebuilds are equal
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path
