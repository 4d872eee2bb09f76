"""User errors (bad option, missing dataset, NaN loss, reused run dir) end the process with one line.

Hydra reports exceptions raised inside a task with a trimmed traceback; a SystemExit passes through it,
so user errors are turned into one line on stderr and exit code 2 inside the task function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from qdsbench.errors import USER_ERRORS

T = TypeVar("T")


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def exit_on_user_error(entry: Callable[[], T]) -> T:
    """In a multirun the error is re-raised so Hydra marks that job failed and the sweep goes on."""
    try:
        return entry()
    except USER_ERRORS as err:
        print(f"qdsbench: error: {err}", file=sys.stderr)
        if _in_multirun():
            raise
        raise SystemExit(2) from None
