"""CPU time and peak memory of one attention call: full causal SDPA vs sink_window vs sink_window + Delta.

    .venv/bin/python scripts/bench_sparse.py            # -> results/bench/sparse.md|csv  (make bench-sparse)
    .venv/bin/python scripts/bench_sparse.py --lengths 1024,4096 --repeats 2 --out /tmp/b

Shapes (1, 4 heads, N, d = 64), float32, no grad. Times are medians of interleaved repeats in this one process, so the
ratios compare methods under the same machine load. Peak memory is measured per (method, N) in a fresh subprocess:
the rise of the resident set size during the call over its size once the inputs exist (sampled every 0.5 ms), i.e.
the working memory the call needs. A config is skipped where N < 4 W (the window would cover most of the
sequence). Target (issue 6): sink_window + Delta at least 4x faster than full SDPA at 16K.
"""

from __future__ import annotations

import argparse
import csv
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from qdsbench import attention
from qdsbench.attention.delta import pair_counts
from qdsbench.config import REPO_ROOT

ROOT = REPO_ROOT

HEADS, DIM = 4, 64
CONFIGS = {  # label -> (window, sinks, gamma, tail_min)
    "W128": (128, 16, 64, 128),
    "W512": (512, 64, 64, 128),
    "W2048 (paper)": (2048, 1024, 64, 128),
}


def make_call(method: str, config: str):
    window, sinks, gamma, tail_min = CONFIGS[config]
    if method == "full_sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if method == "sink_window":
        return attention.create("sink_window", window=window, sinks=sinks)
    return attention.create("delta", window=window, sinks=sinks, gamma=gamma, tail_min=tail_min, mode="delta")


def inputs(n: int):
    g = torch.Generator().manual_seed(n)
    return [torch.randn(1, HEADS, n, DIM, generator=g) for _ in range(3)]


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rise_mib(call, *args) -> float:
    """Peak resident-set rise during ``call``, sampled every 0.5 ms by a thread (torch kernels release the GIL)."""
    base, peak, running = rss_mib(), [0.0], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.0005)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        call(*args)
    finally:
        running[0] = False
        thread.join()
    return max(peak[0], rss_mib()) - base


def peak_memory_mib(method: str, config: str, n: int, threads: int) -> float:
    """Measured in a fresh process so that no allocator cache from earlier calls hides the working memory."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import torch; torch.set_num_threads({threads}); "
        f"torch.set_grad_enabled(False); from scripts.bench_sparse import make_call, inputs, peak_rise_mib; "
        f"q, k, v = inputs({n}); print(peak_rise_mib(make_call({method!r}, {config!r}), q, k, v))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        raise RuntimeError(f"memory probe failed for {method} N={n}: {result.stderr.strip().splitlines()[-1]}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1024,4096,16384,32768")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = ("full_sdpa", "sink_window", "delta")
    rows = []
    for n in (int(x) for x in args.lengths.split(",")):
        q, k, v = inputs(n)
        for config in CONFIGS:
            if n < 4 * CONFIGS[config][0]:
                continue  # the window covers most of the sequence: nothing sparse to measure
            calls = {m: make_call(m, config) for m in methods}
            times = {m: [] for m in methods}
            with torch.no_grad():
                for m in methods:  # warm-up
                    calls[m](q, k, v)
                for _ in range(args.repeats):
                    for m in methods:
                        start = time.perf_counter()
                        calls[m](q, k, v)
                        times[m].append(time.perf_counter() - start)
            window, sinks, gamma, tail_min = CONFIGS[config]
            pairs = pair_counts(n, window, sinks, gamma, tail_min)
            full_ms = 1e3 * statistics.median(times["full_sdpa"])
            for m in methods:
                ms = 1e3 * statistics.median(times[m])
                frac = {
                    "full_sdpa": 1.0,
                    "sink_window": pairs["sparse"] / pairs["full"],
                    "delta": pairs["total"] / pairs["full"],
                }[m]
                rows.append(
                    {
                        "N": n,
                        "config": config,
                        "method": m,
                        "ms": round(ms, 2),
                        "speedup_vs_full": round(full_ms / ms, 2),
                        "pairs_vs_full": round(frac, 4),
                        "peak_mib": round(peak_memory_mib(m, config, n, args.threads), 1),
                    }
                )
                print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sparse.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = (
        f"# Sparse prefill attention on the CPU: full SDPA vs sink_window vs sink_window + Delta\n\n"
        f"Command: `make bench-sparse` (`.venv/bin/python scripts/bench_sparse.py {' '.join(sys.argv[1:])}`)  \n"
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} CPU, {args.threads} torch thread(s), "
        f"torch {torch.__version__}; shapes (1, {HEADS}, N, {DIM}) float32, one call, median of {args.repeats} "
        f"interleaved repeats. Configs (window, sinks, gamma, tail_min): "
        + "; ".join(f"{k} = {v}" for k, v in CONFIGS.items())
        + ". `pairs_vs_full` = query-key pairs computed / causal N(N+1)/2; `peak_mib` = rise of the resident "
        "set during the "
        "call, in a fresh process.\n\n"
    )
    text += "| N | config | method | ms | speedup vs full | pairs vs full | peak MiB |\n|---|---|---|---|---|---|---|\n"
    text += "".join(
        f"| {r['N']} | {r['config']} | {r['method']} | {r['ms']} | {r['speedup_vs_full']}x | "
        f"{r['pairs_vs_full']} | {r['peak_mib']} |\n"
        for r in rows
    )
    target = [r for r in rows if r["N"] == 16384 and r["method"] == "delta"]
    if target:
        text += (
            "\nTarget (sink_window + Delta >= 4x faster than full SDPA at 16K): "
            + "; ".join(
                f"{r['config']}: {r['speedup_vs_full']}x ({'met' if r['speedup_vs_full'] >= 4 else 'not met'})"
                for r in target
            )
            + ".\n"
        )
    (out / "sparse.md").write_text(text)
    print(f"wrote {out / 'sparse.md'}")


if __name__ == "__main__":
    main()
