"""Mach-O files (macOS), thin or fat, read with macholib from the spooled member."""

from __future__ import annotations

import posixpath
import struct

from . import policy
from .report import Binary

AR_MAGIC = b"!<arch>\n"


def parse_macho(name: str, fobj, data, _path) -> Binary | None:
    """The binary's archs, loads, rpaths and minimum macOS; None for a universal
    static archive (``lipo -create`` of two ``.a`` files: nothing a loader loads)."""
    from macholib.MachO import MachO

    if _fat_static_archive(data):
        return None

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
        arch = policy.MACHO_CPUS.get(header.header.cputype, f"cpu{header.header.cputype}")
        binary.archs.append(arch)
        own = binary.slice_needs.setdefault(arch, set())
        for load, command, payload in header.commands:
            cmd = load.cmd
            if cmd in policy.MACHO_LOADS or cmd in (policy.LC_RPATH, policy.LC_ID_DYLIB):
                text = payload.rstrip(b"\0").decode("utf-8", "replace") if payload else ""
                text = text.split("\0", 1)[0]
                if cmd == policy.LC_RPATH:
                    if text not in binary.rpaths:
                        binary.rpaths.append(text)
                elif cmd == policy.LC_ID_DYLIB:
                    binary.soname = text
                else:
                    own.add(text)
                    if (text, policy.MACHO_LOADS[cmd]) not in binary.needed:
                        binary.needed.append((text, policy.MACHO_LOADS[cmd]))
            elif cmd == policy.LC_BUILD_VERSION:
                if command.platform != 1:  # PLATFORM_MACOS
                    binary.macos_platform_errors.append(
                        f"{arch} slice is built for Apple platform {command.platform}, not macOS"
                    )
                binary.min_macos[arch] = _unpack_version(command.minos)
            elif cmd == policy.LC_VERSION_MIN_MACOSX:
                binary.min_macos[arch] = _unpack_version(command.version)
    return binary


def _fat_static_archive(data) -> bool:
    """A fat file whose every slice is an ``ar`` archive (slices out of bounds or of
    other kinds are left to macholib, which fails on what is broken)."""
    if data[:4] not in policy.FAT_MAGICS:
        return False
    wide = data[:4] == b"\xca\xfe\xba\xbf"  # FAT_MAGIC_64: 64-bit offsets and sizes
    entry, layout = (32, ">iiQQII") if wide else (20, ">iiIII")
    count = struct.unpack_from(">I", data, 4)[0]
    if not 0 < count < 20 or 8 + count * entry > len(data):
        return False
    for index in range(count):
        offset = struct.unpack_from(layout, data, 8 + index * entry)[2]
        if data[offset : offset + len(AR_MAGIC)] != AR_MAGIC:
            return False
    return True


def _unpack_version(value: int) -> tuple[int, int, int]:
    return (int(value) >> 16, (int(value) >> 8) & 0xFF, int(value) & 0xFF)
