"""The one RECORD check: every member of a wheel hashed (streamed, never a whole
member in memory) against its ``.dist-info/RECORD``, nothing missing from or extra
to RECORD.  The audit and the uploader both call :func:`check_record`.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import posixpath
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator

from . import policy

Fail = Callable[[str], None]
# A member's reader during the check: (name, info, its blocks) -> problems it found.
Visit = Callable[[str, zipfile.ZipInfo, Iterator[bytes]], list[str]]


def normalise(name: str) -> str:
    """The path an installer writes for a member name (``a/./b`` and ``a//b`` are ``a/b``)."""
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/") if name else name


def unsafe_path(name: str) -> str | None:
    """Why a member name (or a RECORD path) is unsafe to install, or None."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "'..' in path"
    if re.search(r"[\x00-\x1f\x7f]", name):
        return "control character in its name"
    return None


def is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def open_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged member raises."""
    return (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


def read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, fail: Fail, scale: int = 1) -> bytes:
    """A small member's bytes (metadata files); a huge one is a failure, not a memory hog."""
    limit = scale * policy.MAX_TEXT
    if info.file_size > limit:
        fail(f"{info.filename}: {info.file_size} bytes, too large for a metadata file")
        return b""
    try:
        with zf.open(info) as stream:
            return stream.read(limit + 1)[:limit]
    except open_errors() as exc:
        fail(f"{info.filename}: cannot be read from the archive ({exc})")
        return b""


def read_record(
    zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], dist_info: str, fail: Fail
) -> dict[str, tuple[str, str]]:
    """``{normalised path: (hash, size)}`` from ``dist_info/RECORD``; problems go to ``fail``."""
    record_name = f"{dist_info}/RECORD"
    if record_name not in members:
        fail(f"{record_name}: missing")
        return {}
    text = read_small(zf, members[record_name], fail, scale=64).decode("utf-8", "replace")
    entries: dict[str, tuple[str, str]] = {}
    reader = csv.reader(io.StringIO(text))
    try:
        for lineno, row in enumerate(reader, 1):
            if not row:
                continue
            if len(row) != 3:
                fail(f"{record_name}: line {lineno} has {len(row)} fields, expected 3")
                continue
            path, digest, size = row
            problem = unsafe_path(path)
            if problem:
                shown = path.encode("unicode_escape").decode("ascii")
                fail(f"{record_name}: line {lineno} lists {shown}, outside the install root "
                     f"({problem})")  # fmt: skip
                continue
            name = normalise(path)
            if name in entries:
                fail(f"{record_name}: {path} is listed twice")
            entries[name] = (digest, size)
    except csv.Error as exc:
        fail(f"{record_name}: not a readable CSV file (line {reader.line_num}: {exc})")
    return entries


def check_record(
    zf: zipfile.ZipFile,
    dist_info: str | None = None,
    *,
    members: dict[str, zipfile.ZipInfo] | None = None,
    record: dict[str, tuple[str, str]] | None = None,
    visit: Visit | None = None,
) -> list[str]:
    """Every way the wheel open as ``zf`` disagrees with its RECORD, as one-line
    messages (empty: it agrees).  Reads each member once, in archive order.

    ``dist_info`` defaults to the wheel's one ``*.dist-info`` directory; ``members``
    to its regular files by normalised name; ``record`` to :func:`read_record`'s
    answer (its problems then come first).  ``visit``, when given, reads each
    member's blocks as they are hashed and returns its own problems, listed after
    that member's RECORD ones (the audit parses native files this way).
    """
    problems: list[str] = []
    if members is None:
        members = {
            normalise(i.filename): i for i in zf.infolist() if not i.is_dir() and not is_symlink(i)
        }
    if dist_info is None:
        tops = {m.split("/", 1)[0] for m in members if "/" in m}
        found = sorted(t for t in tops if t.endswith(".dist-info"))
        if len(found) != 1:
            shown = posixpath.basename(str(zf.filename or "wheel"))
            return [f"{shown}: expected one .dist-info directory, found {len(found)}"]
        dist_info = found[0]
    if record is None:
        record = read_record(zf, members, dist_info, problems.append)
    unsigned = {f"{dist_info}/{n}" for n in policy.SIGNATURE_FILES}
    for member, info in members.items():
        hasher, expected = None, None
        if member in unsigned:
            pass
        elif member not in record:
            problems.append(f"{member}: not listed in RECORD")
        else:
            hasher, expected = _record_hasher(member, *record[member], problems.append)
        try:
            with zf.open(info) as stream:
                hashed = _Hashed(stream, hasher)
                blocks = iter(hashed)
                own = visit(member, info, blocks) if visit else []
                for _ in blocks:  # the rest, unread by the visitor, is hashed too
                    pass
        except open_errors() as exc:
            problems.append(f"{member}: cannot be read from the archive ({exc})")
            continue
        if hasher:
            _compare_hash(member, hasher, expected, hashed.size, problems.append)
        problems += own
    for entry in record:
        if entry not in members and entry.rstrip("/") not in members:
            problems.append(f"{entry}: listed in RECORD but missing from the archive")
    return problems


class _Hashed:
    """A member's blocks, counted and hashed as they are read."""

    def __init__(self, stream, hasher) -> None:
        self.stream, self.hasher, self.size = stream, hasher, 0

    def __iter__(self) -> Iterator[bytes]:
        while block := self.stream.read(policy.READ_CHUNK):
            self.size += len(block)
            if self.hasher:
                self.hasher.update(block)
            yield block


def _record_hasher(name: str, digest: str, size: str, fail: Fail):
    algorithm, _, expected = digest.partition("=")
    if not expected:
        fail(f"{name}: no hash in RECORD")
        return None, None
    if algorithm not in policy.STRONG_HASHES:
        fail(f"{name}: RECORD uses hash {algorithm!r}; sha256 or stronger is required")
        return None, None
    return hashlib.new(algorithm), (algorithm, expected, size)


def _compare_hash(name: str, hasher, expected, size: int, fail: Fail) -> None:
    algorithm, digest, record_size = expected
    got = base64.urlsafe_b64encode(hasher.digest()).rstrip(b"=").decode()
    if got != digest.rstrip("="):
        fail(f"{name}: {algorithm} does not match RECORD (file was modified)")
    if record_size and record_size != str(size):
        fail(f"{name}: size {size} does not match RECORD ({record_size})")
