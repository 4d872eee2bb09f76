"""Thin entry point: the benchmark lives in qdsbench/bench/sparse.py (see its docstring for what it measures)."""

from qdsbench.bench.sparse import main

if __name__ == "__main__":
    main()
