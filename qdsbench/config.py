"""Where the Hydra configs live and the one way to compose them from Python (scripts, studies, tests)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


def config_dir() -> str:
    """The repository's top-level ``conf/`` (or ``$QDSBENCH_CONF``)."""
    path = Path(os.environ.get("QDSBENCH_CONF", REPO_ROOT / "conf"))
    if not (path / "train.yaml").is_file():
        raise SystemExit(
            f"qdsbench configs not found at {path}; install with `pip install -e .` from a clone "
            "or set QDSBENCH_CONF to the conf/ directory"
        )
    return str(path)


def group_options(conf_dir: str | Path, group: str) -> list[str] | None:
    """The options of a config group as ``group=`` takes them (``sub/option`` for nested files); None if no group.

    A file whose name starts with ``_`` (data/_forecasting.yaml) is a base other options build on through their
    defaults list, not a choice: it is left out here, so help, preflight and error messages never offer it."""
    folder = Path(conf_dir) / group
    if not folder.is_dir():
        return None
    found = (p.relative_to(folder).with_suffix("") for p in folder.rglob("*.yaml"))
    return sorted(o.as_posix() for o in found if not o.name.startswith("_"))


def compose(
    config_name: str = "train", overrides: Sequence[str] = (), conf_dir: str | Path | None = None
) -> DictConfig:
    """Compose a config exactly as the CLI would, without running Hydra's app (no output dir, no logging set-up)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir or config_dir()), version_base="1.3"):
            return hydra_compose(config_name, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config (plain dicts) as one level of dotted keys: {'model': {'depth': 2}} -> {'model.depth': 2}."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}
