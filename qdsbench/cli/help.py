"""``--help`` for the Hydra entry points, built from conf/ on disk in well under a second.

Hydra's own ``--help`` composes every option of every config group (158 compositions here, 8-19 s); this lists the
same groups and options from the file tree instead, with the root config's header comment as the usage examples.
Hydra's text stays one flag away (``--hydra-help``).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from omegaconf import OmegaConf

from qdsbench.config import group_options

FLAGS = [
    ("KEY=VALUE, group=option", "Hydra overrides (after the experiment preset in the defaults list)"),
    ("-m / --multirun", "sweep: comma-separated values, or hparams_search=<preset> (Optuna)"),
    ("--cfg job", "print the composed config and exit (--resolve to resolve interpolations)"),
    ("--info defaults-tree", "how the config was composed"),
    ("--hydra-help", "Hydra's own flags"),
]


def header_comment(path: Path) -> list[str]:
    """The comment block at the top of a YAML file, without ``# @package`` lines."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip() if line.startswith("# ") or line == "#" else line[1:]
        if not text.startswith("@package"):
            lines.append(text)
    return lines


def defaults_groups(path: Path) -> list[tuple[str, str]]:
    """(group, default option) of the root config's defaults list, in override order; ``???`` = to be given."""
    out = []
    for entry in OmegaConf.to_container(OmegaConf.load(path)).get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                group = key.removeprefix("optional ").removeprefix("override ")
                out.append((group, {None: "null", "???": "(required)"}.get(value, str(value))))
    return out


def fast_help(conf_dir: str | Path, config_name: str, prog: str) -> str:
    conf_dir = Path(conf_dir)
    root = conf_dir / f"{config_name}.yaml"
    lines = [f"usage: {prog} [KEY=VALUE ...] [group=option ...] [-m] [--cfg job]", ""]
    lines += [f"  {line}" for line in header_comment(root)] + ["", "config groups (default first, then the options):"]
    for group, default in defaults_groups(root):
        options = group_options(conf_dir, group)
        if options is None or group in ("hydra", "paths"):
            continue
        rest = [o for o in options if o != default]
        text = f"{default}" + (f" | {', '.join(rest)}" if rest else "")
        lines += textwrap.wrap(text, width=118, initial_indent=f"  {group:<15} ", subsequent_indent=" " * 18)
    lines += ["", "flags:"] + [f"  {flag:<26} {what}" for flag, what in FLAGS]
    return "\n".join(lines) + "\n"
