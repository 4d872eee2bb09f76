"""The Delta-attention study at CPU scale (issue 6): train the decoder if missing, then evaluate the grid.

    make reproduce-delta                       # = .venv/bin/python scripts/reproduce_delta.py (this module's main)
    .venv/bin/python scripts/reproduce_delta.py --samples 4 --lengths 256 --out /tmp/d   # smoke

The decoder (experiment=delta/train, full causal attention) is evaluated zero-shot with every prefill method in every
layer, answers decoded densely over the KV cache (the paper's protocol): full; sink_window (sparse); sparse + dense
tail (tail_only, our ablation); sparse + recompute; sparse + Delta; and a budget-matched sink_window whose window is
W + N / (2 gamma) (paper App. F). Windows W in {16, 32, 64, 128} at N in {256, 512, 1024} give N/W from 2 to 64 (the
paper's 4K..131K with W = 2K). Extra sweeps at N = 1024, W = 32: gamma in {4..64} and the paper's tail_min = 128.
The paper's description without the authors' dense tail (tail=false) is evaluated at every (N, W) too, and Delta's
locality assumption is measured per layer inside the decoder. The full-attention reference of each batch is computed
once and reused.

Measure -> records -> render (issue 15): ``--stage eval`` measures and writes only records into --out
(grid_N<length>[_notail].csv with grid.meta.json, query_locality.csv and locality.csv with their .meta.json), then
renders query_locality.md and locality.md; ``--stage tables`` renders accuracy.md|csv, notail.md, tasks.md,
intrinsic.md, gamma.md, nll.md, run.json and accuracy_vs_ratio.png from those records alone
(:mod:`qdsbench.studies.delta_tables`, the renderers ``qdsbench-reproduce --tables-only`` calls). Parts whose records
exist are skipped, so the study resumes; `--stage eval --lengths 1024` and `--stage eval --lengths 256,512` can run
side by side on two cores, then `--stage tables`. The campaign manifest conf/paper/delta.yaml runs the same stages
(`qdsbench-reproduce --paper delta --plan`).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from qdsbench import attention
from qdsbench.analysis.capture import Capture
from qdsbench.attention.sink_window import block_sparse_sink_window
from qdsbench.config import REPO_ROOT
from qdsbench.longctx.evaluate import Evaluator, evaluate_methods
from qdsbench.longctx.run_eval import load_decoder
from qdsbench.studies.delta_tables import (
    GRID_META,
    LOCALITY,
    MODES,
    QUERY_LOCALITY,
    grid_summary,
    sweep_window,
    write_grid_tables,
    write_locality_tables,
)
from qdsbench.tables import write_csv, write_text


def log(msg: str) -> None:
    print(msg, flush=True)


def ensure_trained(run_dir: Path, overrides: Sequence[str] = ()) -> None:
    """Train the decoder into ``run_dir`` unless it holds a finished run; ``overrides`` go after the preset's."""
    if (run_dir / "summary.json").exists():
        return
    log(f"no finished decoder run at {run_dir}: training it (experiment=delta/train, about 1 h on one thread)")
    subprocess.run(
        [
            str(Path(sys.executable).parent / "qdsbench-train"),
            "experiment=delta/train",
            f"paths.output_dir={run_dir}",
            "num_threads=1",
            "trainer.enable_progress_bar=false",
            *overrides,
        ],
        check=True,
        cwd=REPO_ROOT,
    )


def methods_for(length: int, windows: list[int], sinks: int, gamma: int, tail_min: int) -> list[dict]:
    out = []
    for w in windows:
        if w >= length:
            continue
        out.append({"name": "sink_window", "window": w, "sinks": sinks})
        out += [
            {"name": "delta", "window": w, "sinks": sinks, "gamma": gamma, "tail_min": tail_min, "mode": m}
            for m in MODES
        ]
        out.append({"name": "sink_window", "window": w + length // (2 * gamma), "sinks": sinks, "matched_to": w})
    return out


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({r["N"] for r in table})
    fig, axes = plt.subplots(1, len(lengths), figsize=(4.2 * len(lengths), 3.6), sharey=True, squeeze=False)
    styles = {
        "sparse": ("sparse (sink+window)", "C3", "o"),
        "tail_only": ("sparse + dense tail", "C4", "v"),
        "recompute": ("sparse + recompute", "C1", "s"),
        "delta": ("sparse + Delta", "C2", "D"),
        "matched": ("sparse, budget-matched W", "C7", "x"),
        "delta_notail": ("sparse + Delta, no dense tail", "C2", "d"),
    }
    for ax, n in zip(axes[0], lengths):
        rows = sorted([r for r in table if r["N"] == n], key=lambda r: r["N/W"])
        ratios = [r["N/W"] for r in rows]
        ax.axhline(rows[0]["full"], color="k", lw=1, ls="--", label="full attention")
        for kind, (label, color, marker) in styles.items():
            if any(r[kind] is None for r in rows):
                continue
            ax.plot(
                ratios,
                [r[kind] for r in rows],
                marker=marker,
                color=color,
                label=label,
                ls=":" if kind.endswith("_notail") else "-",
            )
        ax.set_xscale("log", base=2)
        ax.set_title(f"N = {n}")
        ax.set_xlabel("N / W")
    axes[0][0].set_ylabel("RULER-synth score (mean over tasks)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def ar1_queries(shape: tuple, rho: float, g: torch.Generator) -> torch.Tensor:
    """Queries whose neighbours correlate with coefficient rho along the sequence (dim -2), unit-free scale 2."""
    noise = torch.randn(*shape, generator=g) * 2
    q = noise.clone()
    for t in range(1, shape[-2]):
        q[..., t, :] = rho * q[..., t - 1, :] + (1 - rho**2) ** 0.5 * noise[..., t, :]
    return q


def measured_meta(args, **settings) -> dict:
    """What a table's header quotes about a measurement, recorded when it is made (the renderers read no clock)."""
    return {
        "argv": args.argv,
        "measured": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "samples": args.samples,
        "run_dir": str(args.run_dir),
        **settings,
    }


def write_record(out: Path, name: str, rows: list[dict], meta: dict) -> None:
    """Rows as ``<name>.csv`` (full precision) and the header's meta as ``<name>.meta.json``."""
    write_csv(out / f"{name}.csv", rows, lineterminator="\r\n")
    write_text(out / f"{name}.meta.json", json.dumps(meta, indent=2) + "\n")


def measure_locality(args, out: Path) -> None:
    """Notes 1.7 sanity check, no model: cosine to full attention for i.i.d. vs AR(1) queries. Recorded once
    (locality.csv); fixed seeds, so a rerun gives the same rows."""
    if (out / f"{LOCALITY}.csv").exists():
        return
    setting = {"length": 2048, "dim": 64, "sinks": 4, "window": 128, "gamma": 16, "tail_min": 16}
    g = torch.Generator().manual_seed(0)
    n, d = setting["length"], setting["dim"]
    k, v = torch.randn(2, 1, 1, n, d, generator=g).unbind(0)
    rows = []
    for label, rho in (("i.i.d. queries", 0.0), ("AR(1), rho = 0.9", 0.9), ("AR(1), rho = 0.99", 0.99)):
        q = ar1_queries((1, 1, n, d), rho, g)
        full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        row = {"queries": label}
        for mode in ("sparse", "recompute", "delta"):
            o = attention.create(
                "delta",
                window=setting["window"],
                sinks=setting["sinks"],
                gamma=setting["gamma"],
                tail_min=setting["tail_min"],
                mode=mode,
            )(q, k, v)
            row[mode] = F.cosine_similarity(o, full, dim=-1).mean().item()
        rows.append(row)
    write_record(out, LOCALITY, rows, measured_meta(args, **setting))


def correction_stats(q, k, v, window: int, sinks: int, gamma: int) -> dict[str, float]:
    """How well Delta's assumption holds for given (q, k, v): the anchor's dense-minus-sparse difference should
    predict that of every query in its block. Over queries beyond the first window that are not anchors:
    ``err_after_correction`` = sum ||D_t - D_a||^2 / sum ||D_t||^2 with D = dense - sparse (1 = the correction
    removes nothing, above 1 = it adds error), cosine of D_t and D_a, and cosine of q_t to q_(t+1) and to q_a."""
    n = q.shape[-2]
    scale = q.shape[-1] ** -0.5
    diff = F.scaled_dot_product_attention(q, k, v, is_causal=True) - block_sparse_sink_window(
        q, k, v, window, sinks, scale
    )
    t = torch.arange(window + sinks + gamma, n)
    t = t[t % gamma != 0]
    a = t // gamma * gamma
    d_t, d_a = diff[..., t, :], diff[..., a, :]
    return {
        "err_after_correction": float((d_t - d_a).square().sum() / d_t.square().sum()),
        "cos_D_t_D_a": float(F.cosine_similarity(d_t, d_a, dim=-1).mean()),
        "cos_q_t_next": float(F.cosine_similarity(q[..., :-1, :], q[..., 1:, :], dim=-1).mean()),
        "cos_q_t_anchor": float(F.cosine_similarity(q[..., t, :], q[..., a, :], dim=-1).mean()),
    }


def query_locality(args, out: Path) -> None:
    """Delta's locality assumption measured inside the trained decoder, layer by layer, on the full run's own q, k, v
    (no error propagation), next to synthetic queries with known correlation. Recorded once (query_locality.csv)."""
    if (out / f"{QUERY_LOCALITY}.csv").exists():
        return
    n = max(int(x) for x in args.lengths.split(","))
    w, gamma, per_task = sweep_window(n, [int(x) for x in args.windows.split(",")]), args.gamma, 4
    _, model, datamodule, checkpoint = load_decoder(args.run_dir, samples=args.samples)
    with Capture(model, matrices="none", hidden=False) as cap, torch.no_grad():
        for task in datamodule.tasks:
            samples = datamodule.eval_samples(task, n, "test")[:per_task]
            model(torch.tensor([s.prompt for s in samples]))
    rows = []
    for record in cap.layers:
        q, k, v = record.cat("q"), record.cat("k"), record.cat("v")
        rows.append({"queries": f"decoder layer {record.index}", **correction_stats(q, k, v, w, args.sinks, gamma)})
    g = torch.Generator().manual_seed(0)
    k, v = torch.randn(2, 8, 4, n, 32, generator=g).unbind(0)
    for label, rho in (
        ("synthetic i.i.d.", 0.0),
        ("synthetic AR(1), rho = 0.9", 0.9),
        ("synthetic AR(1), rho = 0.99", 0.99),
    ):
        q = ar1_queries((8, 4, n, 32), rho, g)
        rows.append({"queries": label, **correction_stats(q, k, v, w, args.sinks, gamma)})
    write_record(
        out,
        QUERY_LOCALITY,
        rows,
        measured_meta(
            args,
            checkpoint=str(checkpoint),
            length=n,
            window=w,
            gamma=gamma,
            sinks=args.sinks,
            prompts_per_task=per_task,
        ),
    )
    log(f"recorded {out / QUERY_LOCALITY}.csv")


def grid_methods(args, n: int, n_sweep: int, windows: list[int]) -> list[dict]:
    """The main grid at length n; at n_sweep also the gamma sweep and the paper's tail_min = 128 (W = 32)."""
    methods = methods_for(n, windows, args.sinks, args.gamma, args.tail_min)
    if n == n_sweep:
        w = sweep_window(n, windows)
        for g in (int(x) for x in args.gammas.split(",")):
            if g != args.gamma:
                methods += [
                    {
                        "name": "delta",
                        "window": w,
                        "sinks": args.sinks,
                        "gamma": g,
                        "tail_min": args.tail_min,
                        "mode": m,
                    }
                    for m in ("recompute", "delta")
                ]
        methods += [
            {"name": "delta", "window": w, "sinks": args.sinks, "gamma": args.gamma, "tail_min": 128, "mode": m}
            for m in MODES
        ]
    return methods


def no_tail_methods(args, n: int, windows: list[int]) -> list[dict]:
    """The paper's description without the authors' dense tail (``tail=false``): every query after the sparse
    prefill is corrected from its anchor, so the answer's first token also comes from a corrected row."""
    return [
        {
            "name": "delta",
            "window": w,
            "sinks": args.sinks,
            "gamma": args.gamma,
            "tail_min": args.tail_min,
            "tail": False,
            "mode": m,
        }
        for w in windows
        if w < n
        for m in ("recompute", "delta")
    ]


def evaluate_grid(args, out: Path) -> None:
    """Evaluate each length into ``grid_N<length>.csv`` and its tail=false ablation into ``grid_N<length>_notail.csv``
    (full and sparse rows only in the former). A part whose file exists is skipped: the study resumes. Once its parts
    are written, grid.meta.json records this invocation (argv, date, machine, ...) and the settings the grid tables
    are summarised at, so the tables quote the eval that completed the grid (of side-by-side evals, the last one)."""
    lengths = [int(x) for x in args.lengths.split(",")]
    windows = [int(x) for x in args.windows.split(",")]
    n_sweep = max(int(x) for x in args.sweep_length.split(",")) if args.sweep_length else max(lengths)
    suffixes = [""] if args.skip_no_tail else ["", "_notail"]
    todo = [(n, sfx) for n in lengths for sfx in suffixes if not (out / f"grid_N{n}{sfx}.csv").exists()]
    if not todo:
        return
    _, model, datamodule, checkpoint = load_decoder(args.run_dir, samples=args.samples)
    evaluator = Evaluator(model, datamodule.generator.vocab.eos)
    for n, sfx in todo:
        started = time.time()
        methods = no_tail_methods(args, n, windows) if sfx else grid_methods(args, n, n_sweep, windows)
        rows = evaluate_methods(evaluator, datamodule, methods, [n], log=log)
        rows = [r for r in rows if not (sfx and r["method"] == "full")]
        for r in rows:
            r.pop("causal", None)
            r.pop("scale", None)
            r["checkpoint"] = str(checkpoint)
        write_csv(out / f"grid_N{n}{sfx}.csv", rows, lineterminator="\r\n")
        log(f"N={n}{sfx}: {len(rows)} rows in {(time.time() - started) / 60:.1f} min")
    write_text(
        out / GRID_META,
        json.dumps(measured_meta(args, sinks=args.sinks, gamma=args.gamma, tail_min=args.tail_min), indent=2) + "\n",
    )


def main(argv: list[str] | None = None) -> None:
    """``scripts/reproduce_delta.py`` and the manifest's stages (conf/paper/delta.yaml)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="logs/delta/decoder")
    parser.add_argument("--out", default="results/delta")
    parser.add_argument("--lengths", default="256,512,1024")
    parser.add_argument("--windows", default="16,32,64,128")
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--gamma", type=int, default=16)
    parser.add_argument("--tail-min", type=int, default=16)
    parser.add_argument("--gammas", default="4,8,16,32,64", help="gamma sweep at --sweep-length and W = 32")
    parser.add_argument("--sweep-length", default=None, help="length of the gamma sweep (default: the largest)")
    parser.add_argument("--samples", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-no-tail", action="store_true", help="skip the tail=false ablation (notail.md)")
    parser.add_argument(
        "--train-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Hydra override for training the decoder when --run-dir has none (repeatable; e.g. "
        "the smoke protocol's tiny decoder)",
    )
    parser.add_argument(
        "--stage",
        default="all",
        choices=("all", "train", "eval", "tables"),
        help="train: only the decoder (if missing); eval: only the measurements (the per-length "
        "grids, run several in parallel with --lengths; query locality; locality) and their "
        "records; tables: only the grid tables and figure, rendered from the records in --out "
        "(its other flags do not matter: the records hold the settings)",
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded with the measurements; headers quote it
    torch.set_num_threads(args.threads)
    if args.stage == "train":
        ensure_trained(Path(args.run_dir), args.train_override)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "eval"):
        ensure_trained(Path(args.run_dir), args.train_override)
        evaluate_grid(args, out)
        query_locality(args, out)
        measure_locality(args, out)
        write_locality_tables(out, out)  # the renderer --tables-only calls (render_locality), on this directory
    if args.stage in ("all", "tables"):
        written = write_grid_tables(out, out)  # = render_tables
        plot(grid_summary(out)[2], out / "accuracy_vs_ratio.png")
        log(f"wrote {', '.join(p.name for p in written)} and accuracy_vs_ratio.png to {out}/")


if __name__ == "__main__":
    main()
