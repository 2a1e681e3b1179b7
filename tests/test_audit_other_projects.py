"""The audit on other projects' official wheels: each one here once showed a gap in
the audit (a loader rule, a policy table, an install scheme) or is one the audit must
still fail.  About 31 MB, fetched and cached like the NumPy corpus
(``test_audit_corpus.cached_wheels``: ``other-projects.json`` beside ``corpus.json``,
every file re-verified by its published sha256).

    python tests/test_audit_other_projects.py     # fetch (if needed) and list them
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_audit_corpus import (
    POLICY_WARNINGS,
    _agree,
    _auditwheel_show,
    cached_wheels,
    fetch_failure,
)

PASS, FAIL = "PASS", "FAIL"
# filename -> the verdict it must get (why it is here: the comment)
OTHER_WHEELS = {
    # its libcurl DLL is in pycurl-7.45.3.data/platlib/, installed beside the .pyd
    "pycurl-7.45.3-cp312-cp312-win_amd64.whl": PASS,
    # imports SHFOLDER.dll, a Windows system DLL
    "psycopg2_binary-2.9.10-cp312-cp312-win_amd64.whl": PASS,
    # imports ODBC32.dll, a Windows system DLL ...
    "pyodbc-5.2.0-cp312-cp312-win_amd64.whl": PASS,
    # ... but needs the user's unixODBC elsewhere: not self-contained, rightly failed
    "pyodbc-5.2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": FAIL,
    "pyodbc-5.2.0-cp312-cp312-macosx_11_0_arm64.whl": FAIL,
    # PyPy on Windows: extension modules import libpypy3.10-c.dll, the interpreter's DLL
    "pillow-11.0.0-pp310-pypy310_pp73-win_amd64.whl": PASS,
    # pygame/__init__.py: os.add_dll_directory(os.path.split(__file__)[0])
    "pygame-2.6.1-cp312-cp312-win_amd64.whl": PASS,
    # pywin32.pth runs pywin32_bootstrap: add_dll_directory over pywin32_system32.__path__;
    # its modules import credui, lz32, rasapi32, activeds, aclui, dsound, query, ...
    "pywin32-308-cp312-cp312-win_amd64.whl": PASS,
    # Python 2.7 on Windows: python27.dll and its runtime MSVCR90.dll
    "MarkupSafe-1.1.1-cp27-cp27m-win_amd64.whl": PASS,
    # Python 2's extension modules carry no ABI tag (_speedups.so): not bundled libraries
    "MarkupSafe-1.1.1-cp27-cp27mu-manylinux1_x86_64.whl": PASS,
    # Rust's x86_64 code needs macOS 10.12 (getentropy); the tag admits 10.9: rightly failed
    "cryptography-43.0.3-cp39-abi3-macosx_10_9_universal2.whl": FAIL,
    # bundles libssl/libcrypto (and a broken copy without them must fail)
    "psycopg2_binary-2.9.10-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": PASS,
}  # fmt: skip
PROJECTS = ("cryptography", "markupsafe", "pillow", "psycopg2-binary", "pycurl", "pygame",
            "pyodbc", "pywin32")  # fmt: skip
# Besides the NumPy corpus' policy warnings: License-File under Metadata-Version < 2.4
# (setuptools, maturin), which PyPI refuses from an uploader that sends the field.
LICENSE_FILE_WARNING = re.compile(
    r"^\S+\.dist-info/METADATA: license-file introduced in metadata version 2\.4, not 2\.[0-3]$"
)


def other_wheels(verbose: bool = False) -> list[Path]:
    def keep(filename, _version, _pythons):
        return filename in OTHER_WHEELS

    return cached_wheels("other-projects.json", PROJECTS, keep, sorted(OTHER_WHEELS), verbose)


@pytest.fixture(scope="module")
def reports():
    from numpy_wheels.audit import check_wheels

    try:
        wheels = other_wheels()
    except Exception as exc:
        fetch_failure(exc)
    return {w.name: r for w, r in zip(wheels, check_wheels(wheels), strict=True)}


def _binary(report, suffix: str):
    return next(b for b in report.binaries if b.path.endswith(suffix))


def test_each_wheel_gets_its_verdict(reports):
    assert sorted(reports) == sorted(OTHER_WHEELS)
    for name, report in reports.items():
        verdict = FAIL if report.failures else PASS
        assert (name, verdict) == (name, OTHER_WHEELS[name]), report.failures
        odd = [w for w in report.warnings
               if not (POLICY_WARNINGS.match(w) or LICENSE_FILE_WARNING.match(w))]  # fmt: skip
        assert (name, odd) == (name, [])


def test_the_failures_name_the_missing_library(reports):
    def failures(name):
        return reports[name].failures

    assert failures("pyodbc-5.2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl") == [
        "pyodbc.cpython-312-x86_64-linux-gnu.so needs libodbc.so.2: not bundled, "
        "not allowed by manylinux_2_17"
    ]
    assert failures("pyodbc-5.2.0-cp312-cp312-macosx_11_0_arm64.whl") == [
        "pyodbc.cpython-312-darwin.so needs /opt/homebrew/opt/unixodbc/lib/libodbc.2.dylib: "
        "not bundled and not a system library"
    ]
    assert failures("cryptography-43.0.3-cp39-abi3-macosx_10_9_universal2.whl") == [
        "cryptography/hazmat/bindings/_rust.abi3.so: x86_64 code requires macOS 10.12, "
        "the tag macosx_10_9_universal2 promises 10.9"
    ]


def test_how_each_fixed_case_is_resolved(reports):
    # a .data/platlib member installs at the root of site-packages
    pycurl = _binary(
        reports["pycurl-7.45.3-cp312-cp312-win_amd64.whl"], "pycurl.cp312-win_amd64.pyd"
    )
    (curl,) = [n for n, _ in pycurl.needed if n.startswith("libcurl-")]
    assert pycurl.resolved[curl] == f"pycurl-7.45.3.data/platlib/{curl}"
    assert pycurl.via[curl] == "the directory of pycurl.cp312-win_amd64.pyd"
    # system DLLs, PyPy's and Python 2.7's DLLs
    psycopg = reports["psycopg2_binary-2.9.10-cp312-cp312-win_amd64.whl"]
    assert _binary(psycopg, "_psycopg.cp312-win_amd64.pyd").resolved["SHFOLDER.dll"] == "system"
    pillow = reports["pillow-11.0.0-pp310-pypy310_pp73-win_amd64.whl"]
    imaging = _binary(pillow, "PIL/_imaging.pypy310-pp73-win_amd64.pyd")
    assert imaging.resolved["libpypy3.10-c.dll"] == "python"
    speedups = _binary(reports["MarkupSafe-1.1.1-cp27-cp27m-win_amd64.whl"], "_speedups.pyd")
    assert speedups.resolved["python27.dll"] == "python"
    assert speedups.resolved["MSVCR90.dll"] == "python runtime"
    # directories the packages' own code adds
    pygame = reports["pygame-2.6.1-cp312-cp312-win_amd64.whl"]
    assert pygame.dll_directories == ["pygame"]
    audio = _binary(pygame, "pygame/_sdl2/audio.cp312-win_amd64.pyd")
    assert audio.via["SDL2.dll"] == "os.add_dll_directory in pygame/__init__.py"
    pywin32 = reports["pywin32-308-cp312-cp312-win_amd64.whl"]
    assert pywin32.dll_directories == ["pywin32_system32"]
    win32api = _binary(pywin32, "win32/win32api.pyd")
    assert win32api.resolved["pywintypes312.dll"] == "pywin32_system32/pywintypes312.dll"
    assert win32api.via["pywintypes312.dll"] == (
        "os.add_dll_directory in win32/lib/pywin32_bootstrap.py"
    )


def test_an_untagged_python2_extension_is_no_bundled_library():
    # the NumPy checks (forced on) count no bundled library to declare in a LICENSE.txt
    from numpy_wheels.audit import check_wheel

    (wheel,) = [w for w in other_wheels() if w.name.startswith("MarkupSafe-1.1.1-cp27-cp27mu")]
    report = check_wheel(wheel, numpy_checks=True)
    assert [b.path for b in report.binaries] == ["markupsafe/_speedups.so"]
    assert (report.failures, report.warnings) == ([], [])


def test_a_library_one_slice_needs_is_named_with_its_arch(tmp_path):
    # GIVEN cryptography's universal2 module with one slice's libiconv moved off the system
    from numpy_wheels.audit import check_wheel
    from test_check_wheel import edit_wheel

    (src,) = [w for w in other_wheels() if w.name.startswith("cryptography")]
    member = "cryptography/hazmat/bindings/_rust.abi3.so"
    old, new = b"/usr/lib/libiconv.2.dylib\0", b"/opt/lib/libiconv.2.dylib\0"

    def patch(members):
        assert members[member].count(old) == 2  # one load command per slice
        members[member] = members[member].replace(old, new, 1)

    report = check_wheel(edit_wheel(src, tmp_path, edit=patch))
    # THEN it fails, saying which slice needs it
    assert (
        f"{member} needs /opt/lib/libiconv.2.dylib: not bundled and not a system library "
        "(needed by its x86_64 code only)"
    ) in report.failures


def test_agrees_with_auditwheel(reports):
    for name in OTHER_WHEELS:
        if "manylinux" in name:
            wheel = next(w for w in other_wheels() if w.name == name)
            _agree(wheel, reports[name], _auditwheel_show(wheel))


def test_without_its_bundled_openssl_psycopg2_fails(tmp_path):
    # GIVEN psycopg2-binary's Linux wheel with the libssl it bundles removed
    from numpy_wheels.audit import check_wheel
    from test_check_wheel import edit_wheel

    (src,) = [
        w for w in other_wheels() if w.name.startswith("psycopg2_binary") and "linux" in w.name
    ]

    dropped: list[str] = []

    def drop(members):
        (name,) = [m for m in members if re.search(r"/libssl-[0-9a-f]+\.so", m)]
        dropped.append(name)
        del members[name]

    bad = edit_wheel(src, tmp_path, edit=drop)
    report = check_wheel(bad)
    base = dropped[0].rsplit("/", 1)[1]
    # THEN every binary that needs it fails, and auditwheel calls it external too
    assert report.failures
    assert all(f" needs {base}: not bundled, not allowed by manylinux_2_17" in f
               for f in report.failures), report.failures  # fmt: skip
    shown = _auditwheel_show(bad)
    assert list(shown["external_libs"]) == [base]
    _agree(bad, report, shown)


if __name__ == "__main__":
    for wheel in other_wheels(verbose=True):
        print(wheel)
