"""Training dynamics of Yang et al.'s co-occurrence model: every quantity of the notes (section 3.1), a plain
full-batch GD loop (the Euler discretisation of their gradient flow), the phase checks and the Fig. 1 analogue.

Shared by the Lightning task (``task=cooccurrence``) and the study script, so both log the same numbers.
Score names say which token is the query and which the key: ``score_q1_k2`` = mu2^T W_K^T W_Q mu1, the logit of query
mu1 attending to key mu2 (the notes' s21 / "mu2^T W_K^T W_Q mu1"); ``value_12`` = mu1^T W_V^T W_V mu2.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from qdsbench.data.cooccurrence import FIRST_RANDOM, MU1, MU2, MU3, TYPE_NAMES

SCORE_PAIRS = {
    "score_q1_k2": (MU1, MU2),
    "score_q2_k1": (MU2, MU1),
    "score_q1_k3": (MU1, MU3),
    "score_q2_k3": (MU2, MU3),
    "score_q1_k1": (MU1, MU1),
    "score_q3_k3": (MU3, MU3),
}
VALUE_PAIRS = {"value_12": (MU1, MU2), "value_13": (MU1, MU3), "value_23": (MU2, MU3)}
# Phase-2 directions of Thm 3.2 (from T1 to the end of training)
PHASE2_SIGNS = {
    "score_q1_k2": +1,
    "score_q2_k1": +1,
    "score_q1_k3": -1,
    "score_q2_k3": -1,
    "value_12": +1,
    "value_13": -1,
    "value_23": -1,
}


def logistic_loss(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """l(yF) = log(1 + exp(-yF)) per sample."""
    return F.softplus(-y * f)


def _type_mean(values: torch.Tensor, types: torch.Tensor, kind: int) -> float:
    where = types == kind
    return float(values[where].mean()) if where.any() else float("nan")


def _positions(tokens: torch.Tensor, token: int) -> torch.Tensor:
    return (tokens == token).float().argmax(-1)


@torch.no_grad()
def quantities(net, tokens: torch.Tensor, y: torch.Tensor, types: torch.Tensor) -> dict[str, float]:
    """Losses (overall and per type), accuracy, margin, G, score/value correlations, attention probabilities and
    the gradient-balancing ratios on one (full) batch."""
    f = net(tokens)
    margin = y * f
    loss = logistic_loss(f, y)
    g = torch.sigmoid(-margin)  # g(yF) = 1 / (1 + e^{yF}) = -l'(yF)
    out = {"loss": float(loss.mean()), "acc": float((margin > 0).float().mean()), "min_margin": float(margin.min())}
    for kind, name in TYPE_NAMES.items():
        out[f"loss_{name}"] = _type_mean(loss, types, kind)
    G = net.linear_mlp()
    out.update(
        G_mu1=float(G[MU1]),
        G_mu2=float(G[MU2]),
        G_mu3=float(G[MU3]),
        G_random_abs=float(G[FIRST_RANDOM : net.vocab_size].abs().mean()),
    )
    S, V = net.score_matrix(), net.value_matrix()
    out.update({name: float(S[key, query]) for name, (query, key) in SCORE_PAIRS.items()})
    out.update({name: float(V[i, j]) for name, (i, j) in VALUE_PAIRS.items()})
    both = types == 0
    a = net.attention_matrix(tokens[both]) if both.any() else None
    if a is not None:
        offset = 1 if net.readout == "cls" else 0
        rows = torch.arange(a.shape[0])
        q1 = _positions(tokens[both], MU1) + offset
        out["attn_q1_k2"] = float(a[rows, q1, _positions(tokens[both], MU2) + offset].mean())
        k3 = _positions(tokens[both], MU3) + offset
        out["attn_q1_k3"] = float(a[rows, q1, k3].mean())
        out["alpha_mu3"] = float(a[rows, :, k3].sum(-1).mean() / a.shape[-1])  # Gu score of mu3's key (1/T under DS)
        out["attn_diagonal"] = float(torch.diagonal(a, dim1=-2, dim2=-1).mean())
        if net.readout == "cls":
            out["attn_cls_k1"] = float(a[rows, 0, _positions(tokens[both], MU1) + 1].mean())
            out["attn_cls_k3"] = float(a[rows, 0, _positions(tokens[both], MU3) + 1].mean())
        out["attn_col_sum_err"] = float((a.sum(-2) - 1).abs().max())
    sums = {kind: float(g[types == kind].sum()) for kind in TYPE_NAMES}
    total = sum(sums.values())
    out["balance_I2_over_I3"] = sums[1] / sums[2] if sums[2] > 0 else float("nan")
    out["balance_I1_minus_I2"] = (sums[0] - sums[1]) / total if total > 0 else float("nan")
    out["balance_rest_minus_I1"] = (sums[1] + sums[2] + sums[3] - sums[0]) / total if total > 0 else float("nan")
    return out


def grad_norms(net) -> dict[str, float]:
    return {
        f"grad_{name}": float(p.grad.norm()) if p.grad is not None else 0.0
        for name, p in (("W_Q", net.W_Q), ("W_K", net.W_K), ("W_V", net.W_V), ("W", net.W))
    }


def param_groups(net, lr: float, attn_lr_mult: float = 1.0) -> list[dict]:
    """W_Q, W_K at ``attn_lr_mult`` x lr (the notes' "amplified attention" knob), the rest at lr."""
    attn = [net.W_Q, net.W_K]
    rest = [p for p in net.parameters() if all(p is not q for q in attn)]
    return [{"params": attn, "lr": lr * attn_lr_mult}, {"params": rest, "lr": lr}]


def should_log(step: int, log_every: int, dense_steps: int) -> bool:
    return step < dense_steps or step % log_every == 0


def run_gd(
    net,
    train: tuple,
    test: tuple | None,
    steps: int,
    lr: float = 0.01,
    log_every: int = 25,
    dense_steps: int = 300,
    attn_lr_mult: float = 1.0,
) -> tuple[list[dict], dict]:
    """Plain full-batch gradient descent (no momentum, no weight decay); rows at logged steps and a summary."""
    tokens, y, types = train
    optimizer = torch.optim.SGD(param_groups(net, lr, attn_lr_mult), lr=lr, momentum=0.0, weight_decay=0.0)
    rows, t1, converged = [], None, None
    started = time.time()
    for step in range(steps + 1):
        optimizer.zero_grad(set_to_none=True)
        f = net(tokens)
        loss = logistic_loss(f, y).mean()
        loss.backward()
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"co-occurrence loss is {value} at step {step}; lower lr")
        acc = float(((y * f.detach()) > 0).float().mean())
        if t1 is None and acc == 1.0:
            t1 = step
        if converged is None and value < 1e-3:
            converged = step
        if should_log(step, log_every, dense_steps) or step == steps:
            row = {"step": step, "time": lr * step, **quantities(net, tokens, y, types), **grad_norms(net)}
            if test is not None:
                tq = quantities(net, *test)
                row.update(test_loss=tq["loss"], test_acc=tq["acc"])
            rows.append(row)
        if step < steps:
            optimizer.step()
    summary = {
        "T1": t1,
        "step_loss_below_1e-3": converged,
        "steps": steps,
        "lr": lr,
        "seconds": time.time() - started,
        **{f"final_{k}": v for k, v in rows[-1].items() if k not in ("step", "time")},
    }
    return rows, summary


def _at(rows: list[dict], step: int) -> dict:
    """The logged row at ``step`` (or the last one before it)."""
    before = [r for r in rows if r["step"] <= step]
    return before[-1] if before else rows[0]


def phase_checks(
    rows: list[dict], t1: int | None, acc_by: int = 100, loss_below: float = 1e-3, balance_bound: float = 0.5
) -> dict[str, bool]:
    """The notes' fast-test assertions (signs and trends, not magnitudes)."""
    end = rows[-1]
    checks = {
        f"train acc 1.0 by step {acc_by}": t1 is not None and t1 <= acc_by,
        f"final loss < {loss_below:g}": end["loss"] < loss_below,
        "G1 > 0": end["G_mu1"] > 0,
        "G2 > 0": end["G_mu2"] > 0,
        "G3 < 0": end["G_mu3"] < 0,
        "G1 + G3 < 0": end["G_mu1"] + end["G_mu3"] < 0,
        "G2 + G3 < 0": end["G_mu2"] + end["G_mu3"] < 0,
        "G1 + G2 + G3 > 0": end["G_mu1"] + end["G_mu2"] + end["G_mu3"] > 0,
    }
    if t1 is not None:
        start = _at(rows, t1)
        for key, sign in PHASE2_SIGNS.items():
            checks[f"phase 2: d{key} {'>' if sign > 0 else '<'} 0"] = sign * (end[key] - start[key]) > 0
        checks["phase 2: |d score| < 0.1"] = all(abs(end[k] - start[k]) < 0.1 for k in SCORE_PAIRS)
        checks[f"phase 2: |sum_I2 g - sum_I3 g| / min < {balance_bound}"] = balance_gap(rows, t1) < balance_bound
    return checks


def balance_gap(rows: list[dict], t1: int) -> float:
    """max over Phase 2 of |sum_I2 g - sum_I3 g| / min(sum_I2 g, sum_I3 g)."""
    ratios = [r["balance_I2_over_I3"] for r in rows if r["step"] >= t1]
    return max(abs(x - 1) / min(1.0, x) for x in ratios)


def plot_dynamics(rows: list[dict], t1: int | None, path: Path, title: str) -> Path:
    """Fig. 1 analogue: (a) score correlations, (b) losses (log-log), (c) G, (d) balancing, (e) value correlations,
    (f) attention probabilities on I1 samples; the red line is T1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [max(r["step"], 0.5) for r in rows]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    panels = [
        (axes[0][0], "(a) score correlation mu_k^T W_K^T W_Q mu_q", list(SCORE_PAIRS), "linear"),
        (axes[0][1], "(b) training loss", ["loss", *[f"loss_{n}" for n in TYPE_NAMES.values()]], "log"),
        (axes[0][2], "(c) linear MLP G(mu)", ["G_mu1", "G_mu2", "G_mu3", "G_random_abs"], "linear"),
        (
            axes[1][0],
            "(d) gradient balancing",
            ["balance_I2_over_I3", "balance_I1_minus_I2", "balance_rest_minus_I1"],
            "linear",
        ),
        (axes[1][1], "(e) value correlation mu_i^T W_V^T W_V mu_j", list(VALUE_PAIRS), "linear"),
        (
            axes[1][2],
            "(f) attention on I1 samples",
            ["attn_q1_k2", "attn_q1_k3", "attn_cls_k1", "attn_cls_k3"],
            "linear",
        ),
    ]
    for ax, label, keys, yscale in panels:
        for key in keys:
            values = [r.get(key, float("nan")) for r in rows]
            if all(isinstance(v, float) and math.isnan(v) for v in values):
                continue
            ax.plot(steps, values, label=key.replace("score_", "").replace("loss_", ""), lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale(yscale)
        if t1 is not None:
            ax.axvline(max(t1, 0.5), color="red", lw=1, ls="--")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("GD step (log)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
