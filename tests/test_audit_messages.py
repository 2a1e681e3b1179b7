"""Every FAIL/WARN message of the audit that the other tests do not reach, each
triggered by a wheel made for it, with an assertion on the exact text."""

from __future__ import annotations

import base64
import hashlib
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from numpy_wheels.audit import check_wheel as audit
from numpy_wheels.audit import policy
from numpy_wheels.audit.cli import main
from test_check_wheel import DIST_INFO, LINUX_OPENBLAS, edit_wheel, make_wheel

PURE = "py3-none-any"
LINUX = "cp311-cp311-manylinux_2_17_x86_64"


def _sha(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _raw_wheel(tmp_path: Path, name: str, members: list[tuple], record: str | None) -> Path:
    """demo-1.0 with WHEEL/METADATA, the given raw members and RECORD text (None: no RECORD)."""
    dist = "demo-1.0.dist-info"
    wheel = tmp_path / name
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{dist}/WHEEL", f"Wheel-Version: 1.0\nTag: {name[9:-4]}\n")
        zf.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        for info, data in members:
            zf.writestr(info, data)
        if record is not None:
            zf.writestr(f"{dist}/RECORD", record)
    return wheel


def _record(*rows: str) -> str:
    return "".join(f"{r}\n" for r in rows) + "demo-1.0.dist-info/RECORD,,\n"


def _meta_rows(tag: str = PURE) -> list[str]:
    wheel = f"Wheel-Version: 1.0\nTag: {tag}\n".encode()
    meta = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
    return [
        f"demo-1.0.dist-info/WHEEL,sha256={_sha(wheel)},{len(wheel)}",
        f"demo-1.0.dist-info/METADATA,sha256={_sha(meta)},{len(meta)}",
    ]


def test_member_that_is_a_symlink(tmp_path):
    link = zipfile.ZipInfo("demo/link.py")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    wheel = _raw_wheel(tmp_path, f"demo-1.0-{PURE}.whl", [(link, "/etc/passwd")],
                       _record(*_meta_rows()))  # fmt: skip
    assert audit(wheel).failures == ["demo/link.py: archive member is a symlink"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_member_that_appears_twice(tmp_path):
    data = b"x = 1\n"
    wheel = _raw_wheel(
        tmp_path, f"demo-1.0-{PURE}.whl", [("demo/x.py", data), ("demo/x.py", data)],
        _record(*_meta_rows(), f"demo/x.py,sha256={_sha(data)},{len(data)}"),
    )  # fmt: skip
    assert audit(wheel).failures == ["demo/x.py: archive member appears twice"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "demo/x.py,md5=abc,6",
            "demo/x.py: RECORD uses hash 'md5'; sha256 or stronger is required",
        ),
        ("demo/x.py,,6", "demo/x.py: no hash in RECORD"),
        ("demo/x.py,sha256=abc", "demo-1.0.dist-info/RECORD: line 3 has 2 fields, expected 3"),
    ],
)
def test_weak_or_missing_hashes(tmp_path, row, message):
    wheel = _raw_wheel(tmp_path, f"demo-1.0-{PURE}.whl", [("demo/x.py", b"x = 1\n")],
                       _record(*_meta_rows(), row))  # fmt: skip
    assert message in audit(wheel).failures


def test_record_problems(tmp_path):
    data = b"x = 1\n"
    row = f"demo/x.py,sha256={_sha(data)},{len(data)}"
    rows = _record(*_meta_rows(), row, row.replace("demo/x.py", "demo/./x.py"))
    twice = _raw_wheel(tmp_path, f"demo-1.0-{PURE}.whl", [("demo/x.py", data)], rows)
    assert audit(twice).failures == ["demo-1.0.dist-info/RECORD: demo/./x.py is listed twice"]
    missing = _raw_wheel(tmp_path, f"demo-1.0-{PURE}.whl", [("demo/x.py", data)], None)
    assert audit(missing).failures[0] == "demo-1.0.dist-info/RECORD: missing"


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\x7fELF\x02\x01\x01" + b"\xff" * 200, "ELF"),
        (b"\xcf\xfa\xed\xfe" + b"\xff" * 200, "MACHO"),
        (b"MZ" + b"\0" * 58 + b"\x40\0\0\0" + b"PE\0\0" + b"\xff" * 40, "PE"),
    ],
)
def test_native_file_that_cannot_be_parsed(tmp_path, head, fmt):
    tag = {"ELF": LINUX, "MACHO": "cp311-cp311-macosx_11_0_arm64", "PE": "cp311-cp311-win_amd64"}
    wheel = make_wheel(tmp_path, "demo", "1.0", tag[fmt], {"demo/_x.so": head})
    failures = audit(wheel).failures
    assert len(failures) == 1
    assert failures[0].startswith(f"demo/_x.so: cannot parse as {fmt}: ")


def test_metadata_files_missing_or_wrong(tmp_path):
    wheel = tmp_path / f"demo-1.0-{PURE}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo-1.0.dist-info/RECORD", "demo-1.0.dist-info/RECORD,,\n")
    assert audit(wheel).failures == [
        "demo-1.0.dist-info/WHEEL: missing",
        "demo-1.0.dist-info/METADATA: missing",
    ]
    bad = make_wheel(tmp_path, "demo", "1.0", PURE, {})

    def spoil(members):
        members["demo-1.0.dist-info/WHEEL"] = b"Wheel-Version: 2.0\nTag: py3-none-any\nTag: x\n"

    (tmp_path / "spoiled").mkdir()
    failures = audit(edit_wheel(bad, tmp_path / "spoiled", edit=spoil)).failures
    assert "demo-1.0.dist-info/WHEEL: Wheel-Version '2.0' is not 1.x" in failures
    assert "demo-1.0.dist-info/WHEEL: bad Tag 'x'" in failures


def test_dist_info_problems(tmp_path):
    two = make_wheel(tmp_path, "demo", "1.0", PURE, {"other-1.0.dist-info/METADATA": b""})
    assert audit(two).failures[0] == f"{two.name}: expected one .dist-info directory, found 2"
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    wrong = make_wheel(tmp_path, "demo", "1.0", PURE, {})
    target = renamed / wrong.name.replace("demo-1.0", "demo-2.0")
    wrong.rename(target)
    assert audit(target).failures[0] == "demo-1.0.dist-info: does not match the filename's demo 2.0"


def test_platform_tag_problems(tmp_path):
    mixed = make_wheel(tmp_path, "demo", "1.0", "cp311-cp311-manylinux_2_17_x86_64.win_amd64", {})
    assert audit(mixed).failures == [
        f"{mixed.name}: platform tags of different systems: manylinux_2_17_x86_64, win_amd64"
    ]
    for tag, platform in (
        ("cp311-cp311-win_sparc", "win_sparc"),
        ("cp311-cp311-macosx_10_9_sparc", "macosx_10_9_sparc"),
        ("cp311-cp311-manylinux_2_17_sparc", "manylinux_2_17_sparc"),
    ):
        wheel = make_wheel(tmp_path, "demo", "1.0", tag, {})
        assert f"{wheel.name}: unknown platform tag {platform}" in audit(wheel).failures


def test_binary_of_another_system(tmp_path):
    elf = tmp_path / "lib.so"
    src = tmp_path / "lib.c"
    src.write_text("int f(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-nostdlib", "-o", elf, src], check=True)
    wheel = make_wheel(tmp_path, "demo", "1.0", "cp311-cp311-macosx_11_0_arm64",
                       {"demo/_x.so": elf.read_bytes()})  # fmt: skip
    assert audit(wheel).failures == ["demo/_x.so: ELF binary in a macos wheel (expected MACHO)"]


def test_bundled_library_without_license_file(official_numpy_wheels, tmp_path):
    def drop(members):
        for name in [m for m in members if m.startswith(DIST_INFO) and "LICENSE" in m]:
            del members[name]

    report = audit(edit_wheel(official_numpy_wheels["manylinux_x86_64"], tmp_path, edit=drop))
    assert report.failures == []
    assert report.warnings[0].startswith(
        f"{DIST_INFO}/LICENSE.txt: missing, but the wheel bundles numpy.libs/"
    )


def test_openblas_whose_version_and_interface_cannot_be_read(official_numpy_wheels, tmp_path):
    def scrub(members):
        data = members[LINUX_OPENBLAS]
        assert b"OpenBLAS 0." in data and b"dgemm_64_\0" in data
        members[LINUX_OPENBLAS] = (
            data.replace(b"OpenBLAS 0.", b"OpenBLAx 0.").replace(b"OpenBLAS", b"OpenBLAx")
            .replace(b"dgemm_64_\0", b"dgemm_6x_\0")
        )  # fmt: skip

    bad = edit_wheel(official_numpy_wheels["manylinux_x86_64"], tmp_path, edit=scrub)
    report = audit(bad, expect_openblas="0.3.31")
    assert report.failures == [
        f"{LINUX_OPENBLAS}: cannot tell the OpenBLAS integer interface (no dgemm)",
        f"{LINUX_OPENBLAS}: cannot read the OpenBLAS version from the library",
    ]


def test_expected_interface(official_numpy_wheels, capsys):
    wheel = str(official_numpy_wheels["manylinux_x86_64"])
    assert main(["--expect-interface", "ilp64", wheel]) == 0
    capsys.readouterr()
    # the build used LP64 (env_vars32.sh), the wheel bundles ILP64: the check says so
    assert main(["--expect-interface", "lp64", wheel]) == 1
    assert capsys.readouterr().out.splitlines()[1] == (
        f"  {LINUX_OPENBLAS}: ILP64 OpenBLAS, but the build used LP64 (NW_OPENBLAS_INTERFACE=lp64)"
    )
    # a wheel with no OpenBLAS at all cannot match a demanded interface
    assert main(["--expect-interface", "ilp64", str(official_numpy_wheels["macosx_arm64"])]) == 1
    assert (
        capsys.readouterr()
        .out.splitlines()[1]
        .endswith(": no bundled OpenBLAS (found Accelerate), expected a bundled OpenBLAS")
    )


def test_limits_on_members_and_sizes(tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path, "demo", "1.0", PURE, {"demo/x.py": b"x" * 100})
    monkeypatch.setattr(policy, "MAX_MEMBERS", 2)
    assert audit(wheel).failures == [f"{wheel.name}: 4 archive members, more than 2"]
    monkeypatch.setattr(policy, "MAX_MEMBERS", 100)
    monkeypatch.setattr(policy, "MAX_TOTAL_SIZE", 99)
    total = sum(i.file_size for i in zipfile.ZipFile(wheel).infolist())
    assert audit(wheel).failures == [
        f"{wheel.name}: members declare {total} bytes uncompressed, more than the 99 an audit reads"
    ]
    monkeypatch.setattr(policy, "MAX_TOTAL_SIZE", 2**30)
    monkeypatch.setattr(policy, "MAX_TEXT", 10)
    assert "demo-1.0.dist-info/WHEEL: 76 bytes, too large for a metadata file" in (
        audit(wheel).failures
    )


def test_a_field_newer_than_the_metadata_version_is_a_warning(tmp_path):
    # GIVEN METADATA 2.1 with License-File (2.4), as setuptools wrote it for years
    # (MarkupSafe 3.0.2 on PyPI): installers and PyPI take it
    wheel = make_wheel(tmp_path, "demo", "1.0", PURE, {"demo/x.py": b"x = 1\n"})
    meta = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nLicense-File: LICENSE\n"

    def newer(members, extra=b""):
        members["demo-1.0.dist-info/METADATA"] = meta + extra

    (tmp_path / "a").mkdir()
    report = audit(edit_wheel(wheel, tmp_path / "a", edit=newer))
    warning = (
        "demo-1.0.dist-info/METADATA: license-file introduced in metadata version 2.4, not 2.1"
    )
    assert (report.failures, report.warnings) == ([], [warning])
    # a real defect beside it still FAILs
    (tmp_path / "b").mkdir()
    report = audit(edit_wheel(wheel, tmp_path / "b",
                              edit=lambda m: newer(m, b"Requires-Python: >=>3\n")))  # fmt: skip
    assert len(report.failures) == 1
    assert report.failures[0].startswith("demo-1.0.dist-info/METADATA: invalid metadata: ")
    assert "requires-python" in report.failures[0]
    assert report.warnings == [warning]


def test_unreadable_policy_data_is_one_line(official_numpy_wheels, monkeypatch, capsys):
    # GIVEN an install whose package data lacks the policy tables
    monkeypatch.setattr(policy, "POLICY_RESOURCE", "data/missing.json")
    policy.tables.cache_clear()
    try:
        # WHEN a Windows wheel (judged with those tables) is audited
        code = main([str(official_numpy_wheels["win_amd64"])])
    finally:
        policy.tables.cache_clear()
    # THEN one line names the file, and the status is a configuration error (2)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("check_wheel.py: error: cannot read ") and err.count("\n") == 1
    assert "data/missing.json" in err


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for line in ("0  every wheel passes", "1  at least one wheel fails", "2  bad command line",
                 "3  an input could not be read"):  # fmt: skip
        assert line in text


def test_input_that_is_a_directory(tmp_path, capsys):
    folder = tmp_path / "demo-1.0-py3-none-any.whl"
    folder.mkdir()
    assert main([str(folder)]) == 3
    assert capsys.readouterr().out.splitlines() == [
        f"ERROR {folder.name}",
        f"  {folder}: not a regular file",
    ]


def test_names_that_differ_only_in_case(tmp_path):
    files = {"demo/Readme.py": b"", "demo/README.py": b""}
    report = audit(make_wheel(tmp_path, "demo", "1.0", PURE, files))
    assert report.failures == []
    assert report.warnings == [
        "demo/README.py: differs from demo/Readme.py only in case "
        "(one overwrites the other on Windows and macOS)"
    ]


def test_library_that_no_module_loads(tmp_path):
    # GIVEN a bundled library nothing in the wheel needs, needing one that is absent
    src = tmp_path / "lib.c"
    src.write_text("int f(void) { return 1; }\n")
    for name in ("libabsent.so", "libstray.so"):
        extra = (
            [] if name == "libabsent.so" else [f"-L{tmp_path}", "-Wl,--no-as-needed", "-labsent"]
        )
        cmd = ["gcc", "-shared", "-fPIC", "-nostdlib", "-o", tmp_path / name, src, *extra]
        subprocess.run(cmd, check=True)
    files = {"demo.libs/libstray.so": (tmp_path / "libstray.so").read_bytes()}
    report = audit(make_wheel(tmp_path, "demo", "1.0", LINUX, files))
    # THEN a warning, not a failure: no chain loads it, only a load by path would break
    assert report.failures == []
    assert report.warnings == [
        "demo.libs/libstray.so needs libabsent.so: not bundled, not allowed by manylinux_2_17; "
        "demo.libs/libstray.so is loaded by no module of the wheel"
    ]


MAC_LINALG = "numpy/linalg/_umath_linalg.cpython-311-darwin.so"
MAC_BLAS = b"@loader_path/../.dylibs/libscipy_openblas64_.dylib\0"


def test_macho_slice_for_another_apple_platform(official_numpy_wheels, tmp_path):
    # GIVEN an arm64 binary whose LC_BUILD_VERSION says iOS (platform 2), not macOS
    from macholib.MachO import MachO

    def patch(members):
        path = tmp_path / "bin.so"
        path.write_bytes(members[MAC_LINALG])
        macho = MachO(str(path))
        for load, command, _data in macho.headers[0].commands:
            if load.cmd == policy.LC_BUILD_VERSION:
                command.platform = 2
        with open(path, "r+b") as fobj:
            macho.write(fobj)
        members[MAC_LINALG] = path.read_bytes()

    report = audit(edit_wheel(official_numpy_wheels["macosx_arm64"], tmp_path, edit=patch))
    assert report.failures == [
        f"{MAC_LINALG}: arm64 slice is built for Apple platform 2, not macOS"
    ]


def test_missing_weak_library_is_a_warning(official_numpy_wheels, tmp_path):
    # GIVEN the extension links a library weakly (LC_LOAD_WEAK_DYLIB) that is not there
    from macholib.MachO import MachO

    def patch(members):
        path = tmp_path / "bin.so"
        absent = b"@loader_path/../.dylibs/libabsent.dylib\0".ljust(len(MAC_BLAS), b"\0")
        path.write_bytes(members[MAC_LINALG].replace(MAC_BLAS, absent))
        macho = MachO(str(path))
        for load, _command, data in macho.headers[0].commands:
            if isinstance(data, bytes) and data.startswith(absent[:30]):
                load.cmd = 0x80000018  # LC_LOAD_WEAK_DYLIB
        with open(path, "r+b") as fobj:
            macho.write(fobj)
        members[MAC_LINALG] = path.read_bytes()

    report = audit(edit_wheel(official_numpy_wheels["macosx_x86_64"], tmp_path, edit=patch))
    assert report.failures == []
    assert report.warnings == [
        f"{MAC_LINALG} weakly links @loader_path/../.dylibs/libabsent.dylib: "
        "does not resolve inside the wheel"
    ]
