"""The one exception type library code raises; only the CLIs turn it into exit codes."""

from __future__ import annotations

import os


class PgkitError(Exception):
    """A failure the user can act on: which file, and what is wrong with it.

    >>> str(PgkitError("data/x.json", "not valid JSON (line 3)"))
    'data/x.json: not valid JSON (line 3)'
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def __reduce__(self):  # pickles across loky / dask workers with its file and reason
        return type(self), (self.path, self.reason)


class UnsafePickleError(PgkitError):
    """A pickle asked to build something other than plain containers, numbers or arrays."""
