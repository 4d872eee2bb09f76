"""What a run prints: one handler per message, the run's log in ``<run dir>/train.log``, no library noise.

Hydra's ``job_logging`` (conf/hydra/default.yaml) puts two handlers on the root logger: the console (short lines,
:class:`ConsoleFormatter`, :class:`ConsoleFilter`) and ``<run dir>/<job name>.log`` (timestamped). Lightning adds
handlers of its own when it is imported; :func:`route_lightning_logs` removes them once the root logger has
handlers, so each record is written once to each place. Nothing here imports torch or lightning: Hydra imports this
module while it configures logging, before a run starts.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

# Lightning's logger for rank_zero_info / rank_zero_debug (lightning.pytorch sets it when imported).
LIGHTNING_RANK_ZERO = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
# Lightning 2.6 logs this tip on every Trainer whose loggers are not a LitLogger; no setting turns it off.
LITLOGGER_TIP = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]"
# Printed on every Trainer: useful when there is an accelerator, noise when there is none (shown at DEBUG).
NO_ACCELERATOR = ("GPU available: False, used: False", "TPU available: False, using: 0 TPU cores")
# The config tree's top-level order (then every other key); keys starting with "_" are bookkeeping, not shown.
CONFIG_ORDER = ("data", "attention", "model", "task", "trainer", "callbacks", "logger", "paths", "extras")


def silence_known_warnings() -> None:
    """Warnings that only their library can fix, each silenced by its exact message (nothing broader)."""
    # lightning.pytorch.utilities._pytree calls torch's LeafSpec(), which torch >= 2.10 deprecates; the call is
    # Lightning's own (up to 2.6.x), nothing we pass can avoid it, and it is printed once per process.
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
    # Lightning's SLURM environment hints "srun is available but not used" whenever srun is on PATH (CI installs
    # Slurm), even for local runs; passing a non-SLURM environment plugin would also switch off torchrun detection.
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")


class ConsoleFormatter(logging.Formatter):
    """INFO lines are the message alone; other levels say their level (and warnings from libraries their logger)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno == logging.INFO:
            return message
        source = (
            "" if record.name in ("root", "py.warnings") or record.name.startswith("qdsbench") else f" [{record.name}]"
        )
        return f"{record.levelname}{source}: {message}"


class ConsoleFilter(logging.Filter):
    """Keeps records logged with ``extra={"console": False}`` out of the console (they still go to train.log):
    the per-epoch line while a live progress bar already shows the same numbers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True) is not False


def _debugging() -> bool:
    return logging.getLogger("qdsbench").isEnabledFor(logging.DEBUG) or logging.getLogger("lightning").isEnabledFor(
        logging.DEBUG
    )


class LightningNoiseFilter(logging.Filter):
    """On Lightning's rank-zero logger: the litlogger tip is dropped; "GPU available: False" and "TPU available:
    False" become DEBUG records, shown only when debugging (``hydra.verbose=true`` or ``hydra.verbose=lightning``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(LITLOGGER_TIP):
            return False
        if message in NO_ACCELERATOR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return _debugging()
        return True


def route_lightning_logs() -> None:
    """Lightning's records go through the root logger's handlers (Hydra's console and train.log), once each.

    ``import lightning`` adds a stream handler to the ``lightning`` logger (and, when the root logger had no
    handlers at that moment, one to ``lightning.pytorch`` with ``propagate=False``): under Hydra every message was
    printed twice, or never reached train.log. Without root handlers (a plain ``python`` session) nothing changes."""
    for name in LIGHTNING_RANK_ZERO:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LightningNoiseFilter) for f in logger.filters):
            logger.addFilter(LightningNoiseFilter())
    if not logging.getLogger().handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout):
                logger.removeHandler(handler)
        logger.propagate = True


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if file is not None:  # an explicit stream (warnings.showwarning(..., file=f)) keeps Python's behaviour
        _SHOWWARNING(message, category, filename, lineno, file, line)
        return
    logging.getLogger("py.warnings").warning("%s: %s (%s:%s)", category.__name__, message, filename, lineno)


_SHOWWARNING = warnings.showwarning


def capture_warnings() -> None:
    """Python warnings become one-line ``py.warnings`` log records, so they reach the console once and train.log
    too. Only under Hydra (its job logging is configured): the process is then a run of its own."""
    global _SHOWWARNING
    if warnings.showwarning is not _log_warning:
        _SHOWWARNING = warnings.showwarning
        warnings.showwarning = _log_warning


def is_terminal(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def config_tree(cfg: Any, highlight: bool = True):
    """The composed config as a rich Tree (the lightning-hydra-template layout): one branch per group in
    CONFIG_ORDER, then the other groups, then the top-level values in one branch. YAML is highlighted (``highlight``)
    for a terminal; plain text otherwise, which rich does not pad to the console's width."""
    from omegaconf import DictConfig, OmegaConf
    from rich.syntax import Syntax
    from rich.text import Text
    from rich.tree import Tree

    def block(text: str):
        text = text.rstrip("\n") or "{}"
        return Syntax(text, "yaml", background_color="default") if highlight else Text(text)

    def as_yaml(node: Any) -> str:
        try:
            return OmegaConf.to_yaml(node, resolve=True)
        except Exception:  # an interpolation that only resolves under Hydra (${hydra:...}): show it as written
            return OmegaConf.to_yaml(node, resolve=False)

    tree = Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in CONFIG_ORDER if k in cfg] + [k for k in cfg if k not in CONFIG_ORDER]
    keys = [k for k in keys if not str(k).startswith("_")]
    groups = [k for k in keys if isinstance(cfg.get(k), DictConfig)]
    values = [k for k in keys if k not in groups]
    for key in groups:
        tree.add(str(key), style="dim", guide_style="dim").add(block(as_yaml(cfg.get(key))))
    if values:
        top = OmegaConf.masked_copy(cfg, values)
        tree.add("(top level)", style="dim", guide_style="dim").add(block(as_yaml(top)))
    return tree


def print_config_tree(cfg: Any, save_to: Path | None = None) -> None:
    """Print the config tree to stdout and, when ``save_to`` is given, write the same tree there as plain text."""
    from rich.console import Console

    stdout = Console()
    stdout.print(config_tree(cfg, highlight=stdout.is_terminal))
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as file:
            Console(file=file, width=120, color_system=None).print(config_tree(cfg, highlight=False))
