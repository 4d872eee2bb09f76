"""Where the Hydra configs live: the repository's top-level ``conf/`` (or ``$QDSBENCH_CONF``)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def config_dir() -> str:
    path = Path(os.environ.get("QDSBENCH_CONF", REPO_ROOT / "conf"))
    if not (path / "train.yaml").is_file():
        raise SystemExit(f"qdsbench configs not found at {path}; install with `pip install -e .` from a clone "
                         "or set QDSBENCH_CONF to the conf/ directory")
    return str(path)
