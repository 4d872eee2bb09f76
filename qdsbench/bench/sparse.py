"""CPU time and peak memory of one sink + window prefill: full causal SDPA vs the two sink_window implementations.

    .venv/bin/python scripts/bench_sparse.py            # -> results/bench/sparse.md|csv  (make bench-sparse)
    .venv/bin/python scripts/bench_sparse.py --lengths 4096 --repeats 1 --out /tmp/b   # a quick look

Methods: full causal SDPA; sink_window ``impl=blocks`` (hand-written: query blocks in SDPA's batch dimension);
sink_window ``impl=flex`` (compiled FlexAttention with a cached BlockMask, 32-tiles below W = 1024); Delta on top
(``mode=delta`` minus the same backend's ``mode=sparse``: its added cost). Shapes (1, 4 heads, N, d = 64), float32,
no grad. Times are medians of repeats interleaved in this one process (every method once per repeat), so ratios
compare methods under the same machine load; the load average is recorded. Peak memory (sink_window and full SDPA)
is measured per case in a fresh subprocess, after a warm-up call at WARM_N (so compiling is not counted): the rise
of the resident set during the call, sampled every 0.5 ms. The one-time compile is reported separately (a fresh
process with an empty inductor cache).

Targets (issue #17 item 4), printed as met / not met: at 16K and 32K, each sink_window time within 2x of "time
proportional to the pairs kept" (full SDPA's time x kept pairs / causal pairs); the paper's W = 2048 with 1024 sinks
faster than full SDPA; peak memory <= 2x full SDPA's; Delta's added time within 2x of full SDPA's time x its anchor
and tail pairs / causal pairs. The faster implementation is named as the backend's default.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from qdsbench import attention
from qdsbench.attention.delta import pair_counts
from qdsbench.attention.sink_window import FLEX_MIN_N
from qdsbench.config import REPO_ROOT as ROOT

HEADS, DIM = 4, 64
CONFIGS = {  # label -> (window, sinks, gamma, tail_min)
    "W128": (128, 16, 64, 128),
    "W512": (512, 64, 64, 128),
    "W2048+1024 sinks (paper)": (2048, 1024, 64, 128),
}
IMPLS = ("blocks", "flex")
WARM_N = FLEX_MIN_N  # warm-up length (the shortest that takes the flex path): compiles before any measurement


def make_call(method: str, config: str | None = None):
    """A callable (q, k, v) -> out for one method; sink_window / Delta methods need a config."""
    if method == "full_sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    window, sinks, gamma, tail_min = CONFIGS[config]
    if method.startswith("sink_window_"):
        return attention.create("sink_window", window=window, sinks=sinks, impl=method.removeprefix("sink_window_"))
    mode = {"delta": "delta", "delta_sparse": "sparse"}[method]
    return attention.create("delta", window=window, sinks=sinks, gamma=gamma, tail_min=tail_min, mode=mode)


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


def probe(method: str, config: str | None, n: int) -> float:
    """Run in the fresh subprocess: warm up at WARM_N, build the length's BlockMask, then measure one call."""
    torch.set_grad_enabled(False)
    call = make_call(method, config)
    call(*inputs(WARM_N))
    if config is not None and method != "full_sdpa":
        from qdsbench.attention.flex import sink_window_block_mask

        window, sinks = CONFIGS[config][:2]
        sink_window_block_mask(n, window, sinks, "cpu")  # cached, a few KiB: built once per (N, W, S) in real use too
    q, k, v = inputs(n)
    return peak_rise_mib(call, q, k, v)


def subprocess_python(code: str, threads: int, env: dict | None = None) -> str:
    prelude = f"import torch; torch.set_num_threads({threads}); "
    result = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=ROOT, env=env or os.environ
    )
    if result.returncode:
        raise RuntimeError(f"subprocess failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return result.stdout.strip().splitlines()[-1]


def peak_memory_mib(method: str, config: str | None, n: int, threads: int) -> float:
    """Measured in a fresh process so that no allocator cache from earlier calls hides the working memory."""
    return float(
        subprocess_python(
            f"from qdsbench.bench.sparse import probe; print(probe({method!r}, {config!r}, {n}))", threads
        )
    )


def cold_compile_s(threads: int) -> float:
    """Seconds of the first FlexAttention call in a fresh process with an empty inductor cache (N = WARM_N)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        code = (
            "import time; from qdsbench.bench.sparse import make_call, inputs, WARM_N; torch.set_grad_enabled(False); "
            "call = make_call('sink_window_flex', 'W128'); q, k, v = inputs(WARM_N); t = time.perf_counter(); "
            "call(q, k, v); print(time.perf_counter() - t)"
        )
        return float(subprocess_python(code, threads, env))


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="16384,32768")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-case peak-memory subprocesses")
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    load_start = load_average()
    started = time.perf_counter()
    compile_cold = cold_compile_s(args.threads)
    first = time.perf_counter()
    make_call("sink_window_flex", "W128")(*inputs(WARM_N))
    compile_warm = time.perf_counter() - first
    print(
        f"FlexAttention first call: {compile_cold:.1f} s cold cache, {compile_warm:.1f} s in this process", flush=True
    )

    methods = ["full_sdpa"] + [(f"sink_window_{i}", c) for c in CONFIGS for i in IMPLS]
    methods += [(m, c) for c in CONFIGS for m in ("delta_sparse", "delta")]
    rows = []
    for n in (int(x) for x in args.lengths.split(",")):
        q, k, v = inputs(n)
        keys = methods
        calls = {m: make_call(m) if isinstance(m, str) else make_call(*m) for m in keys}
        times = {m: [] for m in keys}
        for m in keys:  # warm-up: BlockMasks, first-touch allocations
            calls[m](q, k, v)
        for _ in range(args.repeats):
            for m in keys:
                start = time.perf_counter()
                calls[m](q, k, v)
                times[m].append(time.perf_counter() - start)
        ms = {m: 1e3 * statistics.median(t) for m, t in times.items()}
        full_ms = ms["full_sdpa"]
        full_mem = None if args.no_memory else peak_memory_mib("full_sdpa", None, n, args.threads)
        rows.append(row(n, "-", "full_sdpa", full_ms, full_ms, 1.0, full_mem))
        print(rows[-1], flush=True)
        for config, (window, sinks, gamma, tail_min) in CONFIGS.items():
            pairs = pair_counts(n, window, sinks, gamma, tail_min)
            kept = pairs["sparse"] / pairs["full"]
            for impl in IMPLS:
                m = (f"sink_window_{impl}", config)
                mem = None if args.no_memory else peak_memory_mib(*m, n, args.threads)
                rows.append(row(n, config, m[0], ms[m], full_ms, kept, mem, ideal_ms=full_ms * kept))
                print(rows[-1], flush=True)
            added = ms[("delta", config)] - ms[("delta_sparse", config)]
            extra = (pairs["anchors"] + pairs["tail"]) / pairs["full"]
            rows.append(row(n, config, "delta", ms[("delta", config)], full_ms, pairs["total"] / pairs["full"], None))
            rows.append(row(n, config, "delta_added", added, full_ms, extra, None, ideal_ms=full_ms * extra))
            print(rows[-2], rows[-1], sep="\n", flush=True)
    elapsed = time.perf_counter() - started
    write(rows, args, compile_cold, compile_warm, load_start, load_average(), elapsed)


def row(n, config, method, ms, full_ms, pairs_frac, peak_mib, ideal_ms=None) -> dict:
    return {
        "N": n,
        "config": config,
        "method": method,
        "ms": round(ms, 2),
        "speedup_vs_full": round(full_ms / ms, 2) if ms > 0 else float("inf"),
        "pairs_vs_full": round(pairs_frac, 4),
        "ideal_ms": "" if ideal_ms is None else round(ideal_ms, 2),
        "x_ideal": "" if ideal_ms is None else round(ms / ideal_ms, 2),
        "peak_mib": "" if peak_mib is None else round(peak_mib, 1),
    }


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, each a line ending in met / not met, and the faster implementation per case."""
    lines = []
    full = {r["N"]: r for r in rows if r["method"] == "full_sdpa"}
    sw = [r for r in rows if r["method"].startswith("sink_window_")]
    for r in sw:
        impl = r["method"].removeprefix("sink_window_")
        lines.append(
            f"- time <= 2x pairs-proportional, N={r['N']} {r['config']} {impl}: {r['x_ideal']}x the ideal "
            f"{r['ideal_ms']} ms ({verdict(r['x_ideal'] <= 2)})"
        )
    for r in sw:
        if "paper" in r["config"]:
            impl = r["method"].removeprefix("sink_window_")
            lines.append(
                f"- paper config faster than full SDPA, N={r['N']} {impl}: {r['speedup_vs_full']}x "
                f"({verdict(r['speedup_vs_full'] > 1)})"
            )
    for r in sw:
        if r["peak_mib"] != "" and full[r["N"]]["peak_mib"] != "":
            impl = r["method"].removeprefix("sink_window_")
            ratio = r["peak_mib"] / max(full[r["N"]]["peak_mib"], 1e-9)
            lines.append(
                f"- peak memory <= 2x full SDPA's, N={r['N']} {r['config']} {impl}: {r['peak_mib']} vs "
                f"{full[r['N']]['peak_mib']} MiB = {ratio:.2f}x ({verdict(ratio <= 2)})"
            )
    for r in rows:
        if r["method"] == "delta_added":
            lines.append(
                f"- Delta's added time <= 2x its anchor + tail pairs' share, N={r['N']} {r['config']}: {r['ms']} ms "
                f"= {r['x_ideal']}x the ideal {r['ideal_ms']} ms ({verdict(r['x_ideal'] != '' and r['x_ideal'] <= 2)})"
            )
    wins = {impl: 0 for impl in IMPLS}
    for n, config in {(r["N"], r["config"]) for r in sw}:
        best = min((r for r in sw if r["N"] == n and r["config"] == config), key=lambda r: r["ms"])
        wins[best["method"].removeprefix("sink_window_")] += 1
    lines.append(f"- faster implementation (cases won): {', '.join(f'{k} {v}' for k, v in wins.items())}")
    return lines


def write(rows, args, compile_cold, compile_warm, load_start, load_end, elapsed) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sparse.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = f".venv/bin/python scripts/bench_sparse.py {' '.join(sys.argv[1:])}".strip()
    text = (
        "# Sink + window prefill on the CPU: full SDPA vs sink_window (blocks, FlexAttention) vs Delta on top\n\n"
        f"Command: `make bench-sparse` (`{command}`)  \n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()} CPU ({os.cpu_count()} cores), "
        f"{args.threads} torch thread(s), torch {torch.__version__}; load average (1 / 5 / 15 min) {load_start} at "
        f"the start, {load_end} at the end (the machine is shared: ratios are side by side, absolute times are "
        f"not). Shapes (1, {HEADS}, N, {DIM}) float32, no grad, median of {args.repeats} interleaved repeats; "
        f"{elapsed / 60:.1f} min in all. Configs (window, sinks, gamma, tail_min): "
        + "; ".join(f"{k} = {v}" for k, v in CONFIGS.items())
        + ".\n\n"
        f"FlexAttention's one-time compile (first call, N = {WARM_N}): {compile_cold:.1f} s in a fresh process with "
        f"an empty inductor cache, {compile_warm:.1f} s with the cache the earlier process left.\n\n"
        "`pairs_vs_full` = query-key pairs kept / causal N(N+1)/2; `ideal_ms` = full SDPA's time x `pairs_vs_full` "
        "(time proportional to the pairs kept); `x_ideal` = ms / ideal_ms. `delta` = the whole Delta call (its "
        "sparse part on the backend's kernel), `delta_added` = `delta` minus the same backend in `mode=sparse`, "
        "against the anchor + tail pairs. `peak_mib` = rise of the resident set during one call, in a fresh "
        "process after a warm-up.\n\n"
    )
    text += "| N | config | method | ms | speedup vs full | pairs vs full | ideal ms | x ideal | peak MiB |\n"
    text += "|---|---|---|---|---|---|---|---|---|\n"
    text += "".join("| " + " | ".join(str(r[k]) for k in rows[0]) + " |\n" for r in rows)
    text += "\n## Targets (issue #17 item 4)\n\n" + "\n".join(targets(rows)) + "\n"
    (out / "sparse.md").write_text(text)
    print(text)
    print(f"wrote {out / 'sparse.md'}")


if __name__ == "__main__":
    main()
