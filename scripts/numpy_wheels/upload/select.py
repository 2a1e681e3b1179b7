"""Which files of a listing are PROJECT VERSION's, by PEP 503/440 normalisation
(``packaging.utils``), the type filter and the one-copy-per-distribution rule."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigurationError, FatalError
from ..files import check_name
from .sources import RemoteFile


def normalize_version(version: str) -> str:
    """``version`` in its normal form (``1.0-post1`` -> ``1.0.post1``); exit 2 if invalid."""
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        raise ConfigurationError(f"VERSION {version!r} is not a valid version") from None


def check_project(project: str) -> str:
    """``project`` as given; exit 2 unless it is a valid project name (it becomes
    part of the staging URL, so ``../x`` or ``a/b`` would read another page)."""
    from packaging.utils import InvalidName, canonicalize_name

    try:
        canonicalize_name(project, validate=True)
    except InvalidName:
        raise ConfigurationError(f"PROJECT {project!r} is not a valid project name") from None
    return project


def _split_sdist(stem: str, project: str | None) -> tuple[str, str] | None:
    """(project, version) of an sdist stem: after the expected ``project`` when it
    is given and fits, else the standard last-hyphen split, else the first split
    whose right side is a version (legacy ``tinyproj-1.0-post1``)."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    cuts = [i for i, c in enumerate(stem) if c == "-"]
    fits = [i for i in cuts if project and canonicalize_name(stem[:i]) == project]
    for i in [*fits, *cuts[-1:], *cuts]:
        try:
            return stem[:i], str(Version(stem[i + 1 :]))
        except InvalidVersion:
            continue
    return None


def identity(name: str, project: str | None = None) -> tuple[str, str, str] | None:
    """(canonical project, normalised version, tag text) of a wheel or sdist file
    name, or None when it is neither; ``project`` (canonical) resolves a legacy
    sdist name whose version holds a hyphen."""
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    if name.endswith(".whl"):
        try:
            project, version, _build, _tags = parse_wheel_filename(name)
        except (InvalidWheelFilename, ValueError):
            return None
        tags = "-".join(name[: -len(".whl")].split("-")[-3:]).lower()  # the file's own spelling
        return project, str(version), tags
    if not name.endswith(".tar.gz"):
        return None
    split = _split_sdist(name[: -len(".tar.gz")], project)
    if split is None or not split[0]:
        return None
    return canonicalize_name(split[0]), split[1], ""


def metadata_identity(project: str, version: str) -> tuple[str, str] | None:
    """(canonical project, normalised version) of a METADATA Name/Version pair."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    try:
        return canonicalize_name(project), str(Version(version))
    except InvalidVersion:
        return None


def dist_key(name: str) -> tuple[object, ...] | None:
    """What makes two file names the same distribution on an index: project and
    version normalised, build tag and tag set for a wheel; one sdist per release."""
    from packaging.utils import parse_wheel_filename

    ident = identity(name)
    if ident is None:
        return None
    if not name.endswith(".whl"):
        return (*ident[:2], "sdist")
    _project, _version, build, tags = parse_wheel_filename(name)
    return (*ident[:2], build, tags)


def plain_name(raw: str) -> str:
    return raw.replace("\\", "/").rsplit("/", 1)[-1]


def select_files(
    files: Iterable[RemoteFile],
    project: str,
    version: str,
    types: list[str],
    sdist: bool,
    where: str,
) -> list[RemoteFile]:
    """The files of PROJECT VERSION that pass the type filter, wheels first.

    Names are compared after PEP 503/440 normalisation; the version is exact; one
    distribution listed under several spellings is taken once (the first).  A
    matching name that is not a plain file name (``../x.whl``, ``a/b.whl``) is refused.
    """
    from packaging.utils import canonicalize_name

    want = (canonicalize_name(project), normalize_version(version))
    wanted_types = [t.lower() for t in types if t.lower() != "all"]
    if len(wanted_types) < len(types):
        wanted_types = []
    chosen: dict[tuple[object, ...] | None, RemoteFile] = {}
    for rf in files:
        base = plain_name(rf.name)
        ident = identity(base, want[0])
        if ident is None or ident[:2] != want:
            continue
        if base.endswith(".whl"):
            if wanted_types and not any(t in ident[2] for t in wanted_types):
                continue
        elif not sdist:
            continue
        if rf.name != base or base.startswith("."):
            raise FatalError(f"refusing {rf.name!r} listed at {where}: not a plain file name")
        check_name(rf.name, f"a file listed at {where}")
        chosen.setdefault(dist_key(base), rf)
    return upload_order(chosen.values())


def upload_order(files: Iterable) -> list:
    """Wheels before sdists (twine's order), by name within each (paths or RemoteFiles)."""
    return sorted(files, key=lambda f: (not f.name.endswith(".whl"), f.name))
