"""Forecasting throughput on ETTh1-96: training windows/s of OLinear, DLinear, iTransformer (forward + backward +
Adam step, batch 32), measured side by side, and the OrthoTrans Q-builder time (L = 96 and 720).

    QDSBENCH_DATA=../shared/data .venv/bin/python scripts/bench_forecast.py   # results/bench/forecast.md|csv
"""

from __future__ import annotations

import csv
import os
import statistics
import time
from pathlib import Path

import torch

import qdsbench  # noqa: F401
from qdsbench import data, models
from qdsbench.data.forecasting import read_values
from qdsbench.orthotrans import q_matrix

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"


def main() -> None:
    data_dir = os.environ.get("QDSBENCH_DATA", "data")
    module = data.create("etth1", data_dir=data_dir, seq_len=96, pred_len=96)
    module.setup()
    x, y = next(iter(module.train_dataloader()))
    spec = module.model_inputs()  # what the datamodule hands every model (shapes, OrthoTrans Q)
    nets = {
        "olinear (D=512, 2 layers)": models.create("olinear", inputs=spec, q_cache_dir="logs/cache/orthotrans"),
        "dlinear": models.create("dlinear", inputs=spec),
        "itransformer (D=256, 2 layers, softmax)": models.create(
            "itransformer", inputs=spec, attention={"name": "softmax"}, d_model=256
        ),
    }
    optimisers = {name: torch.optim.Adam(net.parameters(), lr=1e-4) for name, net in nets.items()}

    def step(name):
        optimisers[name].zero_grad()
        torch.nn.functional.l1_loss(nets[name](x), y).backward()
        optimisers[name].step()

    samples = {name: [] for name in nets}
    for name in nets:
        step(name)
    for _ in range(10):
        for name in nets:
            start = time.perf_counter()
            step(name)
            samples[name].append(time.perf_counter() - start)
    rows = [
        {
            "model": name,
            "windows_per_s": round(len(x) / statistics.median(s), 1),
            "params": sum(p.numel() for p in nets[name].parameters()),
        }
        for name, s in samples.items()
    ]
    values = read_values("etth1", data_dir)[: int(len(read_values("etth1", data_dir)) * 0.6)]
    for length in (96, 720):
        start = time.perf_counter()
        q_matrix(values, length)
        rows.append(
            {
                "model": f"OrthoTrans q_matrix, L={length} (uncached)",
                "windows_per_s": None,
                "params": None,
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "forecast.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["model", "windows_per_s", "params", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Forecasting throughput (ETTh1, T = 96, tau = 96)",
        "",
        "Command: `QDSBENCH_DATA=../shared/data .venv/bin/python scripts/bench_forecast.py` (batch 32, "
        f"{torch.get_num_threads()} torch threads, medians of 10 interleaved steps; 1-min load average "
        f"{os.getloadavg()[0]:.1f}: other jobs shared the 2 cores).",
        "",
        "| what | training windows/s | parameters | seconds |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['windows_per_s'] or '—'} | {r['params'] or '—'} | {r.get('seconds', '—')} |" for r in rows
    ]
    (OUT / "forecast.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
