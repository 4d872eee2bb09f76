"""One way to start a Hydra verb: fast ``--help``, the preflight checks, then Hydra.

train, eval, analyze, convert and eval-longctx all go through ``launch`` so that each gets the same one-line errors
before Hydra creates any directory. The verbs that read a finished run (``run_dir=``) also accept it bare
(``qdsbench analyze logs/train/runs/<time>``) and refuse a directory that is not a run before their outputs, which
live inside it, are created there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from qdsbench.cli.preflight import MODE_FLAGS, bare_dir_as_run_dir, preflight, split_overrides
from qdsbench.config import config_dir
from qdsbench.errors import PreflightError
from qdsbench.snapshot import SNAPSHOT, snapshot_path

# Hydra's modes that print something about the config and run nothing: no run directory is needed for them.
INSPECT_FLAGS = {flag for flag, mode in MODE_FLAGS.items() if mode in ("--cfg", "--info", "--shell-completion")}


def check_run_dirs(verb: str, argv: list[str]) -> None:
    """Every ``run_dir=`` value (each value of a sweep) must be a qdsbench run directory."""
    if INSPECT_FLAGS & set(argv):
        return
    overrides, _ = split_overrides(argv)
    given = [o for o in OverridesParser.create().parse_overrides(overrides) if o.key_or_group == "run_dir"]
    if not given:
        raise PreflightError(f"{verb} needs run_dir=<run directory> (a directory under logs/ holding {SNAPSHOT})")
    for override in given:
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            if not snapshot_path(str(value)).is_file():
                what = "does not exist" if not Path(str(value)).exists() else f"has no {SNAPSHOT}"
                raise PreflightError(
                    f"run_dir={value} {what}; pass a qdsbench run directory (e.g. logs/train/runs/<time>)"
                )


def launch(
    config_name: str,
    hydra_main: Callable[[], object],
    verb: str,
    *,
    reads_a_run: bool = False,
    checks: Sequence[Callable[[list[str]], None]] = (),
) -> None:
    """Run ``hydra_main`` on ``sys.argv`` after the checks; a failed check is one line on stderr and exit code 2."""
    argv = bare_dir_as_run_dir(sys.argv[1:]) if reads_a_run else sys.argv[1:]
    if "--help" in argv or "-h" in argv:
        from qdsbench.cli.help import fast_help

        print(fast_help(config_dir(), config_name, verb), end="")
        return
    try:
        preflight(config_dir(), config_name, argv)
        if reads_a_run:
            check_run_dirs(verb, argv)
        for check in checks:
            check(argv)
    except PreflightError as err:
        print(f"qdsbench: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    sys.argv = [sys.argv[0], *argv]
    hydra_main()
