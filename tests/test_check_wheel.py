"""scripts/check_wheel.py: real official NumPy wheels pass; edited copies of them fail
with their specific reason; a tiny C-extension wheel fails before auditwheel repair
and passes after it."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN, clean_env
from numpy_wheels.audit import check_wheels, policy
from numpy_wheels.audit.cli import main

LINUX_LINALG = "numpy/linalg/_umath_linalg.cpython-311-x86_64-linux-gnu.so"
LINUX_OPENBLAS = "numpy.libs/libscipy_openblas64_-32a4b2a6.so"
WIN_MSVCP = "numpy.libs/msvcp140-a4c2229bdc2a2a630acdc095b4d86008.dll"
WIN_MULTIARRAY = "numpy/_core/_multiarray_umath.cp311-win_amd64.pyd"
DIST_INFO = "numpy-2.4.6.dist-info"


# --------------------------------------------------------------------------- helpers


def _record_line(name: str, data: bytes) -> list[str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [name, f"sha256={digest}", str(len(data))]


def edit_wheel(src: Path, dest_dir: Path, *, name=None, edit=None, fix_record=True, extra=()):
    """Copy a real wheel with its members changed by ``edit(members)`` (a dict to mutate).

    ``fix_record`` rewrites RECORD to match the new content (so only the intended
    defect remains); ``extra`` are raw (name, bytes) members written as they are.
    """
    with zipfile.ZipFile(src) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    if edit:
        edit(members)
    record_name = next(m for m in members if m.endswith(".dist-info/RECORD"))
    if fix_record:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for member, data in members.items():
            if member != record_name:
                writer.writerow(_record_line(member, data))
        writer.writerow([record_name, "", ""])
        members[record_name] = out.getvalue().encode()
    dest = dest_dir / (name or src.name)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
        for member, data in extra:
            zf.writestr(member, data)
    return dest


def make_wheel(dest_dir: Path, name: str, version: str, tag: str, files: dict, *,
               record: bool = True, extra=()) -> Path:  # fmt: skip
    """A wheel from scratch: ``files`` plus WHEEL, METADATA and (unless not ``record``)
    a correct RECORD; ``extra`` are raw (ZipInfo or name, bytes) written as they are."""
    dist_info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()
    )
    members[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    if record:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for member, data in members.items():
            writer.writerow(_record_line(member, data))
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        members[f"{dist_info}/RECORD"] = out.getvalue().encode()
    dest = dest_dir / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
        for member, data in extra:
            zf.writestr(member, data)
    return dest


def retag(members: dict[str, bytes], old: str, new: str) -> None:
    key = f"{DIST_INFO}/WHEEL"
    members[key] = members[key].replace(old.encode(), new.encode())


def audit_retagged(src: Path, tmp_path: Path, old: str, new: str, edit=None) -> list[str]:
    """Failures of a copy of ``src`` whose filename and WHEEL say ``new`` instead of ``old``."""

    def change(members):
        retag(members, old, new)
        if edit:
            edit(members)

    bad = edit_wheel(src, tmp_path, name=src.name.replace(old, new), edit=change)
    return only(check_wheels([bad])).failures


def only(report_list):
    (report,) = report_list
    return report


# --------------------------------------------------------------------------- official wheels


@pytest.mark.parametrize(
    "key",
    ["manylinux_x86_64", "manylinux_aarch64", "macosx_x86_64", "macosx_arm64", "win_amd64"],
)
def test_official_numpy_wheel_passes(official_numpy_wheels, key):
    # GIVEN a real official NumPy wheel WHEN it is audited
    report = only(check_wheels([official_numpy_wheels[key]]))
    # THEN it passes, with NumPy checks on because the project is numpy
    assert report.failures == []
    assert report.ok is True
    assert report.name == official_numpy_wheels[key].name
    assert report.numpy_checks is True


def _needs(report, path):
    binary = next(b for b in report.binaries if b.path == path)
    return {name: binary.resolved.get(name) for name, _kind in binary.needed}


def test_official_dependency_lists(official_numpy_wheels):
    wheels = official_numpy_wheels
    linux, aarch64, mac_x86, mac_arm, win = check_wheels(
        [
            wheels[k]
            for k in (
                "manylinux_x86_64",
                "manylinux_aarch64",
                "macosx_x86_64",
                "macosx_arm64",
                "win_amd64",
            )
        ]
    )
    assert _needs(linux, LINUX_LINALG) == {
        "libscipy_openblas64_-32a4b2a6.so": LINUX_OPENBLAS,
        "libm.so.6": "policy",
        "libc.so.6": "policy",
    }
    assert linux.platform == "linux"
    assert linux.openblas["files"] == [LINUX_OPENBLAS]
    assert linux.openblas["variant"] == "ILP64"
    assert linux.openblas["versions"] == {LINUX_OPENBLAS: "0.3.31.188.0"}
    assert {b.archs[0] for b in aarch64.binaries} == {"aarch64"}
    # macOS arm64 (14.0) links Accelerate and libSystem, bundles no OpenBLAS
    arm_linalg = "numpy/linalg/_umath_linalg.cpython-311-darwin.so"
    assert _needs(mac_arm, arm_linalg) == {
        "/System/Library/Frameworks/Accelerate.framework/Versions/A/Accelerate": "system",
        "/usr/lib/libSystem.B.dylib": "system",
    }
    assert mac_arm.openblas["files"] == []
    assert {b.min_macos["arm64"] for b in mac_arm.binaries} == {(14, 0, 0)}
    # macOS x86_64 bundles OpenBLAS in numpy/.dylibs, found through @loader_path
    assert _needs(mac_x86, arm_linalg) == {
        "@loader_path/../.dylibs/libscipy_openblas64_.dylib": (
            "numpy/.dylibs/libscipy_openblas64_.dylib"
        ),
        "/usr/lib/libSystem.B.dylib": "system",
    }
    assert mac_x86.openblas["versions"] == {
        "numpy/.dylibs/libscipy_openblas64_.dylib": "0.3.31.188.0"
    }
    # Windows: the MSVC C++ runtime is bundled, vcruntime ships with Python
    needs = _needs(win, WIN_MULTIARRAY)
    assert needs["msvcp140-a4c2229bdc2a2a630acdc095b4d86008.dll"] == WIN_MSVCP
    assert needs["VCRUNTIME140.dll"] == "python runtime"
    assert needs["python311.dll"] == "python"
    assert needs["KERNEL32.dll"] == "system"
    # the DLL keeps its version in code (movabs immediates), and it is still found
    assert list(win.openblas["versions"].values()) == ["0.3.31.188.0"]


def test_cli_all_official_pass(official_numpy_wheels, capsys):
    paths = [str(p) for p in official_numpy_wheels.values()]
    assert main(paths) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if not line.startswith("  ")] == [
        f"PASS {Path(p).name}" for p in paths
    ]
    # win_amd64 imports VCRUNTIME140_1.dll, which Python does not promise: a warning only
    warnings = sorted(line for line in out if line.startswith("  "))
    reason = "not bundled; part of the Visual C++ runtime, common but not guaranteed on Windows"
    pocketfft = "numpy/fft/_pocketfft_umath.cp311-win_amd64.pyd"
    assert warnings == sorted(
        [
            f"  warning: {pocketfft} imports VCRUNTIME140_1.dll: {reason}",
            f"  warning: {WIN_MULTIARRAY} imports VCRUNTIME140_1.dll: {reason}",
            f"  warning: {WIN_MSVCP} imports VCRUNTIME140_1.dll: {reason} "
            f"(loading chain: {WIN_MSVCP} <- {pocketfft})",
        ]
    )
    # --strict turns the warnings into a failure of that wheel only
    assert main(["--strict", *paths]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith(("PASS", "FAIL"))] == [
        f"{'FAIL' if 'win_amd64' in p else 'PASS'} {Path(p).name}" for p in paths
    ]


def test_expect_openblas(official_numpy_wheels, capsys):
    wheels = official_numpy_wheels
    paths = [str(wheels[k]) for k in ("manylinux_x86_64", "win_amd64", "macosx_x86_64")]
    assert main(["--expect-openblas", "0.3.31", *paths]) == 0
    capsys.readouterr()
    assert main(["--expect-openblas", "0.3.30", str(wheels["manylinux_x86_64"])]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"FAIL {wheels['manylinux_x86_64'].name}",
        f"  {LINUX_OPENBLAS}: OpenBLAS 0.3.31.188.0, expected 0.3.30",
    ]
    # macOS 14 arm64 links Accelerate: fine by default, a failure when OpenBLAS is demanded
    assert main(["--expect-openblas", "0.3.31", str(wheels["macosx_arm64"])]) == 1
    assert capsys.readouterr().out.splitlines()[1] == (
        f"  {wheels['macosx_arm64'].name}: no bundled OpenBLAS (found Accelerate), "
        "expected OpenBLAS 0.3.31"
    )


def test_json_output(official_numpy_wheels, capsys):
    path = official_numpy_wheels["macosx_arm64"]
    assert main(["--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 2
    assert doc["ok"] is True
    (wheel,) = doc["wheels"]
    assert wheel["verdict"] == "PASS"
    assert wheel["failures"] == wheel["warnings"] == []
    assert wheel["wheel"] == path.name
    assert wheel["tags"] == ["cp311-cp311-macosx_14_0_arm64"]
    linalg = next(
        b for b in wheel["binaries"] if b["path"].endswith("_umath_linalg.cpython-311-darwin.so")
    )
    assert linalg["archs"] == ["arm64"]
    assert linalg["min_macos"] == {"arm64": "14.0"}
    assert {
        "name": "/usr/lib/libSystem.B.dylib",
        "kind": "load",
        "resolved": "system",
        "via": "macOS system library",
    } in linalg["needed"]


# --------------------------------------------------------------------------- failing copies


def test_unrepaired_linux_wheel_fails(official_numpy_wheels, tmp_path):
    # GIVEN the Linux wheel without its bundled OpenBLAS (as if never repaired)
    def drop(members):
        del members[LINUX_OPENBLAS]

    bad = edit_wheel(official_numpy_wheels["manylinux_x86_64"], tmp_path, edit=drop)
    report = only(check_wheels([bad]))
    assert not report.ok
    assert (
        f"{LINUX_LINALG} needs libscipy_openblas64_-32a4b2a6.so: not bundled, "
        "not allowed by manylinux_2_27"
    ) in report.failures


def test_unreachable_bundled_library_fails(official_numpy_wheels, tmp_path):
    # GIVEN the library is in the wheel, but not where $ORIGIN/../../numpy.libs points
    def move(members):
        members["numpy.libs/sub/" + LINUX_OPENBLAS.split("/")[1]] = members.pop(LINUX_OPENBLAS)

    bad = edit_wheel(official_numpy_wheels["manylinux_x86_64"], tmp_path, edit=move)
    failures = only(check_wheels([bad])).failures
    assert (
        f"{LINUX_LINALG} needs libscipy_openblas64_-32a4b2a6.so: bundled as "
        "numpy.libs/sub/libscipy_openblas64_-32a4b2a6.so but no search path reaches it "
        f"(DT_RPATH $ORIGIN/../../numpy.libs of {LINUX_LINALG})"
    ) in failures


def test_record_hash_mismatch(official_numpy_wheels, tmp_path):
    def tamper(members):
        members["numpy/version.py"] += b"# changed\n"

    bad = edit_wheel(
        official_numpy_wheels["manylinux_x86_64"], tmp_path, edit=tamper, fix_record=False
    )
    failures = only(check_wheels([bad])).failures
    assert "numpy/version.py: sha256 does not match RECORD (file was modified)" in failures
    assert any(f.startswith("numpy/version.py: size ") for f in failures)
    assert len(failures) == 2


def test_record_missing_and_extra_files(official_numpy_wheels, tmp_path):
    def drop(members):
        del members["numpy/version.py"]

    bad = edit_wheel(
        official_numpy_wheels["win_amd64"],
        tmp_path,
        edit=drop,
        fix_record=False,
        extra=[("numpy/extra.py", b"x = 1\n")],
    )
    assert only(check_wheels([bad])).failures == [
        "numpy/extra.py: not listed in RECORD",
        "numpy/version.py: listed in RECORD but missing from the archive",
    ]


def test_macos_tag_lies_about_minimum_version(official_numpy_wheels, tmp_path):
    # GIVEN the arm64 wheel, built for macOS 14.0, renamed to claim macOS 10.9
    src = official_numpy_wheels["macosx_arm64"]
    failures = audit_retagged(src, tmp_path, "macosx_14_0_arm64", "macosx_10_9_arm64")
    assert (
        "numpy/_core/_multiarray_umath.cpython-311-darwin.so: arm64 code requires macOS 14.0, "
        "the tag macosx_10_9_arm64 promises 10.9"
    ) in failures
    assert all("requires macOS 14.0" in f for f in failures)


def test_macos_patched_minos(official_numpy_wheels, tmp_path):
    # GIVEN one x86_64 binary whose LC_VERSION_MIN_MACOSX is patched to 10.15
    from macholib.MachO import MachO

    member = "numpy/fft/_pocketfft_umath.cpython-311-darwin.so"

    def patch(members):
        path = tmp_path / "bin.so"
        path.write_bytes(members[member])
        macho = MachO(str(path))
        for load, command, _data in macho.headers[0].commands:
            if load.cmd == policy.LC_VERSION_MIN_MACOSX:
                command.version = (10 << 16) | (15 << 8)
        with open(path, "r+b") as fobj:
            macho.write(fobj)
        members[member] = path.read_bytes()

    bad = edit_wheel(official_numpy_wheels["macosx_x86_64"], tmp_path, edit=patch)
    assert only(check_wheels([bad])).failures == [
        f"{member}: x86_64 code requires macOS 10.15, the tag macosx_10_9_x86_64 promises 10.9"
    ]


def test_macos_wrong_architecture(official_numpy_wheels, tmp_path):
    src = official_numpy_wheels["macosx_arm64"]
    failures = audit_retagged(src, tmp_path, "macosx_14_0_arm64", "macosx_14_0_universal2")
    assert (
        "numpy/_core/_simd.cpython-311-darwin.so: contains arm64, "
        "the tag macosx_14_0_universal2 needs x86_64"
    ) in failures


def test_manylinux2014_tag_on_glibc_2_34_binary(official_numpy_wheels, tmp_path):
    # GIVEN a binary needing GLIBC_2.34 (version strings patched in place, same length)
    # in a wheel renamed to manylinux2014
    src = official_numpy_wheels["manylinux_x86_64"]
    old_tags = "manylinux_2_27_x86_64.manylinux_2_28_x86_64"

    def patch(members):
        data = members[LINUX_LINALG]
        assert b"GLIBC_2.27\0" in data
        members[LINUX_LINALG] = data.replace(b"GLIBC_2.27\0", b"GLIBC_2.34\0")
        retag(members, "manylinux_2_27_x86_64", "manylinux2014_x86_64")
        retag(members, "manylinux_2_28_x86_64", "manylinux2014_x86_64")

    failures = audit_retagged(src, tmp_path, old_tags, "manylinux2014_x86_64", edit=patch)
    assert (
        f"{LINUX_LINALG} uses GLIBC_2.34 from libm.so.6: too recent for manylinux_2_17"
    ) in failures
    # the other binaries' real GLIBC_2.27/2.28 needs are also too new for manylinux2014
    assert all("too recent for manylinux_2_17" in f for f in failures)


def test_elf_architecture_must_match_tag(official_numpy_wheels, tmp_path):
    failures = audit_retagged(
        official_numpy_wheels["manylinux_aarch64"], tmp_path, "aarch64", "x86_64"
    )
    assert (
        "numpy/random/mtrand.cpython-311-aarch64-linux-gnu.so: built for aarch64, "
        "the tag says x86_64"
    ) in failures


def test_windows_missing_bundled_dll(official_numpy_wheels, tmp_path):
    def drop(members):
        del members[WIN_MSVCP]

    bad = edit_wheel(official_numpy_wheels["win_amd64"], tmp_path, edit=drop)
    failures = only(check_wheels([bad])).failures
    reason = (
        " imports msvcp140-a4c2229bdc2a2a630acdc095b4d86008.dll: not bundled, "
        "not a Windows system DLL or a runtime that ships with Python"
    )
    assert sorted(failures) == [
        WIN_MULTIARRAY + reason,
        "numpy/fft/_pocketfft_umath.cp311-win_amd64.pyd" + reason,
    ]


def test_windows_machine_type(official_numpy_wheels, tmp_path):
    failures = audit_retagged(official_numpy_wheels["win_amd64"], tmp_path, "win_amd64", "win32")
    assert f"{WIN_MULTIARRAY}: machine type win_amd64, the tag says win32" in failures
    # and a 32-bit wheel must not carry the ILP64 OpenBLAS
    assert any(
        f.endswith(": ILP64 OpenBLAS, but a win32 wheel is 32-bit and must bundle the LP64 build")
        for f in failures
    )


def test_member_escaping_install_root(official_numpy_wheels, tmp_path):
    bad = edit_wheel(
        official_numpy_wheels["win_amd64"],
        tmp_path,
        extra=[("../evil.py", b"x = 1\n"), ("/etc/evil.cfg", b"")],
    )
    failures = only(check_wheels([bad])).failures
    assert failures == [
        "../evil.py: archive member escapes the install root ('..' in path)",
        "/etc/evil.cfg: archive member escapes the install root (absolute path)",
    ]


def test_truncated_zip(official_numpy_wheels, tmp_path, capsys):
    src = official_numpy_wheels["manylinux_x86_64"]
    bad = tmp_path / src.name
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    assert main([str(bad)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"FAIL {src.name}",
        f"  {src.name}: not a valid zip archive (File is not a zip file)",
    ]


def test_corrupt_member_data(official_numpy_wheels, tmp_path):
    # GIVEN a wheel whose compressed bytes for one member are damaged in place
    src = official_numpy_wheels["win_amd64"]
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(WIN_MULTIARRAY)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 1000, start + 1064):
        data[i] ^= 0xFF
    bad = tmp_path / src.name
    bad.write_bytes(bytes(data))
    failures = only(check_wheels([bad])).failures
    assert len(failures) >= 1
    assert failures[0].startswith(f"{WIN_MULTIARRAY}: cannot be read from the archive (")


def test_nonexistent_and_non_wheel_inputs(tmp_path, capsys):
    missing = tmp_path / "numpy-2.4.6-cp311-cp311-win_amd64.whl"
    text = tmp_path / "numpy-2.4.6-cp311-cp311-linux_x86_64.whl"
    text.write_text("not a zip\n")
    badname = tmp_path / "README.txt"
    badname.write_text("hello\n")
    assert main([str(missing), str(text), str(badname)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"ERROR {missing.name}",
        f"  {missing}: no such file",
        f"FAIL {text.name}",
        f"  {text.name}: not a valid zip archive (File is not a zip file)",
        "FAIL README.txt",
        "  README.txt: not a wheel filename (Invalid wheel filename (extension must be "
        "'.whl'): 'README.txt')",
    ]


def test_unparseable_record_is_a_failure(tmp_path, capsys):
    # A RECORD csv cannot read (one field over csv's limit) is a FAIL line, not a traceback.
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo-1.0.dist-info/RECORD", "x" * 200_000 + ",sha256=,1\n")
    assert main([str(wheel)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"FAIL {wheel.name}"
    assert "  demo-1.0.dist-info/RECORD: not a readable CSV file (line 1: " in out[1]


def test_wheel_tags_must_match_filename(official_numpy_wheels, tmp_path):
    src = official_numpy_wheels["win_amd64"]
    bad = edit_wheel(src, tmp_path, name=src.name.replace("cp311-cp311", "cp312-cp312"))
    failures = only(check_wheels([bad])).failures
    assert failures == [
        f"{DIST_INFO}/WHEEL: tags cp311-cp311-win_amd64 do not match the filename's "
        "cp312-cp312-win_amd64"
    ]
    # a platform-only difference is a warning: the binaries are judged by the filename's
    # platform (here: a win_amd64 wheel named win32 has the wrong machine type)
    (tmp_path / "plat").mkdir()
    renamed = edit_wheel(src, tmp_path / "plat", name=src.name.replace("win_amd64", "win32"))
    report = only(check_wheels([renamed]))
    assert report.warnings[0] == (
        f"{DIST_INFO}/WHEEL: tags cp311-cp311-win_amd64 do not match the filename's "
        "cp311-cp311-win32"
    )
    assert f"{WIN_MULTIARRAY}: machine type win_amd64, the tag says win32" in report.failures


def test_metadata_must_match_filename(official_numpy_wheels, tmp_path):
    def bump(members):
        key = f"{DIST_INFO}/METADATA"
        members[key] = members[key].replace(b"\nVersion: 2.4.6\n", b"\nVersion: 2.4.7\n")

    bad = edit_wheel(official_numpy_wheels["win_amd64"], tmp_path, edit=bump)
    assert only(check_wheels([bad])).failures == [
        f"{DIST_INFO}/METADATA: Name/Version numpy 2.4.7 do not match the filename's numpy 2.4.6"
    ]


def test_invalid_metadata(official_numpy_wheels, tmp_path):
    def spoil(members):
        key = f"{DIST_INFO}/METADATA"
        members[key] = members[key].replace(b"Metadata-Version: 2.", b"Metadata-Version: 9.")

    bad = edit_wheel(official_numpy_wheels["win_amd64"], tmp_path, edit=spoil)
    failures = only(check_wheels([bad])).failures
    assert len(failures) == 1
    assert failures[0].startswith(f"{DIST_INFO}/METADATA: invalid metadata: ")
    assert "9." in failures[0]


def test_two_openblas_of_wrong_variant(official_numpy_wheels, tmp_path, capsys):
    lp64 = "numpy.libs/libscipy_openblas-0badc0de.so"

    def add(members):
        members[lp64] = members[LINUX_OPENBLAS]

    src = official_numpy_wheels["manylinux_x86_64"]
    bad = edit_wheel(src, tmp_path, edit=add)
    report = only(check_wheels([bad]))
    assert report.failures == [
        f"{src.name}: bundles 2 OpenBLAS libraries ({LINUX_OPENBLAS}, {lp64}); "
        "at most one is allowed",
    ]
    # the interface is read from the symbols, not the file name: both copies are ILP64
    assert report.openblas["interfaces"] == {LINUX_OPENBLAS: "ILP64", lp64: "ILP64"}
    # --no-numpy-checks leaves only the generic audit, which this wheel passes
    assert main(["--no-numpy-checks", str(bad)]) == 0
    assert capsys.readouterr().out == f"PASS {src.name}\n"


def test_license_must_declare_bundled_library(official_numpy_wheels, tmp_path):
    license_txt = f"{DIST_INFO}/licenses/LICENSE.txt"

    def undeclare(members):
        text = members[license_txt]
        assert b"numpy.libs/libquadmath*.so" in text
        members[license_txt] = text.replace(b"libquadmath*.so", b"libother*.so")

    bad = edit_wheel(official_numpy_wheels["manylinux_x86_64"], tmp_path, edit=undeclare)
    report = only(check_wheels([bad]))
    # a policy observation, not a broken wheel: a warning, which --strict makes fatal
    assert report.failures == []
    assert report.warnings == [
        f"numpy.libs/libquadmath-96973f99-934c22de.so.0.0.0: bundled but not declared in "
        f"{license_txt}"
    ]
    assert main([str(bad)]) == 0
    assert main(["--strict", str(bad)]) == 1


@pytest.mark.parametrize(
    ("files", "declared"),
    [
        (b".libs/libquadmath*.so", True),  # where older builds put it (numpy 1.19-1.22)
        (b"extra-dll/libquadmath*.dll", True),  # a build-tree path (numpy 1.16 win32)
        (b"numpy.libs/*", True),  # everything in that directory
        (b"doc/sphinxext/*", False),  # everything in another one
    ],
)
def test_license_names_a_library_wherever_it_lies(official_numpy_wheels, tmp_path, files, declared):
    # GIVEN LICENSE.txt declaring libquadmath by a Files: line another layout wrote
    license_txt = f"{DIST_INFO}/licenses/LICENSE.txt"

    def respell(members):
        members[license_txt] = members[license_txt].replace(b"numpy.libs/libquadmath*.so", files)

    report = only(check_wheels([edit_wheel(official_numpy_wheels["manylinux_x86_64"], tmp_path,
                                           edit=respell)]))  # fmt: skip
    undeclared = [w for w in report.warnings if "libquadmath" in w]
    assert (undeclared == []) is declared, report.warnings


def test_native_binary_in_pure_wheel(official_numpy_wheels, tmp_path):
    src = official_numpy_wheels["win_amd64"]
    failures = audit_retagged(src, tmp_path, "cp311-cp311-win_amd64", "py3-none-any")
    assert f"{WIN_MULTIARRAY}: native PE binary in a wheel tagged any" in failures


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--expect-openblas", "latest", "x.whl"])
    assert exc.value.code == 2
    assert (
        "check_wheel.py: error: --expect-openblas: 'latest' is not a version like 0.3.30"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_script_runs_as_a_command(tmp_path):
    # the script file itself: one FAIL line, exit 1, no traceback on stderr
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_wheel.py"), str(tmp_path / "nope.whl")],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
    )
    # a missing input is not a failed audit: its own line and exit status (3, see --help)
    assert result.returncode == 3
    assert result.stdout == f"ERROR nope.whl\n  {tmp_path / 'nope.whl'}: no such file\n"
    assert result.stderr == ""


# --------------------------------------------------------------------------- fixture project

LIBDEMO_C = "int demo_answer(void) { return 42; }\n"
EXT_C = textwrap.dedent(
    """\
    #include <Python.h>
    int demo_answer(void);
    static PyObject *answer(PyObject *self, PyObject *args) {
        return PyLong_FromLong(demo_answer());
    }
    static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
    static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_demo", NULL, -1, methods};
    PyMODINIT_FUNC PyInit__demo(void) { return PyModule_Create(&mod); }
    """
)


@pytest.fixture(scope="session")
def demo_wheels(tmp_path_factory):
    """A tiny C extension linked to its own shared library: (unrepaired, repaired) wheels."""
    root = tmp_path_factory.mktemp("demo")
    lib = root / "lib"
    lib.mkdir()
    (root / "libdemo.c").write_text(LIBDEMO_C)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,-soname,libdemo.so", "-o", lib / "libdemo.so",
         root / "libdemo.c"],
        check=True,
    )  # fmt: skip
    project = root / "project"
    (project / "demo").mkdir(parents=True)
    (project / "demo" / "__init__.py").write_text("from ._demo import answer\n")
    (project / "_demo.c").write_text(EXT_C)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=70.1"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    (project / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "setup(name='demo-ext', version='1.0', packages=['demo'],\n"
        f"      ext_modules=[Extension('demo._demo', ['_demo.c'], libraries=['demo'],\n"
        f"                             library_dirs=[{str(lib)!r}])])\n"
    )
    env = clean_env(root, LD_LIBRARY_PATH=str(lib))
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(project)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    (unrepaired,) = dist.glob("*.whl")
    repaired_dir = root / "repaired"
    subprocess.run(
        [VENV_BIN / "auditwheel", "repair", "-w", repaired_dir, unrepaired],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    (repaired,) = repaired_dir.glob("*.whl")
    return unrepaired, repaired


def test_fixture_wheel_fails_before_repair_passes_after(demo_wheels, capsys):
    unrepaired, repaired = demo_wheels
    assert main([str(unrepaired)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"FAIL {unrepaired.name}"
    ext = next(line for line in out if "needs libdemo.so" in line).strip()
    assert ext.startswith("demo/_demo.cpython-")
    assert ext.endswith(
        "-linux-gnu.so needs libdemo.so: not bundled, not allowed by any manylinux policy"
    )
    assert out[1] == (
        f"  {unrepaired.name}: platform tag linux_x86_64 is not portable "
        "(run auditwheel repair to get a manylinux tag)"
    )
    assert len(out) == 3
    # the repaired wheel bundles demo_ext.libs/libdemo-<hash>.so, found through $ORIGIN
    report = only(check_wheels([repaired]))
    assert report.failures == []
    assert report.numpy_checks is False
    (ext_binary,) = [b for b in report.binaries if b.path.startswith("demo/_demo")]
    bundled = ext_binary.resolved[next(n for n, _ in ext_binary.needed if n.startswith("libdemo"))]
    assert bundled.startswith("demo_ext.libs/libdemo-")
    assert os.path.basename(repaired).startswith("demo_ext-1.0-")
