"""Result tables: our mean ± std over seeds next to the paper's number, the difference and a tolerance verdict."""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def load_expected(path: str | Path, table: str) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["table"] == table]


ALIASES = {"depth": "model.depth", "circuit_layers": "attention.layers", "ansatz": "attention.ansatz",
           "pred_len": "data.pred_len", "seq_len": "data.seq_len"}


def _setting_matches(setting: str, row_key: dict[str, Any]) -> bool:
    """expected.csv 'setting' is 'k=v,k=v' over short names (depth, circuit_layers, ansatz, pred_len)."""
    for part in filter(None, setting.split(",")):
        key, value = part.split("=", 1)
        if str(row_key.get(ALIASES.get(key, key))) != value:
            return False
    return True


def find_expected(expected: list[dict[str, Any]], key: dict[str, Any], metric: str) -> dict[str, Any] | None:
    for row in expected:
        if row["metric"] != metric or row["dataset"] != str(key.get("data.name")):
            continue
        model_ok = row.get("model") in (None, "", "*", str(key.get("model.name")), "vit")
        backend_ok = row["backend"] in ("*", "", str(key.get("attention.name")))
        if model_ok and backend_ok and _setting_matches(row["setting"], key):
            return row
    return None


def build_table(runs: list[dict[str, Any]], rows: list[str], column: str, metric: str | list[str],
                expected: list[dict[str, Any]], missing_data: dict[str, str] | None = None,
                scale: float = 100.0) -> list[dict[str, Any]]:
    """One output row per (row keys, column value); each metric as ``<metric>:ours_mean`` etc.
    For a single metric the unprefixed names (ours_mean, paper_mean, diff, ...) are filled too."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[tuple(run.get(f"cfg.{k}") for k in [*rows, column])].append(run)
    table = []
    def order(value):
        return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))

    for key, members in sorted(groups.items(), key=lambda kv: tuple(order(x) for x in kv[0])):
        lookup = dict(zip([*rows, column], key))
        for extra in ("attention.name", "attention.layers", "model.depth", "model.name", "data.pred_len"):
            lookup.setdefault(extra, members[0].get(f"cfg.{extra}"))
        row: dict[str, Any] = dict(zip([*rows, column], key))
        row["n_failed"] = sum(1 for r in members if r.get("status") == "failed")
        for m in metrics:
            values = [scale * r[f"metric.{m}"] for r in members
                      if r.get("status") == "finished" and r.get(f"metric.{m}") is not None]
            cell: dict[str, Any] = {"n_runs": len(values), "ours_mean": None, "ours_std": None}
            if values:
                mean, std = mean_std(values)
                cell.update(ours_mean=round(mean, 4 if scale == 1 else 2), ours_std=round(std, 4 if scale == 1 else 2))
            paper = find_expected(expected, lookup, m)
            if paper:
                cell.update(paper_mean=float(paper["expected"]), paper_std=float(paper["expected_std"] or 0),
                            tolerance=float(paper["tolerance"]))
                if values:
                    cell["diff"] = round(cell["ours_mean"] - cell["paper_mean"], 4 if scale == 1 else 2)
                    cell["within_tolerance"] = abs(cell["diff"]) <= cell["tolerance"]
            row.update({f"{m}:{k}": v for k, v in cell.items()})
            if len(metrics) == 1:
                row.update(cell)
        row["n_runs"] = row[f"{metrics[0]}:n_runs"]
        table.append(row)
    for dataset, reason in (missing_data or {}).items():
        table.append({rows[0]: dataset, column: "*", "n_runs": 0, "note": f"data not present: {reason}"})
    return table


def add_average_rows(table: list[dict[str, Any]], rows: list[str], column: str, average_key: str,
                     metrics: list[str], expected: list[dict[str, Any]], scale: float) -> list[dict[str, Any]]:
    """Append, per group, the mean over ``average_key`` (e.g. the four horizons) of our means, as 'avg' rows."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in table:
        if "note" not in row:
            groups[tuple(row.get(k) for k in [*rows, column] if k != average_key)].append(row)
    averaged = []
    for key, members in groups.items():
        out = dict(zip([k for k in [*rows, column] if k != average_key], key))
        out[average_key] = "avg"
        out["n_runs"] = min(m.get("n_runs", 0) for m in members)
        for metric in metrics:
            prefix = f"{metric}:" if len(metrics) > 1 else ""
            values = [m.get(f"{prefix}ours_mean") for m in members]
            cell: dict[str, Any] = {"n_runs": len(values), "ours_mean": None, "ours_std": None}
            if values and all(v is not None for v in values):
                cell["ours_mean"] = round(statistics.fmean(values), 4 if scale == 1 else 2)
                cell["ours_std"] = 0.0
            paper = find_expected(expected, out, metric)
            if paper:
                cell.update(paper_mean=float(paper["expected"]), tolerance=float(paper["tolerance"]))
                if cell["ours_mean"] is not None:
                    cell["diff"] = round(cell["ours_mean"] - cell["paper_mean"], 4 if scale == 1 else 2)
                    cell["within_tolerance"] = abs(cell["diff"]) <= cell["tolerance"]
            out.update({f"{prefix}{k}": v for k, v in cell.items()})
        out["note"] = f"mean over {len(members)} {average_key} values"
        averaged.append(out)
    return table + averaged


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def write_table(table: list[dict[str, Any]], keys: list[str], title: str, header_lines: list[str],
                out_stem: Path, metrics: list[str] | None = None) -> None:
    metrics = metrics or [""]
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    per_metric = ["ours_mean", "ours_std", "paper_mean", "paper_std", "diff", "tolerance", "within_tolerance"]
    if metrics == [""]:
        fields = [*keys, "n_runs", "n_failed", *per_metric, "note"]
    else:
        fields = [*keys, "n_runs", "n_failed", *[f"{m}:{k}" for m in metrics for k in per_metric], "note"]
    tmp_csv = out_stem.with_suffix(".csv.tmp")
    with open(tmp_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
    tmp_csv.replace(out_stem.with_suffix(".csv"))
    lines = [f"# {title}", "", *header_lines, ""]
    shown = [*keys]
    for m in metrics:
        label = f" {m}" if m else ""
        shown += [f"ours{label} (mean ± std, n)", f"paper{label}", "diff", "tol", "within"]
    shown.append("note")
    lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in table:
        cells = [fmt(row.get(k)) for k in keys]
        for m in metrics:
            get = (lambda k, m=m, row=row: row.get(f"{m}:{k}")) if m else row.get
            if get("ours_mean") is not None:
                ours = f"{get('ours_mean')} ± {get('ours_std')} (n={get('n_runs')})"
            else:
                ours = f"— (n={get('n_runs') or 0})"
            if row.get("n_failed"):
                ours += f", {row['n_failed']} failed"
            paper = (f"{get('paper_mean')} ± {get('paper_std')}" if get("paper_std") else fmt(get("paper_mean")))
            cells += [ours, paper, fmt(get("diff")), fmt(get("tolerance")), fmt(get("within_tolerance"))]
        cells.append(fmt(row.get("note")))
        lines.append("| " + " | ".join(cells) + " |")
    tmp_md = out_stem.with_suffix(".md.tmp")
    tmp_md.write_text("\n".join(lines) + "\n")
    tmp_md.replace(out_stem.with_suffix(".md"))
