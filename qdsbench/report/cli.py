"""``qdsbench-report``: collect runs under log directories into an HTML dashboard plus markdown/csv tables.

The page groups runs by config (debug and smoke runs hidden unless shown), compares two runs, shows hyperparameter
studies and the campaign tables of results/<paper>/.

    qdsbench-report --logs logs --results results --out logs/report
"""

from __future__ import annotations

import argparse
from pathlib import Path

import qdsbench  # noqa: F401
from qdsbench.report.collect import collect
from qdsbench.report.groups import grouped
from qdsbench.report.html import build_payload, render


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def write_tables(runs, out: Path) -> list[Path]:
    """summary_<metric>.md|csv: one row per config group (debug and smoke runs left out), n = distinct seeds."""
    written = []
    if runs.empty:
        return written
    for metric in [c[len("metric.") :] for c in runs.columns if c.startswith("metric.")]:
        if metric.startswith(("attn/", "lr-")):
            continue
        frame = grouped(runs, metric)
        if frame.empty:
            continue
        stem = out / ("summary_" + metric.replace("/", "_"))
        frame.to_csv(stem.with_suffix(".csv"), index=False)
        lines = [
            f"| group | dataset | model | backend | {metric} mean ± std | seeds | runs |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {_cell(r.label)} | {r.dataset} | {r.model} | {r.backend} | {r.mean:.4f} ± "
            f"{'—' if r.std != r.std else f'{r.std:.4f}'} | {r.n} | {r.runs} |"
            for r in frame.itertuples()
        ]
        stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
        written.append(stem.with_suffix(".md"))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="qdsbench-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--logs",
        nargs="+",
        default=["logs"],
        type=Path,
        help="directories searched for runs (run.json or W&B offline files); default logs",
    )
    parser.add_argument(
        "--results",
        default=Path("results"),
        type=Path,
        help="where the per-paper campaign tables are (results/<paper>/); default results",
    )
    parser.add_argument(
        "--out",
        default=Path("logs/report"),
        type=Path,
        help="index.html and summary_<metric>.md|csv go here; default logs/report",
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.logs if not p.is_dir()]
    if missing:
        raise SystemExit(f"qdsbench-report: error: log directory {missing[0]} does not exist; pass --logs <dir>")
    runs, history = collect(args.logs)
    args.out.mkdir(parents=True, exist_ok=True)
    html = args.out / "index.html"
    tmp = html.with_suffix(".tmp")
    tmp.write_text(render(build_payload(runs, history, args.results)))
    tmp.replace(html)
    tables = write_tables(runs, args.out)
    print(f"{len(runs)} runs -> {html.resolve()} (+{len(tables)} summary tables in {args.out})")


if __name__ == "__main__":
    main()
