"""The package's user-facing error: raised with one line that names the bad value and the valid choices.

Entry points print it as ``<prog>: error: <message>`` and exit 2; it subclasses ValueError so callers that
already catch ValueError keep working.
"""


class UserError(ValueError):
    """Bad input from the user (an option, a file, a value): one line, no traceback."""
