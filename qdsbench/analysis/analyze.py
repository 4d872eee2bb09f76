"""``qdsbench-analyze run_dir=<run>``: sink / diagonal / oversmoothing metrics of a finished run on held-out data.

Loads the run (its config snapshot and best checkpoint, ``qdsbench.evaluate.load_task``), runs up to
``max_samples`` held-out samples through it with the capture hooks of ``qdsbench.analysis.capture`` and writes, into
a new ``<run_dir>/analysis/<time>/`` (never overwritten):

- ``metrics.csv``: one row per attention layer (head- and sample-averaged), ``metrics_heads.csv``: one per
  (layer, head), ``metrics_groups.csv``: per query type (per-token third batch element, e.g. the switch-tagging
  task) or sample type (per-sample third element, e.g. co-occurrence I1..I4) when the data provides one;
- ``attention_layer<l>.png`` heat maps (mean over samples and one probe sample, per head), ``metrics_vs_layer.png``;
- the same tables and images to W&B (offline unless ``WANDB_MODE`` says otherwise), under ``<out>/wandb``.

Token 0 is the candidate sink (CLS in the ViT, BOS in the tagging task). Rates threshold per (sample, head) and then
average (Gu et al.). Backends whose rows are not stochastic (``sigmoid``) get the sink/diagonal measures on Gu's
proxy |A| / row sum (``proxy`` = 1); gains and smoothing always use the real matrix. Marginal errors, distances to
uniform/identity and effective rank come from ``qdsbench.attention.diagnostics``.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any

import torch

import qdsbench  # noqa: F401
from qdsbench.analysis import metrics as m
from qdsbench.analysis.capture import Capture
from qdsbench.runrecord import now_iso

SPLITS = ("test", "val")
LAYER_PLOT = (
    "sink_rate",
    "alpha_first",
    "diagonal_rate",
    "max_attention",
    "sink_concentration",
    "output_gain",
    "signal_kept",
)
SMOOTHING_PLOT = ("distance_to_mean", "rank_collapse_residual", "mean_token_cosine", "residual_smoothing")


def new_output_dir(run_dir: Path) -> Path:
    base = Path(run_dir) / "analysis"
    base.mkdir(parents=True, exist_ok=True)
    stamp = now_iso().replace(":", "-")
    for suffix in ["", *[f"_{i}" for i in range(1, 100)]]:
        out = base / f"{stamp}{suffix}"
        try:
            out.mkdir(exist_ok=False)
            return out
        except FileExistsError:
            continue
    raise ValueError(f"could not create a new analysis directory under {base}")


def _loader(datamodule, split: str):
    if split not in SPLITS:
        raise ValueError(f"split={split} is not valid; valid choices: {', '.join(SPLITS)}")
    datamodule.setup("test" if split == "test" else "validate")
    return datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()


@torch.no_grad()
def collect(task, loader, max_samples: int) -> tuple[Capture, torch.Tensor | None]:
    """Run batches through ``task`` under the hooks until ``max_samples``; returns the capture and the groups."""
    task.eval()
    groups, seen = [], 0
    with Capture(task) as cap:
        for batch in loader:
            batch = list(batch) if isinstance(batch, (list, tuple)) else [batch]
            take = min(len(batch[0]), max_samples - seen)
            task(batch[0][:take])
            if len(batch) >= 3 and torch.is_tensor(batch[2]):
                groups.append(batch[2][:take])
            seen += take
            if seen >= max_samples:
                break
    if not cap.backends:
        raise ValueError(f"{type(task.net).__name__} has no attention backend to analyse")
    return cap, (torch.cat(groups) if groups else None)


def _qk_norms(model, module_path: str) -> torch.Tensor | None:
    """||W_Q,h W_K,h^T||_F per head for a timm-style attention (qkv Linear) or a model with W_Q / W_K."""
    parent = model.get_submodule(module_path.rsplit(".", 1)[0]) if "." in module_path else model
    if hasattr(parent, "qkv") and hasattr(parent, "num_heads"):
        w = parent.qkv.weight.detach().double()
        inner = w.shape[0] // 3
        heads = parent.num_heads
        wq = w[:inner].reshape(heads, inner // heads, -1)
        wk = w[inner : 2 * inner].reshape(heads, inner // heads, -1)
        return torch.linalg.matrix_norm(wq.transpose(-1, -2) @ wk)
    if hasattr(parent, "W_Q") and hasattr(parent, "W_K"):
        return torch.linalg.matrix_norm(parent.W_Q.detach().double().T @ parent.W_K.detach().double())[None]
    return None


def head_metrics(a: torch.Tensor, q, k, v, epsilon: float, causal: bool) -> tuple[dict, dict, bool]:
    """Per-(sample, head) metrics (B, H) and per-(sample, head, query) metrics (B, H, T) of one layer."""
    a, v = a.double(), v.double()
    proxy = not m.is_row_stochastic(a)
    s = m.proxy_attention(a) if proxy else a
    alpha = m.importance(s, causal)[..., 0]
    delta = m.diagonal_score(s)
    labels = m.head_labels(s, epsilon, causal)
    unit_q = q.double() / q.double().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    unit_k0 = k.double()[..., :1, :] / k.double()[..., :1, :].norm(dim=-1, keepdim=True).clamp_min(1e-12)
    per_head = {
        "sink_rate": (alpha > epsilon).double(),
        "alpha_first": alpha,
        "diagonal_rate": (delta > epsilon).double(),
        "diagonal_score": delta,
        "frac_sink_heads": (labels == 0).double(),
        "frac_diagonal_heads": (labels == 1).double(),
        "frac_mixing_heads": (labels == 2).double(),
        "first_token_attention": m.first_token_attention(s),
        "max_attention": m.max_attention(s),
        "sink_concentration": m.sink_concentration(s),
        "sink_argmax_fraction": m.sink_argmax_fraction(s),
        "row_entropy": m.row_entropy(s),
        "dobrushin": m.dobrushin(a),
        "sigma2_contraction": m.sigma2_contraction(a),
        "output_gain": m.output_gain(a, v),
        "signal_kept": m.signal_kept(a, v),
        "value_drain_ratio": m.token_norm_ratio(v, 0),
        "sink_key_cosine": (unit_q * unit_k0).sum(-1).mean(-1),
        "column_importance_error": m.column_importance_error(a),
    }
    per_query = {
        "sink_mass": m.query_sink_mass(s),
        "diagonal_mass": m.query_diagonal(s),
        "max_attention": m.query_max(s),
        "row_entropy": m.query_entropy(s),
        "query_gain": m.query_gain(a, v),
    }
    return per_head, per_query, proxy


def hidden_metrics(states: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    h = states.get("block_out")
    if h is not None:
        h = h.double()
        out.update(
            distance_to_mean=m.distance_to_mean(h),
            rank_collapse_residual=m.rank_collapse_residual(h),
            mean_token_cosine=m.mean_token_cosine(h),
            massive_activation_ratio=m.token_norm_ratio(h, 0),
        )
    before, after = states.get("block_in"), states.get("after_attn")
    if before is not None and after is not None:
        out["residual_smoothing"] = m.residual_smoothing(before.double(), after.double())
    if before is not None and h is not None:
        out["block_smoothing"] = m.residual_smoothing(before.double(), h)
    return out


def _mean(x: torch.Tensor, where: torch.Tensor | None = None) -> float:
    if where is not None:
        x = x[where]
    return float(x.mean()) if x.numel() else float("nan")


def compute(task, cap: Capture, groups: torch.Tensor | None, epsilon: float, group_names: dict | None = None):
    """The three tables (layer rows, head rows, group rows) from a capture."""
    try:
        from qdsbench.attention.diagnostics import attention_diagnostics
    except ImportError:  # pragma: no cover - the diagnostics module ships with the DS backends
        attention_diagnostics = None
    layer_rows, head_rows, group_rows = [], [], []
    names = group_names or {}
    for record in cap.layers:
        a = record.cat("attention")
        q, k, v = record.cat("q"), record.cat("k"), record.cat("v")
        states = cap.hidden_states(record.index) if record.index < len(cap.blocks) else {}
        hidden = hidden_metrics(states)
        base = {
            "layer": record.index,
            "module": record.module,
            "backend": record.backend,
            "causal": int(record.causal),
            "samples": int(v.shape[0]),
            "tokens": int(v.shape[-2]),
            "heads": int(v.shape[1]),
            "epsilon": epsilon,
        }
        row: dict[str, Any] = dict(base)
        qk = _qk_norms(task, record.module)
        if a is None:
            row["proxy"] = None
        else:
            per_head, per_query, proxy = head_metrics(a, q, k, v, epsilon, record.causal)
            row["proxy"] = int(proxy)
            row.update({key: _mean(val) for key, val in per_head.items()})
            if attention_diagnostics is not None:
                row.update({f"ds_{key}": val for key, val in attention_diagnostics(a).items()})
            for h in range(a.shape[1]):
                head_rows.append(
                    {
                        **base,
                        "head": h,
                        "proxy": int(proxy),
                        **{key: _mean(val[:, h]) for key, val in per_head.items()},
                        "qk_norm": float(qk[h]) if qk is not None and h < len(qk) else None,
                    }
                )
            if groups is not None:
                group_rows.extend(_group_rows(base, per_head, per_query, groups, names))
        row["qk_norm"] = float(qk.mean()) if qk is not None else None
        row.update({key: _mean(val) for key, val in hidden.items()})
        layer_rows.append(row)
    return layer_rows, head_rows, group_rows


def _group_rows(base, per_head, per_query, groups: torch.Tensor, names: dict) -> list[dict]:
    rows = []
    tokens = per_query["sink_mass"].shape[-1]
    if groups.dim() == 1:  # one type per sample: the per-(sample, head) metrics split by sample type
        for g in sorted(int(x) for x in groups.unique()):
            where = groups == g
            rows.append(
                {
                    **base,
                    "kind": "sample",
                    "group": names.get(g, str(g)),
                    "count": int(where.sum()),
                    **{key: _mean(val[where]) for key, val in per_head.items()},
                }
            )
    elif groups.dim() == 2 and groups.shape[1] == tokens:  # one type per token: per-query metrics by query type
        for g in sorted(int(x) for x in groups.unique()):
            where = (groups == g)[:, None, :].expand_as(per_query["sink_mass"])
            rows.append(
                {
                    **base,
                    "kind": "query",
                    "group": names.get(g, str(g)),
                    "count": int((groups == g).sum()),
                    **{key: _mean(val, where) for key, val in per_query.items()},
                }
            )
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields: list[str] = []
    for row in rows:
        fields.extend(key for key in row if key not in fields)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def figures(cap: Capture, rows: list[dict], out: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for record in cap.layers:
        a = record.cat("attention")
        if a is None:
            continue
        heads = a.shape[1]
        fig, axes = plt.subplots(2, heads, figsize=(2.8 * heads + 0.6, 5.4), squeeze=False)
        for h in range(heads):
            for r, (img, label) in enumerate(((a[:, h].mean(0), "mean"), (a[0, h], "sample 0"))):
                im = axes[r][h].imshow(img.float().cpu(), cmap="viridis", vmin=0)
                axes[r][h].set_title(f"L{record.index} H{h} {label}", fontsize=8)
                axes[r][h].set_xlabel("key", fontsize=7)
                axes[r][h].set_ylabel("query", fontsize=7)
                fig.colorbar(im, ax=axes[r][h], fraction=0.046)
        fig.suptitle(f"{title}: {record.backend}", fontsize=9)
        fig.tight_layout()
        path = out / f"attention_layer{record.index}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    layers = [r["layer"] for r in rows]
    for ax, keys, name in ((axes[0], LAYER_PLOT, "attention"), (axes[1], SMOOTHING_PLOT, "hidden states")):
        for key in keys:
            values = [r.get(key) for r in rows]
            if any(v is not None for v in values):
                ax.plot(layers, [float("nan") if v is None else v for v in values], marker="o", label=key)
        ax.set_xlabel("layer")
        ax.set_title(name, fontsize=9)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(f"{title} (epsilon = {rows[0]['epsilon'] if rows else ''})", fontsize=9)
    fig.tight_layout()
    path = out / "metrics_vs_layer.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


def log_wandb(cfg, out: Path, tables: dict[str, list[dict]], images: list[Path], run_dir: Path) -> str | None:
    """One W&B run per analysis (job_type=analysis), offline unless WANDB_MODE says otherwise."""
    mode = os.environ.get("WANDB_MODE", "offline")
    if mode == "disabled":
        return None
    import wandb

    name = cfg.get("experiment_name", "run") if cfg is not None else "run"
    run = wandb.init(
        project="qdsbench",
        job_type="analysis",
        dir=str(out),
        mode=mode,
        name=f"analyze-{name}",
        group=str(name),
        config={"run_dir": str(run_dir)},
        reinit="finish_previous",
    )
    try:
        for key, rows in tables.items():
            if rows:
                columns = list(dict.fromkeys(k for r in rows for k in r))
                data = [[r.get(c) for c in columns] for r in rows]
                run.log({f"analysis/{key}": wandb.Table(columns=columns, data=data)})
        for row in tables.get("layers", []):
            run.log(
                {
                    f"analysis/layer{row['layer']}/{k}": v
                    for k, v in row.items()
                    if isinstance(v, float) and k != "epsilon"
                }
            )
        run.log({f"analysis/{p.stem}": wandb.Image(str(p)) for p in images})
        return run.id
    finally:
        run.finish()


def analyze(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    split: str = "test",
    max_samples: int = 256,
    epsilon: float = 0.3,
    ckpt_path: str | None = None,
    wandb: bool = True,
    seed: int | None = 0,
    overrides: dict | None = None,
) -> Path:
    from qdsbench.evaluate import load_task

    if split not in SPLITS:
        raise ValueError(f"split={split} is not valid; valid choices: {', '.join(SPLITS)}")
    if max_samples < 1:
        raise ValueError(f"max_samples={max_samples} must be >= 1")
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon={epsilon} must be in (0, 1)")
    run_dir = Path(run_dir)
    cfg, task, datamodule, checkpoint = load_task(run_dir, ckpt_path, overrides)
    if seed is not None:
        torch.manual_seed(seed)
    cap, groups = collect(task, _loader(datamodule, split), max_samples)
    layer_rows, head_rows, group_rows = compute(task, cap, groups, epsilon, getattr(datamodule, "group_names", None))
    out = Path(out_dir) if out_dir is not None else new_output_dir(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "metrics.csv").exists():
        raise ValueError(f"{out} already holds an analysis; analyses are never overwritten")
    write_csv(out / "metrics.csv", layer_rows)
    write_csv(out / "metrics_heads.csv", head_rows)
    write_csv(out / "metrics_groups.csv", group_rows)
    title = f"{cfg.get('experiment_name', run_dir.name)} ({Path(checkpoint).name}, {split})"
    images = figures(cap, layer_rows, out, title)
    (out / "README.md").write_text(
        f"# Analysis of {run_dir}\n\ncheckpoint: `{checkpoint}`  \nsplit: {split}, samples: "
        f"{layer_rows[0]['samples'] if layer_rows else 0}, epsilon: {epsilon}  \ncommand: `qdsbench-analyze "
        f"run_dir={run_dir} split={split} max_samples={max_samples} epsilon={epsilon}`\n"
    )
    if wandb:
        try:
            log_wandb(cfg, out, {"layers": layer_rows, "heads": head_rows, "groups": group_rows}, images, run_dir)
        except Exception as err:  # W&B is a mirror: the files on disk are the record
            print(
                f"qdsbench-analyze: W&B logging failed ({type(err).__name__}: {err}); files are in {out}",
                file=sys.stderr,
            )
    return out
