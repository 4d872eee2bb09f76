"""Run one manifest stage (a package function that is not a training run) in its own process.

``python -m qdsbench.campaign.stage package.module:function '["--flag", "value"]'``: the function receives the
argument list, as a console entry point would. A stage's ``render`` function is named the same way.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable


def resolve(target: str) -> Callable:
    """``package.module:function`` -> the function."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def call(target: str, argv: list[str]) -> object:
    return resolve(target)(argv)


if __name__ == "__main__":
    call(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else [])
