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


def _setting_matches(setting: str, row_key: dict[str, Any]) -> bool:
    """expected.csv 'setting' is 'k=v,k=v' over short names (depth, circuit_layers, ansatz)."""
    aliases = {"depth": "model.depth", "circuit_layers": "attention.layers", "ansatz": "attention.ansatz"}
    for part in filter(None, setting.split(",")):
        key, value = part.split("=", 1)
        if str(row_key.get(aliases.get(key, key))) != value:
            return False
    return True


def find_expected(expected: list[dict[str, Any]], key: dict[str, Any]) -> dict[str, Any] | None:
    for row in expected:
        if row["dataset"] != str(key.get("data.name")):
            continue
        if row["backend"] != str(key.get("attention.name")) and row["backend"] != "*":
            continue
        if _setting_matches(row["setting"], key):
            return row
    return None


def build_table(runs: list[dict[str, Any]], rows: list[str], column: str, metric: str,
                expected: list[dict[str, Any]], missing_data: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One output row per (row keys, column value); metric in percent."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        key = tuple(run.get(f"cfg.{k}") for k in [*rows, column])
        groups[key].append(run)
    table = []
    for key, members in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        values = [100 * r[f"metric.{metric}"] for r in members
                  if r.get("status") == "finished" and r.get(f"metric.{metric}") is not None]
        lookup = dict(zip([*rows, column], key))
        lookup.setdefault("attention.name", members[0].get("cfg.attention.name"))
        lookup.setdefault("attention.layers", members[0].get("cfg.attention.layers"))
        lookup.setdefault("model.depth", members[0].get("cfg.model.depth"))
        paper = find_expected(expected, lookup)
        row: dict[str, Any] = {k: v for k, v in zip([*rows, column], key)}
        row["n_runs"] = len(values)
        row["n_failed"] = sum(1 for r in members if r.get("status") == "failed")
        if values:
            mean, std = mean_std(values)
            row.update(ours_mean=round(mean, 2), ours_std=round(std, 2))
        else:
            row.update(ours_mean=None, ours_std=None)
        if paper:
            row.update(paper_mean=float(paper["expected"]), paper_std=float(paper["expected_std"]),
                       tolerance=float(paper["tolerance"]))
            if values:
                row["diff"] = round(row["ours_mean"] - row["paper_mean"], 2)
                row["within_tolerance"] = abs(row["diff"]) <= row["tolerance"]
        table.append(row)
    for dataset, reason in (missing_data or {}).items():
        table.append({rows[0]: dataset, column: "*", "n_runs": 0, "note": f"data not present: {reason}"})
    return table


COLUMNS = ["n_runs", "n_failed", "ours_mean", "ours_std", "paper_mean", "paper_std", "diff", "tolerance",
           "within_tolerance", "note"]


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def write_table(table: list[dict[str, Any]], keys: list[str], title: str, header_lines: list[str],
                out_stem: Path) -> None:
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    fields = [*keys, *COLUMNS]
    tmp_csv = out_stem.with_suffix(".csv.tmp")
    with open(tmp_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
    tmp_csv.replace(out_stem.with_suffix(".csv"))
    lines = [f"# {title}", "", *header_lines, ""]
    shown = [*keys, "ours (mean ± std, n)", "paper (mean ± std)", "diff", "tolerance", "within", "note"]
    lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in table:
        ours = (f"{row['ours_mean']:.2f} ± {row['ours_std']:.2f} (n={row['n_runs']})"
                if row.get("ours_mean") is not None else f"— (n={row.get('n_runs', 0)})")
        if row.get("n_failed"):
            ours += f", {row['n_failed']} failed"
        paper = f"{row['paper_mean']:.1f} ± {row['paper_std']:.1f}" if row.get("paper_mean") is not None else "—"
        cells = [fmt(row.get(k)) for k in keys] + [ours, paper, fmt(row.get("diff")), fmt(row.get("tolerance")),
                                                    fmt(row.get("within_tolerance")), fmt(row.get("note"))]
        lines.append("| " + " | ".join(cells) + " |")
    tmp_md = out_stem.with_suffix(".md.tmp")
    tmp_md.write_text("\n".join(lines) + "\n")
    tmp_md.replace(out_stem.with_suffix(".md"))
