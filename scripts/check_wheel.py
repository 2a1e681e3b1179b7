"""Audit wheels before they are staged or uploaded: ``check_wheel.py WHEEL...``.

Every wheel is read on this host, whatever platform it was built for: ELF with
pyelftools (the manylinux/musllinux policy comes from auditwheel's installed
policy data), Mach-O with macholib, PE with pefile.  Three groups of checks:

1. archive integrity: a readable zip, RECORD hashes and sizes, nothing missing
   from or extra to RECORD, no member escaping the install root, WHEEL tags and
   METADATA name/version equal to the filename's, metadata that validates;
2. native dependencies of every binary (bundled, system or policy-allowed),
   symbol versions / minimum macOS versus the tag, architecture versus the tag;
3. NumPy specifics (default for NumPy wheels): at most one OpenBLAS, of the
   variant the tag implies, declared in LICENSE.txt; ``--expect-openblas VER``
   demands it is bundled with that version.

Prints ``PASS name`` or ``FAIL name`` per wheel, then one indented line per failed
check; ``--json`` prints all findings.  Exit 0 only if every wheel passes.

Python API (the uploader and ``make stage`` use it)::

    check_wheels(paths, expect_openblas=None, numpy_checks=None) -> list[WheelReport]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import functools
import hashlib
import io
import json
import posixpath
import re
import stat
import struct
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
LC_RPATH, LC_BUILD_VERSION, LC_VERSION_MIN_MACOSX = 0x8000001C, 0x32, 0x24
MACHO_MAGICS = {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe"}
LINUX_ARCH_SUFFIX = r"_(x86_64|i686|aarch64|armv7l|ppc64le|ppc64|s390x|riscv64|loongarch64)$"
FAT_MAGICS = {b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"}
# "OpenBLAS 0.3.30", "OpenBLAS 0.3.31.188.0", "OpenBLAS 0.3.31.dev"
OPENBLAS_VERSION_RE = re.compile(rb"OpenBLAS (\d+\.\d+\.\d+(?:\.[0-9A-Za-z]+)*)")
# x86-64 "movabs r64, imm64": compilers build the short config string from 8-byte immediates.
MOVABS_RE = re.compile(rb"[\x48\x49][\xb8-\xbf](.{8})", re.DOTALL)
# A hash or version suffix added by repair tools: libfoo-1a2b3c4d.so.1, msvcp140-<32 hex>.dll
LIB_STEM_RE = re.compile(r"^(.+?)(?:-[0-9a-f]{8,32})*(?:\.so(?:\.[\d.]+)?|\.dylib|\.dll|\.pyd)$")


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

    path: str  # member name in the wheel
    format: str  # "elf", "macho" or "pe"
    archs: list[str]
    needed: list[tuple[str, str]] = field(default_factory=list)  # (library, kind)
    rpaths: list[str] = field(default_factory=list)  # DT_RPATH / LC_RPATH
    runpaths: list[str] = field(default_factory=list)  # DT_RUNPATH
    soname: str | None = None
    min_macos: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # arch -> version
    macos_platform_errors: list[str] = field(default_factory=list)
    symbol_versions: dict[str, list[str]] = field(default_factory=dict)  # library -> versions
    machine: int | None = None
    openblas_version: str | None = None
    resolved: dict[str, str] = field(default_factory=dict)  # library -> where it was found

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "archs": self.archs,
            "needed": [
                {"name": name, "kind": kind, "resolved": self.resolved.get(name)}
                for name, kind in self.needed
            ],
        }
        if self.format == "elf":
            data.update(rpath=self.rpaths, runpath=self.runpaths, soname=self.soname)
            data["symbol_versions"] = self.symbol_versions
        elif self.format == "macho":
            data.update(
                rpath=self.rpaths,
                min_macos={a: _version_text(v) for a, v in self.min_macos.items()},
            )
        if self.openblas_version:
            data["openblas_version"] = self.openblas_version
        return data


@dataclass
class WheelReport:
    """The audit of one wheel: ``ok`` is True only if ``failures`` is empty."""

    path: Path
    name: str
    failures: list[str] = field(default_factory=list)
    project: str | None = None
    version: str | None = None
    tags: list[str] = field(default_factory=list)
    platform: str | None = None
    binaries: list[Binary] = field(default_factory=list)
    openblas: dict[str, Any] = field(default_factory=dict)
    numpy_checks: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)

    def to_json(self) -> dict[str, Any]:
        return {
            "wheel": self.name,
            "path": str(self.path),
            "ok": self.ok,
            "failures": self.failures,
            "project": self.project,
            "version": self.version,
            "tags": self.tags,
            "platform": self.platform,
            "numpy_checks": self.numpy_checks,
            "openblas": self.openblas,
            "binaries": [b.to_json() for b in self.binaries],
        }


class _Stop(Exception):
    """Raised inside the audit when no further check makes sense."""


def _version_text(version: tuple[int, int, int]) -> str:
    major, minor, patch = version
    return f"{major}.{minor}" + (f".{patch}" if patch else "")


# --------------------------------------------------------------------------- archive


def _member_problem(name: str) -> str | None:
    """Why a member name would escape the install root, or None."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "'..' in path"
    return None


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
            if path in entries:
                report.fail(f"{record_name}: {path} is listed twice")
            entries[path] = (digest, size)
    except csv.Error as exc:
        report.fail(f"{record_name}: not a readable CSV file (line {reader.line_num}: {exc})")
    return entries


def _check_hash(name: str, data: bytes, digest: str, size: str, report: WheelReport) -> None:
    algorithm, _, expected = digest.partition("=")
    if not expected:
        report.fail(f"{name}: no hash in RECORD")
        return
    if algorithm not in STRONG_HASHES:
        report.fail(f"{name}: RECORD uses hash {algorithm!r}; sha256 or stronger is required")
        return
    got = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()
    if got != expected.rstrip("="):
        report.fail(f"{name}: {algorithm} does not match RECORD (file was modified)")
    if size and size != str(len(data)):
        report.fail(f"{name}: size {len(data)} does not match RECORD ({size})")


def _native_format(data: bytes) -> str | None:
    head = data[:4]
    if head == b"\x7fELF":
        return "elf"
    if head in MACHO_MAGICS:
        return "macho"
    if head in FAT_MAGICS and len(data) >= 8:
        # Java class files share the fat magic; a fat Mach-O has a handful of slices.
        return "macho" if 0 < struct.unpack(">I", data[4:8])[0] < 20 else None
    if data[:2] == b"MZ" and len(data) >= 0x40:
        offset = struct.unpack("<I", data[0x3C:0x40])[0]
        if data[offset : offset + 4] == b"PE\0\0":
            return "pe"
    return None


def check_wheel(
    path: Path | str, expect_openblas: str | None = None, numpy_checks: bool | None = None
) -> WheelReport:
    """Audit one wheel; never raises for bad input (it becomes a failure)."""
    path = Path(path)
    report = WheelReport(path=path, name=path.name)
    with contextlib.suppress(_Stop):
        _audit(path, report, expect_openblas, numpy_checks)
    return report


def check_wheels(
    paths: list[Path | str] | tuple[Path | str, ...],
    expect_openblas: str | None = None,
    numpy_checks: bool | None = None,
) -> list[WheelReport]:
    """Audit each wheel in ``paths``; one report per path, in order."""
    return [check_wheel(p, expect_openblas, numpy_checks) for p in paths]


def _audit(path: Path, report: WheelReport, expect_openblas, numpy_checks) -> None:
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    if not path.exists():
        report.fail(f"{path}: no such file")
        raise _Stop
    if not path.is_file():
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
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        report.fail(f"{path.name}: not a valid zip archive ({exc})")
        raise _Stop from None
    with zf:
        members = _zip_members(zf, report)
        dist_info = _find_dist_info(members, name, version, report)
        record_name = f"{dist_info}/RECORD"
        record: dict[str, tuple[str, str]] = {}
        if record_name not in members:
            report.fail(f"{record_name}: missing")
        else:
            record = _read_record(
                _read_member(zf, members[record_name], report).decode("utf-8", "replace"),
                report,
                record_name,
            )
        _check_wheel_file(zf, members, dist_info, tags, report)
        _check_metadata(zf, members, dist_info, name, version, report)
        binaries, texts = _scan_members(zf, members, record, dist_info, report)
        for entry in record:
            if entry not in members and entry.rstrip("/") not in members:
                report.fail(f"{entry}: listed in RECORD but missing from the archive")
    report.binaries = binaries
    _check_native(report, binaries, set(members), platforms)
    if report.numpy_checks or expect_openblas:
        _check_numpy(report, binaries, texts, platforms, expect_openblas, dist_info)


def _zip_members(zf: zipfile.ZipFile, report: WheelReport) -> dict[str, zipfile.ZipInfo]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        problem = _member_problem(info.filename)
        if problem:
            report.fail(f"{info.filename}: archive member escapes the install root ({problem})")
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            report.fail(f"{info.filename}: archive member is a symlink")
            continue
        if info.is_dir():
            continue
        if info.filename in members:
            report.fail(f"{info.filename}: archive member appears twice")
        members[info.filename] = info
    return members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, report: WheelReport) -> bytes:
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        report.fail(f"{info.filename}: cannot be read from the archive ({exc})")
        return b""


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
    headers = _headers(_read_member(zf, members[wheel_name], report))
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
    raw = _read_member(zf, members[meta_name], report)
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

        if readme_renderer.rst.render(meta.description, stream=io.StringIO()) is None:
            report.fail(
                f"{meta_name}: long description has syntax errors in markup "
                "and would not be rendered on PyPI"
            )


def _scan_members(zf, members, record, dist_info, report: WheelReport):
    """Read each member once: check it against RECORD and parse it if native."""
    binaries: list[Binary] = []
    texts: dict[str, bytes] = {}
    unsigned = {f"{dist_info}/{n}" for n in SIGNATURE_FILES}
    for member, info in members.items():
        data = _read_member(zf, info, report)
        if member in unsigned:
            pass
        elif member not in record:
            report.fail(f"{member}: not listed in RECORD")
        else:
            _check_hash(member, data, *record[member], report)
        if member.startswith(f"{dist_info}/") and posixpath.basename(member).startswith("LICENSE"):
            texts[member] = data
        fmt = _native_format(data)
        if fmt is None:
            continue
        try:
            binaries.append(_PARSERS[fmt](member, data))
        except Exception as exc:  # any parser error on corrupt input is a FAIL
            report.fail(f"{member}: cannot parse as {fmt.upper()}: {type(exc).__name__}: {exc}")
    return binaries, texts


# --------------------------------------------------------------------------- parsers


def _openblas_version(name: str, data: bytes) -> str | None:
    if "openblas" not in posixpath.basename(name).lower():
        return None
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


def _parse_elf(name: str, data: bytes) -> Binary:
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    elf = ELFFile(io.BytesIO(data))
    machine = elf["e_machine"]
    arch = ELF_MACHINES.get(machine)
    if machine == "EM_PPC64":
        arch = "ppc64le" if elf.little_endian else "ppc64"
    if arch in ("x86_64", "aarch64") and elf.elfclass == 32:
        arch = f"{arch}-32bit"
    binary = Binary(path=name, format="elf", archs=[arch or str(machine)])
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                kind = tag.entry.d_tag
                if kind == "DT_NEEDED":
                    binary.needed.append((tag.needed, "needed"))
                elif kind == "DT_RPATH":
                    binary.rpaths += [p for p in tag.rpath.split(":") if p]
                elif kind == "DT_RUNPATH":
                    binary.runpaths += [p for p in tag.runpath.split(":") if p]
                elif kind == "DT_SONAME":
                    binary.soname = tag.soname
        elif isinstance(section, GNUVerNeedSection):
            for verneed, auxiliaries in section.iter_versions():
                versions = binary.symbol_versions.setdefault(verneed.name, [])
                versions += sorted(aux.name for aux in auxiliaries)
    binary.openblas_version = _openblas_version(name, data)
    return binary


def _parse_macho(name: str, data: bytes) -> Binary:
    from macholib.MachO import MachO

    class _InMemory(MachO):
        def __init__(self) -> None:  # read from bytes instead of a filename
            self.graphident = self.filename = name
            self.loader_path = posixpath.dirname(name)
            self.fat, self.headers = None, []
            self.allow_unknown_load_commands = True
            self.load(io.BytesIO(data))

    macho = _InMemory()
    binary = Binary(path=name, format="macho", archs=[])
    for header in macho.headers:
        arch = MACHO_CPUS.get(header.header.cputype, f"cpu{header.header.cputype}")
        binary.archs.append(arch)
        for load, command, payload in header.commands:
            cmd = load.cmd
            if cmd in MACHO_LOADS or cmd == LC_RPATH:
                text = payload.rstrip(b"\0").decode("utf-8", "replace") if payload else ""
                text = text.split("\0", 1)[0]
                if cmd == LC_RPATH:
                    if text not in binary.rpaths:
                        binary.rpaths.append(text)
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
    binary.openblas_version = _openblas_version(name, data)
    return binary


def _unpack_version(value: int) -> tuple[int, int, int]:
    return (int(value) >> 16, (int(value) >> 8) & 0xFF, int(value) & 0xFF)


def _parse_pe(name: str, data: bytes) -> Binary:
    import pefile

    pe = pefile.PE(data=data, fast_load=True)
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
    binary.openblas_version = _openblas_version(name, data)
    return binary


_PARSERS = {"elf": _parse_elf, "macho": _parse_macho, "pe": _parse_pe}


# --------------------------------------------------------------------------- native checks


def _family(platform: str) -> str:
    if platform.startswith(("manylinux", "musllinux", "linux_")):
        return "linux"
    if platform.startswith("macosx_"):
        return "macos"
    if platform.startswith("win"):
        return "windows"
    return "any" if platform == "any" else "other"


def _check_native(report: WheelReport, binaries, members: set[str], platforms) -> None:
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
    {"linux": _check_linux, "macos": _check_macos, "windows": _check_windows}[family](
        report, native, members, platforms
    )


def _loaders(binary: Binary, binaries: list[Binary]) -> list[Binary]:
    """The binaries in the wheel that need ``binary`` by name."""
    names = {binary.soname, posixpath.basename(binary.path)} - {None}
    return [b for b in binaries if b is not binary and any(n in names for n, _ in b.needed)]


def _same_basename(members: set[str], library: str) -> str | None:
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


def _check_linux(report: WheelReport, binaries, members, platforms) -> None:
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
    shown = _short(policy.name) if policy else "any manylinux policy"
    whitelist = policy.whitelist if policy else frozenset()
    for binary in binaries:
        if binary.archs[0] != arch:
            report.fail(f"{binary.path}: built for {binary.archs[0]}, the tag says {arch}")
        loaders = _loaders(binary, binaries)
        search = binary.runpaths or binary.rpaths + [
            p for loader in loaders if not loader.runpaths for p in loader.rpaths
        ]
        for library, _kind in binary.needed:
            if library.startswith("ld-linux") or library in ("ld64.so.1", "ld64.so.2"):
                binary.resolved[library] = "loader"
                continue
            inside = _resolve_origin(binary.path, search, library, members)
            if inside:
                binary.resolved[library] = inside
            elif library in whitelist:
                binary.resolved[library] = "policy"
            else:
                elsewhere = _same_basename(members, library)
                if elsewhere:
                    report.fail(
                        f"{binary.path} needs {library}: bundled as {elsewhere} but not found "
                        f"through $ORIGIN in RPATH/RUNPATH ({':'.join(search) or 'none'})"
                    )
                else:
                    report.fail(
                        f"{binary.path} needs {library}: not bundled, not allowed by {shown}"
                    )
        if policy is not None:
            _check_symbol_versions(report, binary, policy, shown)


def _resolve_origin(path: str, search: list[str], library: str, members) -> str | None:
    if "/" in library:
        return None
    here = posixpath.dirname(path)
    for entry in search:
        rest = re.sub(r"^\$(?:ORIGIN|\{ORIGIN\})", "", entry)
        if rest == entry:
            continue  # an absolute search path can't reach inside the wheel
        candidate = posixpath.normpath(posixpath.join(here, rest.lstrip("/"), library))
        if candidate in members:
            return candidate
    return None


def _check_symbol_versions(report: WheelReport, binary: Binary, policy, shown: str) -> None:
    allowed = policy.symbol_versions
    for library, versions in sorted(binary.symbol_versions.items()):
        if library.startswith("ld-linux") or library in ("ld64.so.1", "ld64.so.2"):
            continue
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


def _check_macos(report: WheelReport, binaries, members, platforms) -> None:
    tables = _tables()
    system = tuple(tables["macos_system_prefixes"])
    for platform in platforms:
        match = re.match(r"^macosx_(\d+)_(\d+)_(.+)$", platform)
        if not match or match.group(3) not in tables["macos_tag_archs"]:
            report.fail(f"{report.name}: unknown platform tag {platform}")
            continue
        tag_version = (int(match.group(1)), int(match.group(2)), 0)
        required = set(tables["macos_tag_archs"][match.group(3)])
        for binary in binaries:
            missing = required - set(binary.archs)
            if missing:
                report.fail(
                    f"{binary.path}: contains {'+'.join(binary.archs)}, "
                    f"the tag {platform} needs {'+'.join(sorted(missing))}"
                )
            for arch, version in sorted(binary.min_macos.items()):
                if arch in required and version[:2] > tag_version[:2]:
                    report.fail(
                        f"{binary.path}: {arch} code requires macOS {_version_text(version)}, "
                        f"the tag {platform} promises {_version_text(tag_version)}"
                    )
    for binary in binaries:
        for problem in binary.macos_platform_errors:
            report.fail(f"{binary.path}: {problem}")
        loaders = _loaders(binary, binaries)
        for library, kind in binary.needed:
            if library.startswith(system):
                binary.resolved[library] = "system"
                continue
            inside = _resolve_macho(binary, loaders, library, members)
            if inside:
                binary.resolved[library] = inside
                continue
            how = "weakly links" if kind == "weak" else "needs"
            if library.startswith(("@rpath/", "@loader_path/", "@executable_path/")):
                reason = f"does not resolve inside the wheel (LC_RPATH: {binary.rpaths or 'none'})"
            else:
                reason = "not bundled and not a system library"
            report.fail(f"{binary.path} {how} {library}: {reason}")


def _resolve_macho(binary: Binary, loaders, library: str, members) -> str | None:
    def expand(entry: str, owner: Binary) -> str | None:
        if entry.startswith("@loader_path"):
            rest = entry[len("@loader_path") :].lstrip("/")
            return posixpath.normpath(posixpath.join(posixpath.dirname(owner.path), rest))
        return None  # @executable_path or an absolute path: outside the wheel

    if library.startswith("@loader_path/"):
        candidate = expand(library, binary)
        return candidate if candidate in members else None
    if library.startswith("@rpath/"):
        tail = library[len("@rpath/") :]
        for owner in (binary, *loaders):
            for entry in owner.rpaths:
                base = expand(entry, owner)
                if base is not None:
                    candidate = posixpath.normpath(posixpath.join(base, tail))
                    if candidate in members:
                        return candidate
    return None


# ..................................................................... Windows


def _check_windows(report: WheelReport, binaries, members, platforms) -> None:
    tables = _tables()
    system = {n.lower() for n in tables["windows_system_dlls"]}
    runtime = {n.lower() for n in tables["windows_python_runtime"]}
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
    for binary in binaries:
        for library, kind in binary.needed:
            lower = library.lower()
            if lower in system or lower.startswith(api_sets):
                binary.resolved[library] = "system"
            elif re.match(r"^python3\d*t?(_d)?\.dll$", lower):
                binary.resolved[library] = "python"
            elif lower in runtime:
                binary.resolved[library] = "python runtime"
            else:
                inside = _same_basename(members, library)
                if inside:
                    binary.resolved[library] = inside
                else:
                    what = "delay-imports" if kind == "delay" else "imports"
                    report.fail(
                        f"{binary.path} {what} {library}: not bundled, not a Windows system DLL "
                        "or a runtime that ships with Python"
                    )


# --------------------------------------------------------------------------- NumPy


def _ilp64_expected(platform: str) -> bool | None:
    """True if the tag implies ILP64 OpenBLAS, False for LP64, None if unknown."""
    if platform == "win_arm64":
        return False  # NumPy builds win_arm64 against scipy-openblas32
    if re.search(
        r"(x86_64|aarch64|arm64|ppc64le|ppc64|s390x|riscv64|loongarch64|amd64)$", platform
    ):
        return True
    if platform.endswith("universal2"):
        return True
    if re.search(r"(i686|win32|armv7l|i386)$", platform):
        return False
    return None


def _check_numpy(report, binaries, texts, platforms, expect_openblas, dist_info) -> None:
    openblas = [b for b in binaries if "openblas" in posixpath.basename(b.path).lower()]
    report.openblas = {
        "files": [b.path for b in openblas],
        "versions": {b.path: b.openblas_version for b in openblas},
    }
    if len(openblas) > 1:
        report.fail(
            f"{report.name}: bundles {len(openblas)} OpenBLAS libraries "
            f"({', '.join(b.path for b in openblas)}); at most one is allowed"
        )
    for binary in openblas:
        ilp64 = "64_" in posixpath.basename(binary.path)
        report.openblas["variant"] = "ILP64" if ilp64 else "LP64"
        wanted = {_ilp64_expected(p) for p in platforms} - {None}
        if len(wanted) == 1 and wanted.pop() != ilp64:
            need = "LP64 (no suffix)" if ilp64 else "ILP64 (64_)"
            report.fail(
                f"{binary.path}: {report.openblas['variant']} OpenBLAS, but a "
                f"{platforms[0]} wheel must bundle the {need} build"
            )
    if expect_openblas:
        if not openblas:
            uses = "Accelerate" if _links_accelerate(binaries) else "no bundled BLAS"
            report.fail(
                f"{report.name}: no bundled OpenBLAS (found {uses}), "
                f"expected OpenBLAS {expect_openblas}"
            )
        for binary in openblas:
            found = binary.openblas_version
            if found is None:
                report.fail(f"{binary.path}: cannot read the OpenBLAS version from the library")
            elif found != expect_openblas and not found.startswith(expect_openblas + "."):
                report.fail(f"{binary.path}: OpenBLAS {found}, expected {expect_openblas}")
    _check_license(report, binaries, texts, dist_info)


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
    bundled = _bundled_libraries(binaries)
    exempt = tuple(_tables()["license_exempt_prefixes"])
    bundled = [b for b in bundled if not posixpath.basename(b).lower().startswith(exempt)]
    if not bundled:
        return
    licenses = {k: v for k, v in texts.items() if posixpath.basename(k) == "LICENSE.txt"}
    if not licenses:
        report.fail(f"{dist_info}/LICENSE.txt: missing, but the wheel bundles {bundled[0]}")
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
            report.fail(f"{member}: bundled but not declared in {license_name}")


def _declared(member: str, patterns: list[str], text: str) -> bool:
    import fnmatch

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


def _format_text(reports: list[WheelReport]) -> str:
    lines = []
    for report in reports:
        lines.append(f"{'PASS' if report.ok else 'FAIL'} {report.name}")
        lines += [f"  {failure}" for failure in report.failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="check_wheel.py",
        description="Audit wheels (any platform, from this host): archive integrity, native "
        "dependencies against the tag, and NumPy's OpenBLAS and license. Exit 0 only if every "
        "wheel passes.",
    )
    parser.add_argument("wheels", nargs="+", metavar="WHEEL", help="wheel files to audit")
    parser.add_argument("--json", action="store_true", help="print all findings as JSON")
    parser.add_argument(
        "--expect-openblas",
        metavar="VER",
        help="require a bundled OpenBLAS of this version (e.g. 0.3.30); implies NumPy checks",
    )
    parser.add_argument(
        "--no-numpy-checks",
        action="store_true",
        help="skip the NumPy-specific checks (on by default for wheels of the project numpy)",
    )
    args = parser.parse_args(argv)
    if args.expect_openblas is not None and not re.match(
        r"^\d+\.\d+\.\d+(\.[0-9A-Za-z]+)*$", args.expect_openblas
    ):
        parser.error(f"--expect-openblas: {args.expect_openblas!r} is not a version like 0.3.30")
    if args.no_numpy_checks and args.expect_openblas:
        parser.error("--expect-openblas: not allowed with --no-numpy-checks")
    numpy_checks = False if args.no_numpy_checks else None
    reports = check_wheels(args.wheels, args.expect_openblas, numpy_checks)
    if args.json:
        document = {
            "version": 1,
            "ok": all(r.ok for r in reports),
            "wheels": [r.to_json() for r in reports],
        }
        print(json.dumps(document, indent=2))
    else:
        print(_format_text(reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    nwlib.run_main(main, "check_wheel.py")
