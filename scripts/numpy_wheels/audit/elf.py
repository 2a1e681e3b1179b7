"""ELF files (Linux) read with pyelftools, as the dynamic loader reads them: through
the program headers (section headers may be stripped)."""

from __future__ import annotations

import functools
import struct

from . import policy
from .report import Binary


def parse_elf(name: str, fobj, data, _path) -> Binary:
    from elftools.elf.dynamic import DynamicSegment
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(fobj)
    machine = elf["e_machine"]
    arch = policy.ELF_MACHINES.get(machine)
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
        binary.symbol_versions = _version_needs(elf, data, name, addresses)
    return binary


def _file_offset(elf, address: int, name: str) -> int:
    """The file offset of a virtual address, through the PT_LOAD that maps it."""
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_LOAD":
            start = segment["p_vaddr"]
            if start <= address < start + segment["p_filesz"]:
                return address - start + segment["p_offset"]
    raise ValueError(f"{name}: dynamic address {address:#x} is in no loaded segment")


def _version_needs(elf, data, name: str, addresses: dict[str, int]) -> dict[str, list[str]]:
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
    offset, budget = start, policy.MAX_VERNEED
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
