"""Run one manifest stage (a package function that is not a training run) in its own process.

``python -m qdsbench.campaign.stage package.module:function '["--flag", "value"]'``: the function receives the
argument list, as a console entry point would.
"""

from __future__ import annotations

import importlib
import json
import sys


def call(target: str, argv: list[str]) -> object:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(argv)


if __name__ == "__main__":
    call(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else [])
