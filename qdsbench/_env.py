"""Process-wide settings that must happen before torch / qiskit-aer are imported.

OpenMP's default spin-waiting made torch 3-10x and qiskit-aer ~100x slower on a shared 2-core machine,
so PASSIVE waiting is the default unless the user chose otherwise. W&B is offline unless a mode is set.
"""

import os


def configure_environment() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
