"""A missing dataset is a user problem with a known fix, so it gets a one-line message, not a traceback."""


class DatasetMissingError(FileNotFoundError):
    def __init__(self, name: str, expected: str, how_to_get: str):
        super().__init__(f"dataset '{name}' not found at {expected}; {how_to_get}")
        self.name, self.expected, self.how_to_get = name, expected, how_to_get


class DatasetCorruptError(ValueError):
    """A dataset file exists but is damaged (truncated download, wrong checksum)."""
