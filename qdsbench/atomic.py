"""Atomic file writes (temp file + fsync + rename), importable without torch or lightning.

Run records, campaign records and every results table are written through these, so a reader (or a killed job)
sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qdsbench.errors import RunRecordWriteError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file, then rename: readers see the old or the new content, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise RunRecordWriteError(err.errno, f"cannot write {path}: {err.strerror or err}") from err


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def claim_new_stem(directory: Path, stem: str, suffix: str) -> str:
    """A file name ``<stem>[_k]<suffix>`` in ``directory`` that did not exist, claimed by exclusive creation.

    Records named by a timestamp (eval results, long-context evaluations) collide when two are written in the same
    second, or when a run directory is copied with its records: the second must get a new name, never overwrite.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for k in range(1000):
        name = stem if k == 0 else f"{stem}_{k}"
        try:
            os.close(os.open(directory / f"{name}{suffix}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return name
        except FileExistsError:
            continue
    raise RunRecordWriteError(17, f"cannot find a free name for {stem}{suffix} in {directory}")
