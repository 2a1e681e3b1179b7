"""Is each file what its name says, and does each wheel pass the audit?

:func:`verify_dist` is the structural check run on every download (and on a file
already in the wheelhouse); :func:`audit` is the one call into the wheel audit
(check_wheel: RECORD, libraries, tags), the gate before anything is uploaded.
"""

from __future__ import annotations

import email.parser
import zipfile
from pathlib import Path

from ..errors import DownloadError
from .select import identity, metadata_identity
from .summary import Entry


def verify_dist(path: Path, name: str | None = None, *, deep: bool = True) -> None:
    """Raise DownloadError unless ``path`` is a valid wheel (or sdist) matching its name.

    ``deep`` also checks every member's CRC (used when no hash was published).
    """
    name = name or path.name
    ident = identity(name)
    if ident is None:
        raise DownloadError(f"{name} is not a wheel or sdist file name")
    meta = (
        _wheel_metadata(path, name, deep) if name.endswith(".whl") else _sdist_metadata(path, name)
    )
    headers = email.parser.BytesParser().parsebytes(meta, headersonly=True)
    said = (headers.get("Name", ""), headers.get("Version", ""))
    got = metadata_identity(*said)
    if got is not None and not name.endswith(".whl"):
        ident = identity(name, got[0])  # a legacy sdist name read with the project it says
    if got is None or ident is None or got != ident[:2]:
        raise DownloadError(
            f"{name}: its metadata names {said[0] or None} {said[1] or None}, "
            "not the project and version of the file name"
        )


def _wheel_metadata(path: Path, name: str, deep: bool) -> bytes:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {n.split("/", 1)[0] for n in zf.namelist() if ".dist-info/" in n}
            infos = {d for d in infos if d.endswith(".dist-info")}
            if len(infos) != 1:
                raise DownloadError(f"{name} is not a valid wheel: {len(infos)} .dist-info")
            info = infos.pop()
            try:
                zf.getinfo(f"{info}/WHEEL")
                meta = zf.read(f"{info}/METADATA")
            except KeyError as exc:
                raise DownloadError(f"{name} is not a valid wheel: no {exc.args[0]}") from None
            if deep and (bad := zf.testzip()) is not None:
                raise DownloadError(f"{name} is not a valid wheel: {bad} is corrupt")
            return meta
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DownloadError(f"{name} is not a valid wheel: {exc}") from None


def _sdist_metadata(path: Path, name: str) -> bytes:
    import tarfile  # sdists only: most runs never need it

    top = name[: -len(".tar.gz")]
    try:
        with tarfile.open(path, "r:gz") as tar:
            info = tar.getmember(f"{top}/PKG-INFO")
            member = tar.extractfile(info)
            if member is None or info.size > 2**20:
                raise KeyError(f"{top}/PKG-INFO")
            return member.read()
    except (tarfile.TarError, OSError, EOFError, KeyError) as exc:
        raise DownloadError(f"{name} is not a valid sdist: {exc}") from None


def audit(entries: list[Entry], strict: bool = False) -> list[str]:
    """Gate each wheel on the audit (FAIL only, warnings too when ``strict``): a
    failing wheel's entry gets its error.  Returns the warnings, one line each."""
    wheels = [e for e in entries if e.name.endswith(".whl")]
    if not wheels:
        return []
    from ..audit import check_wheels

    by_name = {e.name: e for e in wheels}
    warnings = []
    for report in check_wheels([e.path for e in wheels]):
        warnings += [f"{report.name}: {w}" for w in report.warnings]
        entry = by_name.get(Path(report.name).name)
        if entry is not None and not report.passed(strict):
            entry.verified = "audit failed"
            findings = report.failures + (report.warnings if strict else [])
            entry.error = f"{entry.name} fails the audit: " + "; ".join(map(str, findings))
    return warnings
