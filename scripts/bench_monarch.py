"""MonarchAttention vs SDPA, the explicit softmax and two baselines on this CPU: forward time, side by side.

.venv/bin/python scripts/bench_monarch.py     # results/bench/monarch.md and .csv
"""

from __future__ import annotations

import csv
import math
import os
import statistics
import time
from pathlib import Path

import torch

import qdsbench  # noqa: F401
from qdsbench import attention
from qdsbench.attention.monarch import monarch_flops

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"


def median_time(fn, rounds: int) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    rows, load = [], os.getloadavg()[0]
    heads, d = 12, 64
    for n in (256, 1024, 4096, 16384):
        q, k, v = (torch.randn(1, heads, n, d) for _ in range(3))
        b = round(math.sqrt(n))
        candidates = {
            "sdpa": attention.create("sdpa"),
            "monarch(T=1)": attention.create("monarch", block_size=b, num_steps=1),
            "monarch(T=2)": attention.create("monarch", block_size=b, num_steps=2),
            "nystrom(32)": attention.create("nystrom", num_landmarks=32),
            "performer(64)": attention.create("performer", num_features=64),
        }
        if n <= 4096:  # the explicit matrix needs 12 x N^2 floats: 12.9 GB at 16K
            candidates["softmax"] = attention.create("softmax")
        times = {}
        with torch.no_grad():
            for _ in range(2):  # two interleaved passes, keep each backend's best median
                for name, backend in candidates.items():
                    t = median_time(lambda b=backend, q=q, k=k, v=v: b(q, k, v), 5 if n < 4096 else 2)
                    times[name] = min(times.get(name, t), t)
        for name, seconds in times.items():
            steps = 2 if "T=2" in name else 1
            flops = (
                monarch_flops(n, d, b, steps)
                if name.startswith("monarch")
                else (4 * n * n * d if name in ("sdpa", "softmax") else None)
            )
            rows.append(
                {
                    "N": n,
                    "backend": name,
                    "ms": round(seconds * 1e3, 3),
                    "vs_sdpa": round(seconds / times["sdpa"], 2),
                    "flops_ratio": None if flops is None else round(flops / (4 * n * n * d), 3),
                }
            )
        print([r for r in rows if r["N"] == n], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "monarch.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# MonarchAttention on this CPU",
        "",
        f"Command: `.venv/bin/python scripts/bench_monarch.py` (batch 1, {heads} heads, d = {d}, "
        "b = round(sqrt N), "
        f"forward only, fp32, medians of interleaved rounds; 1-min load average {load:.1f} at start: other jobs "
        "shared the 2 cores, ratios are side by side).",
        "",
        "| N | backend | ms | time vs SDPA | attention FLOPs vs softmax |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['N']} | {r['backend']} | {r['ms']} | {r['vs_sdpa']}x | {r['flops_ratio'] or '—'} |" for r in rows]
    (OUT / "monarch.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
