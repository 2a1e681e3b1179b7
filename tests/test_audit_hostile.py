"""Hostile wheels: the audit stays bounded in time and memory, prints one FAIL line
for the bad wheel and still reports on the others (issue 12, item 13)."""

from __future__ import annotations

import base64
import hashlib
import platform
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT, clean_env
from numpy_wheels.audit import check_wheel as audit
from numpy_wheels.audit.cli import main
from test_check_wheel import make_wheel

ARCH = platform.machine()
LINUX_TAG = f"cp311-cp311-manylinux_2_17_{ARCH}"
SCRIPT = str(ROOT / "scripts" / "check_wheel.py")


def _libc_user(tmp_path: Path) -> bytes:
    """A small shared library with a real version-needs section (puts@GLIBC_2.x)."""
    src = tmp_path / "user.c"
    src.write_text('#include <stdio.h>\nint hello(void) { return puts("hi"); }\n')
    out = tmp_path / "libuser.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", out, src], check=True)
    return out.read_bytes()


def _verneed(data: bytes) -> tuple[int, int]:
    """(file offset of the SHT_GNU_verneed section header, of its contents)."""
    from io import BytesIO

    from elftools.elf.elffile import ELFFile

    elf = ELFFile(BytesIO(data))
    for index, section in enumerate(elf.iter_sections()):
        if section["sh_type"] == "SHT_GNU_verneed":
            return elf["e_shoff"] + index * elf["e_shentsize"], section["sh_offset"]
    raise AssertionError("no version-needs section")


def _run(args: list[str], tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        capture_output=True, text=True, timeout=timeout, env=clean_env(tmp_path),
    )  # fmt: skip


def test_crafted_version_needs_count_does_not_hang(tmp_path):
    # GIVEN an ELF whose verneed header claims 2**32-1 entries (pyelftools' walk
    # re-reads the last entry that many times, memory rising)
    data = bytearray(_libc_user(tmp_path))
    header, _contents = _verneed(bytes(data))
    sh_info = header + (44 if data[4] == 2 else 28)  # Elf64_Shdr / Elf32_Shdr.sh_info
    struct.pack_into("<I", data, sh_info, 0xFFFFFFFF)
    wheel = make_wheel(tmp_path, "hostile", "1.0", LINUX_TAG, {"hostile/libuser.so": bytes(data)})
    # THEN the audit finishes at once with the real needs (the chain ends at vn_next=0)
    proc = _run(["--json", str(wheel)], tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert '"GLIBC_2.2.5"' in proc.stdout or '"GLIBC_2.17"' in proc.stdout


def test_version_needs_pointing_outside_is_one_failure(tmp_path):
    # GIVEN a verneed entry whose aux list points past the end of the section
    data = bytearray(_libc_user(tmp_path))
    _header, contents = _verneed(bytes(data))
    struct.pack_into("<I", data, contents + 8, 0x7FFFFFF0)  # vn_aux
    wheel = make_wheel(tmp_path, "hostile", "1.0", LINUX_TAG, {"hostile/libuser.so": bytes(data)})
    report = audit(wheel)
    assert report.failures == [
        "hostile/libuser.so: cannot parse as ELF: ValueError: hostile/libuser.so: malformed "
        "version-needs section (loop or overrun)"
    ]


def _record_digest(data_chunks) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in data_chunks:
        digest.update(chunk)
        size += len(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode(), size


def test_huge_member_is_hashed_streaming(tmp_path):
    # GIVEN a ~1 MB wheel holding a 1 GiB member of zeros (correctly listed in RECORD)
    chunk, count = b"\0" * 2**20, 1024
    digest, size = _record_digest([chunk] * count)
    wheel = tmp_path / "bomb-1.0-py3-none-any.whl"
    dist = "bomb-1.0.dist-info"
    small = {
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nTag: py3-none-any\n",
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n",
    }
    record = f"bomb/zeros.bin,sha256={digest},{size}\n" + "".join(
        f"{name},sha256={_record_digest([data])[0]},{len(data)}\n" for name, data in small.items()
    )
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("bomb/zeros.bin", "w", force_zip64=True) as out:
            for _ in range(count):
                out.write(chunk)
        for name, data in small.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/RECORD", record + f"{dist}/RECORD,,\n")
    assert wheel.stat().st_size < 4 * 2**20
    # WHEN it is audited in a fresh process THEN it passes, and the process never held
    # the member in memory (peak RSS well under its size)
    probe = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run([sys.executable, *sys.argv[1:]], capture_output=True, text=True)\n"
        "print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(proc.stdout)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, SCRIPT, str(wheel)],
        capture_output=True, text=True, timeout=600, env=clean_env(tmp_path),
    ).stdout.splitlines()  # fmt: skip
    code, peak_kib = map(int, out[0].split())
    assert (code, out[1]) == (0, f"PASS {wheel.name}")
    assert peak_kib < 300 * 1024


def test_path_that_normalises_to_another_member(tmp_path):
    # GIVEN numpy/__init__.py and numpy/./__init__.py: pip installs the second over the first
    wheel = make_wheel(
        tmp_path, "evil", "1.0", "py3-none-any", {"evil/__init__.py": b"x = 1\n"},
        extra=[("evil/./__init__.py", b"import os; os.system('id')\n")],
    )  # fmt: skip
    assert audit(wheel).failures == [
        "evil/./__init__.py: archive member appears twice (as evil/__init__.py and "
        "evil/./__init__.py, the same file once installed)"
    ]


def test_control_characters_in_a_member_name(tmp_path):
    wheel = make_wheel(
        tmp_path, "evil", "1.0", "py3-none-any", {},
        extra=[("evil/\x1b[31mred.py", b"")],
    )  # fmt: skip
    assert audit(wheel).failures == [
        "evil/\\x1b[31mred.py: archive member escapes the install root "
        "(control character in its name)"
    ]


def test_deeply_nested_readme_fails_that_wheel_only(tmp_path, capsys):
    # GIVEN a wheel whose long description nests 300 lists deep, and a good wheel
    nested = "".join("  " * i + "- x\n\n" for i in range(300))
    deep = _with_description(tmp_path, nested)
    good = make_wheel(tmp_path, "good", "1.0", "py3-none-any", {"good/__init__.py": b""})
    # WHEN both are audited in one run
    assert main([str(deep), str(good)]) == 1
    # THEN one FAIL line for the deep one, the full report for the other, no traceback
    assert capsys.readouterr().out.splitlines() == [
        f"FAIL {deep.name}",
        "  deep-1.0.dist-info/METADATA: long description is nested too deeply to render",
        f"PASS {good.name}",
    ]


def _with_description(tmp_path: Path, description: str) -> Path:
    import csv
    import io

    dest = tmp_path / "deep"
    dest.mkdir(exist_ok=True)
    dist = "deep-1.0.dist-info"
    files = {
        "deep/__init__.py": b"",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nTag: py3-none-any\n",
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: deep\nVersion: 1.0\n\n{description}"
        ).encode(),
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for name, data in files.items():
        writer.writerow([name, "sha256=" + _record_digest([data])[0], len(data)])
    writer.writerow([f"{dist}/RECORD", "", ""])
    files[f"{dist}/RECORD"] = out.getvalue().encode()
    wheel = dest / "deep-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


def test_version_needs_read_as_the_loader_reads_them(tmp_path):
    # GIVEN an ELF needing a glibc too new for its tag, with its section headers
    # stripped: the loader reads DT_VERNEED from the dynamic segment all the same
    data = bytearray(_libc_user(tmp_path))
    assert data[4] == 2, "a 64-bit ELF"
    for old in (b"GLIBC_2.2.5\0", b"GLIBC_2.17\0"):
        data = bytearray(bytes(data).replace(old, b"GLIBC_2.99\0".ljust(len(old), b"\0")))
    struct.pack_into("<Q", data, 0x28, 0)  # e_shoff
    struct.pack_into("<HH", data, 0x3C, 0, 0)  # e_shnum, e_shstrndx
    wheel = make_wheel(tmp_path, "hostile", "1.0", LINUX_TAG, {"hostile/libuser.so": bytes(data)})
    assert audit(wheel).failures == [
        "hostile/libuser.so uses GLIBC_2.99 from libc.so.6: too recent for manylinux_2_17"
    ]
