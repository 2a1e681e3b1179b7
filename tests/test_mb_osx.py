"""osx_utils.sh / configure_build.sh pure logic (runs on Linux; macOS tools are stubs)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import HOST_ARCH, ROOT, VENV_BIN

UNAME_STUB = """#!/bin/bash
if [ "$1" = "-m" ]; then echo "$STUB_MACHINE"; else /bin/uname "$@"; fi
"""
ARGV_STUB = """#!/bin/bash
{ echo "$(basename "$0") DYLD=${DYLD_LIBRARY_PATH-}"; printf '%s\\n' "$@"; } >> "$HOME/calls"
"""


@pytest.fixture
def stubs(tmp_path):
    d = tmp_path / "stubs"
    d.mkdir()
    for name, text in [("uname", UNAME_STUB), ("delocate-wheel", ARGV_STUB)]:
        (d / name).write_text(text)
        (d / name).chmod(0o755)
    return d


def osx(bash, body: str, stubs=None, machine="x86_64", **env):
    path = f"{stubs}:{VENV_BIN}:/usr/bin:/bin" if stubs else f"{VENV_BIN}:/usr/bin:/bin"
    return bash(
        f'source {ROOT}/multibuild/osx_utils.sh\ncd "$TMPDIR"\n{body}',
        env={"PATH": path, "STUB_MACHINE": machine, **env},
    )


@pytest.mark.parametrize(
    ("ver", "out"),
    [("2", "2.7.18"), ("2.7", "2.7.18"), ("2.7.8", "2.7.8"), ("3", "3.13.0"), ("3.5", "3.5.4"),
     ("3.9", "3.9.13"), ("3.12", "3.12.7"), ("3.13", "3.13.0"), ("3.10.0post2", "3.10.0post2")],
)  # fmt: skip
def test_fill_pyver(bash, ver, out):
    r = osx(bash, f"fill_pyver {ver}")
    assert (r.returncode, r.stdout) == (0, out + "\n")


@pytest.mark.parametrize("ver", ["3.4", "4", "2.6", "pypy"])
def test_fill_pyver_bad(bash, ver):
    r = osx(bash, f"set +e; fill_pyver {ver}; echo s=$?")
    assert (r.stdout, r.stderr) == ("s=1\n", f"Can't fill version {ver}\n")


def test_fill_pyver_empty(bash):
    r = osx(bash, "set +e; fill_pyver ''; echo s=$?")
    assert (r.stdout, r.stderr) == ("s=1\n", "required variable not defined\n")


@pytest.mark.parametrize(
    ("ver", "sdks"),
    [("2.7.14", "10.6"), ("2.7.15", "10.6 10.9"), ("2.7", "10.9"), ("3.6.4", "10.6"),
     ("3.6.5", "10.6 10.9"), ("3.7", "10.6 10.9"), ("3.8.9", "10.9"), ("3.8", "10.9 11.0"),
     ("3.9.0", "10.9"), ("3.9.1", "10.9 11.0"), ("3.10", "11.0"), ("3.12.7", "11.0")],
)  # fmt: skip
def test_macpython_sdk_list_for_version(bash, ver, sdks):
    r = osx(bash, f"macpython_sdk_list_for_version {ver}; macpython_sdk_for_version {ver}")
    assert r.stdout == f"{sdks}\n{sdks.split()[-1]}\n"


def test_macpython_sdk_list_bad_major(bash):
    r = osx(bash, "set +e; macpython_sdk_list_for_version 4.0.0; echo s=$?")
    assert (r.stdout, r.stderr) == ("s=1\n", "Error: version=4.0.0, expecting 2.x or 3.x\n")


@pytest.mark.parametrize(
    ("ver", "ext"),
    [("2.7.8", "dmg"), ("2.7.9", "pkg"), ("2.7", "pkg"), ("2", "pkg"), ("3.3.5", "dmg"),
     ("3.4.1", "dmg"), ("3.4.2", "pkg"), ("3.5.0", "pkg"), ("3.6.0", "pkg"), ("3", "pkg")],
)  # fmt: skip
def test_pyinst_ext_for_version(bash, ver, ext):
    assert osx(bash, f"pyinst_ext_for_version {ver}").stdout == ext + "\n"


@pytest.mark.parametrize(
    ("args", "machine", "fname"),
    [
        ("3.9.13", "x86_64", "python-3.9.13-macosx10.9.pkg"),
        ("3.9.13", "arm64", "python-3.9.13-macos11.pkg"),
        ("3.8.10", "x86_64", "python-3.8.10-macosx10.9.pkg"),
        ("3.12.7", "x86_64", "python-3.12.7-macos11.pkg"),
        ("3.7.9", "x86_64", "python-3.7.9-macosx10.9.pkg"),
        ("3.9.1 11.0", "x86_64", "python-3.9.1-macos11.0.pkg"),
        ("3.7.9 10.6", "arm64", "python-3.7.9-macosx10.6.pkg"),
        ("2.7.8 10.6", "x86_64", "python-2.7.8-macosx10.6.dmg"),
    ],
)
def test_pyinst_fname_for_version(bash, stubs, args, machine, fname):
    r = osx(bash, f"pyinst_fname_for_version {args}", stubs=stubs, machine=machine)
    assert (r.returncode, r.stdout) == (0, fname + "\n"), r.stderr


@pytest.mark.parametrize(
    ("plat", "arch", "osx_ver"),
    [("macosx-10.9-x86_64", "x86_64", "10.9"), ("macosx-10.6-intel", "intel", "10.6"),
     ("macosx-11.0-arm64", "arm64", "11.0"), ("macosx-14.0-universal2", "universal2", "14.0"),
     ("macosx-11-arm64", "arm64", "11"), ("macosx-26.1-arm64", "arm64", "26.1")],
)  # fmt: skip
def test_get_macpython_arch_and_osx_ver(bash, plat, arch, osx_ver):
    r = osx(bash, f"get_macpython_arch {plat}; get_macpython_osx_ver {plat}")
    assert r.stdout == f"{arch}\n{osx_ver}\n"


def test_get_macpython_arch_not_macos(bash):
    r = osx(bash, "set +e; get_macpython_arch linux-x86_64; echo s=$?")
    assert r.stdout == "s=1\n"
    assert r.stderr == "Error parsing macOS distutils platform 'linux-x86_64'\n"


def test_get_macpython_arch_default_uses_python(bash):
    r = osx(bash, "set +e; PYTHON_EXE=python3 get_macpython_arch; echo s=$?")
    assert r.stderr.startswith("Error parsing macOS distutils platform 'linux-")


@pytest.mark.parametrize(
    ("args", "arch"),
    [("3.7.9 10.6", "intel"), ("3.7.9 10.9", "x86_64"), ("3.9.13 11.0", "arm64"),
     ("3.12.7 14.0", "arm64"), ("3.12", "arm64"), ("3.7", "x86_64"), ("pypy3.9-7.3", "x86_64")],
)  # fmt: skip
def test_macpython_arch_for_version(bash, args, arch):
    r = osx(bash, f"macpython_arch_for_version {args}")
    assert (r.returncode, r.stdout) == (0, arch + "\n"), r.stderr


def test_macpython_arch_for_version_env_and_bad(bash):
    assert osx(bash, "macpython_arch_for_version 3.9", MB_PYTHON_OSX_VER="10.9").stdout == (
        "x86_64\n"
    )
    r = osx(bash, "set +e; macpython_arch_for_version 3.9 10.8; echo s=$?")
    assert r.stdout == "s=1\n"
    assert r.stderr == (
        "Unexpected CPython macOS version: 10.8, supported values: 10.6, 10.9, 11.0+\n"
    )


@pytest.mark.parametrize(
    ("ver", "impl", "stripped"),
    [("3.9", "cp", "3.9"), ("pypy-5.4", "pp", "5.4"), ("pypy3.9-7.3", "pp", "pypy3.9-7.3")],
)
def test_impl_and_strip_prefix(bash, ver, impl, stripped):
    r = osx(bash, f"macpython_impl_for_version {ver}; strip_macpython_ver_prefix {ver}")
    assert r.stdout == f"{impl}\n{stripped}\n"


def test_impl_bad(bash):
    r = osx(bash, "set +e; macpython_impl_for_version cpython; echo s=$?")
    assert r.stdout == "s=1\n"
    assert r.stderr.endswith("    version=cpython\n")


# ------------------------------------------------------------------ wrap_wheel_builder

SETUP_STUBS = """
macos_intel_native_build_setup() { PLAT=x86_64; echo setup-intel-native; }
macos_arm64_cross_build_setup() { PLAT=arm64; echo setup-arm64-cross; }
macos_arm64_native_build_setup() { PLAT=arm64; echo setup-arm64-native; }
fuse_macos_intel_arm64() { echo fuse; }
builder() { echo "build PLAT=$PLAT args=$*"; }
"""


@pytest.mark.parametrize(
    ("plat", "machine", "out"),
    [
        ("universal2", "x86_64", "setup-intel-native|build PLAT=x86_64 args=a b|"
         "setup-arm64-cross|build PLAT=arm64 args=a b|fuse"),
        ("arm64", "x86_64", "setup-arm64-cross|build PLAT=arm64 args=a b"),
        ("arm64", "arm64", "setup-arm64-native|build PLAT=arm64 args=a b"),
        ("x86_64", "x86_64", "setup-intel-native|build PLAT=x86_64 args=a b"),
        ("intel", "x86_64", "build PLAT=intel args=a b"),
    ],
)  # fmt: skip
def test_wrap_wheel_builder_dispatch(bash, stubs, tmp_path, plat, machine, out):
    r = osx(
        bash,
        f"{SETUP_STUBS}\ntouch x-stamp; PLAT={plat}\nwrap_wheel_builder builder a b\n"
        'echo "outer=$PLAT"; ls *-stamp 2>/dev/null || true',
        stubs=stubs,
        machine=machine,
    )
    assert r.returncode == 0, r.stderr
    stamp = "" if plat == "universal2" else "x-stamp\n"  # stamps go between the two builds
    assert r.stdout == out.replace("|", "\n") + f"\nouter={plat}\n" + stamp


def test_wrap_wheel_builder_universal2_on_arm64_host_fails(bash, stubs):
    r = osx(bash, "PLAT=universal2 wrap_wheel_builder echo hi", stubs=stubs, machine="arm64")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "universal2 builds on arm64 are not supported yet.\n"


def test_intel_native_setup_flags(bash):
    # GIVEN flags of the user's, one of which is already an -arch flag
    # WHEN the setup runs twice (wrap_wheel_builder and a config.sh may both call it)
    r = osx(
        bash,
        "macos_intel_native_build_setup; macos_intel_native_build_setup\n"
        'echo "$PLAT|$_PYTHON_HOST_PLATFORM|$CFLAGS|$CXXFLAGS|$LDFLAGS|$ARCHFLAGS"\n'
        "env | grep -c '^CXXFLAGS='",
        MB_PYTHON_OSX_VER="10.9",
        CFLAGS="-O2",
        LDFLAGS="-arch x86_64 -L/x",
    )
    # THEN each variable holds `-arch x86_64` once, after what was there, exported
    assert r.stdout == (
        "x86_64|macosx-10.9-x86_64|-O2 -arch x86_64|-arch x86_64|-arch x86_64 -L/x|-arch x86_64\n"
        "1\n"
    )


def test_arm64_cross_setup_twice_adds_each_flag_once(bash, tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "sudo").write_text("#!/bin/bash\n")  # never creates /opt/arm64-builds here
    (stubs / "sudo").chmod(0o755)
    r = osx(
        bash,
        f"source {ROOT}/multibuild/configure_build.sh\n"
        "macos_arm64_cross_build_setup; macos_arm64_cross_build_setup\n"
        'echo "$CFLAGS|$ARCHFLAGS|$FCFLAGS"',
        stubs=stubs,
        FC_ARM64="gfortran-arm64",
        STRIP_FLAGS="",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "-arch arm64|-arch arm64|-arch arm64"


# ------------------------------------------------------------------ delocate repair, fuse


def test_osx_repair_wheelhouse_argv(bash, stubs, tmp_path):
    wh = tmp_path / "in"
    wh.mkdir()
    (wh / "p-1.0-cp311-cp311-macosx_10_9_universal2.whl").write_bytes(b"")
    (wh / "pure-1.0-py3-none-any.whl").write_bytes(b"x")
    r = osx(
        bash,
        f"repair_wheelhouse {wh} {tmp_path}/out",
        stubs=stubs,
        PLAT="universal2",
        NW_REPAIR_LIBRARY_PATH="/opt/a:/opt/b",
        DYLD_LIBRARY_PATH="/usr/x",
    )
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "home" / "calls").read_text().splitlines()
    assert calls == [
        "delocate-wheel DYLD=/opt/a:/opt/b:/usr/x",
        "--require-archs",
        "x86_64,arm64",
        "-w",
        f"{tmp_path}/out",
        "-v",
        f"{wh}/p-1.0-cp311-cp311-macosx_10_9_universal2.whl",
    ]
    assert (tmp_path / "out" / "pure-1.0-py3-none-any.whl").read_bytes() == b"x"


@pytest.mark.parametrize(("plat", "archs"), [("x86_64", "x86_64"), ("arm64", "arm64")])
def test_osx_repair_archs(bash, stubs, tmp_path, plat, archs):
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / "p-1.0-cp311-cp311-macosx_11_0_arm64.whl").write_bytes(b"")
    r = osx(bash, f"repair_wheelhouse {tmp_path}/wh", stubs=stubs, PLAT=plat)
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "home" / "calls").read_text().splitlines()
    assert calls[1:5] == ["--require-archs", archs, "-w", f"{tmp_path}/wh"]


def test_osx_repair_bad_plat(bash, stubs, tmp_path):
    (tmp_path / "wh").mkdir()
    r = osx(bash, f"set +e; repair_wheelhouse {tmp_path}/wh; echo s=$?", stubs=stubs, PLAT="ppc")
    assert r.stdout == "s=1\n"
    assert r.stderr == (
        "repair_wheelhouse: unknown PLAT 'ppc' (expected one of: x86_64 arm64 universal2 intel)\n"
    )


def test_fuse_macos_intel_arm64(bash, tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    # like delocate-merge: a new wheel in -w DIR, named from the merged binaries
    (stubs / "delocate-merge").write_text(
        '#!/bin/bash\necho "$@" >> "$HOME/calls"\n'
        'cp "$1" "$4/$(basename "${1%_x86_64.whl}")_universal2.whl"\n'
    )
    (stubs / "delocate-merge").chmod(0o755)
    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    x86 = wh / "p-1.0-cp311-cp311-macosx_10_15_x86_64.whl"
    arm = wh / "p-1.0-cp311-cp311-macosx_11_0_arm64.whl"
    x86.write_text("x86")
    arm.write_text("arm")
    r = bash(
        f"source {ROOT}/multibuild/osx_utils.sh\ncd {tmp_path}; fuse_macos_intel_arm64",
        env={"PATH": f"{stubs}:{VENV_BIN}:/usr/bin:/bin", "MACOSX_DEPLOYMENT_TARGET": "10.15"},
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in wh.iterdir()) == [
        "p-1.0-cp311-cp311-macosx_10_15_universal2.whl",
        arm.name,
    ]
    assert (tmp_path / "home" / "calls").read_text().split()[:3] == [str(x86), str(arm), "-w"]


# ------------------------------------------------------------------ configure_build.sh


def test_configure_build_linux_defaults(bash):
    r = bash(
        f"source {ROOT}/multibuild/configure_build.sh\n"
        'echo "$BUILD_PREFIX|$PLAT|$CFLAGS|$CXXFLAGS|$FFLAGS|$CPPFLAGS|$LIBRARY_PATH"\n'
        "source multibuild/configure_build.sh; echo twice-ok",
        env={"CPPFLAGS": "-DX"},
    )
    assert r.stdout == (
        f"/usr/local|{HOST_ARCH}|-Wl,-strip-all|-Wl,-strip-all|-Wl,-strip-all|"
        "-I/usr/local/include -DX|/usr/local/lib\ntwice-ok\n"
    )


def test_update_env_for_build_prefix(bash, tmp_path):
    r = bash(
        f"source {ROOT}/multibuild/configure_build.sh\n"
        f"BUILD_PREFIX={tmp_path}; update_env_for_build_prefix; update_env_for_build_prefix\n"
        'echo "$CPPFLAGS|$LIBRARY_PATH|$PKG_CONFIG_PATH"; echo "$PATH" | tr : "\\n" | grep -c stubs'
        " || true",
        env={"STRIP_FLAGS": "", "PKG_CONFIG_PATH": "/pc"},
    )
    assert r.stdout.splitlines()[0] == (
        f"-I{tmp_path}/include|{tmp_path}/lib|{tmp_path}/lib/pkgconfig/:/pc"
    )


@pytest.mark.parametrize(
    ("plat", "flags"),
    [("intel", "-arch i386 -arch x86_64"), ("x86_64", "-arch x86_64"), ("arm64", "-arch arm64"),
     ("universal2", "")],
)  # fmt: skip
def test_arch_flags_for_plat(bash, plat, flags):
    r = bash(f"source {ROOT}/multibuild/configure_build.sh; _nw_arch_flags_for_plat {plat}")
    assert r.stdout == flags + "\n"


def test_arch_flags_bad_plat(bash):
    r = bash(f"source {ROOT}/multibuild/configure_build.sh; _nw_arch_flags_for_plat sparc")
    assert r.returncode == 1
    plats = "x86_64 arm64 universal2 intel"
    assert r.stderr == f"configure_build.sh: unknown PLAT 'sparc' (expected one of: {plats})\n"


# ------------------------------------------ the real delocate, with Debian's LLVM tools


def _newest_llvm(tool: str) -> Path | None:
    """/usr/bin/llvm-TOOL-N of the highest N (Debian's versioned LLVM ports)."""
    found = [
        p for p in Path("/usr/bin").glob(f"llvm-{tool}-*") if p.name.rsplit("-", 1)[1].isdigit()
    ]
    return max(found, key=lambda p: int(p.name.rsplit("-", 1)[1]), default=None)


@pytest.fixture(scope="session")
def macho_tools(tmp_path_factory, tools_bin) -> Path:
    """A PATH directory with delocate (tools venv) and what it runs: otool,
    install_name_tool and lipo are Debian's LLVM ports (package `llvm`, installed
    when missing); llvm-otool lacks cctools' -m (no archive-member demangling), so
    a wrapper drops it. codesign has no Linux tool: it is a no-op, signatures are
    not judged here."""
    if _newest_llvm("otool") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "llvm"], capture_output=True)
    otool = _newest_llvm("otool")
    assert otool is not None, "llvm-otool not found and `apt-get install llvm` did not provide it"
    version = otool.name.rsplit("-", 1)[1]
    shim = tmp_path_factory.mktemp("macho-tools")
    (shim / "otool").write_text(
        '#!/bin/bash\nargs=(); for a in "$@"; do [ "$a" = -m ] || args+=("$a"); done\n'
        f'exec {otool} "${{args[@]}}"\n'
    )
    (shim / "codesign").write_text("#!/bin/sh\nexit 0\n")
    for name in ("otool", "codesign"):
        (shim / name).chmod(0o755)
    (shim / "install_name_tool").symlink_to(f"/usr/bin/llvm-install-name-tool-{version}")
    (shim / "lipo").symlink_to(f"/usr/bin/llvm-lipo-{version}")
    (shim / "delocate-wheel").symlink_to(tools_bin / "delocate-wheel")
    return shim


def unrepaired_macos(official: Path, dest: Path, libs: Path, otool: Path) -> Path:
    """``official`` as its build left it before delocate: numpy/.dylibs/ moved out to
    ``libs`` and the extensions linking its libraries by that absolute path."""
    tree = dest.with_name(f"{dest.name}-tree")  # beside: dest holds the wheel only
    with zipfile.ZipFile(official) as zf:
        zf.extractall(tree)
    libs.mkdir(parents=True)
    for lib in (tree / "numpy" / ".dylibs").iterdir():
        lib.rename(libs / lib.name)
    (tree / "numpy" / ".dylibs").rmdir()
    for ext in tree.rglob("*.so"):
        out = subprocess.run([otool, "-L", ext], capture_output=True, text=True, check=True)
        for dep in (ln.split()[0] for ln in out.stdout.splitlines()[1:]):
            if "/.dylibs/" in dep:
                new = str(libs / dep.rsplit("/", 1)[1])
                subprocess.run(["install_name_tool", "-change", dep, new, ext], check=True,
                               env={"PATH": str(otool.parent)})  # fmt: skip
    record = next(tree.glob("*.dist-info/RECORD"))
    lines = record.read_text().splitlines(keepends=True)
    record.write_text("".join(ln for ln in lines if "/.dylibs/" not in ln))
    dest.mkdir(parents=True)
    wheel = dest / official.name
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tree).as_posix())
    return wheel


def test_repair_wheelhouse_with_the_real_delocate(bash, tmp_path, official_numpy_wheels,
                                                   macho_tools):  # fmt: skip
    # GIVEN NumPy's official x86_64 macOS wheel as it was before delocate, its
    # OpenBLAS (and gfortran runtime) in a directory the extensions link to
    libs = tmp_path / "libs"
    wheel = unrepaired_macos(official_numpy_wheels["macosx_x86_64"], tmp_path / "raw", libs,
                             macho_tools / "otool")  # fmt: skip
    # WHEN repair_wheelhouse runs delocate-wheel on it
    r = osx(bash, f"repair_wheelhouse {tmp_path}/raw {tmp_path}/out", stubs=macho_tools,
            PLAT="x86_64")  # fmt: skip
    # THEN one wheel came out with the four libraries back in numpy/.dylibs/, and
    # each extension links OpenBLAS there, relative to itself
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (out,) = (tmp_path / "out").iterdir()
    assert out.name.startswith("numpy-2.4.6-") and out.name.endswith("_x86_64.whl"), out.name
    tree = tmp_path / "check"
    with zipfile.ZipFile(out) as zf:
        zf.extractall(tree)
    assert sorted(p.name for p in (tree / "numpy" / ".dylibs").iterdir()) == sorted(
        p.name for p in libs.iterdir()
    )
    ext = next((tree / "numpy" / "_core").glob("_multiarray_umath*.so"))
    deps = subprocess.run([macho_tools / "otool", "-L", ext], capture_output=True, text=True)
    assert "@loader_path/../.dylibs/libscipy_openblas64_.dylib" in deps.stdout
    assert str(libs) not in deps.stdout
    assert wheel.exists()  # the input is left as it was


def test_real_delocate_refuses_a_missing_architecture(bash, tmp_path, official_numpy_wheels,
                                                      macho_tools):  # fmt: skip
    unrepaired_macos(official_numpy_wheels["macosx_x86_64"], tmp_path / "raw", tmp_path / "libs",
                     macho_tools / "otool")  # fmt: skip
    r = osx(bash, f"repair_wheelhouse {tmp_path}/raw {tmp_path}/out", stubs=macho_tools,
            PLAT="arm64")  # fmt: skip
    assert r.returncode == 1
    name = official_numpy_wheels["macosx_x86_64"].name
    assert r.stderr.splitlines()[-1] == (
        f"repair_wheelhouse: delocate-wheel could not repair {name} for arm64"
    )
    assert not list((tmp_path / "out").glob("*.whl"))
