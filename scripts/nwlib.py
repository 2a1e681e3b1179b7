"""TEMPORARY re-export of the foundation modules under their old names, so code
that still says ``import nwlib`` keeps working while issue 13 moves it into the
package.  The lead removes this file with one sweep; new code imports from
``numpy_wheels.*``.  Old name -> new module:

    FatalError ConfigurationError NothingToDoError
    DownloadError HTTPStatusError                       -> numpy_wheels.errors
    log VERBOSE QUIET (now the level of the
      ``numpy_wheels`` logger: log.set_verbosity)
    colour ci_error run_main add_version_option
    toolkit_version                                     -> numpy_wheels.log
    download http_session read_body check_hop
    limit LIMITS CANCEL CHUNK                           -> numpy_wheels.net
    safe_extract                                        -> numpy_wheels.archive
    atomic_write file_lock file_hash check_name
    mask_credentials sanitize_url printable
    error_reason MAX_NAME_BYTES                         -> numpy_wheels.files
    _Progress (the download bar)                        -> numpy_wheels.progress.Transfers

New there, with no old name: log.set_verbosity/step/add_verbosity_options,
net.retry_policy, files.human_size, progress.Transfers.
"""

from __future__ import annotations

import sys
import types

from numpy_wheels import log as _log
from numpy_wheels.archive import safe_extract
from numpy_wheels.errors import (
    ConfigurationError,
    DownloadError,
    FatalError,
    HTTPStatusError,
    NothingToDoError,
)
from numpy_wheels.files import (
    MAX_NAME_BYTES,
    atomic_write,
    check_name,
    error_reason,
    file_hash,
    file_lock,
    mask_credentials,
    printable,
    sanitize_url,
)
from numpy_wheels.log import add_version_option, ci_error, colour, log, run_main, toolkit_version
from numpy_wheels.net import (
    CANCEL,
    CHUNK,
    LIMITS,
    check_hop,
    download,
    http_session,
    limit,
    read_body,
)

__all__ = [
    "CANCEL",
    "CHUNK",
    "LIMITS",
    "MAX_NAME_BYTES",
    "ConfigurationError",
    "DownloadError",
    "FatalError",
    "HTTPStatusError",
    "NothingToDoError",
    "add_version_option",
    "atomic_write",
    "check_hop",
    "check_name",
    "ci_error",
    "colour",
    "download",
    "error_reason",
    "file_hash",
    "file_lock",
    "http_session",
    "limit",
    "log",
    "mask_credentials",
    "printable",
    "read_body",
    "run_main",
    "safe_extract",
    "sanitize_url",
    "toolkit_version",
]


class _Flags(types.ModuleType):
    """``nwlib.VERBOSE = True`` / ``nwlib.QUIET`` as callers still write them: read and
    set the level of the ``numpy_wheels`` logger."""

    @property
    def VERBOSE(self) -> bool:
        return _log.is_verbose()

    @VERBOSE.setter
    def VERBOSE(self, value: bool) -> None:
        _log.set_verbosity(verbose=value)

    @property
    def QUIET(self) -> bool:
        return _log.is_quiet()

    @QUIET.setter
    def QUIET(self, value: bool) -> None:
        _log.set_verbosity(quiet=value)


sys.modules[__name__].__class__ = _Flags
