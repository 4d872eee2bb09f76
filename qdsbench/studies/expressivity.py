"""QDSFormer's expressivity analysis (§3 / App. C) on our operators:

    .venv/bin/python scripts/qds_expressivity.py     # results/qds/expressivity.md|csv, results/qds/figures/*.png

Inputs are random Gaussian score matrices (the paper used Q K^T of a trained Sinkformer, not published), so the
numbers compare operators with each other and with the paper's qualitative findings, not cell by cell. The measures
themselves are :mod:`qdsbench.paper.expressivity`. The measured rows (expressivity.csv) and the settings
(expressivity.meta.json) are the records; expressivity.md is rendered from them only (:func:`render`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from qdsbench import attention
from qdsbench.config import REPO_ROOT
from qdsbench.paper import expressivity as ex
from qdsbench.tables import markdown_table, read_csv, write_csv, write_text

OUT = REPO_ROOT / "results" / "qds"
FIELDS = ["analysis", "operator", "value", "paper"]
PAPER_SOUNDNESS = {
    "softmax": "1.12 ± 0.3",
    "sinkhorn(3)": "0.84 ± 0.3",
    "sinkhorn(21)": "0.23 ± 0.2",
    "qr": "< 2e-4",
    "qontot": "< 5e-6",
}
PAPER_UNIQUE = {"sinkhorn(21)": 621, "qontot": 625, "qr": 381}


def operators(n: int, layers: int = 16, n_aux: int = 4) -> dict:
    q_d = n.bit_length() - 1
    return {
        "softmax": attention.create("softmax"),
        "sinkhorn(3)": attention.create("sinkhorn", n_iter=3),
        "sinkhorn(21)": attention.create("sinkhorn", n_iter=21),
        "qr": attention.create("qr"),
        "qontot": attention.create("qontot", n_data_qubits=q_d, n_aux_qubits=n_aux, layers=layers, dtype="complex128"),
    }


def expressivity_markdown(rows: list[dict], meta: dict) -> str:
    """expressivity.md: the command, the settings, and one row per (analysis, operator)."""
    lines = [
        "# QDSFormer expressivity analysis",
        "",
        f"Command: `.venv/bin/python scripts/qds_expressivity.py --matrices {meta['matrices']} --range-samples "
        f"{meta['range_samples']}` ({meta['seconds']:.0f} s). Inputs: N(0,1) score matrices (the paper's "
        "trained-Sinkformer inputs are not published); QontOT: 16 layers, q_a = 4 (8x8) and 8 layers, q_a = 3 "
        "(4x4 diversity); hypersphere family: our construction (see qdsbench/paper/expressivity.py).",
        "",
        "Figures: `figures/info_vs_entropy.png` (Fig. 2B analogue), `figures/cell_range_layers_qubits.png` "
        "(Fig. A4 analogue).",
        "",
        markdown_table(rows, FIELDS, {"value": "ours"}),
    ]
    return "\n".join(lines) + "\n"


def render(records: Path, out: Path) -> list[Path]:
    """The manifest's renderer: results roots in, ``<out>/qds/expressivity.md`` out."""
    return render_dir(Path(records) / "qds", Path(out) / "qds")


def render_dir(src: Path, dst: Path) -> list[Path]:
    """expressivity.md from the records expressivity.csv and expressivity.meta.json in ``src`` (nothing else)."""
    meta = json.loads((src / "expressivity.meta.json").read_text())
    return [write_text(dst / "expressivity.md", expressivity_markdown(read_csv(src / "expressivity.csv"), meta))]


def main(argv: list[str] | None = None) -> None:
    """``scripts/qds_expressivity.py`` and the qds manifest's ``expressivity`` stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--matrices", type=int, default=300)
    parser.add_argument("--range-samples", type=int, default=200)
    parser.add_argument("--out", type=Path, default=OUT, help="default: results/qds")
    args = parser.parse_args(argv)
    out = args.out
    started = time.time()
    (out / "figures").mkdir(parents=True, exist_ok=True)
    rows = []

    scores = ex.random_scores(args.matrices, 8, scale=1.0, seed=0)
    info = {}
    for name, op in operators(8).items():
        p = ex.apply(op, scores)
        dist = ex.birkhoff_distance(p)
        frob = (p.double() - scores).flatten(1).norm(dim=-1)
        ent = ex.row_entropy(p)
        info[name] = (frob, ent)
        rows.append(
            {
                "analysis": "soundness (8x8, N(0,1) scores)",
                "operator": name,
                "value": f"{dist.mean():.3g} ± {dist.std():.2g}",
                "paper": PAPER_SOUNDNESS.get(name, "—"),
            }
        )
        rows.append(
            {
                "analysis": "info preservation ‖P − S‖_F (8x8)",
                "operator": name,
                "value": f"{frob.mean():.3f} ± {frob.std():.2f}",
                "paper": "Fig. 2B (plot only)",
            }
        )
        rows.append(
            {
                "analysis": "mean row entropy (8x8, max ln 8 = 2.079)",
                "operator": name,
                "value": f"{ent.mean():.3f} ± {ent.std():.2f}",
                "paper": "Fig. 2B (plot only)",
            }
        )

    family = ex.hypersphere_family()
    for name, op in operators(4, layers=8, n_aux=3).items():
        unique = ex.count_unique(ex.apply(op, family))
        rows.append(
            {
                "analysis": "diversity: unique DSMs of 625 hypersphere matrices (4x4)",
                "operator": name,
                "value": str(unique),
                "paper": str(PAPER_UNIQUE.get(name, "—")),
            }
        )

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (frob, ent) in info.items():
        ax.scatter(ent.numpy(), frob.numpy(), s=6, alpha=0.5, label=name)
    ax.set_xlabel("mean row entropy of P")
    ax.set_ylabel("||P - S||_F")
    ax.set_title("Information preservation vs entropy (8x8)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "figures" / "info_vs_entropy.png", dpi=120)
    plt.close(fig)

    fixed = ex.random_scores(1, 4, scale=1.0, seed=1)[0]
    grid = {}
    for n_aux in (1, 2, 3, 4):
        for layers in (1, 2, 4, 8, 16):

            def make(seed, n_aux=n_aux, layers=layers):
                return attention.create(
                    "qontot", n_data_qubits=2, n_aux_qubits=n_aux, layers=layers, theta_seed=seed, dtype="complex128"
                )

            grid[(n_aux, layers)] = ex.cell_range(make, fixed, args.range_samples)
            rows.append(
                {
                    "analysis": f"per-cell range over {args.range_samples} theta draws (4x4, Fig. A4)",
                    "operator": f"qontot q_a={n_aux} layers={layers}",
                    "value": f"{grid[(n_aux, layers)]:.3f}",
                    "paper": "layers help more than aux qubits",
                }
            )
    fig, ax = plt.subplots(figsize=(5, 4))
    for n_aux in (1, 2, 3, 4):
        ax.plot([1, 2, 4, 8, 16], [grid[(n_aux, L)] for L in (1, 2, 4, 8, 16)], marker="o", label=f"q_a={n_aux}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("circuit layers")
    ax.set_ylabel("mean per-cell range of P")
    ax.set_title("QontOT coverage vs layers and aux qubits")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "figures" / "cell_range_layers_qubits.png", dpi=120)
    plt.close(fig)

    write_csv(out / "expressivity.csv", rows, FIELDS, lineterminator="\r\n")
    meta = {"matrices": args.matrices, "range_samples": args.range_samples, "seconds": time.time() - started}
    write_text(out / "expressivity.meta.json", json.dumps(meta, indent=2) + "\n")
    for path in render_dir(out, out):
        print(path.read_text(), end="")
