"""Audit wheels before they are staged or uploaded: ``check_wheel.py WHEEL...``.

Every wheel is read on this host, whatever platform it was built for: ELF with
pyelftools (the manylinux/musllinux policy comes from auditwheel's installed
policy data), Mach-O with macholib, PE with pefile.  Three groups of checks:

1. archive integrity: a readable zip, RECORD hashes and sizes (streamed, never a
   whole member in memory), nothing missing from or extra to RECORD, member
   names that stay inside the install root and name each file once after
   normalisation, WHEEL tags and METADATA name/version equal to the filename's;
2. native dependencies, resolved as the platform's loader does, from the
   binaries alone: glibc/musl (DT_RPATH up the loading chain, DT_RUNPATH,
   $ORIGIN, sonames already loaded, the policy's system libraries), dyld
   (@loader_path, @executable_path, @rpath over the chain's LC_RPATHs) and the
   Windows loader (the module's directory, os.add_dll_directory paths found in
   the wheel's Python code, DLLs it preloads, API sets, system DLLs, Python's
   runtimes); symbol versions / minimum macOS and architecture versus the tag;
3. NumPy specifics (default for NumPy wheels): at most one OpenBLAS, its
   integer interface read from its symbols (32-bit targets need LP64;
   ``--expect-interface`` demands one), declared in LICENSE.txt;
   ``--expect-openblas VER`` demands it is bundled with that version.

Each finding is a FAIL (the wheel breaks or is unsafe) or a WARN (policy: a
runtime that is common but not guaranteed, a bundled library missing from the
license notice).  Prints ``PASS name`` / ``FAIL name`` per wheel, then one line
per finding (``  message`` for a failure, ``  warning: message``); ``--json``
prints every resolution with the search entry that found it.

Python API (the uploader and ``make stage`` use it)::

    check_wheels(paths, expect_openblas=None, numpy_checks=None,
                 expect_interface=None) -> list[WheelReport]
"""

from __future__ import annotations

import argparse
import ast
import base64
import collections
import contextlib
import csv
import fnmatch
import functools
import hashlib
import io
import json
import mmap
import posixpath
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import nwlib

__all__ = ["Binary", "WheelReport", "check_wheel", "check_wheels", "main"]

POLICY_FILE = Path(__file__).resolve().with_name("check_wheel_policy.json")
SIGNATURE_FILES = ("RECORD", "RECORD.jws", "RECORD.p7s")
STRONG_HASHES = {"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b"}

# Exit codes (also in --help).
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3

# Bounds that keep a hostile wheel from exhausting time or memory.
MAX_MEMBERS = 200_000
MAX_TOTAL_SIZE = 32 * 2**30  # declared uncompressed bytes of all members
MAX_TEXT = 2**20  # Python/LICENSE files read for their content
MAX_VERNEED = 4096  # ELF version-need entries (libraries + versions) per binary
READ_CHUNK = 2**20

ELF_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_386": "i686",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "armv7l",
    "EM_S390": "s390x",
    "EM_RISCV": "riscv64",
    "EM_LOONGARCH": "loongarch64",
}
MACHO_CPUS = {
    0x01000007: "x86_64",
    0x0100000C: "arm64",
    0x00000007: "i386",
    0x00000012: "ppc",
    0x01000012: "ppc64",
    0x0200000C: "arm64_32",
}
MACHO_LOADS = {  # load command id -> kind
    0x0C: "load",  # LC_LOAD_DYLIB
    0x80000018: "weak",  # LC_LOAD_WEAK_DYLIB
    0x8000001F: "reexport",  # LC_REEXPORT_DYLIB
    0x20: "lazy",  # LC_LAZY_LOAD_DYLIB
    0x80000023: "upward",  # LC_LOAD_UPWARD_DYLIB
}
LC_ID_DYLIB, LC_RPATH, LC_BUILD_VERSION, LC_VERSION_MIN_MACOSX = 0x0D, 0x8000001C, 0x32, 0x24
MACHO_MAGICS = {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe"}
FAT_MAGICS = {b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"}
LINUX_ARCH_SUFFIX = r"_(x86_64|i686|aarch64|armv7l|ppc64le|ppc64|s390x|riscv64|loongarch64)$"
# "OpenBLAS 0.3.30", "OpenBLAS 0.3.31.188.0", "OpenBLAS 0.3.31.dev"
OPENBLAS_VERSION_RE = re.compile(rb"OpenBLAS (\d+\.\d+\.\d+(?:\.[0-9A-Za-z]+)*)")
# x86-64 "movabs r64, imm64": compilers build the short config string from 8-byte immediates.
MOVABS_RE = re.compile(rb"[\x48\x49][\xb8-\xbf](.{8})", re.DOTALL)
# The ILP64 build suffixes every BLAS/LAPACK symbol with 64_ (dgemm_64_, scipy_dgemm_64_).
ILP64_SYMBOL, LP64_SYMBOL = b"dgemm_64_\0", b"dgemm_\0"
# A hash or version suffix added by repair tools: libfoo-1a2b3c4d.so.1, msvcp140-<32 hex>.dll
LIB_STEM_RE = re.compile(r"^(.+?)(?:-[0-9a-f]{8,32})*(?:\.so(?:\.[\d.]+)?|\.dylib|\.dll|\.pyd)$")
# Python extension modules: Python loads them itself, so each starts a loading chain.
EXTENSION_RE = re.compile(
    r"\.(cpython-|pypy|abi3\.|cp3\d+t?-win|graalpy)|\.pyd$|^(?!lib)[^.]+\.so$"
)
MUSL_RESERVED = ("libc.", "libpthread.", "librt.", "libm.", "libdl.", "libutil.", "libxnet.")
BITS32 = re.compile(r"(i686|win32|armv7l|i386|_x86)$")


@functools.cache
def _tables() -> dict[str, Any]:
    try:
        return json.loads(POLICY_FILE.read_text())
    except (OSError, ValueError) as exc:
        raise nwlib.ConfigurationError(f"cannot read {POLICY_FILE}: {exc}") from None


# --------------------------------------------------------------------------- results


@dataclass
class Binary:
    """What one native file in the wheel needs and claims."""

    path: str  # member name in the wheel (normalised)
    format: str  # "elf", "macho" or "pe"
    archs: list[str]
    needed: list[tuple[str, str]] = field(default_factory=list)  # (library, kind)
    rpaths: list[str] = field(default_factory=list)  # DT_RPATH / LC_RPATH
    runpaths: list[str] = field(default_factory=list)  # DT_RUNPATH
    soname: str | None = None  # DT_SONAME / LC_ID_DYLIB
    min_macos: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # arch -> version
    macos_platform_errors: list[str] = field(default_factory=list)
    symbol_versions: dict[str, list[str]] = field(default_factory=dict)  # library -> versions
    machine: int | None = None
    openblas_version: str | None = None
    interface: str | None = None  # OpenBLAS only: "ILP64" / "LP64"
    resolved: dict[str, str | None] = field(default_factory=dict)  # library -> where found
    via: dict[str, str] = field(default_factory=dict)  # library -> the rule that found it

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "archs": self.archs,
            "needed": [
                {
                    "name": name,
                    "kind": kind,
                    "resolved": self.resolved.get(name),
                    "via": self.via.get(name, "not reached from any loading chain"),
                }
                for name, kind in self.needed
            ],
        }
        if self.format == "elf":
            data.update(rpath=self.rpaths, runpath=self.runpaths, soname=self.soname)
            data["symbol_versions"] = self.symbol_versions
        elif self.format == "macho":
            data.update(
                rpath=self.rpaths,
                install_name=self.soname,
                min_macos={a: _version_text(v) for a, v in self.min_macos.items()},
            )
        if self.openblas_version:
            data["openblas_version"] = self.openblas_version
        if self.interface:
            data["interface"] = self.interface
        return data


@dataclass
class WheelReport:
    """The audit of one wheel: ``ok`` is True only if ``failures`` is empty."""

    path: Path
    name: str
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unreadable: bool = False  # the input could not be opened at all (no such file, ...)
    project: str | None = None
    version: str | None = None
    tags: list[str] = field(default_factory=list)
    platform: str | None = None
    binaries: list[Binary] = field(default_factory=list)
    openblas: dict[str, Any] = field(default_factory=dict)
    numpy_checks: bool = False
    dll_directories: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def passed(self, strict: bool = False) -> bool:
        """The verdict: no failure, and under ``strict`` no warning either."""
        return self.ok and not (strict and self.warnings)

    def fail(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def to_json(self, strict: bool = False) -> dict[str, Any]:
        return {
            "wheel": self.name,
            "path": str(self.path),
            "ok": self.passed(strict),
            "verdict": _verdict(self, strict),
            "failures": self.failures,
            "warnings": self.warnings,
            "project": self.project,
            "version": self.version,
            "tags": self.tags,
            "platform": self.platform,
            "numpy_checks": self.numpy_checks,
            "openblas": self.openblas,
            "dll_directories": self.dll_directories,
            "binaries": [b.to_json() for b in self.binaries],
        }


class _Stop(Exception):
    """Raised inside the audit when no further check makes sense."""


def _version_text(version: tuple[int, int, int]) -> str:
    major, minor, patch = version
    return f"{major}.{minor}" + (f".{patch}" if patch else "")


def _verdict(report: WheelReport, strict: bool) -> str:
    if report.unreadable:
        return "ERROR"
    return "PASS" if report.passed(strict) else "FAIL"


# --------------------------------------------------------------------------- archive


def _normalise(name: str) -> str:
    """The path an installer writes for a member name (``a/./b`` and ``a//b`` are ``a/b``)."""
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/") if name else name


def _member_problem(name: str) -> str | None:
    """Why a member name is unsafe to install, or None."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "'..' in path"
    if re.search(r"[\x00-\x1f\x7f]", name):
        return "control character in its name"
    return None


def check_wheel(
    path: Path | str,
    expect_openblas: str | None = None,
    numpy_checks: bool | None = None,
    expect_interface: str | None = None,
) -> WheelReport:
    """Audit one wheel; never raises for bad input (it becomes a failure)."""
    path = Path(path)
    report = WheelReport(path=path, name=path.name)
    try:
        _audit(path, report, expect_openblas, numpy_checks, expect_interface)
    except _Stop:
        pass
    except (RecursionError, MemoryError) as exc:  # a hostile wheel, never a traceback
        report.fail(f"{path.name}: cannot be audited ({type(exc).__name__}: nested too deeply)")
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
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    if not path.exists():
        report.unreadable = True
        report.fail(f"{path}: no such file")
        raise _Stop
    if not path.is_file():
        report.unreadable = True
        report.fail(f"{path}: not a regular file")
        raise _Stop
    try:
        name, version, _build, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        report.fail(f"{path.name}: not a wheel filename ({exc})")
        raise _Stop from None
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
        report.fail(f"{path}: cannot be read ({exc.strerror})")
        raise _Stop from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        report.fail(f"{path.name}: not a valid zip archive ({exc})")
        raise _Stop from None
    with zf, tempfile.TemporaryDirectory(prefix="check_wheel-") as scratch:
        members = _zip_members(zf, report)
        dist_info = _find_dist_info(members, name, version, report)
        record_name = f"{dist_info}/RECORD"
        record: dict[str, tuple[str, str]] = {}
        if record_name not in members:
            report.fail(f"{record_name}: missing")
        else:
            text = _read_small(zf, members[record_name], report, scale=64)
            record = _read_record(text.decode("utf-8", "replace"), report, record_name)
        _check_wheel_file(zf, members, dist_info, tags, report)
        _check_metadata(zf, members, dist_info, name, version, report)
        binaries, texts = _scan_members(zf, members, record, dist_info, report, Path(scratch))
        for entry in record:
            if entry not in members and entry.rstrip("/") not in members:
                report.fail(f"{entry}: listed in RECORD but missing from the archive")
    report.binaries = binaries
    _check_native(report, binaries, set(members), platforms, texts)
    if report.numpy_checks or expect_openblas or expect_interface:
        _check_numpy(report, binaries, texts, platforms, expect_openblas, expect_interface)
        _check_license(report, binaries, texts, dist_info)


def _zip_members(zf: zipfile.ZipFile, report: WheelReport) -> dict[str, zipfile.ZipInfo]:
    """Regular-file members by normalised name; unsafe or clashing names are failures."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        report.fail(f"{report.name}: {len(infos)} archive members, more than {MAX_MEMBERS}")
        raise _Stop
    total = sum(i.file_size for i in infos)
    if total > MAX_TOTAL_SIZE:
        report.fail(
            f"{report.name}: members declare {total} bytes uncompressed, "
            f"more than the {MAX_TOTAL_SIZE} an audit reads"
        )
        raise _Stop
    members: dict[str, zipfile.ZipInfo] = {}
    folded: dict[str, str] = {}
    for info in infos:
        problem = _member_problem(info.filename)
        if problem:
            shown = info.filename.encode("unicode_escape").decode("ascii")
            report.fail(f"{shown}: archive member escapes the install root ({problem})")
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            report.fail(f"{info.filename}: archive member is a symlink")
            continue
        if info.is_dir():
            continue
        name = _normalise(info.filename)
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


def _open_errors() -> tuple[type[BaseException], ...]:
    return (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


def _read_small(zf, info: zipfile.ZipInfo, report: WheelReport, scale: int = 1) -> bytes:
    """A small member's bytes (metadata files); a huge one is a failure, not a memory hog."""
    limit = scale * MAX_TEXT
    if info.file_size > limit:
        report.fail(f"{info.filename}: {info.file_size} bytes, too large for a metadata file")
        return b""
    try:
        with zf.open(info) as stream:
            return stream.read(limit + 1)[:limit]
    except _open_errors() as exc:
        report.fail(f"{info.filename}: cannot be read from the archive ({exc})")
        return b""


def _read_record(text: str, report: WheelReport, record_name: str) -> dict[str, tuple[str, str]]:
    entries: dict[str, tuple[str, str]] = {}
    reader = csv.reader(io.StringIO(text))
    try:
        for lineno, row in enumerate(reader, 1):
            if not row:
                continue
            if len(row) != 3:
                report.fail(f"{record_name}: line {lineno} has {len(row)} fields, expected 3")
                continue
            path, digest, size = row
            name = _normalise(path)
            if name in entries:
                report.fail(f"{record_name}: {path} is listed twice")
            entries[name] = (digest, size)
    except csv.Error as exc:
        report.fail(f"{record_name}: not a readable CSV file (line {reader.line_num}: {exc})")
    return entries


def _find_dist_info(members, name, version, report: WheelReport) -> str:
    from packaging.utils import canonicalize_name, canonicalize_version

    tops = sorted(
        {m.split("/", 1)[0] for m in members if m.split("/", 1)[0].endswith(".dist-info")}
    )
    if len(tops) != 1:
        report.fail(f"{report.name}: expected one .dist-info directory, found {len(tops)}")
        if not tops:
            raise _Stop
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
    headers = _headers(_read_small(zf, members[wheel_name], report))
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
        report.fail(f"{wheel_name}: tags {got} do not match the filename's {want}")


def _check_metadata(zf, members, dist_info, name, version, report: WheelReport) -> None:
    from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata
    from packaging.utils import canonicalize_name

    meta_name = f"{dist_info}/METADATA"
    if meta_name not in members:
        report.fail(f"{meta_name}: missing")
        return
    raw = _read_small(zf, members[meta_name], report, scale=16)
    try:
        meta = Metadata.from_email(raw, validate=True)
    except (ExceptionGroup, InvalidMetadata, ValueError) as exc:
        errors = exc.exceptions if isinstance(exc, ExceptionGroup) else [exc]
        for error in errors:
            report.fail(f"{meta_name}: invalid metadata: {error}")
        return
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


def _native_format(head: bytes, size: int) -> str | None:
    """The format a member's first bytes announce (a candidate: parsing confirms it)."""
    if head[:4] == b"\x7fELF":
        return "elf"
    if head[:4] in MACHO_MAGICS:
        return "macho"
    if head[:4] in FAT_MAGICS and len(head) >= 8:
        # Java class files share the fat magic; a fat Mach-O has a handful of slices.
        return "macho" if 0 < struct.unpack(">I", head[4:8])[0] < 20 else None
    if head[:2] == b"MZ" and len(head) >= 0x40:
        offset = struct.unpack("<I", head[0x3C:0x40])[0]
        if offset + 4 > len(head):
            return "pe" if offset + 4 <= size else None  # checked when parsed
        if head[offset : offset + 4] == b"PE\0\0":
            return "pe"
    return None


def _scan_members(zf, members, record, dist_info, report: WheelReport, scratch: Path):
    """Stream each member once: hash it against RECORD, parse it if native."""
    binaries: list[Binary] = []
    texts: dict[str, bytes] = {}
    unsigned = {f"{dist_info}/{n}" for n in SIGNATURE_FILES}
    for member, info in members.items():
        hasher, expected = None, None
        if member in unsigned:
            pass
        elif member not in record:
            report.fail(f"{member}: not listed in RECORD")
        else:
            hasher, expected = _record_hasher(member, *record[member], report)
        keep_text = info.file_size <= MAX_TEXT and (
            member.endswith(".py")
            or (member.startswith(f"{dist_info}/") and "LICENSE" in posixpath.basename(member))
        )
        fmt, size, spool = None, 0, None
        try:
            with zf.open(info) as stream, contextlib.ExitStack() as stack:
                chunks = []
                while block := stream.read(READ_CHUNK):
                    if size == 0:
                        fmt = _native_format(block[:4096], info.file_size)
                        if fmt:
                            spool = stack.enter_context(open(scratch / "native", "wb"))
                    size += len(block)
                    if hasher:
                        hasher.update(block)
                    if spool:
                        spool.write(block)
                    if keep_text:
                        chunks.append(block)
        except _open_errors() as exc:
            report.fail(f"{member}: cannot be read from the archive ({exc})")
            continue
        if hasher:
            _compare_hash(member, hasher, expected, size, report)
        if keep_text:
            texts[member] = b"".join(chunks)
        if fmt:
            binary = _parse_native(member, fmt, scratch / "native", report)
            if binary is not None:
                binaries.append(binary)
    return binaries, texts


def _record_hasher(name: str, digest: str, size: str, report: WheelReport):
    algorithm, _, expected = digest.partition("=")
    if not expected:
        report.fail(f"{name}: no hash in RECORD")
        return None, None
    if algorithm not in STRONG_HASHES:
        report.fail(f"{name}: RECORD uses hash {algorithm!r}; sha256 or stronger is required")
        return None, None
    return hashlib.new(algorithm), (algorithm, expected, size)


def _compare_hash(name: str, hasher, expected, size: int, report: WheelReport) -> None:
    algorithm, digest, record_size = expected
    got = base64.urlsafe_b64encode(hasher.digest()).rstrip(b"=").decode()
    if got != digest.rstrip("="):
        report.fail(f"{name}: {algorithm} does not match RECORD (file was modified)")
    if record_size and record_size != str(size):
        report.fail(f"{name}: size {size} does not match RECORD ({record_size})")


def _parse_native(member: str, fmt: str, path: Path, report: WheelReport) -> Binary | None:
    try:
        with open(path, "rb") as fobj, mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if fmt == "pe":
                offset = struct.unpack("<I", data[0x3C:0x40])[0]
                if data[offset : offset + 4] != b"PE\0\0":
                    return None  # MZ but not PE (a DOS program or a data file)
            binary = _PARSERS[fmt](member, fobj, data, path)
            if "openblas" in posixpath.basename(member).lower():
                binary.openblas_version = _openblas_version(data)
                binary.interface = _openblas_interface(data)
            return binary
    except Exception as exc:  # any parser error on corrupt input is a FAIL
        report.fail(f"{member}: cannot parse as {fmt.upper()}: {type(exc).__name__}: {exc}")
        return None


# --------------------------------------------------------------------------- parsers


def _openblas_version(data) -> str | None:
    match = OPENBLAS_VERSION_RE.search(data)
    if match:
        return match.group(1).decode()
    # x86-64 code may hold the string as movabs immediates ("OpenBLAS", " 0.3.31.", ...).
    for start in (m.start() for m in re.finditer(rb"[\x48\x49][\xb8-\xbf]OpenBLAS", data)):
        window = data[start : start + 160]
        text = b"".join(m.group(1) for m in MOVABS_RE.finditer(window))
        match = OPENBLAS_VERSION_RE.match(text)
        if match:
            return match.group(1).decode().rstrip(".")
    return None


def _openblas_interface(data) -> str | None:
    """ILP64 or LP64, read from the names of the library's BLAS symbols."""
    if data.find(ILP64_SYMBOL) >= 0:
        return "ILP64"
    return "LP64" if data.find(LP64_SYMBOL) >= 0 else None


def _parse_elf(name: str, fobj, data, _path) -> Binary:
    from elftools.elf.dynamic import DynamicSegment
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(fobj)
    machine = elf["e_machine"]
    arch = ELF_MACHINES.get(machine)
    if machine == "EM_PPC64":
        arch = "ppc64le" if elf.little_endian else "ppc64"
    if arch in ("x86_64", "aarch64") and elf.elfclass == 32:
        arch = f"{arch}-32bit"
    binary = Binary(path=name, format="elf", archs=[arch or str(machine)])
    # PT_DYNAMIC, as the loader reads it (section headers may be stripped).
    addresses: dict[str, int] = {}
    for segment in elf.iter_segments():
        if isinstance(segment, DynamicSegment):
            for tag in segment.iter_tags():
                kind = tag.entry.d_tag
                if kind in ("DT_VERNEED", "DT_STRTAB", "DT_STRSZ"):
                    addresses.setdefault(kind, tag.entry.d_val)
                if kind == "DT_NEEDED":
                    binary.needed.append((tag.needed, "needed"))
                elif kind == "DT_RPATH":
                    binary.rpaths += [p for p in tag.rpath.split(":") if p]
                elif kind == "DT_RUNPATH":
                    binary.runpaths += [p for p in tag.runpath.split(":") if p]
                elif kind == "DT_SONAME":
                    binary.soname = tag.soname
            break  # the loader uses the first PT_DYNAMIC
    if "DT_VERNEED" in addresses:
        binary.symbol_versions = _elf_version_needs(elf, data, name, addresses)
    return binary


def _file_offset(elf, address: int, name: str) -> int:
    """The file offset of a virtual address, through the PT_LOAD that maps it."""
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_LOAD":
            start = segment["p_vaddr"]
            if start <= address < start + segment["p_filesz"]:
                return address - start + segment["p_offset"]
    raise ValueError(f"{name}: dynamic address {address:#x} is in no loaded segment")


def _elf_version_needs(elf, data, name: str, addresses: dict[str, int]) -> dict[str, list[str]]:
    """DT_VERNEED as {library: [versions]}, found as the loader finds it (through the
    dynamic segment) and walked with bounds: pyelftools' walk re-reads an entry as
    often as a crafted count says, and follows whatever vn_next points to."""
    if "DT_STRTAB" not in addresses or "DT_STRSZ" not in addresses:
        raise ValueError(f"{name}: DT_VERNEED without a dynamic string table")
    start, end = _file_offset(elf, addresses["DT_VERNEED"], name), len(data)
    strtab = _file_offset(elf, addresses["DT_STRTAB"], name)
    endian = "<" if elf.little_endian else ">"
    names = functools.partial(_cstring, data, strtab, addresses["DT_STRSZ"])
    found: dict[str, list[str]] = {}
    seen: set[int] = set()
    offset, budget = start, MAX_VERNEED
    while True:
        if offset in seen or offset + 16 > end or budget <= 0:
            raise ValueError(f"{name}: malformed version-needs section (loop or overrun)")
        seen.add(offset)
        _ver, count, file_off, aux_off, next_off = struct.unpack_from(
            endian + "HHIII", data, offset
        )
        versions = found.setdefault(names(file_off), [])
        aux = offset + aux_off
        for _ in range(count):
            budget -= 1
            if aux in seen or aux + 16 > end or budget <= 0:
                raise ValueError(f"{name}: malformed version-needs section (loop or overrun)")
            seen.add(aux)
            _hash, _flags, _other, name_off, aux_next = struct.unpack_from(
                endian + "IHHII", data, aux
            )
            versions.append(names(name_off))
            if not aux_next:
                break
            aux += aux_next
        versions.sort()
        if not next_off:
            return found
        offset += next_off


def _cstring(data, table: int, size: int, offset: int) -> str:
    if offset >= size:
        raise ValueError("string offset outside its table")
    start = table + offset
    end = data.find(b"\0", start, min(table + size, len(data)))
    if end < 0:
        raise ValueError("unterminated string")
    return data[start:end].decode("utf-8", "replace")


def _parse_macho(name: str, fobj, _data, _path) -> Binary:
    from macholib.MachO import MachO

    class _FromStream(MachO):
        def __init__(self) -> None:  # read from an open file under the member's name
            self.graphident = self.filename = name
            self.loader_path = posixpath.dirname(name)
            self.fat, self.headers = None, []
            self.allow_unknown_load_commands = True
            self.load(fobj)

    macho = _FromStream()
    binary = Binary(path=name, format="macho", archs=[])
    for header in macho.headers:
        arch = MACHO_CPUS.get(header.header.cputype, f"cpu{header.header.cputype}")
        binary.archs.append(arch)
        for load, command, payload in header.commands:
            cmd = load.cmd
            if cmd in MACHO_LOADS or cmd in (LC_RPATH, LC_ID_DYLIB):
                text = payload.rstrip(b"\0").decode("utf-8", "replace") if payload else ""
                text = text.split("\0", 1)[0]
                if cmd == LC_RPATH:
                    if text not in binary.rpaths:
                        binary.rpaths.append(text)
                elif cmd == LC_ID_DYLIB:
                    binary.soname = text
                elif (text, MACHO_LOADS[cmd]) not in binary.needed:
                    binary.needed.append((text, MACHO_LOADS[cmd]))
            elif cmd == LC_BUILD_VERSION:
                if command.platform != 1:  # PLATFORM_MACOS
                    binary.macos_platform_errors.append(
                        f"{arch} slice is built for Apple platform {command.platform}, not macOS"
                    )
                binary.min_macos[arch] = _unpack_version(command.minos)
            elif cmd == LC_VERSION_MIN_MACOSX:
                binary.min_macos[arch] = _unpack_version(command.version)
    return binary


def _unpack_version(value: int) -> tuple[int, int, int]:
    return (int(value) >> 16, (int(value) >> 8) & 0xFF, int(value) & 0xFF)


def _parse_pe(name: str, _fobj, _data, path) -> Binary:
    import pefile

    pe = pefile.PE(str(path), fast_load=True)
    try:
        pe.parse_data_directories(
            directories=[
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"],
            ]
        )
        binary = Binary(path=name, format="pe", archs=[], machine=pe.FILE_HEADER.Machine)
        machines = {v: k for k, v in _tables()["windows_machines"].items()}
        binary.archs.append(machines.get(pe.FILE_HEADER.Machine, hex(pe.FILE_HEADER.Machine)))
        tables = (("DIRECTORY_ENTRY_IMPORT", "import"), ("DIRECTORY_ENTRY_DELAY_IMPORT", "delay"))
        for attr, kind in tables:
            for entry in getattr(pe, attr, []):
                binary.needed.append((entry.dll.decode("ascii", "replace"), kind))
    finally:
        pe.close()
    return binary


_PARSERS = {"elf": _parse_elf, "macho": _parse_macho, "pe": _parse_pe}


# --------------------------------------------------------------------------- loading chains


@dataclass
class _Found:
    """How a loader resolves one needed library in one loading chain."""

    where: str | None  # member path, "system", "policy", "python", ...; None: not found
    via: str  # the rule or search entry that found it, or what was searched
    binary: Binary | None = None  # the bundled binary it loads, which loads its own needs
    severity: str | None = None  # None (fine), "warn" or "fail"
    reason: str = ""  # the finding's text when severity is set


@dataclass
class _Node:
    binary: Binary
    loader: _Node | None

    def chain(self):
        node: _Node | None = self
        while node is not None:
            yield node
            node = node.loader

    def describe(self) -> str:
        return " <- ".join(n.binary.path for n in self.chain())


def _simulate(report: WheelReport, binaries: list[Binary], roots, resolve, names_of) -> None:
    """Load each root as its loader would, breadth first as glibc/musl/dyld/Windows do,
    recording on every binary how each need was met and reporting what is not
    (once per binary and library, with the first chain that breaks)."""
    reported: set[tuple[str, str]] = set()
    for root, demote in roots:
        start = _Node(root, None)
        loaded: dict[str, _Node] = dict.fromkeys(names_of(root), start)
        queue, visited = collections.deque([start]), {id(root)}
        while queue:
            node = queue.popleft()
            for library, kind in node.binary.needed:
                found = resolve(node, library, kind, loaded)
                if node.binary.resolved.get(library) is None:
                    node.binary.resolved[library] = found.where
                    node.binary.via[library] = found.via
                if found.severity and (node.binary.path, library) not in reported:
                    reported.add((node.binary.path, library))
                    message = f"{node.binary.path} {found.reason}"
                    if node.loader is not None:
                        message += f" (loading chain: {node.describe()})"
                    if found.severity == "fail" and not demote:
                        report.fail(message)
                    else:
                        if demote and found.severity == "fail":
                            message += f"; {root.path} is loaded by no module of the wheel"
                        report.warn(message)
                child = found.binary
                if child is not None and id(child) not in visited:
                    visited.add(id(child))
                    new = _Node(child, node)
                    for alias in names_of(child) | {library}:
                        loaded.setdefault(alias, new)
                    queue.append(new)


def _roots(binaries: list[Binary], key) -> list[tuple[Binary, bool]]:
    """Binaries a loading chain starts from, and whether their findings are demoted.

    Extension modules are loaded by Python itself; a library no binary of the wheel
    needs is loaded by no chain, so its own findings are warnings only.
    """
    wanted = {key(lib) for b in binaries for lib, _ in b.needed}
    roots = []
    for binary in binaries:
        base = posixpath.basename(binary.path)
        extension = bool(EXTENSION_RE.search(base)) and not posixpath.dirname(binary.path).endswith(
            (".libs", ".dylibs")
        )
        needed = key(base) in wanted or (binary.soname and key(binary.soname) in wanted)
        if extension or not needed:
            roots.append((binary, not extension))
    return roots


def _in_wheel(directory: str, library: str, files: dict[str, Binary]) -> Binary | None:
    if directory is None or directory.startswith("../") or directory == "..":
        return None  # outside the install root
    return files.get(posixpath.normpath(posixpath.join(directory, library)))


# --------------------------------------------------------------------------- native checks


def _family(platform: str) -> str:
    if platform.startswith(("manylinux", "musllinux", "linux_")):
        return "linux"
    if platform.startswith("macosx_"):
        return "macos"
    if platform.startswith("win"):
        return "windows"
    return "any" if platform == "any" else "other"


def _check_native(report: WheelReport, binaries, members: set[str], platforms, texts) -> None:
    families = {_family(p) for p in platforms}
    if len(families) != 1:
        report.fail(f"{report.name}: platform tags of different systems: {', '.join(platforms)}")
        return
    family = report.platform = families.pop()
    if family in ("any", "other"):
        for binary in binaries:
            fmt, tagged = binary.format.upper(), ".".join(platforms)
            report.fail(f"{binary.path}: native {fmt} binary in a wheel tagged {tagged}")
        return
    expected_format = {"linux": "elf", "macos": "macho", "windows": "pe"}[family]
    native = []
    for binary in binaries:
        if binary.format != expected_format:
            report.fail(
                f"{binary.path}: {binary.format.upper()} binary in a {family} wheel "
                f"(expected {expected_format.upper()})"
            )
        else:
            native.append(binary)
    check = {"linux": _check_linux, "macos": _check_macos, "windows": _check_windows}[family]
    check(report, native, members, platforms, texts)


def _bundled_elsewhere(members, library: str) -> str | None:
    base = posixpath.basename(library).lower()
    return next((m for m in sorted(members) if posixpath.basename(m).lower() == base), None)


# ..................................................................... Linux


@functools.cache
def _linux_policies(libc_name: str, arch: str, musl_policy: str | None):
    from auditwheel.architecture import Architecture
    from auditwheel.libc import Libc
    from auditwheel.policy import WheelPolicies

    libc = Libc.MUSL if libc_name == "musl" else Libc.GLIBC
    return WheelPolicies(libc=libc, arch=Architecture(arch), musl_policy=musl_policy)


def _linux_policy(platform: str):
    """The auditwheel policy for a platform tag, or None for a plain ``linux_*`` tag."""
    match = re.match(r"^(manylinux|musllinux)(?:_(\d+)_(\d+)|(\d+))?_(.+)$", platform)
    if platform.startswith("linux_") or not match:
        return None
    kind, major, minor, _legacy, arch = match.groups()
    musl_policy = f"musllinux_{major}_{minor}" if kind == "musllinux" else None
    try:
        policies = _linux_policies("musl" if musl_policy else "glibc", arch, musl_policy)
        return policies.get_policy_by_name(platform)
    except (ValueError, LookupError):
        return None


def _short(policy_name: str) -> str:
    """manylinux_2_17_x86_64 -> manylinux_2_17 (the arch is already in the tag)."""
    return re.sub(LINUX_ARCH_SUFFIX, "", policy_name)


def _is_interpreter(library: str) -> bool:
    return library.startswith(("ld-linux", "ld-musl-")) or library in ("ld64.so.1", "ld64.so.2")


def _check_linux(report: WheelReport, binaries, members, platforms, _texts) -> None:
    arch = re.sub(r"^(manylinux_\d+_\d+|manylinux\d+|musllinux_\d+_\d+|linux)_", "", platforms[0])
    policy = None
    for platform in platforms:
        if not platform.startswith("linux_"):
            found = _linux_policy(platform)
            if found is None:
                report.fail(f"{report.name}: unknown platform tag {platform}")
            elif policy is None or found.priority > policy.priority:
                policy = found  # the strictest tag claimed: every other one follows from it
    if policy is None and all(p.startswith("linux_") for p in platforms):
        report.fail(
            f"{report.name}: platform tag {platforms[0]} is not portable "
            "(run auditwheel repair to get a manylinux tag)"
        )
    musl = platforms[0].startswith("musllinux")
    shown = _short(policy.name) if policy else "any manylinux policy"
    whitelist = policy.whitelist if policy else frozenset()
    files = {b.path: b for b in binaries}
    for binary in binaries:
        if binary.archs[0] != arch:
            report.fail(f"{binary.path}: built for {binary.archs[0]}, the tag says {arch}")

    def search_list(node: _Node) -> list[tuple[str, str, _Node]]:
        """(entry, which tag of whom, owner) in the order the loader tries them."""
        own = node.binary
        entries = []
        if musl:  # musl: each object's RUNPATH (else RPATH), up the chain
            for n in node.chain():
                tag = "DT_RUNPATH" if n.binary.runpaths else "DT_RPATH"
                entries += [(e, tag, n) for e in n.binary.runpaths or n.binary.rpaths]
            return entries
        if not own.runpaths:  # glibc: DT_RPATH up the chain, unless the object has RUNPATH
            for n in node.chain():
                if not n.binary.runpaths:  # an object's RUNPATH disables its own RPATH
                    entries += [(e, "DT_RPATH", n) for e in n.binary.rpaths]
        return entries + [(e, "DT_RUNPATH", node) for e in own.runpaths]

    def resolve(node: _Node, library: str, _kind: str, loaded) -> _Found:
        if _is_interpreter(library):
            return _Found("loader", "the dynamic loader itself")
        if musl and library.startswith(MUSL_RESERVED):
            return _Found("system", "musl: part of libc itself")
        if library in loaded:
            return _Found(loaded[library].binary.path, f"already loaded as {library}")
        searched = []
        if "/" not in library:
            for entry, tag, owner in search_list(node):
                directory = _expand_origin(entry, owner.binary.path)
                searched.append(f"{tag} {entry} of {owner.binary.path}")
                found = _in_wheel(directory, library, files) if directory is not None else None
                if found is not None:
                    return _Found(found.path, f"{tag} {entry} of {owner.binary.path}", found)
        if library in whitelist:
            return _Found("policy", f"system library allowed by {shown}")
        elsewhere = _bundled_elsewhere(members, library)
        if elsewhere:
            tried = "; ".join(searched) or "no DT_RPATH/DT_RUNPATH in the chain"
            reason = (
                f"needs {library}: bundled as {elsewhere} but no search path reaches it ({tried})"
            )
        else:
            reason = f"needs {library}: not bundled, not allowed by {shown}"
        return _Found(None, "not found", severity="fail", reason=reason)

    def names_of(binary: Binary) -> set[str]:
        base = posixpath.basename(binary.path)
        # glibc matches a loaded object by its DT_SONAME too; musl only by file name
        return {base} if musl or not binary.soname else {base, binary.soname}

    _simulate(report, binaries, _roots(binaries, lambda n: n), resolve, names_of)
    if policy is not None:
        for binary in binaries:
            _check_symbol_versions(report, binary, policy, shown)


def _expand_origin(entry: str, owner_path: str) -> str | None:
    """The wheel-relative directory a search entry names, or None when it is outside."""
    rest = re.sub(r"^\$(?:ORIGIN|\{ORIGIN\})(?=/|$)", "", entry)
    if rest == entry or "$" in rest:
        return None  # an absolute path, or $LIB/$PLATFORM: not inside the wheel
    return posixpath.normpath(posixpath.join(posixpath.dirname(owner_path), rest.lstrip("/")))


def _check_symbol_versions(report: WheelReport, binary: Binary, policy, shown: str) -> None:
    allowed = policy.symbol_versions
    for library, versions in sorted(binary.symbol_versions.items()):
        if _is_interpreter(library) or binary.resolved.get(library) not in ("policy", None):
            continue  # a bundled library brings its own symbol versions
        too_new = []
        for version in versions:
            prefix, _, number = version.partition("_")
            if prefix in allowed and number not in allowed[prefix]:
                too_new.append(version)
        if too_new:
            report.fail(
                f"{binary.path} uses {', '.join(sorted(too_new, key=_natural))} from {library}: "
                f"too recent for {shown}"
            )


def _natural(text: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


# ..................................................................... macOS


def _check_macos(report: WheelReport, binaries, members, platforms, _texts) -> None:
    tables = _tables()
    system = tuple(tables["macos_system_prefixes"])
    for platform in platforms:
        match = re.match(r"^macosx_(\d+)_(\d+)_(.+)$", platform)
        if not match or match.group(3) not in tables["macos_tag_archs"]:
            report.fail(f"{report.name}: unknown platform tag {platform}")
            continue
        tag_version = (int(match.group(1)), int(match.group(2)), 0)
        # From macOS 11 on, tags carry the major version only (packaging's mac_platforms):
        # a macosx_12_0 wheel is the one for every macOS 12.x.
        depth = 1 if tag_version[0] >= 11 else 2
        required = set(tables["macos_tag_archs"][match.group(3)])
        for binary in binaries:
            missing = required - set(binary.archs)
            if missing:
                report.fail(
                    f"{binary.path}: contains {'+'.join(binary.archs)}, "
                    f"the tag {platform} needs {'+'.join(sorted(missing))}"
                )
            for arch, version in sorted(binary.min_macos.items()):
                if arch in required and version[:depth] > tag_version[:depth]:
                    report.fail(
                        f"{binary.path}: {arch} code requires macOS {_version_text(version)}, "
                        f"the tag {platform} promises {_version_text(tag_version)}"
                    )
    for binary in binaries:
        for problem in binary.macos_platform_errors:
            report.fail(f"{binary.path}: {problem}")
    files = {b.path: b for b in binaries}

    def expand(entry: str, owner: Binary) -> str | None:
        if entry.startswith("@loader_path"):
            rest = entry[len("@loader_path") :].lstrip("/")
            return posixpath.normpath(posixpath.join(posixpath.dirname(owner.path), rest))
        return None  # @executable_path (python's directory) or absolute: outside the wheel

    def resolve(node: _Node, library: str, kind: str, loaded) -> _Found:
        if library in loaded:
            return _Found(loaded[library].binary.path, f"install name already loaded: {library}")
        if library.startswith(system):
            return _Found("system", "macOS system library")
        searched = []
        if library.startswith("@loader_path/"):
            found = _in_wheel(expand(library, node.binary), "", files)
            if found is not None:
                return _Found(found.path, f"@loader_path of {node.binary.path}", found)
        elif library.startswith("@rpath/"):
            tail = library[len("@rpath/") :]
            for owner in node.chain():
                for entry in owner.binary.rpaths:
                    searched.append(f"{entry} of {owner.binary.path}")
                    if entry.startswith(system):
                        return _Found("system", f"LC_RPATH {entry} of {owner.binary.path}")
                    found = _in_wheel(expand(entry, owner.binary), tail, files)
                    if found is not None:
                        return _Found(found.path, f"LC_RPATH {entry} of {owner.binary.path}", found)
        how = "weakly links" if kind == "weak" else "needs"
        if library.startswith("@rpath/"):
            reason = (
                f"does not resolve inside the wheel (LC_RPATH: {'; '.join(searched) or 'none'})"
            )
        elif library.startswith("@executable_path/"):
            reason = "resolves in the Python executable's directory, outside the wheel"
        elif library.startswith("@loader_path/"):
            reason = "does not resolve inside the wheel"
        else:
            reason = "not bundled and not a system library"
        return _Found(None, "not found", severity="warn" if kind == "weak" else "fail",
                      reason=f"{how} {library}: {reason}")  # fmt: skip

    def names_of(binary: Binary) -> set[str]:
        return {binary.soname} if binary.soname else set()

    _simulate(report, binaries, _roots(binaries, posixpath.basename), resolve, names_of)


# ..................................................................... Windows


def _check_windows(report: WheelReport, binaries, members, platforms, texts) -> None:
    tables = _tables()
    system = {n.lower() for n in tables["windows_system_dlls"]}
    runtime = {n.lower() for n in tables["windows_python_runtime"]}
    redist = {n.lower() for n in tables["windows_vc_redist"]}
    api_sets = tuple(tables["windows_api_set_prefixes"])
    machines = tables["windows_machines"]
    for platform in platforms:
        if platform not in machines:
            report.fail(f"{report.name}: unknown platform tag {platform}")
            continue
        for binary in binaries:
            if binary.machine != machines[platform]:
                report.fail(
                    f"{binary.path}: machine type {binary.archs[0]}, the tag says {platform}"
                )
    directories, preloaded = _dll_search_additions(texts, members)
    report.dll_directories = sorted(directories)
    files = {b.path.lower(): b for b in binaries}
    by_name = {posixpath.basename(b.path).lower(): b for b in binaries}

    def resolve(node: _Node, library: str, kind: str, loaded) -> _Found:
        lower = library.lower()
        if lower.startswith(api_sets):
            return _Found("system", "API set (resolved by the loader to a system DLL)")
        if lower in loaded:
            return _Found(loaded[lower].binary.path, "a module of that name is already loaded")
        for member, code in preloaded.items():
            if posixpath.basename(member).lower() == lower and member.lower() in files:
                return _Found(member, f"preloaded by {code}", files[member.lower()])
        # LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR: the directory of the module Python loads,
        # then the application (python.exe) directory, added directories, System32.
        root = list(node.chain())[-1].binary
        places = [(posixpath.dirname(root.path), f"the directory of {root.path}")]
        places += [(d, f"os.add_dll_directory in {code}") for d, code in directories.items()]
        for directory, why in places:
            found = files.get(posixpath.join(directory.lower(), lower))
            if found is not None:
                return _Found(found.path, why, found)
        if re.match(r"^python3\d*t?(_d)?\.dll$", lower):
            return _Found("python", "the Python DLL")
        if lower in runtime:
            return _Found("python runtime", "ships with Python")
        if lower in system:
            return _Found("system", "Windows system DLL")
        what = "delay-imports" if kind == "delay" else "imports"
        if lower in redist:
            return _Found(None, "not found", severity="warn", reason=(
                f"{what} {library}: not bundled; part of the Visual C++ runtime, "
                "common but not guaranteed on Windows"))  # fmt: skip
        elsewhere = by_name.get(lower)
        if elsewhere is not None:
            tried = ", ".join(d or "." for d, _ in places)
            reason = (f"{what} {library}: bundled as {elsewhere.path} but not in any "
                      f"directory the loader searches ({tried})")  # fmt: skip
        else:
            reason = (f"{what} {library}: not bundled, not a Windows system DLL "
                      "or a runtime that ships with Python")  # fmt: skip
        # A delay-loaded DLL is loaded on first use: missing, only that use fails.
        return _Found(None, "not found", severity="warn" if kind == "delay" else "fail",
                      reason=reason)  # fmt: skip

    def names_of(binary: Binary) -> set[str]:
        return {posixpath.basename(binary.path).lower()}

    roots = _roots(binaries, str.lower)
    roots += [(files[m.lower()], False) for m in preloaded if m.lower() in files]
    _simulate(report, binaries, roots, resolve, names_of)


def _dll_search_additions(texts: dict[str, bytes], members) -> tuple[dict, dict]:
    """Directories the wheel's Python code adds with os.add_dll_directory, and DLLs it
    loads itself (ctypes.WinDLL/CDLL, LoadLibrary*), each with the file that does it."""
    directories: dict[str, str] = {}
    preloaded: dict[str, str] = {}
    for member, raw in sorted(texts.items()):
        if not member.endswith(".py") or not re.search(
            rb"add_dll_directory|WinDLL|CDLL|LoadLibrary", raw
        ):
            continue
        try:
            tree = ast.parse(raw, filename=member)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # not code Python would run either
        values = _PathEvaluator(member)
        for call in values.calls(tree):
            name, arg = call
            if arg is None:
                continue
            if name == "add_dll_directory":
                directories.setdefault(arg, member)
            else:
                for m in members:
                    if fnmatch.fnmatchcase(m.lower(), arg.lower()):
                        preloaded.setdefault(m, member)
    return directories, preloaded


class _PathEvaluator:
    """Evaluates, without running it, the paths a module's code builds from its own
    location (``os.path.join(os.path.dirname(__file__), os.pardir, 'x.libs')``):
    names assigned earlier, walrus targets and ``for x in glob.glob(...)`` included.
    Values are wheel-relative paths (globs for glob results); None is unknown."""

    MAX_DEPTH = 40

    def __init__(self, member: str) -> None:
        self.env: dict[str, str | None] = {"__file__": member}

    def calls(self, tree: ast.AST):
        """(function name, evaluated first argument) of every DLL-related call, in order."""
        for node in self._walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.env[target.id] = self.value(node.value)
            elif isinstance(node, ast.NamedExpr):
                self.env[node.target.id] = self.value(node.value)
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                self.env[node.target.id] = self._glob(node.iter)
            elif isinstance(node, ast.Call):
                name = _call_name(node.func)
                dll = name in ("add_dll_directory", "WinDLL", "CDLL", "LoadLibrary")
                if (dll or name.startswith("LoadLibrary")) and node.args:
                    yield name, self.value(node.args[0])

    def _walk(self, tree: ast.AST):
        # In source order, walrus values before the calls that use them.
        stack = [tree]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(ast.iter_child_nodes(node))))

    def _glob(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Call) and _call_name(node.func) in ("glob", "iglob") and node.args:
            return self.value(node.args[0])
        return None

    def value(self, node: ast.AST, depth: int = 0) -> str | None:
        if depth > self.MAX_DEPTH:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.NamedExpr):
            self.env[node.target.id] = self.value(node.value, depth + 1)
            return self.env[node.target.id]
        if isinstance(node, ast.Attribute) and node.attr == "pardir":
            return ".."
        if isinstance(node, ast.Attribute) and node.attr == "curdir":
            return "."
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            args = [self.value(a, depth + 1) for a in node.args]
            if any(a is None for a in args) or node.keywords:
                return None
            if name == "join" and args:
                return posixpath.join(*[a.replace("\\", "/") for a in args])
            if name == "dirname" and len(args) == 1:
                return posixpath.dirname(args[0])
            if name in ("abspath", "normpath", "realpath", "str", "fspath") and len(args) == 1:
                return posixpath.normpath(args[0])
        return None


def _call_name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


# --------------------------------------------------------------------------- NumPy


def _check_numpy(report, binaries, texts, platforms, expect_openblas, expect_interface) -> None:
    openblas = [b for b in binaries if "openblas" in posixpath.basename(b.path).lower()]
    report.openblas = {
        "files": [b.path for b in openblas],
        "versions": {b.path: b.openblas_version for b in openblas},
        "interfaces": {b.path: b.interface for b in openblas},
    }
    if len(openblas) > 1:
        report.fail(
            f"{report.name}: bundles {len(openblas)} OpenBLAS libraries "
            f"({', '.join(b.path for b in openblas)}); at most one is allowed"
        )
    bits32 = any(BITS32.search(p) for p in platforms)
    for binary in openblas:
        if binary.interface is None:
            report.fail(f"{binary.path}: cannot tell the OpenBLAS integer interface (no dgemm)")
            continue
        report.openblas["variant"] = binary.interface
        if bits32 and binary.interface == "ILP64":
            report.fail(
                f"{binary.path}: ILP64 OpenBLAS, but a {platforms[0]} wheel is 32-bit "
                "and must bundle the LP64 build"
            )
        elif expect_interface and binary.interface != expect_interface.upper():
            report.fail(
                f"{binary.path}: {binary.interface} OpenBLAS, but the build used "
                f"{expect_interface.upper()} (NW_OPENBLAS_INTERFACE={expect_interface.lower()})"
            )
    if (expect_openblas or expect_interface) and not openblas:
        uses = "Accelerate" if _links_accelerate(binaries) else "no bundled BLAS"
        wanted = f"OpenBLAS {expect_openblas}" if expect_openblas else "a bundled OpenBLAS"
        report.fail(f"{report.name}: no bundled OpenBLAS (found {uses}), expected {wanted}")
    if expect_openblas:
        for binary in openblas:
            found = binary.openblas_version
            if found is None:
                report.fail(f"{binary.path}: cannot read the OpenBLAS version from the library")
            elif found != expect_openblas and not found.startswith(expect_openblas + "."):
                report.fail(f"{binary.path}: OpenBLAS {found}, expected {expect_openblas}")


def _links_accelerate(binaries) -> bool:
    return any("Accelerate.framework" in lib for b in binaries for lib, _ in b.needed)


def _bundled_libraries(binaries) -> list[str]:
    """Native files that are shared libraries rather than Python extension modules."""
    found = []
    for binary in binaries:
        base = posixpath.basename(binary.path)
        parent = posixpath.basename(posixpath.dirname(binary.path))
        if re.search(r"\.(cpython|pypy|cp\d+|abi3)", base) or base.endswith(".pyd"):
            continue
        shared = re.search(r"\.(so(\.[\d.]+)?|dylib|dll)$", base)
        if parent.endswith((".libs", ".dylibs")) or shared:
            found.append(binary.path)
    return found


def _check_license(report, binaries, texts, dist_info) -> None:
    """Bundled software should be named in LICENSE.txt: a policy warning, never a FAIL."""
    bundled = _bundled_libraries(binaries)
    exempt = tuple(_tables()["license_exempt_prefixes"])
    bundled = [b for b in bundled if not posixpath.basename(b).lower().startswith(exempt)]
    if not bundled:
        return
    licenses = {
        k: v
        for k, v in texts.items()
        if k.startswith(f"{dist_info}/") and posixpath.basename(k) == "LICENSE.txt"
    }
    if not licenses:
        report.warn(f"{dist_info}/LICENSE.txt: missing, but the wheel bundles {bundled[0]}")
        return
    license_name, raw = sorted(licenses.items(), key=lambda kv: len(kv[0]))[0]
    text = raw.decode("utf-8", "replace")
    patterns = [
        p.strip().replace("\\", "/")
        for line in re.findall(r"^Files:\s*(.+)$", text, re.MULTILINE)
        for p in line.split(",")
    ]
    for member in bundled:
        if not _declared(member, patterns, text):
            report.warn(f"{member}: bundled but not declared in {license_name}")


def _declared(member: str, patterns: list[str], text: str) -> bool:
    directory, base = posixpath.split(member)
    for pattern in patterns:
        pat_dir, pat_base = posixpath.split(pattern)
        if pat_dir != directory:
            continue
        # "libscipy_openblas*.so" also declares the .dylib/.dll of the same library
        if fnmatch.fnmatchcase(base, pat_base) or base.startswith(pat_base.split("*", 1)[0]):
            return True
    if patterns:
        return False
    match = LIB_STEM_RE.match(base)
    stem = re.sub(r"^lib", "", match.group(1) if match else base).rstrip("_0123456789.")
    return stem.lower() in text.lower()


# --------------------------------------------------------------------------- CLI


def _format_text(reports: list[WheelReport], strict: bool = False) -> str:
    lines = []
    for report in reports:
        lines.append(f"{_verdict(report, strict)} {report.name}")
        lines += [f"  {failure}" for failure in report.failures]
        lines += [f"  warning: {warning}" for warning in report.warnings]
    return "\n".join(lines)


EPILOG = """\
exit status:
  0  every wheel passes (warnings allowed unless --strict)
  1  at least one wheel fails (or, with --strict, has a warning)
  2  bad command line
  3  an input could not be read at all (no such file, not a regular file,
     no permission), and no wheel failed

A failure is something that breaks or is unsafe: a library no loader rule
finds, symbols or a macOS minimum newer than the tag, a wrong architecture, a
RECORD mismatch, an unsafe or clashing member path, a damaged archive, an
OpenBLAS other than the one demanded.  A warning is policy: a runtime that is
common but not guaranteed (MSVCP140.dll, VCRUNTIME140_1.dll), a delay-loaded
or weakly linked library that is missing, bundled software missing from the
license notice.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="check_wheel.py",
        description="Audit wheels (any platform, from this host): archive integrity, native "
        "dependencies resolved as the platform's loader does, and NumPy's OpenBLAS and "
        "license.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("wheels", nargs="+", metavar="WHEEL", help="wheel files to audit")
    parser.add_argument("--json", action="store_true", help="print all findings as JSON")
    parser.add_argument(
        "--strict", action="store_true", help="warnings fail the wheel too (exit 1)"
    )
    parser.add_argument(
        "--expect-openblas",
        metavar="VER",
        help="require a bundled OpenBLAS of this version (e.g. 0.3.30); implies NumPy checks",
    )
    parser.add_argument(
        "--expect-interface",
        choices=("ilp64", "lp64"),
        type=str.lower,
        help="require the bundled OpenBLAS to have this integer interface (the build's "
        "NW_OPENBLAS_INTERFACE); implies NumPy checks",
    )
    parser.add_argument(
        "--no-numpy-checks",
        action="store_true",
        help="skip the NumPy-specific checks (on by default for wheels of the project numpy)",
    )
    nwlib.add_version_option(parser)
    args = parser.parse_args(argv)
    if args.expect_openblas is not None and not re.match(
        r"^\d+\.\d+\.\d+(\.[0-9A-Za-z]+)*$", args.expect_openblas
    ):
        parser.error(f"--expect-openblas: {args.expect_openblas!r} is not a version like 0.3.30")
    if args.no_numpy_checks and (args.expect_openblas or args.expect_interface):
        parser.error("--expect-openblas/--expect-interface: not allowed with --no-numpy-checks")
    numpy_checks = False if args.no_numpy_checks else None
    reports = check_wheels(args.wheels, args.expect_openblas, numpy_checks, args.expect_interface)
    if args.json:
        document = {
            "version": 2,
            "strict": args.strict,
            "ok": all(r.passed(args.strict) for r in reports),
            "wheels": [r.to_json(args.strict) for r in reports],
        }
        print(json.dumps(document, indent=2))
    else:
        print(_format_text(reports, args.strict))
    if any(not r.passed(args.strict) and not r.unreadable for r in reports):
        return EXIT_FAIL
    return EXIT_UNREADABLE if any(r.unreadable for r in reports) else EXIT_OK


if __name__ == "__main__":
    nwlib.run_main(main, "check_wheel.py")
