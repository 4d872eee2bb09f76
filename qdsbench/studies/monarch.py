"""Zero-shot conversion grid of a trained run (MonarchAttention and the efficient baselines):

    .venv/bin/python scripts/monarch_grid.py logs/monarch/vit_converged --experiment monarch/vit_converged --train

writes results/monarch/conversion.csv (the record: accuracy, top-1 agreement with the unconverted model and the
paired right/wrong counts, per-layer relative output error, row KL, attention FLOPs) and conversion.meta.json (what
the table's header quotes), then renders conversion.md from those two files only (:func:`render`, which
``qdsbench-reproduce --paper monarch --tables-only`` calls): accuracies with Wilson 95% intervals, and the change
against the unconverted model with a paired interval (both are measured on the same images; qdsbench.intervals).
``--train`` first trains the run (``qdsbench-train experiment=<--experiment>``) when it has no summary.json, as
``make reproduce-monarch`` and the stage of conf/paper/monarch.yaml do. The whole test split is used unless
``--max-samples`` caps it.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from qdsbench.config import REPO_ROOT
from qdsbench.convert import convert_and_evaluate
from qdsbench.intervals import paired_difference, wilson
from qdsbench.runrecord import METRICS_FILE
from qdsbench.tables import markdown_table, read_csv, write_csv, write_text

OUT = REPO_ROOT / "results" / "monarch"
DEFAULT_EXPERIMENT = "monarch/vit_converged"
DIAGNOSTIC_SAMPLES = 1000  # test images behind the per-layer error and row KL (means over many rows)
PAIRED = ("both_correct", "original_only", "converted_only", "neither")  # per-image counts, original vs converted
COLUMNS = [
    "backend",
    "options",
    "layers",
    "accuracy [95% CI]",
    "Δ vs original [95% CI, paired]",
    "top-1 agreement",
    "rel. output error",
    "row KL",
    "FLOPs vs softmax",
    "analytic = measured",
]


def grid() -> list[tuple[dict, str]]:
    points = []
    for block in (7, 14, 28):  # the full (b, T) grid on all layers; half-model swaps at the paper's b = 14
        for steps in (1, 2, 3):
            points.append(({"name": "monarch", "block_size": block, "num_steps": steps, "pad": "pre"}, "all"))
    for layers in ("first_half", "second_half"):
        for steps in (1, 2, 3):
            points.append(({"name": "monarch", "block_size": 14, "num_steps": steps, "pad": "pre"}, layers))
    for r in (8, 16, 32, 64):
        points.append(({"name": "performer", "num_features": r, "redraw": False}, "all"))
    for m in (8, 16, 32):
        points.append(({"name": "nystrom", "num_landmarks": m}, "all"))
    points += [({"name": "cosformer"}, "all"), ({"name": "linear"}, "all")]
    for window in (14, 28):  # a sparse point: causal sink (CLS) + sliding window
        points.append(({"name": "sink_window", "window": window, "sinks": 1}, "all"))
    return points


def ensure_trained(run_dir: Path, experiment: str = DEFAULT_EXPERIMENT, overrides: Sequence[str] = ()) -> None:
    """Train the 197-token softmax ViT into ``run_dir`` unless it holds a finished run (its summary.json); a run
    directory left by an interrupted training is resumed, not restarted."""
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").is_file():
        return
    resume = [f"resume={run_dir}"] if (run_dir / "checkpoints").is_dir() else []
    doing = "resuming" if resume else "training"
    print(f"no finished run at {run_dir}: {doing} it (experiment={experiment})", flush=True)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "qdsbench-train"),
            f"experiment={experiment}",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
            *resume,
            *overrides,
        ],
        check=True,
        cwd=REPO_ROOT,
    )


def training_minutes(run_dir: Path) -> float | None:
    """Wall time of the training in minutes: the last wall_time of its metrics.csv, which continues across resumes
    (summary.json's fit_seconds counts only the process that finished; runs since 2026-12-03 also record
    fit_seconds_cumulative, but the history serves older runs too)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    times = [float(r["wall_time"]) for r in read_csv(path) if r.get("wall_time")]
    return max(times) / 60 if times else None


def plot(csv_path: Path, png_path: Path) -> None:
    """Accuracy vs attention-FLOP ratio, one marker series per backend (and layer set for monarch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        label = r["backend"] + ("" if r["layers"] == "all" else f" ({r['layers']})")
        series.setdefault(label, []).append((float(r["flops_ratio_vs_softmax"]), float(r["accuracy"])))
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.axhline(float(rows[0]["original_accuracy"]), color="black", linestyle="--", label="softmax (original)")
    ax.set_xlabel("attention FLOPs / softmax attention FLOPs")
    ax.set_ylabel("test accuracy (zero-shot)")
    ax.set_title("Zero-shot conversion of a 197-token ViT")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def _counts(row: dict) -> tuple[int, ...] | None:
    """The paired counts of a CSV row, or None for a row recorded before they were (no interval can be drawn)."""
    if any(row.get(k) is None for k in PAIRED):
        return None
    return tuple(int(row[k]) for k in PAIRED)


def _accuracy_cells(row: dict) -> dict[str, str | None]:
    counts = _counts(row)
    if counts is None:
        return {
            "accuracy [95% CI]": str(row["accuracy"]),
            "Δ vs original [95% CI, paired]": None,
            "top-1 agreement": row.get("top1_agreement"),
        }
    both, original_only, converted_only, neither = counts
    n = sum(counts)
    converted = wilson(both + converted_only, n)
    change = paired_difference(both, converted_only, original_only, neither)  # converted minus original
    return {
        "accuracy [95% CI]": converted.format(4),
        "Δ vs original [95% CI, paired]": f"{change.estimate:+.4f} [{change.low:+.4f}, {change.high:+.4f}]",
        "top-1 agreement": row.get("top1_agreement"),
    }


def _header(rows: list[dict], meta: dict) -> list[str]:
    command = meta.get("command") or (
        f".venv/bin/python scripts/monarch_grid.py {meta['run_dir']} --max-samples {meta['max_samples']}"
    )
    experiment = meta.get("experiment", "monarch/vit_long")
    original = meta.get("original_accuracy", rows[0]["original_accuracy"] if rows else None)
    samples = meta.get("samples", meta.get("max_samples"))
    lines = [
        "# Zero-shot conversion of a softmax ViT (197 tokens) to MonarchAttention and efficient baselines",
        "",
        f"Command: `{command}` (grid {meta['minutes']:.1f} min). The run: `qdsbench-train experiment={experiment}` "
        "(MNIST, 2x2 patches = 196 patches + CLS, dim 64, 4 layers, 2 heads)"
        + (f", trained for {meta['training_minutes']:.1f} min" if meta.get("training_minutes") else "")
        + f"; unconverted test accuracy {original} on {samples} test images, one trained run (n = 1 seed).",
    ]
    if meta.get("original_correct") is not None:
        base = wilson(int(meta["original_correct"]), int(samples))
        lines[-1] += f" Its Wilson 95% interval: [{base.low:.4f}, {base.high:.4f}]."
    lines += [
        "",
        "Intervals: Wilson score for each accuracy; for the change against the unconverted model, Newcombe's paired "
        "interval (method 10) from the per-image counts, since both models see the same images. Top-1 agreement: "
        "the share of images on which the converted model predicts the same class as the original, right or wrong. "
        + (
            f"Relative output error and row KL: over the first {meta['diagnostic_samples']} test images. "
            if meta.get("diagnostic_samples")
            else ""
        )
        + "FLOPs: attention bmm FLOPs of the swapped backends over all layers, measured with torch FlopCounterMode; "
        "ratio vs softmax attention (4 N^2 d per head).",
    ]
    return lines


def conversion_markdown(rows: list[dict], meta: dict) -> str:
    """conversion.md: every value as the grid's CSV record holds it, a missing one as an em dash."""
    cells = [
        {
            "backend": r["backend"],
            "options": r["options"] or "",
            "layers": r["layers"],
            **_accuracy_cells(r),
            "rel. output error": str(r["mean_rel_output_error"]),
            "row KL": None if r["mean_row_kl"] is None else str(r["mean_row_kl"]),
            "FLOPs vs softmax": str(r["flops_ratio_vs_softmax"]),
            "analytic = measured": None
            if r["analytic_matches_measured"] is None
            else str(r["analytic_matches_measured"]),
        }
        for r in rows
    ]
    lines = [
        *_header(rows, meta),
        "",
        markdown_table(cells, COLUMNS),
        "",
        "![accuracy vs FLOPs](accuracy_vs_flops.png)",
    ]
    return "\n".join(lines) + "\n"


def render(records: Path, out: Path) -> list[Path]:
    """The manifest's renderer: results roots in, ``<out>/monarch/conversion.md`` out."""
    return render_dir(Path(records) / "monarch", Path(out) / "monarch")


def render_dir(src: Path, dst: Path) -> list[Path]:
    """conversion.md from the records ``conversion.csv`` and ``conversion.meta.json`` in ``src`` (nothing else)."""
    meta = json.loads((src / "conversion.meta.json").read_text())
    return [write_text(dst / "conversion.md", conversion_markdown(read_csv(src / "conversion.csv"), meta))]


def main(argv: list[str] | None = None) -> None:
    """``scripts/monarch_grid.py`` and the ``grid`` stage of conf/paper/monarch.yaml."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument(
        "--max-samples", type=int, default=None, help="cap on test images (default: the whole test split)"
    )
    parser.add_argument(
        "--diagnostic-samples",
        type=int,
        default=DIAGNOSTIC_SAMPLES,
        help=f"images behind the relative output error and row KL (default {DIAGNOSTIC_SAMPLES}; accuracy uses all)",
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw the figure from conversion.csv")
    parser.add_argument(
        "--train",
        action="store_true",
        help="train run_dir first (experiment=<--experiment>) if it has no finished run",
    )
    parser.add_argument(
        "--experiment",
        default=DEFAULT_EXPERIMENT,
        help=f"the experiment --train trains (default: {DEFAULT_EXPERIMENT}, >= 97%% test accuracy)",
    )
    parser.add_argument(
        "--train-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Hydra override for that training (repeatable; e.g. the smoke protocol's tiny run)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="default: results/monarch")
    args = parser.parse_args(argv)
    out = args.out
    if args.plot_only:
        plot(out / "conversion.csv", out / "accuracy_vs_flops.png")
        return
    if args.train:
        ensure_trained(args.run_dir, args.experiment, args.train_override)
    started, rows, original_predictions = time.time(), [], {}
    for backend, layers in grid():
        r = convert_and_evaluate(
            args.run_dir, backend, layers, args.max_samples, "test", args.diagnostic_samples, original_predictions
        )
        kl = [x for x in r["row_kl"] if x]
        options = ", ".join(f"{k}={v}" for k, v in backend.items() if k not in ("name", "pad", "redraw"))
        counts = r["paired_counts"]
        rows.append(
            {
                "backend": backend["name"],
                "options": options,
                "layers": layers,
                "samples": r["samples"],
                "diagnostic_samples": r["diagnostic_samples"],
                "accuracy": round(r["accuracy"], 4),
                "original_accuracy": round(r["original_accuracy"], 4),
                "top1_agreement": round(r["top1_agreement"], 4),
                **{k: counts[k] for k in PAIRED},
                "mean_rel_output_error": round(sum(r["relative_output_error"]) / len(r["relative_output_error"]), 4),
                "mean_row_kl": round(sum(kl) / len(kl), 4) if kl else None,
                "flops_measured": r["attention_flops_measured"],
                "flops_ratio_vs_softmax": round(r["attention_flops_measured"] / r["softmax_attention_flops"], 3),
                "analytic_matches_measured": (
                    r["attention_flops_analytic"] == r["attention_flops_measured"]
                    if r["attention_flops_analytic"] is not None
                    else None
                ),
            }
        )
        print(rows[-1], flush=True)
    write_csv(out / "conversion.csv", rows, lineterminator="\r\n")
    command = " ".join(
        [".venv/bin/python scripts/monarch_grid.py", str(args.run_dir), "--experiment", args.experiment]
        + (["--max-samples", str(args.max_samples)] if args.max_samples else [])
        + (
            ["--diagnostic-samples", str(args.diagnostic_samples)]
            if args.diagnostic_samples != DIAGNOSTIC_SAMPLES
            else []
        )
        + (["--train"] if args.train else [])
        + [f"--train-override {o}" for o in (args.train_override or []) if args.train]
    )
    meta = {
        "run_dir": str(args.run_dir),
        "experiment": args.experiment,
        "command": command,
        "max_samples": args.max_samples,
        "samples": rows[0]["samples"],
        "diagnostic_samples": rows[0]["diagnostic_samples"],
        "original_accuracy": rows[0]["original_accuracy"],
        "original_correct": rows[0]["both_correct"] + rows[0]["original_only"],  # the same in every row
        "training_minutes": training_minutes(args.run_dir),
        "minutes": (time.time() - started) / 60,
    }
    write_text(out / "conversion.meta.json", json.dumps(meta, indent=2) + "\n")
    render_dir(out, out)
    plot(out / "conversion.csv", out / "accuracy_vs_flops.png")
