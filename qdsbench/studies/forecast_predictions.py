"""Prediction vs truth on one test window, per dataset and horizon, for every model of a forecasting campaign table.

The ``predictions`` stage of conf/paper/olinear.yaml. For each table it loads the first planned seed's finished run of
every (model, horizon) cell from the campaign's work directories (checkpoints are not committed, so only runs made on
this machine can be drawn), forecasts the first test window (the same forecast start for every model and horizon of a
table) and writes the target variate (the file's last column, OT / ILI's weighted ILI) as records:
``results/olinear/predictions/<table>.csv`` (history, truth and each model's forecast, on the standardised scale the
metrics use) and ``predictions.meta.json``. ``render`` draws ``results/olinear/<table>_predictions.png`` from those
records only, and ``predictions.md`` lists what was drawn and what was missing.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qdsbench.atomic import atomic_write_bytes, atomic_write_json
from qdsbench.tables import markdown_table, read_csv, write_csv, write_text

FIELDS = ("table", "model", "pred_len", "step", "truth", "forecast")


def _first_window(run_dir: Path):
    """(history, truth, forecast) of the target variate on the first test window of a finished run."""
    import torch

    from qdsbench.evaluate import load_task

    _, task, datamodule, _ = load_task(run_dir)
    datamodule.setup("test")
    x, y = next(iter(datamodule.test_dataloader()))
    task.eval()
    with torch.no_grad():
        forecast = task(x[:1])
    return x[0, :, -1].tolist(), y[0, :, -1].tolist(), forecast[0, :, -1].tolist()


def collect(paper: str, protocol: str, table_names: list[str], results: Path, work: Path | None) -> list[Path]:
    """Records for the tables: one CSV per table with the cells whose first-seed run is finished here."""
    from qdsbench.campaign.manifest import planned_seeds, table_units
    from qdsbench.campaign.records import finished_run
    from qdsbench.campaign.runner import Campaign

    started = time.time()
    campaign = Campaign(paper, protocol, results=results, check_data=False, **({"work": work} if work else {}))
    out_dir = Path(results) / paper / "predictions"
    written, drawn, missing = [], {}, {}
    for table in table_names:
        spec = campaign.manifest.tables[table]
        seed = planned_seeds(campaign.manifest, table, protocol)[0]
        rows: list[dict[str, Any]] = []
        for unit in (u for u in table_units(campaign.manifest, table, protocol) if u.seed == seed):
            labels = campaign.labels(unit)
            model, pred_len = unit.label or labels.get(spec.column), labels.get(spec.average_over)
            run_dir = finished_run(campaign.unit_dir(unit))
            if run_dir is None:
                missing.setdefault(table, []).append(f"{model} @ {pred_len}")
                continue
            history, truth, forecast = _first_window(run_dir)
            if not any(r["pred_len"] == pred_len for r in rows if r["model"] == "history"):
                rows += [
                    {"table": table, "model": "history", "pred_len": pred_len, "step": t - len(history), "truth": v}
                    for t, v in enumerate(history)
                ]
                rows += [
                    {"table": table, "model": "truth", "pred_len": pred_len, "step": t, "truth": v}
                    for t, v in enumerate(truth)
                ]
            rows += [
                {"table": table, "model": model, "pred_len": pred_len, "step": t, "forecast": round(v, 6)}
                for t, v in enumerate(forecast)
            ]
            drawn.setdefault(table, []).append(f"{model} @ {pred_len}")
        if rows:
            for row in rows:
                if row.get("truth") is not None:
                    row["truth"] = round(row["truth"], 6)
            written.append(write_csv(out_dir / f"{table}.csv", rows, FIELDS))
    meta = {
        "argv": ["--paper", paper, "--protocol", protocol, "--tables", ",".join(table_names)],
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "seconds": round(time.time() - started, 1),
        "seed": {t: planned_seeds(campaign.manifest, t, protocol)[0] for t in table_names},
        "drawn": drawn,
        "missing": missing,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "predictions.meta.json", meta)
    return [*written, out_dir / "predictions.meta.json"]


def _plot(rows: list[dict[str, Any]], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = sorted({int(r["pred_len"]) for r in rows})
    models = sorted({r["model"] for r in rows} - {"history", "truth"})
    fig, axes = plt.subplots(1, len(horizons), figsize=(3.6 * len(horizons), 3.2), squeeze=False, sharey=True)
    for ax, horizon in zip(axes[0], horizons):
        here = [r for r in rows if int(r["pred_len"]) == horizon]

        def line(name: str, column: str, here=here):
            points = sorted((int(r["step"]), float(r[column])) for r in here if r["model"] == name)
            return [p[0] for p in points], [p[1] for p in points]

        ax.plot(*line("history", "truth"), color="0.5", label="input window")
        ax.plot(*line("truth", "truth"), color="black", label="truth")
        for i, model in enumerate(models):
            steps, values = line(model, "forecast")
            if steps:
                ax.plot(steps, values, color=f"C{i}", label=model)
        ax.axvline(-0.5, color="0.8", linestyle=":")
        ax.set_title(f"horizon {horizon}", fontsize=9)
        ax.set_xlabel("step (0 = first forecast)")
    axes[0][0].set_ylabel("target variate (standardised)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})  # no version stamp: rebuilds are equal
    plt.close(fig)
    return buffer.getvalue()


def render(records: Path, out: Path, paper: str = "olinear") -> list[Path]:
    """The manifest's renderer: ``<table>_predictions.png`` per records CSV and ``predictions.md``, records only."""
    src, dst = Path(records) / paper / "predictions", Path(out) / paper
    meta = json.loads((src / "predictions.meta.json").read_text())
    written, cells = [], []
    for csv_path in sorted(src.glob("*.csv")):
        table = csv_path.stem
        png = dst / f"{table}_predictions.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(png, _plot(read_csv(csv_path), f"{table}: first test window, seed {meta['seed'][table]}"))
        written.append(png)
    for table in meta["seed"]:
        cells.append(
            {
                "table": table,
                "seed": meta["seed"][table],
                "drawn (model @ horizon)": ", ".join(meta["drawn"].get(table, [])) or None,
                "missing here (no finished run)": ", ".join(meta["missing"].get(table, [])) or None,
            }
        )
    text = "\n".join(
        [
            "# Forecasts vs truth on the first test window",
            "",
            f"Command: `python -m qdsbench.studies.forecast_predictions {' '.join(meta['argv'])}` ({meta['date']}, "
            f"{meta['seconds']} s): the first planned seed's finished run of each (model, horizon) cell, its best "
            "checkpoint, the first window of the test split (every model and horizon of a table forecasts from the "
            "same time point), the target variate (the file's last column) on the standardised scale the metrics "
            "use. Records: `predictions/<table>.csv`. Only runs made on the machine that ran this stage can be drawn "
            "(checkpoints are not committed).",
            "",
            markdown_table(cells, list(cells[0])),
            *(f"\n![{t}: forecasts vs truth]({t}_predictions.png)" for t in meta["seed"] if t in meta["drawn"]),
        ]
    )
    written.append(write_text(dst / "predictions.md", text + "\n"))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paper", default="olinear")
    parser.add_argument("--protocol", default="paper")
    parser.add_argument("--tables", required=True, help="comma-separated forecasting tables of the manifest")
    parser.add_argument("--results", type=Path, default=None, help="results root (default: the repo's results/)")
    parser.add_argument("--work", type=Path, default=None, help="campaign work directories (default: logs/campaign)")
    args = parser.parse_args(argv)
    from qdsbench.config import REPO_ROOT

    results = args.results or REPO_ROOT / "results"
    for path in collect(args.paper, args.protocol, args.tables.split(","), results, args.work):
        print(f"wrote {path}")
    for path in render(results, results, args.paper):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
