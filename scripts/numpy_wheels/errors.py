"""Every user-facing error of the toolkit, and its exit code.

An expected failure is raised as one of these and printed by ``log.run_main``
as one line (``prog: error: message``), no traceback; anything else is a bug
and keeps its traceback.  The exit code tells CI what kind of failure it was:

    1  FatalError          something failed (download, build, check)
    2  ConfigurationError  bad input from the user (argument, variable, platform)
    3  NothingToDoError    nothing matched what was asked for
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DownloadError",
    "FatalError",
    "HTTPStatusError",
    "NothingToDoError",
]


class FatalError(Exception):
    """An expected failure: printed as one line, no traceback."""

    return_code = 1


class ConfigurationError(FatalError):
    """A setting, argument or variable the user gave is wrong."""

    return_code = 2


class NothingToDoError(FatalError):
    """Nothing matched what was asked for (no files, no wheels)."""

    return_code = 3


class DownloadError(FatalError):
    """A download failed for good (after its retries) or failed its checks."""


class HTTPStatusError(DownloadError):
    """The server answered with an HTTP error status (kept in ``status``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
