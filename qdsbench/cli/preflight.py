"""Check command-line overrides before Hydra runs, so typos fail with one line that lists the valid choices.

Hydra's own messages for an unknown group option or key span several lines and name no alternatives for keys;
a sweep would also only fail job by job. Here every value of every group override is checked against conf/, and
a single-run command line is composed once to catch misspelled keys.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from qdsbench.config import compose, group_options
from qdsbench.errors import PreflightError

# Hydra's flags that take a value (the next token), and --info's optional one.
VALUE_FLAGS = {
    "--config-name",
    "-cn",
    "--config-path",
    "-cp",
    "--config-dir",
    "-cd",
    "--package",
    "-p",
    "--experimental-rerun",
    "--cfg",
    "-c",
}
INFO_FLAGS = {"--info", "-i"}
INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def bare_dir_as_run_dir(argv: list[str]) -> list[str]:
    """``qdsbench analyze <dir>`` as ``run_dir=<dir>``: a token that is no flag, flag value or override."""
    out, skip_next = [], False
    for index, token in enumerate(argv):
        bare = not skip_next and "=" not in token and not token.startswith("-")
        out.append(f"run_dir={token}" if bare else token)
        skip_next = not skip_next and (
            token in VALUE_FLAGS or (token in INFO_FLAGS and index + 1 < len(argv) and argv[index + 1] in INFO_VALUES)
        )
    return out


def split_overrides(argv: list[str]) -> tuple[list[str], bool]:
    """The overrides of a Hydra command line (every flag and flag value removed) and whether it is a multirun."""
    overrides, skip_next, multirun = [], False, False
    for index, token in enumerate(argv):
        if skip_next:
            skip_next = False
            continue
        if token in ("-m", "--multirun"):
            multirun = True
        elif token in VALUE_FLAGS:
            skip_next = True
        elif token in INFO_FLAGS:
            skip_next = index + 1 < len(argv) and argv[index + 1] in INFO_VALUES
        elif not token.startswith("-"):
            overrides.append(token)
    return overrides, multirun


def check_group_values(conf_dir: Path, overrides: list[str]) -> None:
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        raise PreflightError(f"cannot parse override: {str(err).splitlines()[0]}") from None
    for override in parsed:
        group = override.key_or_group
        options = group_options(conf_dir, group)
        if options is None or override.is_delete() or group.startswith("hydra"):
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            if value is None or isinstance(value, (list, dict)):
                continue
            if str(value) not in options and str(value) != "null":
                raise PreflightError(f"unknown {group} '{value}'; valid choices: {', '.join(options)}")


def _parent_keys(cfg: DictConfig, dotted: str) -> tuple[str, list[str]]:
    parent = dotted.rsplit(".", 1)[0] if "." in dotted else ""
    node = OmegaConf.select(cfg, parent) if parent else cfg
    keys = sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []
    return parent or "the root config", keys


def check_keys(conf_dir: Path, config_name: str, overrides: list[str]) -> None:
    plain = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        compose(config_name, plain, conf_dir)
    except ConfigCompositionException as err:
        message = str(err)
        if key := _unknown_key(message):
            rest = [o for o in plain if not o.startswith(f"{key}=")]
            where, keys = _parent_keys(_compose_without_unknown_keys(conf_dir, config_name, rest), key)
            raise PreflightError(
                f"unknown config key '{key}'; valid keys of {where}: {', '.join(keys)} (prefix with + to add a new key)"
            ) from None
        raise PreflightError(_one_line(conf_dir, message)) from None


def _unknown_key(message: str) -> str | None:
    """The key of Hydra's "Could not override 'k'" (an override of a key the config lacks), else None."""
    return message.split("'")[1] if message.startswith("Could not override '") else None


def _compose_without_unknown_keys(conf_dir: Path, config_name: str, plain: list[str]) -> DictConfig:
    """The config without every override of a key it lacks (Hydra names them one at a time), for the valid keys."""
    while True:
        try:
            return compose(config_name, plain, conf_dir)
        except ConfigCompositionException as err:
            if not (key := _unknown_key(str(err))):
                raise
            plain = [o for o in plain if not o.startswith(f"{key}=")]


def _one_line(conf_dir: Path, message: str) -> str:
    """Hydra's first line, plus the valid choices it lists on later lines (an unknown option inside an experiment
    file) or, for an unknown group in a defaults list, the groups there are."""
    first, lines = message.splitlines()[0], message.splitlines()
    if any(line.startswith("Available options in") for line in lines):
        start = next(i for i, line in enumerate(lines) if line.startswith("Available options in")) + 1
        options = [line.strip() for line in lines[start:] if line.startswith("\t")]
        options = options[: next((i for i, o in enumerate(options) if o.startswith("provider=")), len(options))]
        return f"{first}; valid choices: {', '.join(options)}"
    if "No match in the defaults list" in first:
        groups = sorted(d.name for d in conf_dir.iterdir() if d.is_dir() and d.name not in ("hydra", "local"))
        return f"{first} Valid groups: {', '.join(groups)}"
    return first


MODE_FLAGS = {
    "-m": "-m",
    "--multirun": "-m",
    "--cfg": "--cfg",
    "-c": "--cfg",
    "--info": "--info",
    "-i": "--info",
    "--shell-completion": "--shell-completion",
    "-sc": "--shell-completion",
    "--run": "--run",
    "-r": "--run",
}


def check_modes(argv: list[str]) -> None:
    """Hydra takes one of -m / --cfg / --info / --shell-completion / --run (else a traceback)."""
    given = list(dict.fromkeys(MODE_FLAGS[t] for t in argv if t in MODE_FLAGS))
    if len(given) > 1:
        hint = " (--cfg job prints one job's config: drop -m and give single values)" if "-m" in given else ""
        raise PreflightError(
            f"{' and '.join(given)} cannot be combined; give one of -m, --cfg, --info, --shell-completion, --run{hint}"
        )


def preflight(conf_dir: str | Path, config_name: str, argv: list[str]) -> None:
    conf_dir = Path(conf_dir)
    check_modes(argv)
    overrides, multirun = split_overrides(argv)
    check_group_values(conf_dir, overrides)
    if not any("glob(" in o for o in overrides):  # a sweep is checked with each swept key's first value
        check_keys(conf_dir, config_name, first_sweep_values(overrides) if multirun else overrides)


def first_sweep_values(overrides: list[str]) -> list[str]:
    """The overrides of a sweep's first job, enough to catch a misspelled key before any job starts."""
    first = []
    for override, text in zip(OverridesParser.create().parse_overrides(overrides), overrides):
        if override.is_sweep_override():
            try:
                value = next(iter(override.sweep_string_iterator()), None)
            except HydraException:  # interval(...), for Optuna: no first value to compose with, left out
                continue
            if value is None:
                continue
            text = f"{override.get_key_element()}={value}"
        first.append(text)
    return first
