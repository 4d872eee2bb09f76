"""The attention-analysis study (issue 8) at the CPU budget:

    make reproduce-analysis          # = .venv/bin/python scripts/reproduce_analysis.py (this module's main)
    .venv/bin/python scripts/reproduce_analysis.py --parts calibration,depth --budget smoke --out /tmp/x

Parts (``--parts``, default all). Each measures, writes its records (the rows as ``<name>.csv`` or
``<name>_runs.csv``, and ``<name>.meta.json``: argv, date, machine, torch, the budget numbers the prose quotes) and
renders ``<name>.md`` (with the command at the top) from those records through
:mod:`qdsbench.studies.analysis_tables`, as ``qdsbench-reproduce --paper analysis --tables-only`` does; figures (PNG)
are drawn here:

- ``calibration``: the notes' calibration numbers re-measured on the qdsbench backends -> results/analysis/
- ``cooccurrence``: Yang et al.'s Appendix A dynamics (recipe B1), 3 seeds x 30k GD steps, the Fig. 1 analogue
  -> results/cooccurrence/
- ``cooccurrence_ds``: co-occurrence under softmax / sigmoid / sinkhorn / qr / qontot, sum and cls readouts
  (recipe X2) -> results/analysis/
- ``switch``: switch-tagging (recipe X1), 7 attention arms x 3 seeds, trained with qdsbench-train's ``train`` and
  measured with ``qdsbench-analyze``'s ``analyze`` (runs under logs/analysis/) -> results/analysis/
- ``switch_causal``: the causal switch-tagging preset (recipe A1b at CPU scale), softmax vs sigmoid
- ``vit``: the stripe ViT on MNIST, 2 epochs per backend (softmax, sigmoid, sinkhorn, qr, qontot_cpu), analysed
- ``depth``: oversmoothing vs depth in random stacks (recipe A1c)

Runs already finished under ``--log-dir`` are reused (their summary.json exists), so the study resumes. The campaign
manifest conf/paper/analysis.yaml names one stage per part (``qdsbench-reproduce --paper analysis --plan``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from qdsbench import tables
from qdsbench.config import REPO_ROOT, compose
from qdsbench.studies import analysis_tables as at

PARTS = ("calibration", "cooccurrence", "cooccurrence_ds", "switch", "switch_causal", "vit", "depth")
BUDGETS = {
    "cpu": {
        "seeds": (0, 1, 2),
        "cooc_steps": 30000,
        "theory_steps": 6000,
        "ds_steps": 3000,
        "switch_epochs": 4,
        "n_train": 32000,
        "vit_epochs": 2,
        "vit_train": None,
        "analysis_samples": 1000,
        "depth": 32,
        "depth_samples": 16,
    },
    "smoke": {
        "seeds": (0,),
        "cooc_steps": 400,
        "theory_steps": 200,
        "ds_steps": 200,
        "switch_epochs": 1,
        "n_train": 640,
        "vit_epochs": 1,
        "vit_train": 500,
        "analysis_samples": 64,
        "depth": 6,
        "depth_samples": 2,
    },
}
QONTOT_8 = {"name": "qontot", "n_data_qubits": 3, "n_aux_qubits": 1, "grad": "scores", "layers": 16}
QONTOT_16 = {"name": "qontot", "n_data_qubits": 4, "n_aux_qubits": 1, "grad": "scores", "layers": 16}
DS_ARMS = {  # label -> backend config (token count filled in where a backend needs it)
    "softmax": {"name": "softmax"},
    "sigmoid": {"name": "sigmoid"},
    "sinkhorn2": {"name": "sinkhorn", "n_iter": 2},
    "sinkhorn3": {"name": "sinkhorn", "n_iter": 3},
    "sinkhorn10": {"name": "sinkhorn", "n_iter": 10},
    "qr": {"name": "qr"},
    "qontot": None,
}


# --- records -------------------------------------------------------------------------------------------------------


def write_meta(stem: Path, part: str, args, **quoted) -> None:
    """``<stem>.meta.json``, the record of what a part's header quotes (argv, date, machine, torch threads and
    version) and of the budget numbers its prose quotes; with the part's CSV rows, all that
    :mod:`qdsbench.studies.analysis_tables` renders the tables from."""
    meta = {
        "argv": f"--parts {part}",
        "budget": args.budget,
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **quoted,
    }
    tables.write_text(at.meta_path(stem), json.dumps(meta, indent=2) + "\n")


def report(paths: list[Path]) -> None:
    print("wrote " + ", ".join(str(p) for p in paths), flush=True)


# --- calibration ----------------------------------------------------------------------------------------------------


def part_calibration(args, budget) -> None:
    from qdsbench import attention
    from qdsbench.analysis import metrics as m
    from qdsbench.analysis.cooccurrence import logistic_loss
    from qdsbench.attention.sinkhorn import sinkhorn_log
    from qdsbench.data.cooccurrence import generate
    from qdsbench.models.yang_shallow import YangShallow

    rows = []
    # (1) causal uniform, T = 64: alpha_1 = H_T / T ~ 0.074, Sink_1 = 0
    t = 64
    cu = torch.tril(torch.ones(t, t, dtype=torch.float64)) / torch.arange(1, t + 1, dtype=torch.float64)[:, None]
    rows.append({"item": "causal uniform T=64: alpha_1", "notes": 0.074, "ours": float(m.importance(cu)[0])})
    rows.append({"item": "causal uniform T=64: Sink_1 (eps 0.3)", "notes": 0.0, "ours": float(m.sink_rate(cu[None]))})
    # (2) 16x16 logits N(0, 1) + 6 on the first key (softmax alpha_1 ~ the notes' 0.937): alpha_1 under Sinkhorn.
    # The notes' "k iterations" are k (row, column) sweeps plus a final row step = qdsbench n_iter 2k + 1 (this
    # reading reproduces their gradient numbers in (4)).
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 16, 16, generator=g, dtype=torch.float64)
    logits[..., 0] += 6.0
    soft = torch.softmax(logits, -1)
    rows.append(
        {
            "item": "first-key bias 16x16: alpha_1 softmax",
            "notes": 0.937,
            "ours": float(m.importance(soft, causal=False)[..., 0].mean()),
        }
    )
    for n_iter, note in ((2, None), (3, 0.097), (7, 0.063)):
        p = sinkhorn_log(logits, n_iter, 1.0)
        rows.append(
            {
                "item": f"first-key bias 16x16: alpha_1 sinkhorn n_iter={n_iter}",
                "notes": note,
                "ours": float(m.importance(p, causal=False)[..., 0].mean()),
            }
        )
    # (3) causal Sinkhorn drifts to the identity (mean diagonal mass, T = 16, logits N(0, 2^2))
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    for iters, note in ((1, 0.20), (3, 0.33), (10, 0.52), (100, 0.88)):
        p = sinkhorn_log(2 * torch.randn(200, 16, 16, generator=g, dtype=torch.float64), 2 * iters + 1, 1.0, causal)
        rows.append(
            {
                "item": f"causal sinkhorn T=16, {iters} iteration(s) (n_iter={2 * iters + 1}): mean diagonal",
                "notes": note,
                "ours": float(torch.diagonal(p, dim1=-2, dim2=-1).mean()),
            }
        )
    # (4) ||grad W_Q|| of the Appendix A model (sum readout, kaiming_normal init, seed 0) under softmax vs Sinkhorn
    tokens, y, _ = generate([30, 10, 10, 10], 64, 5, seed=0)
    notes = {
        "softmax": "7.7e-2 (W_V 8.4)",
        "sinkhorn n_iter=3": "1.6e-5 ('1 iteration')",
        "sinkhorn n_iter=7": "4.4e-12 ('3 iterations')",
        "sinkhorn n_iter=21": "5e-18 ('10 iterations')",
        "softmax, first-query readout": "~2e-2",
    }
    arms = [
        ("softmax", {"name": "softmax"}, "sum"),
        *[(f"sinkhorn n_iter={k}", {"name": "sinkhorn", "n_iter": k}, "sum") for k in (2, 3, 7, 21)],
        ("qr", {"name": "qr"}, "sum"),
        ("softmax, first-query readout", {"name": "softmax"}, "first"),
    ]
    for label, backend, readout in arms:
        torch.manual_seed(0)
        net = YangShallow(backend, 64, 5, readout=readout, init="kaiming_normal").double()
        logistic_loss(net(tokens), y.double()).mean().backward()
        rows.append(
            {
                "item": f"Appendix A model at init, ||grad W_Q||: {label}",
                "notes": notes.get(label),
                "ours": float(net.W_Q.grad.norm()),
                "ours_W_V": float(net.W_V.grad.norm()),
            }
        )
    # (5) every DS backend: Gu score of every column = 1/T
    g = torch.Generator().manual_seed(1)
    q, k = (torch.randn(8, 2, 8, 16, generator=g, dtype=torch.float64) for _ in range(2))
    k[..., 0, :] += 3 * q.mean(-2)
    for name, cfg in (
        ("sinkhorn n_iter=10", {"name": "sinkhorn", "n_iter": 10}),
        ("qr", {"name": "qr"}),
        ("qontot", {**QONTOT_8, "dtype": "complex128"}),
    ):
        options = dict(cfg)
        a = attention.create(options.pop("name"), **options).attention_matrix(q, k).double()
        rows.append(
            {
                "item": f"{name}: max_k |alpha_k - 1/T| (T = 8)",
                "notes": 0.0,
                "ours": float(m.column_importance_error(a).max()),
            }
        )
    at.write_csv(args.out / "calibration.csv", rows)
    write_meta(args.out / "calibration", "calibration", args)
    report(at.calibration_tables(args.out, args.out))


# --- B1: co-occurrence dynamics -------------------------------------------------------------------------------------


def _cooc_run(
    seed: int,
    steps: int,
    init: str = "torch_default",
    backend: dict | None = None,
    readout: str = "sum",
    seq_len: int = 5,
    attn_lr_mult: float = 1.0,
    log_every: int = 25,
):
    from qdsbench.analysis.cooccurrence import run_gd
    from qdsbench.data.cooccurrence import CooccurrenceDataModule
    from qdsbench.models.yang_shallow import YangShallow

    torch.manual_seed(seed)
    dm = CooccurrenceDataModule(seed=seed, seq_len=seq_len)
    net = YangShallow(backend or {"name": "softmax"}, 64, seq_len, readout=readout, init=init)
    return run_gd(
        net, dm.full("train"), dm.full("test"), steps, lr=0.01, log_every=log_every, attn_lr_mult=attn_lr_mult
    )


def thin(rows: list[dict], every: int = 250, dense: int = 100) -> list[dict]:
    """Curves for the repository: every logged step up to ``dense``, then every ``every``, 6 significant digits."""
    keep = [r for i, r in enumerate(rows) if r["step"] <= dense or r["step"] % every == 0 or i == len(rows) - 1]
    return [{k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in r.items()} for r in keep]


def part_cooccurrence(args, budget) -> None:
    from qdsbench.analysis.cooccurrence import PHASE2_SIGNS, balance_gap, phase_checks, plot_dynamics

    out = args.cooc_out
    out.mkdir(parents=True, exist_ok=True)
    plan = [("torch_default", s, budget["cooc_steps"], 1.0) for s in budget["seeds"]]
    plan += [("kaiming_normal", budget["seeds"][0], budget["cooc_steps"], 1.0)]
    plan += [("theory", s, budget["theory_steps"], 1.0) for s in budget["seeds"]]
    plan += [("torch_default", budget["seeds"][0], budget["theory_steps"], mult) for mult in (10.0, 100.0)]
    runs = []
    for init, seed, steps, mult in plan:
        rows, summary = _cooc_run(seed, steps, init, attn_lr_mult=mult)
        t1 = summary["T1"]
        start = next(r for r in rows if r["step"] >= (t1 or 0))
        end = rows[-1]
        checks = phase_checks(rows, t1)
        first_rise = [r for r in rows if r["step"] <= (t1 or 0)]
        rise = max((max(r["loss_I2_mu1"], r["loss_I3_mu2"]) for r in first_rise), default=float("nan"))
        run = {
            "init": init,
            "seed": seed,
            "steps": steps,
            "attn_lr_mult": mult,
            "T1": t1,
            "loss_at_T1": start["loss"],
            "step_loss_below_1e-3": summary["step_loss_below_1e-3"],
            "final_train_loss": end["loss"],
            "final_test_acc": end["test_acc"],
            "final_test_loss": end["test_loss"],
            "G_mu1": end["G_mu1"],
            "G_mu2": end["G_mu2"],
            "G_mu3": end["G_mu3"],
            **{f"d_{k}": end[k] - start[k] for k in PHASE2_SIGNS},
            "attn_q1_k2_start": rows[0].get("attn_q1_k2"),
            "attn_q1_k2_end": end.get("attn_q1_k2"),
            "attn_q1_k3_end": end.get("attn_q1_k3"),
            "balance_gap_phase2": balance_gap(rows, t1) if t1 is not None else float("nan"),
            "I2_I3_loss_rise_in_phase1": rise - max(rows[0]["loss_I2_mu1"], rows[0]["loss_I3_mu2"]),
            "checks_passed": sum(checks.values()),
            "checks_total": len(checks),
            "failed_checks": "; ".join(k for k, ok in checks.items() if not ok),
            "seconds": summary["seconds"],
        }
        runs.append(run)
        tag = f"{init}_seed{seed}" + (f"_attnx{int(mult)}" if mult != 1 else "")
        at.write_csv(out / f"curves_{tag}.csv", thin(rows))
        if (init, seed, mult) in (
            ("torch_default", budget["seeds"][0], 1.0),
            ("torch_default", budget["seeds"][0], 100.0),
        ):
            plot_dynamics(
                rows,
                t1,
                out / f"fig1_{tag}.png",
                f"Yang et al. Appendix A, {init} init, seed {seed}, lr 0.01, attention lr x{int(mult)}",
            )
        print(
            f"cooccurrence {tag}: T1={t1} final loss {end['loss']:.2e} checks {run['checks_passed']}/"
            f"{run['checks_total']} ({summary['seconds']:.0f} s)",
            flush=True,
        )
    at.write_csv(out / "dynamics.csv", runs)
    write_meta(out / "dynamics", "cooccurrence", args, curves=at.COOC_CURVES)
    report(at.dynamics_tables(out, out))


# --- X2: co-occurrence under doubly stochastic attention ------------------------------------------------------------


def part_cooccurrence_ds(args, budget) -> None:
    runs = []
    for readout, seq_len in (("sum", 8), ("cls", 7)):
        for arm, backend in DS_ARMS.items():
            backend = dict(QONTOT_8) if backend is None else backend
            for seed in budget["seeds"]:
                rows, summary = _cooc_run(
                    seed,
                    budget["ds_steps"],
                    backend=backend,
                    readout=readout,
                    seq_len=seq_len,
                    attn_lr_mult=100.0,
                    log_every=50,
                )
                end, start = rows[-1], rows[0]
                rel = [r["grad_W_Q"] / r["grad_W_V"] for r in rows if r["grad_W_V"] > 0]
                runs.append(
                    {
                        "readout": readout,
                        "arm": arm,
                        "seed": seed,
                        "T1": summary["T1"],
                        "final_train_loss": end["loss"],
                        "final_test_acc": end["test_acc"],
                        "grad_WQ_over_WV_max": max(rel),
                        "attn_q1_k2": end.get("attn_q1_k2"),
                        "attn_q1_k3": end.get("attn_q1_k3"),
                        "attn_cls_k1": end.get("attn_cls_k1"),
                        "attn_cls_k3": end.get("attn_cls_k3"),
                        "alpha_mu3": end.get("alpha_mu3"),
                        "attn_diagonal": end.get("attn_diagonal"),
                        "col_sum_err": end.get("attn_col_sum_err"),
                        "d_score_q1_k2": end["score_q1_k2"] - start["score_q1_k2"],
                        "d_score_q1_k3": end["score_q1_k3"] - start["score_q1_k3"],
                        "seconds": summary["seconds"],
                    }
                )
                print(
                    f"cooccurrence_ds {readout} {arm} seed {seed}: loss {end['loss']:.2e} test acc "
                    f"{end['test_acc']:.3f} ({summary['seconds']:.0f} s)",
                    flush=True,
                )
    at.write_csv(args.out / "cooccurrence_ds_runs.csv", runs)
    write_meta(args.out / "cooccurrence_ds", "cooccurrence_ds", args, steps=budget["ds_steps"])
    report(at.cooccurrence_ds_tables(args.out, args.out))


# --- training + analysis helpers (X1, A1b, ViT) ---------------------------------------------------------------------


def train_and_analyze(run_dir: Path, overrides: list[str], max_samples: int) -> tuple[dict, Path]:
    """Train (unless run_dir already holds a finished run), then analyse (unless an analysis exists)."""
    from qdsbench.analysis.analyze import analyze
    from qdsbench.train import train

    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        cfg = compose(
            "train",
            [
                *overrides,
                f"paths.output_dir={run_dir}",
                "logger=csv",
                "trainer.enable_progress_bar=false",
                "num_threads=1",
            ],
        )
        train(cfg)
    summary = json.loads(summary_path.read_text())
    done = sorted(run_dir.glob("analysis/*/metrics.csv"))
    out = done[-1].parent if done else analyze(run_dir, max_samples=max_samples, wandb=False)
    return summary, out


def read_metrics(path: Path) -> list[dict]:
    """A CSV of ``qdsbench-analyze`` (none: no rows), every number as a float as it was measured, text as text."""

    def number(text: str | None):
        try:
            return float(text)
        except (TypeError, ValueError):
            return text

    return [{k: number(v) for k, v in row.items()} for row in tables.read_csv(path)] if path.is_file() else []


def arm_overrides(arm: str, tokens: int) -> list[str]:
    if arm == "qontot":
        cfg = QONTOT_16 if tokens == 16 else QONTOT_8
        return ["attention=qontot", *[f"attention.{k}={v}" for k, v in cfg.items() if k != "name"]]
    backend = DS_ARMS[arm]
    return [f"attention={backend['name']}", *[f"attention.{k}={v}" for k, v in backend.items() if k != "name"]]


# --- X1: switch tagging ---------------------------------------------------------------------------------------------


def switch_rows(run_dir: Path, out: Path, summary: dict, arm: str, seed: int) -> dict:
    layers = read_metrics(out / "metrics.csv")
    groups = read_metrics(out / "metrics_groups.csv")
    row = {
        "arm": arm,
        "seed": seed,
        "test_acc": summary["test"].get("test/acc"),
        "test_acc_context": summary["test"].get("test/acc_context"),
        "test_acc_plain": summary["test"].get("test/acc_plain"),
        "fit_seconds": summary.get("fit_seconds"),
    }
    for key in at.SWITCH_LAYER:
        row[key] = statistics.fmean(float(r[key]) for r in layers if r.get(key) not in (None, ""))
    for group in ("context", "plain"):
        for key in at.SWITCH_QUERY:
            values = [float(r[key]) for r in groups if r["group"] == group]
            row[f"{key}_{group}"] = statistics.fmean(values) if values else float("nan")
    return row


def part_switch(args, budget, causal: bool = False) -> None:
    name = at.switch_name(causal)
    arms = ("softmax", "sigmoid") if causal else tuple(DS_ARMS)
    runs = []
    for arm in arms:
        for seed in budget["seeds"]:
            run_dir = args.log_dir / name / f"{arm}_seed{seed}"
            overrides = [
                f"experiment=analysis/{name}",
                f"seed={seed}",
                *arm_overrides(arm, 16),
                f"trainer.max_epochs={budget['switch_epochs']}",
                f"data.n_train={budget['n_train']}",
            ]
            summary, out = train_and_analyze(run_dir, overrides, min(500, budget["analysis_samples"]))
            runs.append(switch_rows(run_dir, out, summary, arm, seed))
            print(
                f"{name} {arm} seed {seed}: test acc {runs[-1]['test_acc']:.3f} ({summary.get('fit_seconds')} s)",
                flush=True,
            )
    at.write_csv(args.out / f"{name}_runs.csv", runs)
    write_meta(
        args.out / name,
        "switch_causal" if causal else "switch",
        args,
        epochs=budget["switch_epochs"],
        n_train=budget["n_train"],
        samples=min(500, budget["analysis_samples"]),
    )
    written = at.switch_tables(args.out, args.out, causal)
    report(written)
    plot_switch(at.read_records(written[1]), args.out / f"{name}.png", name)


def plot_switch(agg: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [r["arm"] for r in agg]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, key in zip(axes, ("sink_mass", "diagonal_mass", "query_gain")):
        for offset, group in ((-0.2, "context"), (0.2, "plain")):
            ax.bar(
                [i + offset for i in range(len(arms))],
                [r[f"{key}_{group}"] for r in agg],
                width=0.4,
                yerr=[r[f"{key}_{group}_std"] for r in agg],
                label=f"{group} queries",
            )
        ax.set_xticks(range(len(arms)), arms, rotation=30, fontsize=8)
        ax.set_title(key, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: per-query attention by query type (mean over seeds, layers, heads)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- ViT on MNIST ---------------------------------------------------------------------------------------------------


VIT_ARMS = {
    "softmax": ["attention=softmax"],
    "sigmoid": ["attention=sigmoid"],
    "sinkhorn": ["attention=sinkhorn"],
    "qr": ["attention=qr"],
    "qontot": ["attention=qontot_cpu"],
}


def part_vit(args, budget) -> None:
    runs, images = [], []
    for arm, overrides in VIT_ARMS.items():
        run_dir = args.log_dir / "vit" / arm
        extra = [f"data.max_train_samples={budget['vit_train']}"] if budget["vit_train"] else []
        summary, out = train_and_analyze(
            run_dir,
            [
                "experiment=mnist_vit_stripes",
                f"paths.data_dir={args.data_dir}",
                "seed=0",
                *overrides,
                f"trainer.max_epochs={budget['vit_epochs']}",
                *extra,
            ],
            budget["analysis_samples"],
        )
        for layer in read_metrics(out / "metrics.csv"):
            runs.append(
                {
                    "arm": arm,
                    "layer": int(layer["layer"]),
                    "test_acc": summary["test"].get("test/acc"),
                    "fit_seconds": summary.get("fit_seconds"),
                    "proxy": layer.get("proxy"),
                    **{k: layer.get(k) for k in at.VIT_METRICS},
                }
            )
        images.append((arm, out))
        print(f"vit {arm}: test acc {summary['test'].get('test/acc'):.4f} ({summary.get('fit_seconds')} s)", flush=True)
    at.write_csv(args.out / "vit_mnist.csv", runs)
    write_meta(args.out / "vit_mnist", "vit", args, epochs=budget["vit_epochs"], samples=budget["analysis_samples"])
    report(at.vit_tables(args.out, args.out))
    plot_vit(images, args.out / "vit_mnist_attention.png")


def plot_vit(images: list[tuple[str, Path]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(images), figsize=(2.6 * len(images), 5.2), squeeze=False)
    for col, (arm, out) in enumerate(images):
        for row in range(2):
            png = out / f"attention_layer{row}.png"
            ax = axes[row][col]
            ax.axis("off")
            if png.is_file():
                ax.imshow(plt.imread(png))
            ax.set_title(f"{arm} layer {row}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- A1c: oversmoothing vs depth ------------------------------------------------------------------------------------


def part_depth(args, budget) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qdsbench.analysis.oversmoothing import depth_profile

    configs = [
        ("softmax", {"name": "softmax"}, ("full", "causal", "window")),
        ("sinkhorn10", {"name": "sinkhorn", "n_iter": 10}, ("full", "window")),
        ("qr", {"name": "qr"}, ("full",)),
    ]
    rows = []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for ax, variant in zip(axes, ("pure", "residual", "residual_ln")):
        for label, backend, masks in configs:
            for mask in masks:
                prof = depth_profile(backend, variant, mask, depth=budget["depth"], samples=budget["depth_samples"])
                for r in prof:
                    rows.append({"variant": variant, "normaliser": label, "mask": mask, **r})
                ax.semilogy(
                    [r["layer"] for r in prof],
                    [max(r["distance_to_mean"], 1e-17) for r in prof],
                    label=f"{label} {mask}",
                    ls="-" if mask == "full" else "--" if mask == "causal" else ":",
                )
        ax.set_title(f"{variant}", fontsize=9)
        ax.set_xlabel("layer")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("mu(H) / ||H||_F")
    fig.suptitle("Oversmoothing vs depth in random attention stacks (T = 16, d = 64)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out / "oversmoothing_depth.png", dpi=100)
    plt.close(fig)
    at.write_csv(args.out / "oversmoothing_depth.csv", rows)
    write_meta(args.out / "oversmoothing_depth", "depth", args, samples=budget["depth_samples"])
    report(at.depth_tables(args.out, args.out))


def main(argv: list[str] | None = None) -> None:
    """``scripts/reproduce_analysis.py`` and the manifest's stages (conf/paper/analysis.yaml), one per part."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--budget", default="cpu", choices=sorted(BUDGETS))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "analysis")
    parser.add_argument("--cooc-out", type=Path, default=None, help="default: <out>/../cooccurrence")
    parser.add_argument("--log-dir", type=Path, default=REPO_ROOT / "logs" / "analysis")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        raise SystemExit(f"reproduce_analysis: unknown part(s) {bad}; valid choices: {', '.join(PARTS)}")
    args.cooc_out = args.cooc_out or args.out.parent / "cooccurrence"
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    budget = BUDGETS[args.budget]
    runners = {
        "calibration": part_calibration,
        "cooccurrence": part_cooccurrence,
        "cooccurrence_ds": part_cooccurrence_ds,
        "switch": part_switch,
        "switch_causal": lambda a, b: part_switch(a, b, causal=True),
        "vit": part_vit,
        "depth": part_depth,
    }
    for part in parts:
        started = time.time()
        runners[part](args, budget)
        print(f"== {part}: {time.time() - started:.0f} s", flush=True)
