"""How long the command line takes to answer, next to ``python -c "import torch"`` on the same machine (issue 22).

Every command is started as a fresh process, the commands interleaved round by round so machine noise hits all of
them alike; the table reports the median wall time and its ratio to the torch import. The target: help, a printed
config and a typo answer take at most the time of importing torch (none of them imports torch or lightning).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from qdsbench.config import REPO_ROOT
from qdsbench.tables import markdown_table, write_csv, write_text

BIN = Path(sys.executable).parent
COMMANDS = {
    "python -c 'import torch' (reference)": [sys.executable, "-c", "import torch"],
    "qdsbench --help": [str(BIN / "qdsbench"), "--help"],
    "qdsbench train --help": [str(BIN / "qdsbench"), "train", "--help"],
    "qdsbench-train --cfg job": [str(BIN / "qdsbench-train"), "--cfg", "job"],
    "qdsbench-train atention=sdpa (typo)": [str(BIN / "qdsbench-train"), "atention=sdpa"],
    "qdsbench-train attention=sdpaa (bad option)": [str(BIN / "qdsbench-train"), "attention=sdpaa"],
    "qdsbench-reproduce --help": [str(BIN / "qdsbench-reproduce"), "--help"],
}


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
    reference = statistics.median(next(iter(times.values())))
    rows = [
        {
            "command": name,
            "median_s": round(statistics.median(t), 3),
            "min_s": round(min(t), 3),
            "vs_import_torch": round(statistics.median(t) / reference, 2),
            "target_met": statistics.median(t) <= reference,
        }
        for name, t in times.items()
    ]
    write_csv(args.out / "cli.csv", rows)
    text = (
        f"# Command-line latency\n\nCommand: `.venv/bin/python scripts/bench_cli.py --rounds {args.rounds}` "
        f"(fresh process each, interleaved rounds; {platform.machine()}, {time.strftime('%Y-%m-%d')}, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores). "
        "Target: at most the time of `import torch` (ratio <= 1).\n\n"
        + markdown_table(rows, list(rows[0]), digits=3)
        + "\n"
    )
    write_text(args.out / "cli.md", text)
    print(text, end="")
