"""The wheel audit (``check_wheel.py``): every wheel read on this host, whatever
platform it was built for.  Three groups of checks:

1. archive integrity (:mod:`.wheel`, :mod:`.record`): a readable zip, RECORD hashes
   and sizes (streamed, never a whole member in memory), nothing missing from or
   extra to RECORD, member names that stay inside the install root and name each
   file once after normalisation, WHEEL tags and METADATA name/version equal to the
   filename's;
2. native dependencies, resolved as the platform's loader does, from the binaries
   alone (:mod:`.native` reads ELF/Mach-O/PE with pyelftools/macholib/pefile;
   :mod:`.linux`, :mod:`.macos`, :mod:`.windows` are the loaders' rules, over the
   loading chains of :mod:`.chains`); symbol versions / minimum macOS and
   architecture versus the tag;
3. NumPy specifics (:mod:`.numpy`, default for NumPy wheels): at most one OpenBLAS,
   its integer interface and version, declared in LICENSE.txt.

Each finding is a FAIL (the wheel breaks or is unsafe) or a WARN (policy).  The
command line is :mod:`.cli`; the Python API (the uploader and ``make stage`` use it)::

    check_wheels(paths, expect_openblas=None, numpy_checks=None,
                 expect_interface=None) -> list[WheelReport]
    check_record(zipfile, dist_info=None) -> list[str]
"""

from .record import check_record
from .report import Binary, WheelReport
from .wheel import check_wheel, check_wheels

__all__ = ["Binary", "WheelReport", "check_record", "check_wheel", "check_wheels"]
