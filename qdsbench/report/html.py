"""The report's data (one JSON payload) and the self-contained static page around it (plotly inlined, file://)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from qdsbench.report.groups import bookkeeping
from qdsbench.report.page import page
from qdsbench.report.papers import paper_tables
from qdsbench.report.studies import studies

_paper_tables = paper_tables  # the name older callers import
SKIPPED_METRICS = ("attn/", "lr-")
MAX_IMAGES = 24
MAX_CURVE_POINTS = 400
RUN_FIELDS = (
    "name",
    "run_dir",
    "experiment",
    "task",
    "dataset",
    "model",
    "backend",
    "seed",
    "status",
    "kind",
    "hidden",
    "group",
    "group_label",
    "command",
    "error",
    "sweep_dir",
    "sweep_job",
)


def _clean(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _present(value: Any) -> bool:
    return isinstance(value, (list, dict)) or not (value is None or (isinstance(value, float) and math.isnan(value)))


def _varying_config(runs: pd.DataFrame) -> list[str]:
    """cfg keys that are not the same in every run: the only ones a two-run config diff can show."""
    keys = []
    for column in (c for c in runs.columns if c.startswith("cfg.") and not bookkeeping(c[4:])):
        values = {json.dumps(_clean(v), sort_keys=True, default=str) if _present(v) else None for v in runs[column]}
        if len(values) > 1:
            keys.append(column)
    return keys


def _runs_payload(runs: pd.DataFrame, metrics: list[str]) -> list[dict[str, Any]]:
    varying = _varying_config(runs)
    payload = []
    for _, row in runs.sort_values(["hidden", "name"], kind="stable").iterrows():  # like runs next to each other
        entry = {k: _clean(row.get(k)) if k in row and _present(row.get(k)) else None for k in RUN_FIELDS}
        tags = row.get("cfg.tags")
        entry["tags"] = [str(t) for t in tags] if isinstance(tags, (list, tuple)) else []
        entry["overrides"] = row.get("settings") if isinstance(row.get("override_map"), dict) else None
        entry["config"] = {c[4:]: _clean(row[c]) for c in varying if _present(row[c])}
        entry["metrics"] = {m: _clean(row.get(f"metric.{m}")) for m in metrics}
        payload.append(entry)
    return payload


def _curve_metric(name: str) -> bool:
    return not name.startswith(SKIPPED_METRICS) and not name.startswith("_")


def _curves(history: pd.DataFrame) -> dict[str, dict[str, list]]:
    """{run_dir: {metric: [[step, epoch, value], ...]}}, at most MAX_CURVE_POINTS points a curve (evenly thinned)."""
    curves: dict[str, dict[str, list]] = {}
    if history.empty:
        return curves
    keep = history[history["metric"].map(lambda m: _curve_metric(str(m)))]
    for (run_dir, metric), frame in keep.groupby(["run_dir", "metric"]):
        frame = frame.sort_values("step", kind="stable")
        if len(frame) > MAX_CURVE_POINTS:
            frame = frame.iloc[:: math.ceil(len(frame) / MAX_CURVE_POINTS)]
        curves.setdefault(str(run_dir), {})[str(metric)] = [
            [_clean(s), _clean(e), _clean(v)] for s, e, v in zip(frame["step"], frame["epoch"], frame["value"])
        ]
    return curves


def _images(runs: pd.DataFrame) -> list[dict[str, str]]:
    """PNG figures in run directories, each once: W&B's media copies are skipped and equal files shown once."""
    images, seen = [], set()
    for name, run_dir in zip(runs.get("name", []), runs.get("run_dir", [])):
        pngs = [p for p in sorted(Path(str(run_dir)).rglob("*.png")) if "wandb" not in p.relative_to(run_dir).parts]
        for png in pngs[:4]:
            data = png.read_bytes() if png.stat().st_size < 2_000_000 else None
            digest = hashlib.sha1(data).hexdigest() if data else None
            if data and digest not in seen and len(images) < MAX_IMAGES:
                seen.add(digest)
                images.append(
                    {"run": str(name), "name": str(png.relative_to(run_dir)), "data": base64.b64encode(data).decode()}
                )
    return images


def _metrics(runs: pd.DataFrame) -> list[str]:
    names = sorted(c[len("metric.") :] for c in runs.columns if c.startswith("metric."))
    preferred = [m for m in ("test/acc", "val/acc", "test/mse", "test/mae", "val/loss") if m in names]
    return preferred + [m for m in names if m not in preferred and _curve_metric(m)]


def build_payload(runs: pd.DataFrame, history: pd.DataFrame, results_dir: Path) -> dict[str, Any]:
    metrics = _metrics(runs) if not runs.empty else []
    return {
        "runs": _runs_payload(runs, metrics) if not runs.empty else [],
        "metrics": metrics,
        "curves": _curves(history),
        "studies": _clean(studies(runs)),
        "paper_tables": paper_tables(results_dir),
        "images": _images(runs) if not runs.empty else [],
    }


def render(payload: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    data = json.dumps(payload, default=str).replace("</", "<\\/")
    return page().replace("%PLOTLY%", get_plotlyjs()).replace("%DATA%", data)
