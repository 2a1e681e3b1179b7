"""Shared helpers for the numpy-wheels scripts: errors, logging, hashing,
one download function, safe archive extraction and atomic writes.

Every script in scripts/ imports from here; nothing here does work at import
time.  Exit codes (one place, so CI can tell failures apart):

    1  FatalError          something failed (download, build, check)
    2  ConfigurationError  bad input from the user (argument, variable, platform)
    3  NothingToDoError    nothing matched what was asked for
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import threading
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

__all__ = [
    "ConfigurationError",
    "DownloadError",
    "FatalError",
    "NothingToDoError",
    "add_version_option",
    "atomic_write",
    "check_name",
    "ci_error",
    "colour",
    "download",
    "error_reason",
    "file_hash",
    "file_lock",
    "http_session",
    "log",
    "printable",
    "run_main",
    "safe_extract",
    "sanitize_url",
    "toolkit_version",
]

CHUNK = 1 << 16


class FatalError(Exception):
    """An expected failure: printed as one line, no traceback."""

    return_code = 1


class ConfigurationError(FatalError):
    return_code = 2


class NothingToDoError(FatalError):
    return_code = 3


class DownloadError(FatalError):
    pass


class HTTPStatusError(DownloadError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# There is only one stderr per process, so a module-level verbosity is justified.
VERBOSE = bool(os.environ.get("NW_VERBOSE"))
QUIET = bool(os.environ.get("NW_QUIET"))  # only errors and results


def log(message: str, *, verbose_only: bool = False) -> None:
    """Progress and diagnostics go to stderr; stdout is for results."""
    if (verbose_only and not VERBOSE) or QUIET:
        return
    print(message, file=sys.stderr, flush=True)


def toolkit_version() -> str:
    """The one version of the whole toolkit: the installed metadata, else pyproject.toml."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numpy-wheels-toolkit")
    except PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


def add_version_option(parser: Any) -> None:
    """``--version``: the program name and the toolkit's version (argparse)."""
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s (numpy-wheels-toolkit) {toolkit_version()}",
    )


_COLOURS = {"PASS": "32", "FAIL": "31", "WARN": "33", "passed": "32", "failed": "31"}


def colour(word: str, stream: IO[str] | None = None, text: str | None = None) -> str:
    """``text`` (default ``word``) coloured for PASS/FAIL/WARN on a terminal.

    NO_COLOR (https://no-color.org) always wins; FORCE_COLOR colours a pipe too.
    """
    text = word if text is None else text
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or word not in _COLOURS:
        return text
    if not (os.environ.get("FORCE_COLOR") or (hasattr(stream, "isatty") and stream.isatty())):
        return text
    return f"\033[{_COLOURS[word]}m{text}\033[0m"


def ci_error(message: str, title: str = "") -> None:
    """An error annotation in the CI's own syntax (GitHub Actions, Azure Pipelines)."""
    first = message.strip().splitlines()[0] if message.strip() else title
    if os.environ.get("GITHUB_ACTIONS") == "true":
        # workflow-command escaping: % and newlines in data, also : and , in properties
        def esc(text: str) -> str:
            return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

        prop = esc(title).replace(":", "%3A").replace(",", "%2C")
        print(f"::error{' title=' + prop if title else ''}::{esc(first)}", flush=True)
    elif os.environ.get("TF_BUILD"):
        print(f"##vso[task.logissue type=error]{first}", flush=True)


def run_main(main: Callable[[list[str] | None], int], prog: str) -> None:
    """Call ``main`` and turn expected errors into one line and an exit code."""
    try:
        code = main(None)
    except FatalError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        ci_error(str(exc), prog)
        code = exc.return_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


# ``scheme://`` and the authority after it (up to the first / ? # or blank)
_AUTHORITY_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#]*)")
# ``scheme://user:pa/ss@`` whose password ends the authority early (not a ``host:port``)
_EARLY_END_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@:]*:(?!\d*(?:[/?#\s]|$))[^\s@]*@")


def mask_credentials(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the userinfo masked.

    Works on text no URL parser accepts (quotes, ``'`` or ``/`` in a password,
    a broken IPv6 host), since exception messages quote such URLs whole.
    """

    def whole(match: re.Match[str]) -> str:
        if "@" not in match[2]:
            return match[0]
        return f"{match[1]}********@{match[2].rsplit('@', 1)[1]}"

    return _EARLY_END_RE.sub(r"\1********@", _AUTHORITY_RE.sub(whole, text))


def sanitize_url(url: str) -> str:
    """Mask credentials in a URL (``user:pass@host`` -> ``********@host``), parsable or not."""
    return mask_credentials(url)


def printable(text: str, limit: int = 200) -> str:
    """``text`` safe to show on a terminal: control characters and escape sequences
    spelled out (``\\x1b``), cut at ``limit`` characters."""
    shown = "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text[: limit + 1]
    )
    return shown if len(text) <= limit else shown[:limit] + "..."


# The longest file name the common filesystems store (bytes, as ext4 and APFS count).
MAX_NAME_BYTES = 255


def check_name(name: object, what: str) -> str:
    """``name`` if it is one plain path component; FatalError (one line) otherwise.

    Every name a page, an index or an archive gives us passes here before any
    filesystem use: no directory part, no ``.``/``..`` or hidden name, no control,
    format or line-separator character (terminal escapes, NUL), at most 255 bytes.
    """
    if not isinstance(name, str) or not name:
        raise FatalError(f"{what}: empty or missing file name")
    shown = printable(name, 80)
    if "\x00" in name:
        raise FatalError(f"{what}: file name {shown!r} holds a NUL byte")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise FatalError(
            f"{what}: file name of {size} bytes is longer than {MAX_NAME_BYTES}: {shown!r}"
        )
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        raise FatalError(f"{what}: file name {shown!r} holds control characters")
    if "/" in name or "\\" in name or name.startswith(".") or re.match(r"^[A-Za-z]:", name):
        raise FatalError(f"{what}: file name {shown!r} is not one plain path component")
    return name


def file_hash(path: Path | str, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fobj:
        for block in iter(lambda: fobj.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` whole or not at all (temp file in the same dir, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode) as fobj:
            yield fobj
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide a report from others
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: Path | str, what: str) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` for the ``with`` block.

    ``path`` is a lock file (created; it records its holder) or an existing
    directory (locked as it is, so nothing is added to it).  A second process
    asking for it says who holds it and waits; the kernel releases the lock
    when its holder exits, however it exits.  A lock file stays (removing it
    would race with a waiter).  Without fcntl (Windows) runs are not
    serialised: CI there runs one job per checkout.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = Path(path)
    if path.is_dir():
        fd = os.open(path, os.O_RDONLY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for {what}: in use by {_lock_holder(fd, path)} (lock {path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        if not path.is_dir():
            os.ftruncate(fd, 0)
            since = time.strftime("%Y-%m-%d %H:%M:%S")
            holder = f"pid {os.getpid()} ({Path(sys.argv[0]).name}, since {since})"
            os.pwrite(fd, holder.encode(), 0)
        yield
    finally:
        os.close(fd)


def _lock_holder(fd: int, path: Path) -> str:
    """Who holds the lock on ``fd``: what the holder wrote, else the kernel's record."""
    if not path.is_dir():
        text = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
        if text:
            return printable(text)
    inode = os.fstat(fd).st_ino
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
                comm = Path(f"/proc/{fields[4]}/comm")
                name = comm.read_text().strip() if comm.exists() else "?"
                return f"pid {fields[4]} ({printable(name)})"
    return "another process"


# --------------------------------------------------------------------------- download


class _Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, name: str, total: int | None, enabled: bool) -> None:
        self.name, self.total, self.done = name, total, 0
        self.enabled = enabled
        self._last = 0.0

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if self.enabled and now - self._last > 0.1:
            self._last = now
            self._draw()

    def _draw(self, end: str = "") -> None:
        mib = self.done / 2**20
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"{self.name[:40]:40} [{bar:30}] {mib:7.1f} MiB {frac:4.0%}"
        else:
            text = f"{self.name[:40]:40} {mib:7.1f} MiB"
        sys.stderr.write("\r" + text + end)
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw("\n")


def _want_progress(size: int | None) -> bool:
    return sys.stderr.isatty() and (size is None or size > 4 * 2**20)


# Bounds on what one request may cost; each can be raised from the environment.
LIMITS = {
    # bytes of a download that declares no size (index entry or Content-Length)
    "NW_MAX_DOWNLOAD_BYTES": 4 * 2**30,
    # bytes of one page (listing, index, JSON API answer)
    "NW_MAX_PAGE_BYTES": 32 * 2**20,
    # seconds one request may take in all, however slowly the server sends
    "NW_REQUEST_DEADLINE": 1800,
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


def http_session(*, allow_insecure: bool = False) -> Any:
    """A requests session that applies the scheme rule to every redirect and reads
    any page (a request without ``stream=True``) within NW_MAX_PAGE_BYTES and
    NW_REQUEST_DEADLINE."""
    return _session_class()(allow_insecure)


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
    progress: bool | None = None,
    verify: Callable[[Path], None] | None = None,
    allow_insecure: bool = False,
) -> Path:
    """Fetch ``url`` to ``dest``: the one download function of the project.

    The body goes to ``dest + '.part'``; a ``.part`` left by an earlier attempt is
    resumed with an HTTP range when the server honours it.  Connection errors,
    timeouts, truncated bodies, 429 and 5xx are retried with exponential
    backoff; any other 4xx fails at once.  Bounded: never more than the declared
    size (``size``, else Content-Length, else NW_MAX_DOWNLOAD_BYTES), never longer
    than NW_REQUEST_DEADLINE per attempt, http(s) only on every redirect hop.
    The finished file is checked (``size``, ``sha256``/``md5``, then
    ``verify(path)``) and only then renamed to ``dest``; on a mismatch the
    partial file is deleted.  Returns ``dest``.
    """
    import requests  # imported here: the module is also used by tools without requests

    dest = Path(dest)
    shown = sanitize_url(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own_session = session is None
    session = session or http_session(allow_insecure=allow_insecure)
    _never_works = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                    requests.exceptions.MissingSchema)  # fmt: skip
    try:
        attempt = 0
        while True:
            attempt += 1
            try:
                _fetch_once(session, url, part, size, timeout, resume, progress, dest.name)
                break
            except HTTPStatusError as exc:
                retryable = exc.status == 429 or exc.status >= 500
                if not retryable or attempt >= retries:
                    part.unlink(missing_ok=True)
                    raise
                log(f"{shown}: HTTP {exc.status}, retrying ({attempt}/{retries})")
            except DownloadError:
                part.unlink(missing_ok=True)
                raise
            except (requests.RequestException, OSError) as exc:
                if attempt >= retries or isinstance(exc, _never_works):
                    part.unlink(missing_ok=True)
                    raise DownloadError(
                        f"download of {shown} failed after {attempt} attempts: {error_reason(exc)}"
                    ) from None
                log(f"{shown}: {error_reason(exc)}, retrying ({attempt}/{retries})")
            time.sleep(backoff * 2 ** (attempt - 1))
        _check_file(part, shown, size=size, sha256=sha256, md5=md5, verify=verify)
        os.replace(part, dest)
        return dest
    finally:
        if own_session:
            session.close()


def error_reason(exc: BaseException) -> str:
    """The first line of an exception's message: credentials masked, control characters
    spelled out (servers choose part of the text)."""
    text = str(exc).strip() or type(exc).__name__
    return printable(mask_credentials(text.splitlines()[0]), 500)


def _fetch_once(session, url, part, size, timeout, resume, progress, name) -> None:
    deadline = time.monotonic() + limit("NW_REQUEST_DEADLINE")
    shown = sanitize_url(url)
    offset = part.stat().st_size if resume and part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
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
        bar = _Progress(name, expected, _want_progress(expected) if progress is None else progress)
        bar.done = offset
        with open(part, "ab" if appending else "wb") as out:

            def write(block: bytes) -> None:
                out.write(block)
                bar.update(len(block))

            read_body(resp, write, most=most - offset, deadline=deadline, shown=shown,
                      declared=expected is not None)  # fmt: skip
        bar.close()
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


# ------------------------------------------------------------------- safe extraction


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _member_target(root: Path, name: str) -> Path:
    """Where ``name`` lands under ``root``; refuse anything that leaves it."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in pure.parts:
        raise FatalError(f"archive member {name!r} escapes the target directory")
    target = _resolved(root / pure, name)
    if not _inside(root, target):
        raise FatalError(f"archive member {name!r} escapes the target directory")
    return target


def _strip(name: str, prefix: str | None) -> str | None:
    """Remove ``prefix`` (a leading path) from a member name; None drops the member."""
    name = name.replace("\\", "/")
    if not prefix:
        return name
    prefix = prefix.strip("/")
    bare = re.sub(r"^(?:\.?/)+", "", name)  # "/usr/local/x" and "./usr/local/x" alike
    if bare.rstrip("/") in ("", ".") or (prefix + "/").startswith(bare.rstrip("/") + "/"):
        return None  # the prefix itself or one of its parent directories
    if bare.startswith(prefix + "/"):
        return bare[len(prefix) + 1 :]
    return name


def safe_extract(archive: Path | str, dest: Path | str, *, strip_prefix: str | None = None) -> Path:
    """Extract a tar (any compression) or zip archive into ``dest``.

    Refused, with nothing written outside ``dest``: members with ``..`` or an
    absolute path (after ``strip_prefix`` is removed), symlinks and hard links
    whose target leaves ``dest`` or that form a loop, device files and FIFOs, and
    archives that expand beyond NW_MAX_EXTRACT_BYTES or NW_MAX_EXTRACT_MEMBERS.
    Extraction goes to a temporary sibling directory which replaces ``dest`` only
    when complete.
    """
    archive, dest = Path(archive), Path(dest)
    budget = _Budget(archive.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        root = tmp.resolve()
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, root, strip_prefix, budget)
        else:
            try:
                tar = tarfile.open(archive)  # noqa: SIM115  (closed by the with below)
            except (tarfile.TarError, OSError) as exc:
                raise FatalError(
                    f"{archive.name} is not a readable tar or zip archive: {exc}"
                ) from None
            with tar:
                _extract_tar(tar, root, strip_prefix, budget)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp made it private; tar would not
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return dest
    except OSError as exc:  # members that clash (a file where a directory must go), disk full
        shutil.rmtree(tmp, ignore_errors=True)
        raise FatalError(f"{archive.name}: cannot extract into {dest}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _Budget:
    """What an archive may still expand to: members and bytes (a bomb stops early)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.members = limit("NW_MAX_EXTRACT_MEMBERS")
        self.bytes = limit("NW_MAX_EXTRACT_BYTES")

    def member(self) -> None:
        self.members -= 1
        if self.members < 0:
            raise FatalError(
                f"{self.name}: more than {limit('NW_MAX_EXTRACT_MEMBERS'):.0f} members "
                "(NW_MAX_EXTRACT_MEMBERS); refused"
            )

    def declared(self, size: int) -> None:
        """Refuse a member that says it is too big before writing any of it."""
        if size > self.bytes:
            self._too_big()

    def copy(self, src: IO[bytes], out: IO[bytes]) -> None:
        while block := src.read(CHUNK):
            self.bytes -= len(block)
            if self.bytes < 0:
                self._too_big()
            out.write(block)

    def _too_big(self) -> None:
        raise FatalError(
            f"{self.name}: expands to more than {limit('NW_MAX_EXTRACT_BYTES'):.0f} "
            "bytes (NW_MAX_EXTRACT_BYTES); refused"
        )


def _resolved(path: Path, member_name: str) -> Path:
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # RuntimeError: Python < 3.13 on a symlink loop
        raise FatalError(f"archive member {member_name!r}: {error_reason(exc)}") from None


def _extract_zip(archive: Path, root: Path, strip_prefix: str | None, budget: _Budget) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                budget.member()
                name = _strip(info.filename, strip_prefix)
                if not name:
                    continue
                target = _member_target(root, name)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise FatalError(f"archive member {info.filename!r} is a symlink (refused)")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                budget.declared(info.file_size)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    budget.copy(src, out)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(target, mode)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise FatalError(f"{archive.name} is a corrupt zip archive: {exc}") from None


def _extract_tar(
    tar: tarfile.TarFile, root: Path, strip_prefix: str | None, budget: _Budget
) -> None:
    try:
        links = []
        for member in tar:
            budget.member()
            name = _strip(member.name, strip_prefix)
            if not name or name in (".", "./"):
                continue
            target = _member_target(root, name)
            if member.isdev() or member.isfifo():
                raise FatalError(f"archive member {member.name!r} is a device or FIFO (refused)")
            if member.issym() or member.islnk():
                _link_source(root, target, member, strip_prefix)  # refuse early
                links.append((member, name))
                continue
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            budget.declared(member.size)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                continue
            with src, open(target, "wb") as out:
                budget.copy(src, out)
            os.chmod(target, member.mode & 0o755 | 0o600)
        # Links last, so a link can never redirect a later regular file.  Each one
        # is checked again against the tree as it is now, since an earlier link can
        # change where a path leads ("a" -> "." makes "a/b" -> ".." land as "b").
        made = []
        for member, name in links:
            pure = PurePosixPath(name)  # resolve the directory only: the name may be a link
            target = _member_target(root, str(pure.parent)) / pure.name
            _link_source(root, target, member, strip_prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_file():
                target.unlink()
            if member.issym():
                os.symlink(member.linkname, target)
                made.append((member, target))
            else:
                source = _link_source(root, target, member, strip_prefix)
                budget.member()
                with open(source, "rb") as src, open(target, "wb") as out:
                    budget.copy(src, out)
                shutil.copymode(source, target)
        # A later link can also change what an earlier one points at ("x" -> "d/..").
        for member, target in made:
            if target.is_symlink() and not _inside(root, _resolved(target, member.name)):
                raise _link_escapes(member)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise FatalError(f"corrupt archive: {exc}") from None


def _link_escapes(member: tarfile.TarInfo) -> FatalError:
    return FatalError(
        f"archive link {member.name!r} -> {member.linkname!r} points outside the target directory"
    )


def _link_source(root: Path, target: Path, member: tarfile.TarInfo, prefix: str | None) -> Path:
    """What a tar link member points at, as the tree is now; refused if it leaves ``root``."""
    if member.issym():
        source = _resolved(target.parent / member.linkname, member.name)
    else:
        source = _member_target(root, _strip(member.linkname, prefix) or "")
    if not _inside(root, source):
        raise _link_escapes(member)
    return source
