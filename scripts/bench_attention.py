"""Thin entry point: the benchmark lives in qdsbench/bench/attention.py (see its docstring for what it measures)."""

from qdsbench.bench.attention import main

if __name__ == "__main__":
    main()
