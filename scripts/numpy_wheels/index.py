"""The package index: one rule for its URL, one client (pypi-simple) for its pages.

The URL, first found wins: the caller's own setting (``--index-url``,
NW_OPENBLAS_INDEX_URL), NW_INDEX_URL, pip's index (PIP_INDEX_URL, then pip's
configuration ``global.index-url``), then pypi-simple's default.  So the sdist,
OpenBLAS and the build's pip all read the same index unless told otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from typing import Any

from .errors import FatalError
from .files import error_reason, sanitize_url
from .log import log
from .net import http_session


class NotOnIndexError(FatalError):
    """The index answered, and has no such project."""


def index_url(explicit: str | None = None) -> str:
    """The simple index's URL by the rule above."""
    for url in (explicit, os.environ.get("NW_INDEX_URL"), os.environ.get("PIP_INDEX_URL")):
        if url:
            return url
    return _pip_configured() or _default()


@functools.cache
def _pip_configured() -> str:
    """pip's configured index (pip.conf), asked once per process."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    return ""


def _default() -> str:
    from pypi_simple import PYPI_SIMPLE_ENDPOINT

    return PYPI_SIMPLE_ENDPOINT


def project_page(project: str, url: str, timeout: float = 60) -> Any:
    """``project``'s page (a pypi-simple ProjectPage) on the index at ``url``.

    Read within the bounds of net.http_session; any client error (HTTP, content
    type, JSON) is one line with the credentials masked.
    """
    from pypi_simple import NoSuchProjectError, PyPISimple

    shown = sanitize_url(url)
    log(f"querying {shown} for {project}", verbose_only=True)
    try:
        with PyPISimple(endpoint=url, session=http_session()) as client:
            return client.get_project_page(project, timeout=timeout)
    except NoSuchProjectError:
        raise NotOnIndexError(f"{project} is not on the index {shown}") from None
    except FatalError:
        raise
    except Exception as exc:
        raise FatalError(
            f"cannot read the index {shown}: {type(exc).__name__}: {error_reason(exc)}"
        ) from None
