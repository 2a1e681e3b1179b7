"""The audit of one wheel file: archive integrity (safe member names, RECORD, WHEEL
and METADATA against the filename), then its native files (:mod:`.native`) and,
for NumPy, its OpenBLAS and licence (:mod:`.numpy`)."""

from __future__ import annotations

import contextlib
import io
import posixpath
import re
import tempfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)

from ..files import printable
from . import native, numpy, policy
from .record import check_record, is_symlink, normalise, read_record, read_small, unsafe_path
from .report import Binary, Stop, WheelReport


def check_wheel(
    path: Path | str,
    expect_openblas: str | None = None,
    numpy_checks: bool | None = None,
    expect_interface: str | None = None,
) -> WheelReport:
    """Audit one wheel; never raises for bad input (it becomes a failure)."""
    path = Path(path)
    report = WheelReport(path=path, name=printable(path.name, 255))  # shown on a terminal
    try:
        _audit(path, report, expect_openblas, numpy_checks, expect_interface)
    except Stop:
        pass
    except (RecursionError, MemoryError) as exc:  # a hostile wheel, never a traceback
        report.fail(f"{report.name}: cannot be audited ({type(exc).__name__}: nested too deeply)")
    return report


def check_wheels(
    paths: list[Path | str] | tuple[Path | str, ...],
    expect_openblas: str | None = None,
    numpy_checks: bool | None = None,
    expect_interface: str | None = None,
) -> list[WheelReport]:
    """Audit each wheel in ``paths``; one report per path, in order."""
    return [check_wheel(p, expect_openblas, numpy_checks, expect_interface) for p in paths]


def _audit(path: Path, report: WheelReport, expect_openblas, numpy_checks, expect_interface):
    shown = printable(str(path), 500)
    if not path.exists():
        report.unreadable = True
        report.fail(f"{shown}: no such file")
        raise Stop
    if not path.is_file():
        report.unreadable = True
        report.fail(f"{shown}: not a regular file")
        raise Stop
    try:
        if report.name != path.name:  # packaging does not check the tags' characters
            raise InvalidWheelFilename("control character or undecodable byte in it")
        name, version, _build, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        report.fail(f"{report.name}: not a wheel filename ({printable(str(exc))})")
        raise Stop from None
    report.project, report.version = str(name), str(version)
    report.tags = sorted(str(t) for t in tags)
    platforms = sorted({t.platform for t in tags})
    report.numpy_checks = (
        canonicalize_name(name) == "numpy" if numpy_checks is None else numpy_checks
    )
    try:
        zf = zipfile.ZipFile(path)
    except PermissionError as exc:
        report.unreadable = True
        report.fail(f"{shown}: cannot be read ({exc.strerror})")
        raise Stop from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        report.fail(f"{report.name}: not a valid zip archive ({exc})")
        raise Stop from None
    with zf, tempfile.TemporaryDirectory(prefix="check_wheel-") as scratch:
        members = _zip_members(zf, report)
        dist_info = _find_dist_info(members, name, version, report)
        record = read_record(zf, members, dist_info, report.fail)
        _check_wheel_file(zf, members, dist_info, tags, report)
        _check_metadata(zf, members, dist_info, name, version, report)
        scanner = _Scanner(dist_info, Path(scratch))
        for problem in check_record(zf, dist_info, members=members, record=record,
                                    visit=scanner.visit):  # fmt: skip
            report.fail(problem)
    report.binaries = scanner.binaries
    native.check_native(report, scanner.binaries, set(members), platforms, scanner.texts,
                        scanner.not_native)  # fmt: skip
    if report.numpy_checks or expect_openblas or expect_interface:
        numpy.check_numpy(report, scanner.binaries, platforms, expect_openblas, expect_interface)
        numpy.check_license(report, scanner.binaries, scanner.texts, dist_info)


def _zip_members(zf: zipfile.ZipFile, report: WheelReport) -> dict[str, zipfile.ZipInfo]:
    """Regular-file members by normalised name; unsafe or clashing names are failures."""
    infos = zf.infolist()
    if len(infos) > policy.MAX_MEMBERS:
        report.fail(f"{report.name}: {len(infos)} archive members, more than {policy.MAX_MEMBERS}")
        raise Stop
    total = sum(i.file_size for i in infos)
    if total > policy.MAX_TOTAL_SIZE:
        report.fail(
            f"{report.name}: members declare {total} bytes uncompressed, "
            f"more than the {policy.MAX_TOTAL_SIZE} an audit reads"
        )
        raise Stop
    members: dict[str, zipfile.ZipInfo] = {}
    folded: dict[str, str] = {}
    for info in infos:
        problem = unsafe_path(info.filename)
        if problem:
            shown = info.filename.encode("unicode_escape").decode("ascii")
            report.fail(f"{shown}: archive member escapes the install root ({problem})")
            continue
        if is_symlink(info):
            report.fail(f"{info.filename}: archive member is a symlink")
            continue
        if info.is_dir():
            continue
        name = normalise(info.filename)
        if name in members:
            first = members[name].filename
            same = first == info.filename
            report.fail(
                f"{info.filename}: archive member appears twice"
                + (
                    ""
                    if same
                    else f" (as {first} and {info.filename}, the same file once installed)"
                )
            )
            continue
        if folded.setdefault(name.lower(), name) != name:
            report.warn(
                f"{name}: differs from {folded[name.lower()]} only in case "
                "(one overwrites the other on Windows and macOS)"
            )
        members[name] = info
    return members


def _find_dist_info(members, name, version, report: WheelReport) -> str:
    tops = sorted(
        {m.split("/", 1)[0] for m in members if m.split("/", 1)[0].endswith(".dist-info")}
    )
    if len(tops) != 1:
        report.fail(f"{report.name}: expected one .dist-info directory, found {len(tops)}")
        if not tops:
            raise Stop
    found = tops[0]
    dist_name, _, dist_version = found[: -len(".dist-info")].rpartition("-")
    same_name = canonicalize_name(dist_name) == canonicalize_name(name)
    if not same_name or canonicalize_version(dist_version) != canonicalize_version(version):
        report.fail(f"{found}: does not match the filename's {name} {version}")
    return found


def _headers(data: bytes):
    return HeaderParser().parsestr(data.decode("utf-8", "replace"))


def _check_wheel_file(zf, members, dist_info, tags, report: WheelReport) -> None:
    from packaging.tags import parse_tag

    wheel_name = f"{dist_info}/WHEEL"
    if wheel_name not in members:
        report.fail(f"{wheel_name}: missing")
        return
    headers = _headers(read_small(zf, members[wheel_name], report.fail))
    wheel_version = headers.get("Wheel-Version", "")
    if not re.match(r"^1\.\d+$", wheel_version.strip()):
        report.fail(f"{wheel_name}: Wheel-Version {wheel_version!r} is not 1.x")
    declared = set()
    for value in headers.get_all("Tag") or []:
        try:
            declared |= set(parse_tag(value.strip()))
        except ValueError:
            report.fail(f"{wheel_name}: bad Tag {value!r}")
    if declared != set(tags):
        want = ".".join(sorted(str(t) for t in tags))
        got = ".".join(sorted(str(t) for t in declared)) or "none"
        message = f"{wheel_name}: tags {got} do not match the filename's {want}"
        # Installers go by the filename, and the binaries are judged against its
        # platform tags; only a different Python or ABI is a wheel renamed to break
        # (NumPy 1.21's universal2 wheels kept the arm64 wheel's WHEEL: a warning).
        pythons = {(t.interpreter, t.abi) for t in tags}
        if declared and {(t.interpreter, t.abi) for t in declared} == pythons:
            report.warn(message)
        else:
            report.fail(message)


_NEWER_FIELD = re.compile(r"^\S+ introduced in metadata version [\d.]+, not [\d.]+$")


def _check_metadata(zf, members, dist_info, name, version, report: WheelReport) -> None:
    from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata

    meta_name = f"{dist_info}/METADATA"
    if meta_name not in members:
        report.fail(f"{meta_name}: missing")
        return
    raw = read_small(zf, members[meta_name], report.fail, scale=16)
    if not raw and members[meta_name].file_size:
        return  # too large or unreadable: said once, not again as empty metadata
    try:
        meta = Metadata.from_email(raw, validate=True)
    except (ExceptionGroup, InvalidMetadata, ValueError) as exc:
        errors = exc.exceptions if isinstance(exc, ExceptionGroup) else [exc]
        # A field newer than the declared Metadata-Version (setuptools' License-File
        # under 2.1): installers and PyPI take it as it is, so it is policy.
        newer = [e for e in errors if _NEWER_FIELD.search(str(e))]
        for error in errors:
            if error in newer:
                report.warn(f"{meta_name}: {error}")
            else:
                report.fail(f"{meta_name}: invalid metadata: {error}")
        if len(newer) < len(errors):
            return
        meta = Metadata.from_email(raw, validate=False)
    if canonicalize_name(meta.name) != canonicalize_name(name) or meta.version != version:
        report.fail(
            f"{meta_name}: Name/Version {meta.name} {meta.version} "
            f"do not match the filename's {name} {version}"
        )
    content_type = (meta.description_content_type or "text/x-rst").split(";")[0].strip()
    if meta.description and content_type == "text/x-rst":
        import readme_renderer.rst

        try:
            rendered = readme_renderer.rst.render(meta.description, stream=io.StringIO())
        except RecursionError:
            report.fail(f"{meta_name}: long description is nested too deeply to render")
            return
        if rendered is None:
            report.fail(
                f"{meta_name}: long description has syntax errors in markup "
                "and would not be rendered on PyPI"
            )


class _Scanner:
    """The RECORD check's visitor: keeps the Python and licence texts, and spools
    each native file to ``scratch`` to parse it."""

    def __init__(self, dist_info: str, scratch: Path) -> None:
        self.dist_info, self.spool = dist_info, scratch / "native"
        self.binaries: list[Binary] = []
        self.not_native: list[str] = []
        self.texts: dict[str, bytes] = {}

    def visit(self, member: str, info: zipfile.ZipInfo, blocks) -> list[str]:
        keep_text = info.file_size <= policy.MAX_TEXT and (
            member.endswith(".py")
            or (member.startswith(f"{self.dist_info}/") and "LICENSE" in posixpath.basename(member))
        )
        fmt, chunks, first = None, [], True
        with contextlib.ExitStack() as stack:
            spool = None
            for block in blocks:
                if first:
                    first, fmt = False, native.native_format(block[:4096], info.file_size)
                    if fmt:
                        spool = stack.enter_context(open(self.spool, "wb"))
                if spool:
                    spool.write(block)
                if keep_text:
                    chunks.append(block)
        if keep_text:
            self.texts[member] = b"".join(chunks)
        problems: list[str] = []
        binary = native.parse_native(member, fmt, self.spool, problems.append) if fmt else None
        if binary is not None:
            self.binaries.append(binary)
        elif not problems and native.is_extension_module(member):
            self.not_native.append(member)
        return problems
