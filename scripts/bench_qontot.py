"""QontOT simulator benchmark (issue 17): ms per 8x8 DSM of the paper's static circuit (q_d=3, q_a=4, 16 layers: 7
qubits, 96 blocks), new vs previous simulator, qiskit and peers, against the FLOP bound (96 blocks x 4 complex MACs per
entry of V at the rate of a batched complex64 128x128 matmul, timed in the same rounds); and a training step of the
1-layer QDS ViT (batch 100, 28x28) vs softmax (the step alone, with its breakdown and FLOP floor:
scripts/bench_qontot_step.py). Medians of interleaved rounds of CPU time (wall time in the csv).

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 .venv-bench/bin/python scripts/bench_qontot.py  # or .venv: no peers
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import qdsbench  # noqa: F401  (thread settings)
from qdsbench import attention
from qdsbench.builders import build_net_from_overrides
from qdsbench.quantum import peers

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"
Q_D, Q_A, LAYERS = 3, 4, 16
BOUND, PASSES = "FLOP bound (96 blocks x 4 MACs per entry at cgemm rate)", ("fwd", "fwd+bwd")


def timed(fns: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """name -> (median CPU s, median wall s) over interleaved rounds, after one warm-up call each."""
    samples = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up (the simulator's reused buffers are allocated here)
    for _ in range(rounds):
        for name, fn in fns.items():
            cpu, wall = time.process_time(), time.perf_counter()
            fn()
            samples[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    return {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in samples.items()}


def dsm_table(m: int, rounds: int, refs: list, old_sample: int) -> list[dict]:
    """The previous simulator runs in independent chunks of 32: its per-matrix cost is timed on ``old_sample``."""
    backend = attention.create("qontot", n_data_qubits=Q_D, n_aux_qubits=Q_A, layers=LAYERS)
    angles = backend.angles(torch.randn(m, 8, 8, generator=torch.Generator().manual_seed(m)) * 0.5)
    weight = torch.randn(m, 8, 8)
    trainable = angles.clone().requires_grad_()
    x, y, z = (torch.randn(min(m, 256), 128, 128, dtype=torch.complex64) for _ in range(3))

    def new_fb():
        trainable.grad = None
        (backend.dsm_from_angles(trainable) * weight).sum().backward()

    def old(backward):
        return lambda: peers.old_simulator(angles[:old_sample], Q_D, Q_A, LAYERS, weight, backward)

    fns = {
        ("ours (new)", "fwd"): lambda: torch.no_grad()(backend.dsm_from_angles)(angles),
        ("ours (new)", "fwd+bwd"): new_fb,
        ("ours (old, reference)", "fwd"): old(False),
        ("ours (old, reference)", "fwd+bwd"): old(True),
        (BOUND, "fwd"): lambda: torch.matmul(x, y, out=z),
    }
    # the bound: the circuit's multiply-adds over the matmul's, times the matmul's time
    factor = {BOUND: 96 * 4 * 128 * 128 / 128**3 * m / len(x), "ours (old, reference)": m / old_sample}
    times = {key: tuple(t * factor.get(key[0], 1) for t in v) for key, v in timed(fns, rounds).items()}
    for label, passes, samples in refs:  # per-matrix costs measured once on ``samples`` matrices
        for pass_, (cpu, wall) in passes.items():
            times[(label, pass_)] = (cpu * m / samples, wall * m / samples)
    return [
        {
            "matrices": m,
            "method": meth,
            "pass": p,
            "cpu_ms_per_dsm": round(c / m * 1e3, 4),
            "wall_ms_per_dsm": round(w / m * 1e3, 4),
        }
        for (meth, p), (c, w) in times.items()
    ]


def training_step_table(rounds: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(100, 1, 28, 28, generator=g), torch.randint(0, 10, (100,), generator=g)
    q = ["attention=qontot", f"attention.n_aux_qubits={Q_A}", f"attention.layers={LAYERS}"]
    variants = {
        "softmax": ["attention=softmax"],
        "qontot static (q_a=4, L=16, grad=none)": [*q, "attention.grad=none"],
        "qontot (q_a=4, L=16, grad=scores)": [*q, "attention.grad=scores"],
    }
    fns = {}
    for label, att in variants.items():
        net = build_net_from_overrides(["experiment=qds/table1", "model.depth=1", *att])  # the Table 1 preset's ViT
        opt = torch.optim.Adam(net.parameters(), lr=5e-4)

        def step(net=net, opt=opt):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(images), labels).backward()
            opt.step()

        fns[label] = step
    times = timed(fns, rounds)
    soft = times["softmax"][0]
    return [
        {
            "model": "1-layer QDS ViT, batch 100",
            "attention": k,
            "cpu_ms": round(c * 1e3, 2),
            "wall_ms": round(w * 1e3, 2),
            "vs_softmax": round(c / soft, 2),
        }
        for k, (c, w) in times.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rounds-large", type=int, default=1)
    parser.add_argument("--reference-samples", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS") if k in os.environ)
    python = os.path.relpath(sys.executable, OUT.parents[1])  # .venv-bench/bin/python also times the peers
    command = " ".join(filter(None, [env, python, "scripts/bench_qontot.py", *sys.argv[1:]]))
    load = os.getloadavg()[0]
    backend = attention.create("qontot", n_data_qubits=Q_D, n_aux_qubits=Q_A, layers=LAYERS)
    sample = backend.angles(torch.randn(args.reference_samples, 8, 8, generator=torch.Generator().manual_seed(1)))
    exact = attention.create("qontot", n_data_qubits=Q_D, n_aux_qubits=Q_A, layers=LAYERS, dtype="complex128")
    p_exact = exact.dsm_from_angles(sample.double())  # peers must reproduce our P to 1e-6 before they are timed
    refs = [(label, passes, len(sample)) for label, passes in peers.references(backend, sample, p_exact)]
    rows = dsm_table(100, args.rounds, refs, 100) + dsm_table(2048, args.rounds_large, refs, 256)
    steps = training_step_table(args.rounds)
    cell = {(r["matrices"], r["method"], r["pass"]): r for r in rows}
    targets = []
    for m in (100, 2048):
        fwd, fb, bound = (
            cell[(m, *key)]["cpu_ms_per_dsm"]
            for key in (("ours (new)", "fwd"), ("ours (new)", "fwd+bwd"), (BOUND, "fwd"))
        )
        targets.append(
            f"- {m} matrices: static forward {fwd / bound:.2f}x the FLOP bound (target <= 1.5x): "
            f"{'met' if fwd <= 1.5 * bound else 'not met'}; forward+backward {fb / fwd:.2f}x the static "
            f"forward (target <= 3x): {'met' if fb <= 3 * fwd else 'not met'}"
        )
    targets.append(
        f"- training step, static qontot: {steps[1]['vs_softmax']}x softmax (target <= 3x): "
        f"{'met' if steps[1]['vs_softmax'] <= 3 else 'not met'}"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "qontot.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rows[0], "command"])
        writer.writeheader()
        writer.writerows({**r, "command": command} for r in rows)
    lines = [
        "# QontOT simulator benchmark",
        "",
        f"Command: `{command}`. Measured "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {torch.get_num_threads()} torch thread, CPU; 1-min "
        f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end (shared machine). Medians of "
        f"{args.rounds} interleaved rounds ({args.rounds_large} at 2048 matrices), CPU time of this process. "
        "The old simulator at 2048 and the references are timed on a subset (256; the first "
        f"{args.reference_samples}) and scaled: their cost per matrix does not depend on the batch.",
        "",
        "## ms per 8x8 DSM (q_d=3, q_a=4, 16 layers; gradient: dL/dangles for L = sum(W * P))",
        "",
        "| method | 100 fwd | 100 fwd+bwd | 2048 fwd | 2048 fwd+bwd |",
        "|---|---|---|---|---|",
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        vals = [cell.get((m, method, p), {}).get("cpu_ms_per_dsm", "-") for m in (100, 2048) for p in PASSES]
        lines.append(f"| {method} | " + " | ".join(str(v) for v in vals) + " |")
    lines += [
        "",
        "## Training step (forward, cross-entropy, backward, Adam), random 28x28 inputs",
        "",
        "| attention | CPU ms | wall ms | vs softmax |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s['attention']} | {s['cpu_ms']} | {s['wall_ms']} | {s['vs_softmax']}x |" for s in steps]
    lines += ["", "## Targets", ""] + targets + ["", *peers.NOTES]
    (OUT / "qontot.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(targets) - len(peers.NOTES) - 3 :]))


if __name__ == "__main__":
    main()
