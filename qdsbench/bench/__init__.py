"""Benchmarks whose logic is too long for a thin script: scripts/bench_<name>.py call these."""
