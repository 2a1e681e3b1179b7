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
import hashlib
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ConfigurationError",
    "DownloadError",
    "FatalError",
    "NothingToDoError",
    "add_version_option",
    "atomic_write",
    "ci_error",
    "colour",
    "download",
    "error_reason",
    "file_hash",
    "log",
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


def sanitize_url(url: str) -> str:
    """Mask credentials in a URL (``user:pass@host`` -> ``********@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"********@{host}"))


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
) -> Path:
    """Fetch ``url`` to ``dest``: the one download function of the project.

    The body goes to ``dest + '.part'``; a ``.part`` left by an earlier attempt is
    resumed with an HTTP range when the server honours it.  Connection errors,
    timeouts, truncated bodies, 429 and 5xx are retried with exponential
    backoff; any other 4xx fails at once.  The finished file is checked
    (``size``, ``sha256``/``md5``, then ``verify(path)``) and only then renamed to
    ``dest``; on a mismatch the partial file is deleted.  Returns ``dest``.
    """
    import requests  # imported here: the module is also used by tools without requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own_session = session is None
    session = session or requests.Session()
    shown = sanitize_url(url)
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


# ``scheme://user:password@`` anywhere in a text (exception messages quote whole URLs)
_USERINFO_RE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")


def error_reason(exc: BaseException) -> str:
    """The first line of an exception's message, credentials in any URL masked."""
    text = str(exc).strip() or type(exc).__name__
    return _USERINFO_RE.sub(r"\1********@", text.splitlines()[0])


def _fetch_once(session, url, part, size, timeout, resume, progress, name) -> None:
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
                f"{sanitize_url(url)}: HTTP {resp.status_code} {resp.reason}", resp.status_code
            )
        appending = offset and resp.status_code == 206
        if offset and not appending:
            offset = 0  # server ignored the range: rewrite from the start
        length = resp.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else size
        bar = _Progress(name, expected, _want_progress(expected) if progress is None else progress)
        bar.done = offset
        with open(part, "ab" if appending else "wb") as out:
            for block in resp.iter_content(CHUNK):
                out.write(block)
                bar.update(len(block))
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
    target = (root / pure).resolve()
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
    whose target leaves ``dest``, device files and FIFOs.  Extraction goes to a
    temporary sibling directory which replaces ``dest`` only when complete.
    """
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        root = tmp.resolve()
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, root, strip_prefix)
        else:
            try:
                tar = tarfile.open(archive)  # noqa: SIM115  (closed by the with below)
            except (tarfile.TarError, OSError) as exc:
                raise FatalError(
                    f"{archive.name} is not a readable tar or zip archive: {exc}"
                ) from None
            with tar:
                _extract_tar(tar, root, strip_prefix)
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


def _extract_zip(archive: Path, root: Path, strip_prefix: str | None) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = _strip(info.filename, strip_prefix)
                if not name:
                    continue
                target = _member_target(root, name)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise FatalError(f"archive member {info.filename!r} is a symlink (refused)")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(target, mode)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise FatalError(f"{archive.name} is a corrupt zip archive: {exc}") from None


def _extract_tar(tar: tarfile.TarFile, root: Path, strip_prefix: str | None) -> None:
    try:
        links = []
        for member in tar:
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
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                continue
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
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
                shutil.copy2(_link_source(root, target, member, strip_prefix), target)
        # A later link can also change what an earlier one points at ("x" -> "d/..").
        for member, target in made:
            if target.is_symlink() and not _inside(root, target.resolve()):
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
        source = (target.parent / member.linkname).resolve()
    else:
        source = _member_target(root, _strip(member.linkname, prefix) or "")
    if not _inside(root, source):
        raise _link_escapes(member)
    return source
