"""Native files: recognised by their first bytes, parsed on this host whatever the
platform (ELF :mod:`.elf`, Mach-O :mod:`.macho`, PE :mod:`.pe`), then judged by the
loader of the system the wheel's tag names (:mod:`.linux`, :mod:`.macos`,
:mod:`.windows`)."""

from __future__ import annotations

import mmap
import posixpath
import re
import struct
from collections.abc import Callable
from pathlib import Path

from . import elf, macho, numpy, pe, policy
from .report import Binary, WheelReport

_PARSERS = {"elf": elf.parse_elf, "macho": macho.parse_macho, "pe": pe.parse_pe}
# Names an interpreter imports as extension modules; one that holds no native
# binary (a text file, a truncated download) passes RECORD but fails on import.
# Only the tagged names: policy.EXTENSION_RE also takes untagged "x.so" (Python 2's
# modules), where a non-binary file is more often a linker script than a module.
_EXTENSION_MODULE = re.compile(r"\.(cpython-[^./]+|abi3|pypy[^./]*)\.so$|\.pyd$")


def is_extension_module(member: str) -> bool:
    return bool(_EXTENSION_MODULE.search(member))


def native_format(head: bytes, size: int) -> str | None:
    """The format a member's first bytes announce (a candidate: parsing confirms it)."""
    if head[:4] == b"\x7fELF":
        return "elf"
    if head[:4] in policy.MACHO_MAGICS:
        return "macho"
    if head[:4] in policy.FAT_MAGICS and len(head) >= 8:
        # Java class files share the fat magic; a fat Mach-O has a handful of slices.
        return "macho" if 0 < struct.unpack(">I", head[4:8])[0] < 20 else None
    if head[:2] == b"MZ" and len(head) >= 0x40:
        offset = struct.unpack("<I", head[0x3C:0x40])[0]
        if offset + 4 > len(head):
            return "pe" if offset + 4 <= size else None  # checked when parsed
        if head[offset : offset + 4] == b"PE\0\0":
            return "pe"
    return None


def parse_native(member: str, fmt: str, path: Path, fail: Callable[[str], None]) -> Binary | None:
    """The :class:`Binary` in ``path`` (the member's bytes), or None when it is not
    one a loader loads (MZ but not PE, a universal static archive); a parse error
    on corrupt input is a failure."""
    try:
        with open(path, "rb") as fobj, mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if fmt == "pe":
                offset = struct.unpack("<I", data[0x3C:0x40])[0]
                if data[offset : offset + 4] != b"PE\0\0":
                    return None  # MZ but not PE (a DOS program or a data file)
            binary = _PARSERS[fmt](member, fobj, data, path)
            if binary is not None and "openblas" in posixpath.basename(member).lower():
                binary.openblas_version = numpy.openblas_version(data)
                binary.interface = numpy.openblas_interface(data)
            return binary
    except Exception as exc:  # any parser error on corrupt input is a FAIL
        fail(f"{member}: cannot parse as {fmt.upper()}: {type(exc).__name__}: {exc}")
        return None


def family(platform: str) -> str:
    if platform.startswith(("manylinux", "musllinux", "linux_")):
        return "linux"
    if platform.startswith("macosx_"):
        return "macos"
    if platform.startswith("win"):
        return "windows"
    return "any" if platform == "any" else "other"


def check_native(report: WheelReport, binaries, members: set[str], platforms, texts,
                 not_native=()) -> None:  # fmt: skip
    """``not_native``: extension-module members that hold no loadable binary."""
    from . import linux, macos, windows

    families = {family(p) for p in platforms}
    if len(families) != 1:
        report.fail(f"{report.name}: platform tags of different systems: {', '.join(platforms)}")
        return
    system = report.platform = families.pop()
    if system in ("any", "other"):
        for binary in binaries:
            fmt, tagged = binary.format.upper(), ".".join(platforms)
            report.fail(f"{binary.path}: native {fmt} binary in a wheel tagged {tagged}")
        return
    expected_format = {"linux": "elf", "macos": "macho", "windows": "pe"}[system]
    for member in not_native:
        report.fail(f"{member}: extension module is not a loadable {expected_format.upper()} "
                    "binary (the interpreter cannot import it)")  # fmt: skip
    native = []
    for binary in binaries:
        if binary.format != expected_format:
            report.fail(
                f"{binary.path}: {binary.format.upper()} binary in a {system} wheel "
                f"(expected {expected_format.upper()})"
            )
        else:
            native.append(binary)
    check = {"linux": linux.check_linux, "macos": macos.check_macos,
             "windows": windows.check_windows}[system]  # fmt: skip
    check(report, native, members, platforms, texts)
