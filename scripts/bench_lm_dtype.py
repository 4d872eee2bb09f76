"""Thin entry point: the benchmark lives in qdsbench/bench/lm_dtype.py (see its docstring for what it measures)."""

from qdsbench.bench.lm_dtype import main

if __name__ == "__main__":
    main()
