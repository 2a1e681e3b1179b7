"""The package index: which scipy-openblas wheels exist, and the best one for a target.

The index is read through numpy_wheels.index (its URL rule and client); packaging
is imported where used, so the modules that only read the tables stay light.
"""

from __future__ import annotations

import contextlib
import json
import re
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from numpy_wheels import index
from numpy_wheels.errors import ConfigurationError, FatalError, NothingToDoError
from numpy_wheels.files import (
    atomic_write,
    check_name,
    file_hash,
    file_lock,
    printable,
    sanitize_url,
    without_userinfo,
)
from numpy_wheels.net import download

from .targets import OpenBLASTarget, Options, parse_wheel_tag


def index_files(project: str, version: str, opts: Options) -> list[dict[str, Any]]:
    """The wheels of ``project==version`` on the index (cached: releases are immutable).

    The cache holds no credentials: file URLs are stored without their userinfo,
    which :func:`file_url` puts back for the index's own origin only.
    """
    cached = opts.cache / "index" / f"{project}-{version}.json"
    if cached.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            files = json.loads(cached.read_text(encoding="utf-8"))["files"]
            for info in files:
                check_name(info["filename"], f"cached index answer {cached.name}")
            return files
    from packaging.version import InvalidVersion, Version

    try:
        want = Version(version)
    except InvalidVersion:
        raise ConfigurationError(f"OPENBLAS_VERSION={version!r} is not a valid version") from None
    page, shown = project_page(project, opts.index_url, opts.timeout)
    versions, files = set(), []
    for pkg in page.packages:
        if pkg.package_type != "wheel" or not pkg.version:
            continue
        with contextlib.suppress(InvalidVersion):
            versions.add(pkg.version)
            if Version(pkg.version) == want and "sha256" in pkg.digests:
                check_name(pkg.filename, f"the index {shown}")
                size = getattr(pkg, "size", None)
                files.append(
                    {
                        "filename": pkg.filename,
                        "url": without_userinfo(pkg.url),
                        "size": size,
                        "sha256": pkg.digests["sha256"],
                    }
                )
    if not files:
        newest = ", ".join(printable(v, 40) for v in sorted(versions, key=_version_key)[-3:])
        newest = newest or "none"
        raise FatalError(f"{project} {version} is not on the index {shown} (newest: {newest})")
    with atomic_write(cached) as out:
        json.dump({"project": project, "version": version, "files": files}, out, indent=1)
    return files


def file_url(url: str, index_url: str | None) -> str:
    """``url`` with the index's credentials when it is on the index's own origin."""
    origin = urlsplit(index.index_url(index_url))
    target = urlsplit(url)
    userinfo = origin.netloc.rsplit("@", 1)[0] if "@" in origin.netloc else ""
    same = (target.scheme, target.netloc) == (origin.scheme, origin.netloc.rsplit("@", 1)[-1])
    if not userinfo or not same:
        return url
    return urlunsplit(target._replace(netloc=f"{userinfo}@{target.netloc}"))


def project_page(project: str, index_url: str | None, timeout: float) -> tuple[Any, str]:
    """(the project's page on the simple index, the index URL as it may be shown)."""
    url = index.index_url(index_url)
    return index.project_page(project, url, timeout), sanitize_url(url)


def _version_key(text: str) -> Any:
    from packaging.version import Version

    return Version(text)


def _tag_rank(tag: str, target: OpenBLASTarget) -> tuple[int, int] | None:
    """How well one wheel platform tag fits ``target``: None if not at all, higher is better."""
    found = parse_wheel_tag(tag)
    if found is None or found.os != target.os:
        return None
    if target.os == "linux":
        if found.libc != target.libc or found.arch != target.arch or found.libc_max is None:
            return None
        if target.libc_max and found.libc_max > target.libc_max:
            return None
        return found.libc_max
    if target.os == "macos":
        fat = {"universal2": ("x86_64", "arm64"), "universal": ("x86_64",), "intel": ("x86_64",)}
        if found.arch != target.arch and target.arch not in fat.get(found.arch, ()):
            return None
        if target.macos_max and found.macos_max and found.macos_max > target.macos_max:
            return None
        # the oldest deployment target is the one that runs everywhere the build may
        return (-found.macos_max[0], -found.macos_max[1]) if found.macos_max else (0, 0)
    return (0, 0) if found.arch == target.arch else None


def select_wheel(files: list[dict[str, Any]], target: OpenBLASTarget, what: str) -> dict[str, Any]:
    """The best wheel in ``files`` for ``target``, or an error naming what exists."""
    best, best_rank, published = None, None, set()
    for info in files:
        tags = info["filename"][: -len(".whl")].split("-")[-1].split(".")
        published.update(tags)
        for tag in tags:
            rank = _tag_rank(tag, target)
            if rank is not None and (best_rank is None or rank > best_rank):
                best, best_rank = info, rank
    if best is None:
        names = ", ".join(sorted(published))
        raise NothingToDoError(f"no {what} wheel for {target.describe()} (published: {names})")
    return best


def numpy_pins(
    numpy_version: str, cache: Path, timeout: float, index_url: str | None = None
) -> dict[str, str]:
    """scipy-openblas pins in NumPy's sdist (requirements/ci_requirements.txt)."""
    page, shown = project_page("numpy", index_url, timeout)
    sdists = [
        p
        for p in page.packages
        if p.version == numpy_version and p.package_type == "sdist" and "sha256" in p.digests
    ]
    if not sdists:
        raise FatalError(f"numpy {numpy_version} has no sdist on the index {shown}")
    sdist = sdists[0]
    path = cache / "downloads" / check_name(sdist.filename, f"the index {shown}")
    lock = cache / "locks" / f"{sdist.filename}.lock"
    with file_lock(lock, f"cache entry {sdist.filename}"):
        if not (path.is_file() and file_hash(path) == sdist.digests["sha256"]):
            url = file_url(sdist.url, index_url)
            download(url, path, sha256=sdist.digests["sha256"], timeout=timeout)
    pins = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.name.endswith("/requirements/ci_requirements.txt") and member.isfile():
                    if member.size > 2**20:
                        raise FatalError(f"{sdist.filename}: {member.name} is over 1 MiB")
                    text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                    for match in re.finditer(r"^(scipy-openblas\d+)==(\S+)", text, re.M):
                        pins[match[1]] = match[2]
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise FatalError(f"{sdist.filename} is not a readable sdist: {exc}") from None
    if not pins:
        raise FatalError(f"{sdist.filename} pins no scipy-openblas in ci_requirements.txt")
    return pins
