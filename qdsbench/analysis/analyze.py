"""``qdsbench-analyze <run_dir>``: per-layer sink / diagonal / oversmoothing metrics of a finished run on held-out
data, written as csv plus PNG heat maps and metric-vs-layer plots under ``<run_dir>/analysis/<time>/``.

Attention matrices come from the backends' capture hook (every backend exposing ``attention_matrix``), hidden states
from forward hooks on the transformer blocks; the ViT's token 0 (CLS) is the candidate sink.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

import qdsbench  # noqa: F401
from qdsbench.analysis import metrics as m
from qdsbench.evaluate import load_task
from qdsbench.models.backend_attention import attention_layers
from qdsbench.runrecord import now_iso


@torch.no_grad()
def analyze(run_dir: str | Path, max_samples: int = 256, epsilon: float = 0.3) -> Path:
    cfg, task, datamodule, _ = load_task(run_dir)
    task.eval()
    datamodule.setup("test")
    x, _ = next(iter(datamodule.test_dataloader()))
    x = x[:max_samples]
    layers = attention_layers(task.net)
    for layer in layers:
        layer.backend.capture = True
    hidden: list[torch.Tensor] = []
    blocks = getattr(task.net, "blocks", [])
    handles = [b.register_forward_hook(lambda mod, inp, out: hidden.append(out.detach())) for b in blocks]
    task(x)
    for h in handles:
        h.remove()
    causal = bool(layers and layers[0].backend.causal)
    rows = []
    for index, layer in enumerate(layers):
        a = layer.backend.last_attention
        if a is None:
            continue
        h = hidden[index] if index < len(hidden) else None
        rows.append({
            "layer": index,
            "sink_rate": float(m.sink_rate(a, epsilon, causal=causal)),
            "alpha_first": float(m.importance(a, causal)[..., 0].mean()),
            "diagonal_rate": float(m.diagonal_rate(a, epsilon)),
            "first_token_attention": float(m.first_token_attention(a).mean()),
            "max_attention": float(m.max_attention(a).mean()),
            "row_entropy": float(m.row_entropy(a).mean()),
            "dobrushin": float(m.dobrushin(a).mean()),
            "distance_to_mean": float(m.distance_to_mean(h).mean()) if h is not None else None,
            "rank_collapse_residual": float(m.rank_collapse_residual(h).mean()) if h is not None else None,
            "mean_token_cosine": float(m.mean_token_cosine(h).mean()) if h is not None else None,
        })
    out = Path(run_dir) / "analysis" / now_iso().replace(":", "-")
    out.mkdir(parents=True, exist_ok=False)
    with open(out / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _figures(layers, rows, out, epsilon)
    return out


def _figures(layers, rows, out: Path, epsilon: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for index, layer in enumerate(layers):
        a = layer.backend.last_attention
        if a is None:
            continue
        heads = a.shape[1]
        fig, axes = plt.subplots(1, heads, figsize=(3 * heads, 3), squeeze=False)
        for h in range(heads):
            axes[0][h].imshow(a[:, h].mean(0).cpu(), cmap="viridis")
            axes[0][h].set_title(f"layer {index} head {h}")
        fig.tight_layout()
        fig.savefig(out / f"attention_layer{index}.png", dpi=90)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in ("sink_rate", "diagonal_rate", "max_attention", "distance_to_mean", "mean_token_cosine"):
        ax.plot([r["layer"] for r in rows], [r[key] for r in rows], marker="o", label=key)
    ax.set_xlabel("layer")
    ax.set_title(f"analysis (epsilon = {epsilon})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "metrics_vs_layer.png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="qdsbench-analyze", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--max-samples", type=int, default=256)
    parser.add_argument("--epsilon", type=float, default=0.3)
    args = parser.parse_args(argv)
    try:
        out = analyze(args.run_dir, args.max_samples, args.epsilon)
    except ValueError as err:
        raise SystemExit(f"qdsbench-analyze: error: {err}") from None
    print(f"analysis written to {out}")


if __name__ == "__main__":
    main()
