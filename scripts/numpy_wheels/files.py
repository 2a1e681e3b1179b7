"""Files and the text shown about them: atomic writes, lock files, hashes, and
names or URLs from outside made safe to use and to print.

Every name a page, an index or an archive gives us passes ``check_name``
before any filesystem use; every URL passes ``sanitize_url`` before it is
printed; every exception text from a server passes ``error_reason``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from .errors import FatalError
from .log import log

__all__ = [
    "MAX_NAME_BYTES",
    "atomic_write",
    "check_name",
    "error_reason",
    "file_hash",
    "file_lock",
    "human_size",
    "mask_credentials",
    "printable",
    "sanitize_url",
    "umask",
]

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


def without_userinfo(url: str) -> str:
    """``url`` without its ``user:pass@``: where a file is, for a record or a link."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


def printable(text: str, limit: int = 200) -> str:
    """``text`` safe to show on a terminal: control characters and escape sequences
    spelled out (``\\x1b``), cut at ``limit`` characters."""
    shown = "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text[: limit + 1]
    )
    return shown if len(text) <= limit else shown[:limit] + "..."


def error_reason(exc: BaseException) -> str:
    """The first line of an exception's message: credentials masked, control characters
    spelled out (servers choose part of the text)."""
    text = str(exc).strip() or type(exc).__name__
    return printable(mask_credentials(text.splitlines()[0]), 500)


# The longest file name the common filesystems store (bytes, as ext4 and APFS count).
MAX_NAME_BYTES = 255


def check_name(name: object, what: str) -> str:
    """``name`` if it is one plain path component; FatalError (one line) otherwise.

    No directory part, no ``.``/``..`` or hidden name, no control, format or
    line-separator character (terminal escapes, NUL), at most 255 bytes.
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


def unusable_dir(path: Path) -> str | None:
    """Why ``path`` cannot be (made) a directory to write to, or None: checked before
    any work, so a file in the way or a read-only place is one line, not a traceback."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists() or p.is_symlink())
    if not existing.is_dir():
        return "not a directory" if existing == path else f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return "permission denied" if existing == path else f"{existing} is not writable"
    return None


def file_hash(path: Path | str, algorithm: str = "sha256") -> str:
    """The hex digest of a file's contents."""
    with open(path, "rb") as fobj:
        return hashlib.file_digest(fobj, algorithm).hexdigest()


def umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
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
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp's 0600 would hide a report from others
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


def human_size(size: float) -> str:
    """Bytes in the unit that keeps 3 significant digits: 6.0 KiB, 17.2 MiB."""
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
