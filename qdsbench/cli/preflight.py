"""Check command-line overrides before Hydra runs, so typos fail with one line that lists the valid choices.

Hydra's own messages for an unknown group option or key span several lines and name no alternatives for keys;
a sweep would also only fail job by job. Here every value of every group override is checked against conf/, and
a single-run command line is composed once to catch misspelled keys.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, OverrideParseException
from omegaconf import DictConfig, OmegaConf


class PreflightError(ValueError):
    pass


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


def group_options(conf_dir: Path, group: str) -> list[str] | None:
    folder = conf_dir / group
    if not folder.is_dir():
        return None
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


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
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            try:
                compose(config_name=config_name, overrides=plain)
            except ConfigCompositionException as err:
                message = str(err)
                if message.startswith("Could not override '"):
                    key = message.split("'")[1]
                    base = compose(config_name=config_name, overrides=[o for o in plain if not o.startswith(f"{key}=")])
                    where, keys = _parent_keys(base, key)
                    raise PreflightError(
                        f"unknown config key '{key}'; valid keys of {where}: {', '.join(keys)} "
                        f"(prefix with + to add a new key)"
                    ) from None
                raise PreflightError(message.splitlines()[0]) from None
    finally:
        GlobalHydra.instance().clear()


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
    if not multirun and not any("," in o.split("=", 1)[-1] and "glob(" not in o for o in overrides):
        check_keys(conf_dir, config_name, overrides)
