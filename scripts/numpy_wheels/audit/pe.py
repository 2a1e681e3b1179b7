"""PE files (Windows DLLs and extension modules) read with pefile: machine type,
imports and delay imports."""

from __future__ import annotations

from . import policy
from .report import Binary


def parse_pe(name: str, _fobj, _data, path) -> Binary:
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
        machines = {v: k for k, v in policy.tables()["windows_machines"].items()}
        binary.archs.append(machines.get(pe.FILE_HEADER.Machine, hex(pe.FILE_HEADER.Machine)))
        tables = (("DIRECTORY_ENTRY_IMPORT", "import"), ("DIRECTORY_ENTRY_DELAY_IMPORT", "delay"))
        for attr, kind in tables:
            for entry in getattr(pe, attr, []):
                binary.needed.append((entry.dll.decode("ascii", "replace"), kind))
    finally:
        pe.close()
    return binary
