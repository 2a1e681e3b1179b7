"""Bounds on what one request or one archive may cost, and the bounded body reader.

Each bound has a default here and can be raised from the environment; ``CANCEL``
is the Ctrl-C flag every download thread checks between blocks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import ConfigurationError, DownloadError
from .files import error_reason

__all__ = ["CANCEL", "CHUNK", "LIMITS", "limit", "read_body"]

CHUNK = 1 << 16

# Bounds on what one request may cost; each can be raised from the environment.
LIMITS = {
    # bytes of a download that declares no size (index entry or Content-Length)
    "NW_MAX_DOWNLOAD_BYTES": 4 * 2**30,
    # bytes of one page (listing, index, JSON API answer)
    "NW_MAX_PAGE_BYTES": 32 * 2**20,
    # seconds one request may take in all, however slowly the server sends
    "NW_REQUEST_DEADLINE": 1800,
    # seconds a server's Retry-After may make us wait before a retry
    "NW_MAX_RETRY_AFTER": 120,
    # bytes an archive may expand to (a NumPy sdist is ~100 MiB, OpenBLAS less)
    "NW_MAX_EXTRACT_BYTES": 512 * 2**20,
    # members an archive may hold
    "NW_MAX_EXTRACT_MEMBERS": 100_000,
}

# Set when the user interrupts: download threads stop at their next block.  One
# per process because there is one Ctrl-C per process.
CANCEL = threading.Event()


def limit(name: str) -> float:
    """The bound ``name`` (see LIMITS), from the environment when set there."""
    raw = os.environ.get(name)
    if not raw:
        return LIMITS[name]
    try:
        value = float(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigurationError(f"{name}={raw!r} is not a positive number")
    return value


def read_body(resp: Any, write: Callable[[bytes], object], *, most: float, deadline: float,
              shown: str, declared: bool = False) -> int:  # fmt: skip
    """Copy a streamed response body to ``write``, at most ``most`` bytes and no later
    than ``deadline`` (time.monotonic()); returns the byte count.

    ``read1`` returns whatever has arrived, so a server that trickles a byte a
    second meets the deadline, and Ctrl-C is seen between blocks.
    """
    import urllib3

    total = 0
    while True:
        if CANCEL.is_set():
            raise KeyboardInterrupt
        if time.monotonic() > deadline:
            raise DownloadError(
                f"{shown}: not complete within {limit('NW_REQUEST_DEADLINE'):g} s "
                "(NW_REQUEST_DEADLINE); stopped"
            )
        try:
            block = resp.raw.read1(CHUNK, decode_content=True)  # as iter_content
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise OSError(f"connection broken: {error_reason(exc)}") from None
        if not block:
            return total
        total += len(block)
        if total > most:
            what = "the declared size" if declared else "the limit"
            raise DownloadError(f"{shown}: body larger than {what} ({most:.0f} bytes); stopped")
        write(block)
