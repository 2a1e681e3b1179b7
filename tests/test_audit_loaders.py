"""The audit's loader rules, each shown by a wheel that breaks it and one that keeps it.

ELF chains are built here with gcc and judged twice: by check_wheel and by this
host's own glibc loader (``ctypes.CDLL`` on the unpacked wheel in a fresh
process); the two must agree.  Mach-O and PE cases are official NumPy wheels with
one load command or one line of Python changed.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import clean_env
from numpy_wheels.audit import check_wheel
from test_audit_corpus import corpus_wheels
from test_check_wheel import WIN_MULTIARRAY, edit_wheel, make_wheel

ARCH = platform.machine()
TAG = f"cp311-cp311-manylinux_2_17_{ARCH}"
EXT = "demo/_demo.cpython-311-x86_64-linux-gnu.so"


@pytest.fixture(scope="module")
def corpus_by_name() -> dict[str, Path]:
    return {w.name: w for w in corpus_wheels()}


def _gcc(out: Path, source: str, *flags: str) -> bytes:
    src = out.with_suffix(".c")
    src.write_text(source)
    cmd = ["gcc", "-shared", "-fPIC", "-nostdlib", "-o", str(out), str(src), *flags]
    subprocess.run(cmd, check=True, capture_output=True)
    return out.read_bytes()


def _chain_wheel(tmp_path: Path, mid_runpath: bool, tag: str = TAG) -> Path:
    """demo/_demo.so (DT_RPATH $ORIGIN/../demo.libs) -> demo.libs/libmid.so -> libbase.so.

    libmid.so carries no search path of its own, or a DT_RUNPATH to nowhere."""
    build = tmp_path / ("runpath" if mid_runpath else "plain")
    build.mkdir()
    base = _gcc(build / "libbase.so", "int base(void) { return 1; }\n", "-Wl,-soname,libbase.so")
    mid_flags = ["-Wl,-soname,libmid.so", f"-L{build}", "-lbase"]
    if mid_runpath:
        mid_flags.append("-Wl,--enable-new-dtags,-rpath,$ORIGIN/nowhere")
    mid = _gcc(build / "libmid.so", "int base(void);\nint mid(void) { return base(); }\n",
               *mid_flags)  # fmt: skip
    rpath = "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../demo.libs"
    ext = _gcc(build / "ext.so", "int mid(void);\nint PyInit__demo(void) { return mid(); }\n",
               f"-L{build}", "-lmid", rpath)  # fmt: skip
    files = {EXT: ext, "demo.libs/libmid.so": mid, "demo.libs/libbase.so": base}
    return make_wheel(build, "demo", "1.0", tag, files)


def _real_loader_loads(wheel: Path, tmp_path: Path) -> tuple[bool, str]:
    """Unpack the wheel and let this host's loader dlopen the extension module."""
    root = tmp_path / f"site-{wheel.stat().st_ino}"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(root)
    code = "import ctypes, sys\nctypes.CDLL(sys.argv[1])\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(root / EXT)],
        capture_output=True, text=True, env=clean_env(tmp_path),
    )  # fmt: skip
    return proc.returncode == 0, proc.stderr


@pytest.mark.skipif(ARCH != "x86_64", reason="the extension name is spelled for x86_64")
def test_parent_rpath_reaches_a_grandchild_as_glibc_does(tmp_path):
    # GIVEN libmid.so with no search path of its own: glibc tries the DT_RPATH of
    # the extension module that loaded it
    wheel = _chain_wheel(tmp_path, mid_runpath=False)
    report = check_wheel(wheel)
    # THEN the audit passes, and says which entry of whose RPATH found libbase.so
    assert report.failures == []
    mid = next(b for b in report.binaries if b.path == "demo.libs/libmid.so")
    assert mid.resolved["libbase.so"] == "demo.libs/libbase.so"
    assert mid.via["libbase.so"] == f"DT_RPATH $ORIGIN/../demo.libs of {EXT}"
    # AND the real loader agrees
    loaded, err = _real_loader_loads(wheel, tmp_path)
    assert loaded, err


@pytest.mark.skipif(ARCH != "x86_64", reason="the extension name is spelled for x86_64")
def test_runpath_hides_the_parents_rpath(tmp_path):
    # GIVEN libmid.so with a DT_RUNPATH: its own needs no longer see the parent's RPATH
    wheel = _chain_wheel(tmp_path, mid_runpath=True)
    report = check_wheel(wheel)
    assert report.failures == [
        "demo.libs/libmid.so needs libbase.so: bundled as demo.libs/libbase.so but no search "
        "path reaches it (DT_RUNPATH $ORIGIN/nowhere of demo.libs/libmid.so) "
        f"(loading chain: demo.libs/libmid.so <- {EXT})"
    ]
    # AND the real loader fails the same way
    loaded, err = _real_loader_loads(wheel, tmp_path)
    assert not loaded
    assert "libbase.so: cannot open shared object file" in err


@pytest.mark.skipif(ARCH != "x86_64", reason="the extension name is spelled for x86_64")
def test_musl_searches_every_loaders_path_despite_runpath(tmp_path):
    # GIVEN the same chain tagged musllinux: musl's loader tries each object's RUNPATH
    # (or RPATH) up the chain, so libmid's RUNPATH hides nothing there
    wheel = _chain_wheel(tmp_path, mid_runpath=True, tag=f"cp311-cp311-musllinux_1_2_{ARCH}")
    report = check_wheel(wheel)
    assert report.failures == []
    mid = next(b for b in report.binaries if b.path == "demo.libs/libmid.so")
    assert mid.via["libbase.so"] == f"DT_RPATH $ORIGIN/../demo.libs of {EXT}"


def test_library_moved_out_of_every_search_path(corpus_by_name, tmp_path):
    # GIVEN numpy 1.26.4 with libgfortran moved where no RPATH of the chain points
    src = corpus_by_name["numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]
    gfortran = "libgfortran-040039e1.so.5.0.0"

    def move(members):
        members[f"numpy.libs/sub/{gfortran}"] = members.pop(f"numpy.libs/{gfortran}")

    failures = check_wheel(edit_wheel(src, tmp_path, edit=move)).failures
    openblas = "numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so"
    assert failures == [
        f"{openblas} needs {gfortran}: bundled as numpy.libs/sub/{gfortran} but no search path "
        "reaches it (DT_RPATH $ORIGIN/../../numpy.libs of "
        "numpy/linalg/lapack_lite.cpython-312-x86_64-linux-gnu.so) (loading chain: "
        f"{openblas} <- numpy/linalg/lapack_lite.cpython-312-x86_64-linux-gnu.so)"
    ]


# ---------------------------------------------------------------- Mach-O


def _patch_load(data: bytes, old: bytes, new: bytes) -> bytes:
    """Rewrite a load command's path in place (NUL-padded to the same length)."""
    assert len(new) <= len(old) and old + b"\0" in data
    return data.replace(old + b"\0", new + b"\0" * (len(old) - len(new) + 1))


def test_rpath_without_matching_lc_rpath(official_numpy_wheels, tmp_path):
    # GIVEN the extension loads OpenBLAS through @rpath, but no binary of its chain
    # has an LC_RPATH
    member = "numpy/linalg/_umath_linalg.cpython-311-darwin.so"
    old = b"@loader_path/../.dylibs/libscipy_openblas64_.dylib"

    def patch(members):
        members[member] = _patch_load(members[member], old, b"@rpath/libscipy_openblas64_.dylib")

    report = check_wheel(edit_wheel(official_numpy_wheels["macosx_x86_64"], tmp_path, edit=patch))
    assert report.failures == [
        f"{member} needs @rpath/libscipy_openblas64_.dylib: does not resolve inside the wheel "
        "(LC_RPATH: none)"
    ]


def test_rpath_resolved_through_the_binarys_lc_rpath(corpus_by_name, tmp_path):
    # GIVEN libgfortran (LC_RPATH @loader_path/) loading libquadmath through @rpath
    src = corpus_by_name["numpy-1.26.4-cp312-cp312-macosx_11_0_arm64.whl"]
    member = "numpy/.dylibs/libgfortran.5.dylib"

    def patch(members):
        members[member] = _patch_load(
            members[member], b"@loader_path/libquadmath.0.dylib", b"@rpath/libquadmath.0.dylib"
        )

    report = check_wheel(edit_wheel(src, tmp_path, edit=patch))
    assert report.failures == []
    gfortran = next(b for b in report.binaries if b.path == member)
    assert gfortran.resolved["@rpath/libquadmath.0.dylib"] == "numpy/.dylibs/libquadmath.0.dylib"
    assert gfortran.via["@rpath/libquadmath.0.dylib"].startswith("LC_RPATH @loader_path")


def test_executable_path_is_outside_the_wheel(official_numpy_wheels, tmp_path):
    member = "numpy/linalg/_umath_linalg.cpython-311-darwin.so"
    old = b"@loader_path/../.dylibs/libscipy_openblas64_.dylib"

    def patch(members):
        members[member] = _patch_load(members[member], old, b"@executable_path/libopenblas.dylib")

    report = check_wheel(edit_wheel(official_numpy_wheels["macosx_x86_64"], tmp_path, edit=patch))
    assert report.failures == [
        f"{member} needs @executable_path/libopenblas.dylib: resolves in the Python "
        "executable's directory, outside the wheel"
    ]


# ---------------------------------------------------------------- PE


def _blas_dll(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return next(n for n in zf.namelist() if "openblas" in n and n.endswith(".dll"))


def test_dll_reachable_only_through_a_directory_no_code_adds(official_numpy_wheels, tmp_path):
    # GIVEN the delvewheel patch removed from numpy/__init__.py: nothing adds numpy.libs
    src = official_numpy_wheels["win_amd64"]
    blas = _blas_dll(src)

    def unpatch(members):
        text = members["numpy/__init__.py"]
        assert b"os.add_dll_directory(libs_dir)" in text
        members["numpy/__init__.py"] = text.replace(b"os.add_dll_directory(libs_dir)", b"pass")

    report = check_wheel(edit_wheel(src, tmp_path, edit=unpatch))
    assert report.dll_directories == []
    base = blas.split("/")[-1]
    assert (
        f"{WIN_MULTIARRAY} imports {base}: bundled as {blas} but not in any directory the "
        "loader searches (numpy/_core)"
    ) in report.failures


@pytest.mark.parametrize(
    "spelling",
    [
        "pathlib.Path(__file__).resolve().parent.parent / 'numpy.libs'",
        "os.path.join(os.path.split(os.path.dirname(__file__))[0], 'numpy.libs')",
    ],
)
def test_dll_directory_spelled_with_pathlib_or_split(official_numpy_wheels, tmp_path, spelling):
    # GIVEN the delvewheel patch's directory computed another way a package might spell it
    src = official_numpy_wheels["win_amd64"]

    def respell(members):
        text = members["numpy/__init__.py"]
        assert b"os.add_dll_directory(libs_dir)" in text
        members["numpy/__init__.py"] = text.replace(
            b"os.add_dll_directory(libs_dir)",
            f"import pathlib; os.add_dll_directory({spelling})".encode(),
        )

    report = check_wheel(edit_wheel(src, tmp_path, edit=respell))
    # THEN the directory is found as before, and nothing breaks
    assert report.dll_directories == ["numpy.libs"]
    assert report.failures == []


def test_dlls_preloaded_by_distributor_init(official_numpy_wheels, tmp_path):
    # GIVEN numpy's older convention: no add_dll_directory, but _distributor_init.py
    # loads every OpenBLAS DLL of numpy.libs with ctypes.WinDLL before any extension
    src = official_numpy_wheels["win_amd64"]
    blas = _blas_dll(src)
    distributor_init = (
        b"import glob\nimport os\nfrom ctypes import WinDLL\n"
        b"if os.name == 'nt':\n"
        b"    basedir = os.path.dirname(__file__)\n"
        b"    libs_dir = os.path.abspath(os.path.join(basedir, os.pardir, 'numpy.libs'))\n"
        b"    for filename in glob.glob(os.path.join(libs_dir, '*openblas*dll')):\n"
        b"        WinDLL(os.path.abspath(filename))\n"
    )

    def convert(members):
        members["numpy/__init__.py"] = members["numpy/__init__.py"].replace(
            b"os.add_dll_directory(libs_dir)", b"pass"
        )
        members["numpy/_distributor_init.py"] = distributor_init

    report = check_wheel(edit_wheel(src, tmp_path, edit=convert))
    multiarray = next(b for b in report.binaries if b.path == WIN_MULTIARRAY)
    base = blas.split("/")[-1]
    assert multiarray.resolved[base] == blas
    assert multiarray.via[base] == "preloaded by numpy/_distributor_init.py"
    # msvcp140-*.dll is not preloaded and no directory is added: that one still breaks
    assert [f for f in report.failures if "openblas" in f] == []
    assert any("imports msvcp140-" in f and "bundled as numpy.libs/" in f for f in report.failures)
