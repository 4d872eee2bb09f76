"""Thin entry point: the benchmark lives in qdsbench/bench/cli.py (see its docstring for what it measures)."""

from qdsbench.bench.cli import main

if __name__ == "__main__":
    main()
