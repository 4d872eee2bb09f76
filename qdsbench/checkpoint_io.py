"""Checkpoints written atomically: a full disk or a kill mid-write leaves the previous checkpoint, never half a file.

``resume=auto`` trusts ``last.ckpt``; Lightning's default writer truncates it in place, so a crash during the write
used to leave a file every later resume died on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from qdsbench.errors import RunRecordWriteError


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as err:  # disk full, read-only: one line naming the file (the previous one is intact)
            tmp.unlink(missing_ok=True)
            raise RunRecordWriteError(
                err.errno, f"cannot write checkpoint {path}: {err.strerror or err}; the previous one is intact"
            ) from err
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
