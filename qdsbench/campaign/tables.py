"""The one table writer: campaign records -> a paper table (markdown + CSV), with seeds, protocol and verdicts.

Each cell is mean ± sample std over distinct seeds with ``n`` (``n=k/N`` while the cell is still filling), next to
the paper's value, the difference and a verdict that is only given once every planned seed has a record. Average
rows average per seed first, then report mean ± std over the seeds complete on every averaged cell. Output is a
pure function of the records, so ``--tables-only`` rebuilds committed tables byte for byte.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from qdsbench.campaign.figures import figure_path
from qdsbench.campaign.manifest import Unit, planned_seeds, table_units
from qdsbench.campaign.records import metric
from qdsbench.tables import csv_text, write_text

# Short names used in expected.csv's `setting` column.
ALIASES = {
    "depth": "model.depth",
    "circuit_layers": "attention.layers",
    "ansatz": "attention.ansatz",
    "pred_len": "data.pred_len",
    "seq_len": "data.seq_len",
}


def load_expected(path: str | Path, table: str) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["table"] == table]


def _setting_matches(setting: str, key: dict[str, Any]) -> bool:
    for part in filter(None, setting.split(",")):
        name, value = part.split("=", 1)
        if str(key.get(ALIASES.get(name, name))) != value:
            return False
    return True


def find_expected(expected: list[dict[str, Any]], key: dict[str, Any], metric_name: str) -> dict[str, Any] | None:
    for row in expected:
        if row["metric"] != metric_name or row["dataset"] != str(key.get("data.name")):
            continue
        model_ok = row.get("model") in (None, "", "*", str(key.get("model.name")), "vit")
        backend_ok = row["backend"] in ("*", "", str(key.get("attention.name")))
        if model_ok and backend_ok and _setting_matches(row["setting"], key):
            return row
    return None


def seed_stats(values: dict[int, float]) -> tuple[float | None, float | None, int]:
    """Mean and sample std over distinct seeds (std None for one seed: a spread that was not measured)."""
    vals = [values[s] for s in sorted(values)]
    if not vals:
        return None, None, 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None), len(vals)


def verdict(mean: float | None, std: float | None, n: int, planned: int, paper: dict[str, Any] | None) -> str:
    if paper is None:
        return "no paper value"
    if mean is None or n < planned:
        return "filling"
    diff = abs(mean - float(paper["expected"]))
    return "within" if diff <= max(float(paper["tolerance"]), 2 * (std or 0.0)) else "outside"


def _cell(values: dict[int, float], planned: int, paper: dict[str, Any] | None, digits: int) -> dict[str, Any]:
    mean, std, n = seed_stats(values)
    out = {
        "n": n,
        "planned": planned,
        "mean": _round(mean, digits),
        "std": _round(std, digits),
        "paper": float(paper["expected"]) if paper else None,
        "paper_std": float(paper["expected_std"]) if paper and paper.get("expected_std") else None,
        "tolerance": float(paper["tolerance"]) if paper else None,
        "paper_source": paper.get("source") if paper else None,
        "verdict": verdict(mean, std, n, planned, paper),
    }
    out["diff"] = _round(mean - out["paper"], digits) if mean is not None and paper else None
    out["seeds"] = dict(sorted(values.items()))
    return out


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def build_rows(
    manifest: DictConfig,
    table: str,
    protocol: str,
    records: dict[str, dict[str, Any]],
    labels: dict[str, dict[str, Any]],
    expected: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per (row keys, column value); ``labels[group]`` holds each unit group's key values."""
    spec = manifest.tables[table]
    keys = [*spec.rows, spec.column]
    metrics = list(spec.metric) if OmegaConf.is_list(spec.metric) else [spec.metric]
    scale, digits = float(spec.get("scale", 100.0)), 4 if float(spec.get("scale", 100.0)) == 1 else 2
    planned = len(planned_seeds(manifest, table, protocol))
    cells: dict[tuple, dict[str, dict[int, float]]] = {}
    units: dict[tuple, list[Unit]] = defaultdict(list)
    for unit in table_units(manifest, table, protocol):
        # a run group's `label:` names its column (e.g. iTransformer with and without NormLin share model.name)
        key = tuple(labels[unit.group].get(k) for k in spec.rows) + (unit.label or labels[unit.group].get(spec.column),)
        units[key].append(unit)
        per_metric = cells.setdefault(key, {m: {} for m in metrics})
        record = records.get(unit.uid)
        for m in metrics:
            value = metric(record, m) if record else None
            if value is not None and math.isfinite(value):
                per_metric[m][unit.seed] = scale * value
    rows = []
    for key, per_metric in cells.items():
        lookup = {**labels[units[key][0].group], **dict(zip(keys, key))}
        row = {**dict(zip(keys, key)), "protocol": protocol}
        for m in metrics:
            row[m] = _cell(per_metric[m], planned, find_expected(expected, lookup, m), digits)
        rows.append(row)
    if spec.get("average_over"):
        restricted = spec.average_over in (manifest.protocols[protocol].get("restrict") or {})
        rows += _average_rows(
            rows, keys, spec.average_over, metrics, planned, [] if restricted else expected, protocol, digits
        )
    return rows


def _average_rows(rows, keys, over, metrics, planned, expected, protocol, digits) -> list[dict[str, Any]]:
    """Average each seed over the ``over`` values first (only seeds present in every averaged cell)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys if k != over)].append(row)
    out = []
    for key, members in groups.items():
        row = {**dict(zip([k for k in keys if k != over], key)), over: "avg", "protocol": protocol}
        for m in metrics:
            seeds = set.intersection(*(set(r[m]["seeds"]) for r in members))
            per_seed = {s: statistics.fmean(r[m]["seeds"][s] for r in members) for s in seeds}
            row[m] = _cell(per_seed, planned, find_expected(expected, row, m), digits)
        row["note"] = f"per seed, mean over the {len(members)} {over} values; then over seeds"
        out.append(row)
    return out


def _fmt(x: Any) -> str:
    return "—" if x is None else str(x)


def _ours(cell: dict[str, Any]) -> str:
    n = f"n={cell['n']}" if cell["n"] >= cell["planned"] else f"n={cell['n']}/{cell['planned']}"
    if cell["mean"] is None:
        return f"— ({n})"
    spread = f" ± {cell['std']}" if cell["std"] is not None else ""
    return f"{cell['mean']}{spread} ({n})"


def _paper(cell: dict[str, Any]) -> str:
    if cell["paper"] is None:
        return "—"
    return f"{cell['paper']} ± {cell['paper_std']}" if cell["paper_std"] else str(cell["paper"])


def render(
    manifest: DictConfig, table: str, protocol: str, rows: list[dict[str, Any]], header: list[str]
) -> tuple[str, str]:
    """Markdown and CSV text of one table."""
    spec = manifest.tables[table]
    keys = [*spec.rows, spec.column]
    metrics = list(spec.metric) if OmegaConf.is_list(spec.metric) else [spec.metric]
    head = [*keys, "protocol"]
    for m in metrics:
        head += [f"ours {m} (mean ± std, n)", f"paper {m}", "diff", "tol", "verdict"]
    head.append("note")
    lines = [f"# {spec.title}", "", *header, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fields = [*keys, "protocol"]
    for m in metrics:
        fields += [
            f"{m}:{k}" for k in ("n", "planned", "mean", "std", "paper", "paper_std", "diff", "tolerance", "verdict")
        ]
    fields.append("note")
    flat_rows = []
    names = OmegaConf.to_container(spec.labels) if spec.get("labels") else {}
    for row in rows:
        cells = [_fmt(row.get(k)) for k in keys[:-1]] + [str(names.get(row.get(keys[-1]), _fmt(row.get(keys[-1]))))]
        cells.append(protocol)
        flat = {k: row.get(k) for k in keys} | {"protocol": protocol, "note": row.get("note", "")}
        for m in metrics:
            c = row[m]
            cells += [_ours(c), _paper(c), _fmt(c["diff"]), _fmt(c["tolerance"]), c["verdict"]]
            flat |= {
                f"{m}:{k}": c[k]
                for k in ("n", "planned", "mean", "std", "paper", "paper_std", "diff", "tolerance", "verdict")
            }
        cells.append(row.get("note", ""))
        lines.append("| " + " | ".join(cells) + " |")
        flat_rows.append(flat)
    if spec.get("figure") and any(row[m]["mean"] is not None for row in rows for m in metrics):
        png = figure_path(Path(table), spec.average_over).name
        lines += ["", f"![{', '.join(metrics)} vs {spec.average_over}, mean ± seed std]({png})"]
    return "\n".join(lines) + "\n", csv_text(flat_rows, fields)


def table_stem(out: Path, paper: str, protocol: str, table: str) -> Path:
    """The paper protocol's tables are the paper's results (results/<paper>/); others go under a protocol folder."""
    base = Path(out) / paper
    return (base if protocol == "paper" else base / protocol) / table


def write(stem: Path, markdown: str, csv_body: str) -> Path:
    write_text(stem.with_suffix(".csv"), csv_body)
    return write_text(stem.with_suffix(".md"), markdown)
