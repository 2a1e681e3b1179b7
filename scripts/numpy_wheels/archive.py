"""Safe extraction of tar (any compression) and zip archives.

tarfile's ``data`` filter (PEP 706) does the standard checks of every member
(no absolute or escaping path or link, no device, no setuid bits, no owner);
our filter in front of it strips a leading prefix and adds what the ``data``
filter of older Pythons misses: a symlink loop or a path that leaves the
target through an earlier link is refused, links are made after every file
(so none can redirect a later file), every symlink is checked again once all
are made, and the archive's declared sizes and member count are bounded (a
bomb stops before it is written).  Zips go through ``ZipFile.extract`` after
the same name checks; zip symlinks are refused.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import FatalError
from .files import error_reason, umask
from .limits import limit

__all__ = ["safe_extract"]


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
        elif archive.suffix in (".whl", ".zip"):  # tarfile's guesses would say nothing more
            raise FatalError(f"{archive.name} is not a readable zip archive")
        else:
            try:
                tar = tarfile.open(archive)  # noqa: SIM115  (closed by the with below)
            except (tarfile.TarError, OSError) as exc:
                raise FatalError(  # one line: tarfile lists every compression it tried
                    f"{archive.name} is not a readable tar or zip archive "
                    f"({error_reason(exc).rstrip(':')})"
                ) from None
            with tar:
                _extract_tar(tar, root, strip_prefix, budget)
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp made it private; tar would not
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return dest
    except (OSError, tarfile.ExtractError) as exc:
        # members that clash (a file where a directory must go), disk full
        shutil.rmtree(tmp, ignore_errors=True)
        raise FatalError(f"{archive.name}: cannot extract into {dest}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _Budget:
    """What an archive may still expand to: members and bytes (a bomb stops early).

    Declared sizes are exact bounds: tarfile writes ``member.size`` bytes and
    ``ZipFile`` stops a member at its ``file_size``."""

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

    def take(self, size: int) -> None:
        """Refuse a member that would pass the bound before writing any of it."""
        self.bytes -= size
        if self.bytes < 0:
            raise FatalError(
                f"{self.name}: expands to more than {limit('NW_MAX_EXTRACT_BYTES'):.0f} "
                "bytes (NW_MAX_EXTRACT_BYTES); refused"
            )


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _resolved(path: Path, member_name: str) -> Path:
    """``path`` with every link followed; a symlink loop is refused (Python 3.13's
    non-strict ``resolve`` no longer says so, hence the strict try first)."""
    try:
        return Path(os.path.realpath(path, strict=True))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FatalError(f"archive member {member_name!r} is in a symlink loop") from None
    try:
        return path.resolve()  # a path still to be made
    except (RuntimeError, OSError) as exc:  # RuntimeError: Python < 3.13 on a symlink loop
        raise FatalError(f"archive member {member_name!r}: {error_reason(exc)}") from None


def _member_target(root: Path, name: str, *, parent_only: bool = False) -> Path:
    """Where ``name`` lands under ``root`` as the tree is now; refuse anything that
    leaves it.  ``parent_only`` resolves the directory alone (the name may be a link)."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in pure.parts:
        raise FatalError(f"archive member {name!r} escapes the target directory")
    if parent_only:
        target = _resolved(root / pure.parent, name) / pure.name
    else:
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


def _tar_filter(root: Path, prefix: str | None):
    """The prefix-stripping filter, chained to tarfile's ``data`` filter.

    tarfile calls it for each member just before extracting it, so every check
    sees the tree as it is at that moment."""

    def keep(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        name = _strip(member.name, prefix)
        if not name or name in (".", "./"):
            return None
        if member.isdev() or member.isfifo():
            raise FatalError(f"archive member {member.name!r} is a device or FIFO (refused)")
        link = member.issym() or member.islnk()
        target = _member_target(root, name, parent_only=link)
        changes: dict[str, str] = {"name": name}
        if link:
            _link_source(root, target, member, prefix)
            if member.islnk():
                changes["linkname"] = _strip(member.linkname, prefix) or ""
                if target.is_symlink() or target.is_file():
                    target.unlink()  # a second copy replaces the name, not what it points at
        try:
            return tarfile.data_filter(member.replace(**changes, deep=False), path)
        except (tarfile.LinkOutsideDestinationError, tarfile.AbsoluteLinkError):
            raise _link_escapes(member) from None
        except tarfile.SpecialFileError:
            raise FatalError(
                f"archive member {member.name!r} is a device or FIFO (refused)"
            ) from None
        except tarfile.FilterError:
            raise FatalError(
                f"archive member {member.name!r} escapes the target directory"
            ) from None

    return keep


def _extract_tar(
    tar: tarfile.TarFile, root: Path, strip_prefix: str | None, budget: _Budget
) -> None:
    try:
        files, links = [], []
        for member in tar:
            budget.member()
            if member.isreg():
                budget.take(member.size)
            (links if member.issym() or member.islnk() else files).append(member)
        tar.errorlevel = 2  # a link tarfile cannot make is an error, not a skipped member
        # Links last, so a link can never redirect a later regular file.
        tar.extractall(root, members=files + links, filter=_tar_filter(root, strip_prefix))
        # A later link can change what an earlier one points at ("x" -> "d/..", "d" -> ".").
        for member in links:
            name = _strip(member.name, strip_prefix)
            target = root / name if name else root
            if (
                member.issym()
                and target.is_symlink()
                and not _inside(root, _resolved(target, member.name))
            ):
                raise _link_escapes(member)
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error) as exc:
        raise FatalError(f"corrupt archive: {exc}") from None


def _extract_zip(archive: Path, root: Path, strip_prefix: str | None, budget: _Budget) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                budget.member()
                name = _strip(info.filename, strip_prefix)
                if not name:
                    continue
                _member_target(root, name)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise FatalError(f"archive member {info.filename!r} is a symlink (refused)")
                budget.take(info.file_size)
                info.filename = name
                extracted = zf.extract(info, root)
                if not info.is_dir() and mode & 0o777:
                    os.chmod(extracted, mode & 0o777)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise FatalError(f"{archive.name} is a corrupt zip archive: {exc}") from None
