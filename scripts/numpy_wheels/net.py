"""The network layer: one requests ``Session`` factory, bounded reads, and the
one download function.

Every request goes through ``http_session``: urllib3's ``Retry`` retries
connection errors, read timeouts, 429 and 5xx with exponential backoff and
honours ``Retry-After`` (capped at NW_MAX_RETRY_AFTER); every redirect hop
keeps to http(s) and never drops from https to http; a page is read within
NW_MAX_PAGE_BYTES and NW_REQUEST_DEADLINE.  ``download`` adds what no library
does: the body goes to ``.part``, is resumed with a Range after a break, is
bounded, checked, and only then renamed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from .errors import DownloadError, HTTPStatusError
from .files import error_reason, file_hash, printable, sanitize_url
from .limits import limit, read_body
from .log import log
from .progress import FileBar, Transfers

__all__ = ["check_hop", "download", "http_session", "retry_policy"]


def check_hop(source: str, target: str, allow_insecure: bool = False) -> None:
    """The scheme rule, for the first URL and every redirect: http(s) only, and
    never from https down to plain http unless insecure URLs were allowed."""
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(
            f"{sanitize_url(source)} redirects to {sanitize_url(target)!r}: not http(s); refused"
        )
    if scheme == "http" and urlsplit(source).scheme.lower() == "https" and not allow_insecure:
        raise DownloadError(
            f"{sanitize_url(source)} redirects to plain http ({sanitize_url(target)}); refused"
        )


@functools.cache
def _retry_class() -> type:
    from urllib3.exceptions import InvalidHeader
    from urllib3.util.retry import Retry

    class LoggedRetry(Retry):
        """urllib3's Retry that says what it retries, and treats a Retry-After it
        cannot read as absent (backoff instead of a failed request)."""

        def get_retry_after(self, response):
            try:
                return super().get_retry_after(response)
            except InvalidHeader:
                return None

        def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                      _stacktrace=None):  # fmt: skip
            new = super().increment(method, url, response, error, _pool, _stacktrace)
            attempt = len(new.history)
            attempts = attempt + (new.total or 0) + 1
            if response is not None and response.status:
                why = f"HTTP {response.status}"
            else:
                why = _reason(error) if error else "failed"
            # what urllib3 sleeps next: the server's Retry-After, else the backoff
            wait = new.get_retry_after(response) if response is not None else None
            wait = wait or new.get_backoff_time()
            after = f" after {wait:g} s" if wait else ""
            log(f"{_shown(url, _pool)}: {why}, retrying ({attempt}/{attempts}){after}")
            return new

    return LoggedRetry


def _shown(url: str | None, pool: Any) -> str:
    """The URL urllib3 retries (it passes the path and its pool), as it may be shown."""
    url = url or ""
    if pool is None or "://" in url:
        return sanitize_url(url)
    default = {"http": 80, "https": 443}.get(pool.scheme)
    host = f"[{pool.host}]" if ":" in (pool.host or "") else pool.host
    port = "" if pool.port in (None, default) else f":{pool.port}"
    return f"{pool.scheme}://{host}{port}{url}"


def retry_policy(attempts: int = 1, backoff: float = 0.5) -> Any:
    """urllib3 ``Retry`` for ``attempts`` tries of a GET: connection errors, read
    timeouts, 429 and 5xx, waiting ``backoff * 2**n`` or what Retry-After asks."""
    return _retry_class()(
        total=max(0, attempts - 1),
        backoff_factor=backoff,
        status_forcelist=frozenset([429, *range(500, 600)]),
        allowed_methods=frozenset(["GET", "HEAD"]),
        raise_on_status=False,  # the last answer comes back: the caller names its status
        respect_retry_after_header=True,
        retry_after_max=int(limit("NW_MAX_RETRY_AFTER")),
    )


def http_session(*, retries: int = 1, backoff: float = 0.5, allow_insecure: bool = False) -> Any:
    """The requests session of the toolkit: ``retries`` attempts per request
    (``retry_policy``), the scheme rule on every redirect, and any page (a request
    without ``stream=True``) read within NW_MAX_PAGE_BYTES and NW_REQUEST_DEADLINE."""
    from requests.adapters import HTTPAdapter

    session = _session_class()(allow_insecure)
    adapter = HTTPAdapter(max_retries=retry_policy(retries, backoff))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@functools.cache
def _session_class() -> type:
    import requests

    class BoundedSession(requests.Session):
        def __init__(self, allow_insecure: bool) -> None:
            super().__init__()
            self.allow_insecure = allow_insecure

        def get_redirect_target(self, resp):
            target = super().get_redirect_target(resp)
            if target:
                check_hop(resp.url, urljoin(resp.url, target), self.allow_insecure)
            return target

        def request(self, method, url, *args, **kwargs):
            if kwargs.get("stream"):
                return super().request(method, url, *args, **kwargs)
            deadline = time.monotonic() + limit("NW_REQUEST_DEADLINE")
            kwargs["stream"] = True
            resp = super().request(method, url, *args, **kwargs)
            chunks: list[bytes] = []
            try:
                read_body(resp, chunks.append, most=limit("NW_MAX_PAGE_BYTES"),
                          deadline=deadline, shown=sanitize_url(url))  # fmt: skip
            except OSError as exc:
                raise requests.ConnectionError(str(exc)) from None
            finally:
                resp.close()
            resp._content = b"".join(chunks)
            return resp

    return BoundedSession


def download(
    url: str,
    dest: Path | str,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    session: Any = None,
    retries: int = 5,
    backoff: float = 0.5,
    timeout: float = 30.0,
    resume: bool = True,
    progress: Transfers | bool | None = None,
    verify: Callable[[Path], None] | None = None,
    allow_insecure: bool = False,
) -> Path:
    """Fetch ``url`` to ``dest``: the one download function of the project.

    The request is retried by the session's policy (``retries`` attempts with
    ``backoff``, unless a ``session`` brings its own): connection errors, read
    timeouts, 429 and 5xx, honouring Retry-After; any other 4xx fails at once.
    The body goes to ``dest + '.part'``; a body that breaks off, or a ``.part``
    left by an earlier run, is resumed with an HTTP range when the server
    honours it, again up to ``retries`` attempts.  Bounded: never more than the
    declared size (``size``, else Content-Length, else NW_MAX_DOWNLOAD_BYTES),
    never longer than NW_REQUEST_DEADLINE per attempt, http(s) only on every
    redirect hop.  The finished file is checked (``size``, ``sha256``/``md5``,
    then ``verify(path)``) and only then renamed to ``dest``; on a mismatch the
    partial file is deleted.  Returns ``dest``.

    ``progress``: the ``Transfers`` display this file is one of (``-j``), else
    one of its own: a bar on a terminal, one line otherwise (``False``: none).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    own_session = session is None
    if session is None:
        session = http_session(retries=retries, backoff=backoff, allow_insecure=allow_insecure)
    with contextlib.ExitStack() as stack:
        if own_session:
            stack.callback(session.close)
        if not isinstance(progress, Transfers):
            # its own: a bar on a terminal, else the one line of a finished file
            own = Transfers(enabled=progress is not False)
            progress = stack.enter_context(own)
        bar = progress.file(dest.name)
        try:
            _download(session, url, dest, bar, size=size, sha256=sha256, md5=md5,
                      verify=verify, timeout=timeout, resume=resume)  # fmt: skip
        except BaseException:
            bar.finish(ok=False)
            raise
        bar.finish()
    return dest


def _download(session, url, dest, bar, *, size, sha256, md5, verify, timeout, resume) -> None:
    """``download`` after its set-up: the attempts (resuming the body), checks, rename."""
    import requests
    from urllib3.exceptions import MaxRetryError

    shown = sanitize_url(url)
    part = dest.with_name(dest.name + ".part")
    never_works = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                   requests.exceptions.MissingSchema)  # fmt: skip
    try:  # the session's Retry, which also counts the attempts at the body
        policy = session.get_adapter(url).max_retries
    except requests.exceptions.InvalidSchema:
        policy = retry_policy()
    while True:
        try:
            _fetch_once(session, url, part, size, timeout, resume, bar)
            break
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
        except requests.RequestException as exc:
            # Failed below HTTP after the session's own attempts (one for a URL that
            # can never work).
            tries = 1 if isinstance(exc, never_works) else _attempts(policy)
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"download of {shown} failed after {tries} attempts: {_reason(exc)}"
            ) from None
        except OSError as exc:  # the body broke off: resume from the .part
            try:
                policy = policy.increment("GET", url, error=exc)
            except MaxRetryError:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"download of {shown} failed after {len(policy.history) + 1} attempts: "
                    f"{_reason(exc)}"
                ) from None
            log(f"{shown}: {_reason(exc)}, retrying ({len(policy.history)}/{_attempts(policy)})")
            policy.sleep()
    _check_file(part, shown, size=size, sha256=sha256, md5=md5, verify=verify)
    os.replace(part, dest)


def _attempts(policy: Any) -> int:
    """How many attempts a Retry allows in all (those made and those left)."""
    return len(policy.history) + max(policy.total or 0, 0) + 1


def _reason(exc: BaseException) -> str:
    """Why a request failed: urllib3's cause rather than requests' retry summary,
    without the ``HTTPConnection(host=..., port=...):`` the URL beside it says."""
    from urllib3.exceptions import MaxRetryError

    inner = exc.args[0] if exc.args else None
    if isinstance(inner, MaxRetryError) and inner.reason is not None:
        exc = inner.reason
    return re.sub(r"^HTTPS?Connection(?:Pool)?\([^)]*\): ", "", error_reason(exc))


def _fetch_once(session, url, part, size, timeout, resume, bar: FileBar) -> None:
    shown = sanitize_url(url)
    offset = part.stat().st_size if resume and part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
        deadline = time.monotonic() + limit("NW_REQUEST_DEADLINE")
        if resp.status_code == 416 and offset:
            # Asked for a range past the end: the .part is stale; start over.
            part.unlink()
            raise OSError("server refused the resume range")
        if resp.status_code >= 400:
            raise HTTPStatusError(
                f"{shown}: HTTP {resp.status_code} {printable(resp.reason or '', 80)}",
                resp.status_code,
            )
        appending = offset and resp.status_code == 206
        if offset and not appending:
            offset = 0  # server ignored the range: rewrite from the start
        length = resp.headers.get("Content-Length")
        encoded = resp.headers.get("Content-Encoding", "identity").lower() != "identity"
        # Content-Length counts the encoded bytes: no bound on the decoded body then.
        known = length and length.isdigit() and not encoded
        announced = offset + int(length) if known else None
        if size is not None and announced is not None and announced > size:
            raise DownloadError(f"{shown}: the server announces {announced} bytes, not {size}")
        expected = announced if announced is not None else size  # announced <= size here
        most = expected if expected is not None else limit("NW_MAX_DOWNLOAD_BYTES")
        bar.start(expected, offset)
        with open(part, "ab" if appending else "wb") as out:

            def write(block: bytes) -> None:
                out.write(block)
                bar.advance(len(block))

            read_body(resp, write, most=most - offset, deadline=deadline, shown=shown,
                      declared=expected is not None)  # fmt: skip
        got = part.stat().st_size
        if expected is not None and got < expected:
            raise OSError(f"truncated body: got {got} of {expected} bytes")


def _check_file(path, shown, *, size, sha256, md5, verify) -> None:
    try:
        got_size = path.stat().st_size
        if size is not None and got_size != size:
            raise DownloadError(f"size mismatch for {shown}: expected {size}, got {got_size}")
        for algorithm, want in (("sha256", sha256), ("md5", md5)):
            if want:
                got = file_hash(path, algorithm)
                if got.lower() != want.lower():
                    raise DownloadError(
                        f"{algorithm} mismatch for {shown}: expected {want}, got {got}"
                    )
        if verify is not None:
            verify(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
