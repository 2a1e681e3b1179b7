"""scripts/openblas_support.py against real scipy-openblas wheels from the package
index, legacy tarballs served from a loopback HTTP server with every fault the
issue lists, and the real NumPy 2.4.6 in a venv for --check-version."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import (
    CACHE,
    OFFICIAL_NUMPY,
    ROOT,
    LoopbackServer,
    cached_download,
    clean_env,
    closed_port,
)
from numpy_wheels.errors import NothingToDoError
from numpy_wheels.files import file_hash
from numpy_wheels.openblas.select import select_wheel
from numpy_wheels.openblas.tables import load_tables
from numpy_wheels.openblas.targets import all_targets, parse_target

SCRIPT = ROOT / "scripts" / "openblas_support.py"
PIN = "0.3.31.188.0"  # what NumPy 2.4.6's requirements/ci_requirements.txt pins
# Real wheels and index answers stay here between runs (build/ is gitignored).
WHEEL_CACHE = CACHE / "openblas"
ERR = "openblas_support.py: error: "


def after_downloads(stderr: str, *names: str) -> str:
    """``stderr`` less the one progress line of each named download (each asserted
    there once): a download off a terminal prints ``downloaded NAME (SIZE in T s)``."""
    for name in names:
        line = rf"^downloaded {re.escape(name)} \(\d+(?:\.\d)? \w*B in \d+\.\d s\)\n"
        stderr, count = re.subn(line, "", stderr, flags=re.M)
        assert count == 1, f"no one line for {name} in {stderr!r}"
    return stderr


def run(*args: str, tmp_path: Path, python: str = sys.executable, **env: str):
    """The CLI as a user runs it: a fresh process with a clean environment."""
    full = clean_env(tmp_path, **env)
    return subprocess.run(
        [python, str(SCRIPT), *args], env=full, capture_output=True, text=True, timeout=600
    )


def offline_env(tmp_path: Path) -> dict[str, str]:
    """Any HTTP(S) request made under this environment fails: proxies refuse connections."""
    dead = f"http://127.0.0.1:{closed_port()}"
    return {
        "NW_OPENBLAS_INDEX_URL": f"{dead}/simple/",
        "NW_OPENBLAS_LEGACY_URL": f"{dead}/openblas-libs",
        **{name: dead for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        **{name: dead for name in ("http_proxy", "https_proxy", "all_proxy")},
        "NO_PROXY": "",
        "no_proxy": "",
        "NW_OPENBLAS_RETRIES": "1",
    }


# ------------------------------------------------------------- platform selection


@pytest.mark.parametrize(
    ("plat", "os_name", "ml_ver", "libc", "describe", "key"),
    [
        ("x86_64", "linux", None, None, "manylinux_x86_64", "manylinux_x86_64"),
        ("i686", "linux", "2014", None, "manylinux2014_i686", "manylinux_i686"),
        ("aarch64", "linux", "_2_28", None, "manylinux_2_28_aarch64", "manylinux_aarch64"),
        ("ppc64le", "linux", "_1_2", "musllinux", "musllinux_1_2_ppc64le", "musllinux_ppc64le"),
        ("s390x", "linux", None, "musllinux", "musllinux_s390x", "musllinux_s390x"),
        ("manylinux_2_28_x86_64", None, "1", None, "manylinux_2_28_x86_64", "manylinux_x86_64"),
        ("manylinux2010_i686", None, None, None, "manylinux2010_i686", "manylinux_i686"),
        ("macosx_11_0_arm64", None, None, None, "macosx_11_0_arm64", "macosx_arm64"),
        ("arm64", "macos", None, None, "macosx_arm64", "macosx_arm64"),
        ("aarch64", "macos", None, None, "macosx_arm64", "macosx_arm64"),
        ("x86_64", "windows", None, None, "win_amd64", "win_amd64"),
        ("win32", None, None, None, "win32", "win32"),
        ("i686", "windows", None, None, "win32", "win32"),
    ],
)
def test_parse_target(plat, os_name, ml_ver, libc, describe, key):
    # GIVEN multibuild's PLAT / MB_ML_VER / MB_ML_LIBC spellings
    platforms = load_tables()["platforms"]
    # WHEN they are resolved
    target = parse_target(plat, os_name, ml_ver, libc, platforms)
    # THEN the target names the platform the wheel is for
    assert (target.describe(), target.key) == (describe, key)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--plat", "sparc", "--os", "linux"], {},
         "unsupported platform 'sparc' for linux (known: x86_64, i686, aarch64, ppc64le, s390x)"),
        (["--plat", "i686", "--os", "linux", "--ilp64"], {},
         "ILP64 OpenBLAS does not exist for 32-bit manylinux_i686; use lp64"),
        (["--plat", "win32"], {"NW_OPENBLAS_INTERFACE": "ilp64"},
         "ILP64 OpenBLAS does not exist for 32-bit win32; use lp64"),
        (["--plat", "x86_64", "--os", "linux"], {"NW_OPENBLAS_INTERFACE": "int128"},
         "NW_OPENBLAS_INTERFACE='int128' is not ilp64 or lp64"),
        (["--plat", "x86_64", "--os", "linux"], {"MB_ML_VER": "2099"},
         "MB_ML_VER='2099' is not a manylinux version (1, 2010, 2014, _2_24, _2_28)"),
        (["--plat", "x86_64", "--os", "linux"], {"MB_ML_LIBC": "glibc"},
         "MB_ML_LIBC='glibc' is not one of manylinux, musllinux"),
        (["--plat", "win_amd64", "--os", "linux"], {},
         "PLAT=win_amd64 is a windows platform, not linux"),
        (["--plat", "universal2", "--os", "macos"], {},
         "PLAT=universal2 has no OpenBLAS of its own; set PLAT=x86_64 or PLAT=arm64"),
        (["--plat", "x86_64", "--os", "linux"], {"NW_OPENBLAS_SOURCE": "conda"},
         "NW_OPENBLAS_SOURCE='conda' is not wheel or legacy"),
    ],
)  # fmt: skip
def test_bad_selection_is_a_configuration_error(tmp_path, args, env, message):
    # WHEN the selection is impossible
    result = run(*args, tmp_path=tmp_path, NW_OPENBLAS_CACHE=str(tmp_path / "c"), **env)
    # THEN one line names it, exit 2, and nothing is cached
    assert (result.returncode, result.stdout, result.stderr) == (2, "", ERR + message + "\n")
    assert not (tmp_path / "c").exists()


def test_help_lists_the_interface(tmp_path):
    result = run("--help", tmp_path=tmp_path)
    assert result.returncode == 0
    for flag in ("--plat", "--ilp64", "--lp64", "--print-version", "--check-version", "--test"):
        assert flag in result.stdout


def test_select_wheel_respects_the_libc_bound():
    # GIVEN the file names the index publishes
    files = [
        {"filename": f"scipy_openblas64-{PIN}-py3-none-{tag}.whl"}
        for tag in (
            "manylinux2014_x86_64.manylinux_2_17_x86_64",
            "musllinux_1_2_x86_64",
            "macosx_10_9_x86_64",
            "macosx_11_0_arm64",
            "win_amd64",
        )
    ]
    platforms = load_tables()["platforms"]

    def pick(plat, os_name=None, ml_ver=None, libc=None):
        target = parse_target(plat, os_name, ml_ver, libc, platforms)
        return select_wheel(files, target, "scipy-openblas64")["filename"].split("-")[-1]

    # THEN each target gets the wheel it can use
    assert pick("x86_64", "linux", "_2_28") == "manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    assert pick("x86_64", "linux", None, "musllinux") == "musllinux_1_2_x86_64.whl"
    assert pick("macosx_14_0_x86_64") == "macosx_10_9_x86_64.whl"
    assert pick("arm64", "macos") == "macosx_11_0_arm64.whl"
    assert pick("x86_64", "windows") == "win_amd64.whl"
    # AND a build image older than the wheel's libc gets none, with the published tags
    with pytest.raises(NothingToDoError, match=r"no scipy-openblas64 wheel for manylinux1_"):
        pick("x86_64", "linux", "1")
    with pytest.raises(NothingToDoError, match=r"for musllinux_1_1_x86_64 \(published: "):
        pick("musllinux_1_1_x86_64")
    with pytest.raises(NothingToDoError, match="for macosx_10_6_x86_64"):
        pick("macosx_10_6_x86_64")


# --------------------------------------------------------- real scipy-openblas wheels


REAL = [
    # (PLAT, interface, library file, import library)
    ("manylinux_2_28_x86_64", "ilp64", "libscipy_openblas64_.so", None),
    ("manylinux_2_28_x86_64", "lp64", "libscipy_openblas.so", None),
    ("manylinux2014_i686", "lp64", "libscipy_openblas.so", None),
    ("macosx_11_0_arm64", "ilp64", "libscipy_openblas64_.dylib", None),
    ("win_amd64", "ilp64", "libscipy_openblas64_.dll", "libscipy_openblas64_.lib"),
    ("win32", "lp64", "libscipy_openblas.dll", "libscipy_openblas.lib"),
]


def prepare_real(plat: str, interface: str, tmp_path: Path):
    return run(
        "--plat", plat, f"--{interface}", tmp_path=tmp_path, NW_OPENBLAS_CACHE=str(WHEEL_CACHE)
    )


@pytest.mark.network
@pytest.mark.parametrize(("plat", "interface", "libfile", "implib"), REAL)
def test_real_wheel_is_prepared(tmp_path, plat, interface, libfile, implib):
    # WHEN the real scipy-openblas wheel for a target platform is prepared
    result = prepare_real(plat, interface, tmp_path)
    # THEN stdout is exactly the prepared directory
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    base = Path(lines[0])
    assert base.is_absolute() and base.parent == WHEEL_CACHE / "prepared"
    project = "scipy_openblas64" if interface == "ilp64" else "scipy_openblas32"
    assert base.name.startswith(f"{project}-{PIN}-py3-none-")
    # AND it holds the library as the wheel ships it, its headers and the .pc file
    assert (base / "lib" / libfile).is_file()
    if implib:
        assert (base / "lib" / implib).is_file()
    assert (base / "include" / "cblas.h").is_file()
    assert (base / "include" / "openblas_config.h").is_file()
    assert not (base / "__init__.py").exists()
    # AND the .pc is the wheel's own, with its paths pointing at this copy
    wheel = WHEEL_CACHE / "downloads" / f"{base.name}.whl"
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read(f"{project}/lib/pkgconfig/scipy-openblas.pc").decode()
    # (the wheels were written with print(): CRLF on Windows, one extra newline at the end)
    shipped = shipped.replace("\r\n", "\n").rstrip("\n") + "\n"
    expected = shipped.replace("${pcfiledir}/../../lib", str(base / "lib"))
    expected = expected.replace("${pcfiledir}/../../include", str(base / "include"))
    assert (base / "lib" / "pkgconfig" / "scipy-openblas.pc").read_text() == expected
    # AND the wheel in the cache is the one the index vouches for
    index = json.loads(
        (WHEEL_CACHE / "index" / f"{project.replace('_', '-')}-{PIN}.json").read_text()
    )
    entry = next(f for f in index["files"] if f["filename"] == wheel.name)
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == entry["sha256"]


@pytest.mark.network
def test_pc_matches_get_pkg_config_on_this_host(tmp_path):
    # GIVEN the prepared host wheel and the package itself, importable from an unpacked copy
    result = prepare_real("manylinux_2_28_x86_64", "ilp64", tmp_path)
    assert result.returncode == 0, result.stderr
    base = Path(result.stdout.strip())
    pkg = tmp_path / "site"
    with zipfile.ZipFile(WHEEL_CACHE / "downloads" / f"{base.name}.whl") as zf:
        zf.extractall(pkg)
    # WHEN the package writes its own pkg-config text
    code = "import scipy_openblas64 as m; print(m.get_pkg_config(), end='')"
    env = clean_env(tmp_path, PYTHONPATH=str(pkg))
    real = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    # THEN ours is the same text, with the prepared copy's paths
    ours = (base / "lib" / "pkgconfig" / "scipy-openblas.pc").read_text()
    real = real.replace(f"{pkg}/scipy_openblas64", str(base))
    # openblas_config names the core the library detected at run time: compare up to it
    strip = re.compile(r"^(openblas_config= OpenBLAS \S+\s+USE64BITINT DYNAMIC_ARCH).*$", re.M)
    assert strip.sub(r"\1", ours) == strip.sub(r"\1", real)


@pytest.mark.network
def test_warm_run_makes_no_network_request(tmp_path):
    # GIVEN a prepared tree (cold run done by the earlier tests or here)
    cold = prepare_real("win_amd64", "ilp64", tmp_path)
    assert cold.returncode == 0, cold.stderr
    # WHEN the same is asked with every index, proxy and server unreachable
    warm = run("--plat", "win_amd64", "--ilp64", tmp_path=tmp_path,
               NW_OPENBLAS_CACHE=str(WHEEL_CACHE), **offline_env(tmp_path))  # fmt: skip
    # THEN the answer comes from the cache
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, cold.stdout, "")


@pytest.mark.network
def test_cached_download_is_reused_offline(tmp_path):
    # GIVEN a cache holding the index answer and the wheel, but no prepared tree
    cache = tmp_path / "cache"
    for sub in ("index", "downloads"):
        (cache / sub).mkdir(parents=True)
    first = prepare_real("macosx_11_0_arm64", "ilp64", tmp_path)
    assert first.returncode == 0, first.stderr
    name = Path(first.stdout.strip()).name
    project_index = WHEEL_CACHE / "index" / f"scipy-openblas64-{PIN}.json"
    (cache / "index" / project_index.name).write_bytes(project_index.read_bytes())
    wheel = WHEEL_CACHE / "downloads" / f"{name}.whl"
    (cache / "downloads" / wheel.name).write_bytes(wheel.read_bytes())
    # WHEN it is prepared offline
    result = run("--plat", "macosx_11_0_arm64", tmp_path=tmp_path, NW_OPENBLAS_CACHE=str(cache),
                 **offline_env(tmp_path))  # fmt: skip
    # THEN the tree is rebuilt from the cached wheel, no request made
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{cache / 'prepared' / name}\n"
    assert (cache / "prepared" / name / "lib" / "libscipy_openblas64_.dylib").is_file()


@pytest.mark.network
def test_print_version_is_the_library_version(tmp_path):
    result = run("--print-version", tmp_path=tmp_path, NW_OPENBLAS_CACHE=str(tmp_path / "c"),
                 **offline_env(tmp_path))  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{PIN}\n", "")


@pytest.mark.network
def test_unpublished_platform_names_what_exists(tmp_path):
    # scipy-openblas32 has no musllinux i686 wheel at the pinned version
    result = run("--plat", "musllinux_1_2_i686", tmp_path=tmp_path,
                 NW_OPENBLAS_CACHE=str(WHEEL_CACHE))  # fmt: skip
    assert result.returncode == 3
    assert result.stderr.startswith(
        f"{ERR}no scipy-openblas32 {PIN} wheel for musllinux_1_2_i686 (published: "
    )
    assert "musllinux_1_2_x86_64" in result.stderr and result.stdout == ""


@pytest.mark.network
def test_unknown_version_is_refused(tmp_path):
    cache = tmp_path / "c"
    result = run("--plat", "x86_64", "--os", "linux", tmp_path=tmp_path,
                 NW_OPENBLAS_CACHE=str(cache), OPENBLAS_VERSION="0.0.1")  # fmt: skip
    assert result.returncode == 1
    assert re.fullmatch(
        rf"{ERR}scipy-openblas64 0\.0\.1 is not on the index \S+ \(newest: .*\)\n", result.stderr
    )
    assert not (cache / "index").exists() or not any((cache / "index").iterdir())


@pytest.mark.network
def test_self_test_of_named_platforms(tmp_path):
    result = run("--test", "manylinux_2_28_x86_64", "win32", tmp_path=tmp_path,
                 NW_OPENBLAS_CACHE=str(WHEEL_CACHE))  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line.split()[:3] for line in result.stdout.splitlines()]
    assert lines == [
        ["ok", "manylinux_2_28_x86_64", "ilp64"],
        ["ok", "manylinux_2_28_x86_64", "lp64"],
        ["ok", "win32", "lp64"],
    ]
    assert result.stderr == "3 passed, 0 failed, 0 skipped (not published)\n"


@pytest.mark.network
def test_numpy_pin_is_read_from_the_sdist(tmp_path):
    # The default pin is what NumPy 2.4.6's own sdist pins (downloaded once, cached).
    result = run("--show-numpy-pin", OFFICIAL_NUMPY, tmp_path=tmp_path,
                 NW_OPENBLAS_CACHE=str(WHEEL_CACHE))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"scipy-openblas32=={PIN}\nscipy-openblas64=={PIN}\n"
    assert load_tables()["wheel"]["version"] == PIN


def test_numpy_pin_index_failure_is_one_line(tmp_path):
    # --show-numpy-pin asks the index it is given, and an unreachable one is one error line.
    env = offline_env(tmp_path)
    result = run("--show-numpy-pin", OFFICIAL_NUMPY, tmp_path=tmp_path,
                 NW_OPENBLAS_CACHE=str(tmp_path / "cache"), **env)  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"{ERR}cannot read the index {env['NW_OPENBLAS_INDEX_URL']}: ")
    assert len(result.stderr.splitlines()) == 1


# ----------------------------------------------------------- --check-version (real NumPy)


@pytest.fixture(scope="session")
def numpy_venv() -> Path:
    """A venv with the official NumPy wheel for this interpreter and machine, and
    threadpoolctl (cached under build/, one per verified wheel)."""
    wheel = cached_download(f"numpy=={OFFICIAL_NUMPY}", CACHE / "numpy-official" / "host")
    venv = CACHE / f"numpy-venv-{file_hash(wheel)[:16]}"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import numpy, threadpoolctl"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel), "threadpoolctl"],
        check=True,
        capture_output=True,
    )
    return python


def bundled_openblas(python: Path) -> dict:
    code = (
        "import json, numpy, threadpoolctl; "
        "print(json.dumps([i for i in threadpoolctl.threadpool_info() "
        "if i['internal_api'] == 'openblas']))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    (info,) = json.loads(out.stdout)
    return info


@pytest.mark.network
def test_check_version_passes_for_the_bundled_openblas(tmp_path, numpy_venv):
    # GIVEN the OpenBLAS version NumPy 2.4.6 really loads
    info = bundled_openblas(numpy_venv)
    # WHEN it is checked, explicitly and through the pin
    for args in (["--check-version", info["version"]], ["--check-version"]):
        result = run(*args, tmp_path=tmp_path, python=str(numpy_venv), **offline_env(tmp_path))
        # THEN it passes
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        assert result.stdout == (
            f"OpenBLAS {info['version']} (ilp64) loaded by numpy {OFFICIAL_NUMPY}: OK\n"
        )


@pytest.mark.network
def test_check_version_fails_for_a_wrong_version(tmp_path, numpy_venv):
    info = bundled_openblas(numpy_venv)
    result = run("--check-version", "0.3.30", tmp_path=tmp_path, python=str(numpy_venv))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"{ERR}numpy {OFFICIAL_NUMPY} loads OpenBLAS {info['version']} "
        f"({info['filepath']}), expected 0.3.30\n"
    )


@pytest.mark.network
def test_check_version_fails_for_the_wrong_width(tmp_path, numpy_venv):
    info = bundled_openblas(numpy_venv)
    result = run("--check-version", info["version"], tmp_path=tmp_path,
                 python=str(numpy_venv), NW_OPENBLAS_INTERFACE="lp64")  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"{ERR}numpy {OFFICIAL_NUMPY} loads an ILP64 OpenBLAS ({info['filepath']}), expected LP64\n"
    )


def test_check_version_without_numpy(tmp_path):
    # The toolkit's own venv has no NumPy.
    result = run("--check-version", "0.3.30", tmp_path=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"{ERR}cannot import numpy with {sys.executable}: ")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A fresh venv with nothing installed: what NumPy's test image has of the toolkit."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


def test_version_paths_run_with_the_standard_library_alone(tmp_path, bare_python):
    # GIVEN an interpreter without the toolkit's dependencies, run isolated (-I)
    # as config.sh's run_tests runs this file in NumPy's test environment
    def bare(*args):
        env = clean_env(tmp_path, **offline_env(tmp_path))
        cmd = [bare_python, "-I", str(SCRIPT), *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

    # WHEN the pinned version is printed, THEN it comes from the table, offline
    assert (bare("--print-version").stdout, bare("--print-version").returncode) == (PIN + "\n", 0)
    # AND --check-version gets as far as asking for NumPy (no requests/packaging import)
    result = bare("--check-version")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"{ERR}cannot import numpy with {bare_python}: ")
    assert bare("--version").stdout.startswith("openblas_support.py (numpy-wheels-toolkit) ")
    # AND a run that needs the index client says which module is missing, in one line
    result = bare("--plat", "x86_64", "--os", "linux")
    assert (result.returncode, result.stdout) == (2, "")
    assert re.fullmatch(
        rf"{ERR}\w+ is not installed for {re.escape(bare_python)}; .*\n", result.stderr
    )


def test_version_paths_import_nothing_but_the_standard_library(tmp_path):
    # GIVEN the toolkit's venv, where requests, packaging and pypi-simple are importable
    code = (
        "import runpy, sys; sys.argv = [sys.argv[1], *sys.argv[2:]]; before = set(sys.modules)\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "own = ('numpy_wheels',)\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - set(own)), file=sys.stderr)"
    )
    for args in (["--print-version"], ["--check-version", "0.3.30"]):
        # WHEN the path runs
        env = clean_env(tmp_path, **offline_env(tmp_path))
        cmd = [sys.executable, "-c", code, str(SCRIPT), *args]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        # THEN no module outside the standard library (and the toolkit's own) was imported
        assert result.stderr.splitlines()[-1] == "[]", (args, result.stderr)


# ------------------------------------------------------- legacy tarballs on loopback


LEGACY_VER = "v0.3.99"


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, io.BytesIO(data)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def pc_text(prefix: str, suffix: str) -> bytes:
    return (
        f"prefix={prefix}\nlibdir=${{prefix}}/lib\nincludedir={prefix}/include\n"
        f"version=0.3.99.dev\nName: openblas\nDescription: OpenBLAS\nVersion: ${{version}}\n"
        f"Libs: -L${{libdir}} -lopenblas{suffix}\nCflags: -I${{includedir}}\n"
    ).encode()


def legacy_tarball(
    prefix: str = "/usr/local", suffix: str = "64_", extra=(), ext: str = "so"
) -> bytes:
    """A tarball shaped like MacPython/openblas-libs': absolute build prefix, lib/include/pc."""
    lib = f"{prefix}/lib"
    members = [
        _file(f"{lib}/libopenblas{suffix}p-r0.3.99.{ext}", b"\x7fELF not really"),
        _link(f"{lib}/libopenblas{suffix}.{ext}", f"libopenblas{suffix}p-r0.3.99.{ext}"),
        _file(f"{lib}/libopenblas{suffix}p-r0.3.99.a", b"!<arch>\n"),
        _file(f"{prefix}/include/cblas.h", b"/* cblas */\n"),
        _file(f"{prefix}/include/openblas_config.h", b"/* config */\n"),
        _file(f"{lib}/pkgconfig/openblas{suffix}.pc", pc_text("/usr/local", suffix)),
        *extra,
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, data)
    return buf.getvalue()


def legacy_zip(root: str = "64", suffix: str = "64_") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{root}/bin/libopenblas{suffix}.dll", b"MZ not really")
        zf.writestr(f"{root}/lib/libopenblas{suffix}.lib", b"!<arch>\n")
        zf.writestr(f"{root}/lib/libopenblas{suffix}.dll.a", b"!<arch>\n")
        zf.writestr(f"{root}/include/cblas.h", b"/* cblas */\n")
        zf.writestr(f"{root}/lib/pkgconfig/openblas{suffix}.pc", pc_text(f"/{root}", suffix))
    return buf.getvalue()


class Server(LoopbackServer):
    """A loopback stand-in for anaconda.org's file downloads, with scripted faults."""

    prefix = "/openblas-libs"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def respond(self, handler, route) -> None:
        kind, *rest = route or ("status", 404)
        if kind == "fail_then_ok" and self.hits[handler.path] <= rest[0]:
            kind, rest = "status", [500]
        elif kind == "fail_then_ok":
            kind, rest = "ok", rest[1:]
        if kind == "status":
            handler.send_error(rest[0])
            return
        body = rest[0]
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if kind == "truncate":
            handler.wfile.write(body[: len(body) // 2])
            handler.close_connection = True
        elif kind == "stall":
            handler.wfile.write(body[:10])
            handler.wfile.flush()
            self.release.wait(30)
        else:
            handler.wfile.write(body)

    def __exit__(self, *exc) -> None:
        self.release.set()  # let a stalled handler finish before shutdown
        super().__exit__(*exc)

    def path(self, filename: str, version: str = LEGACY_VER) -> str:
        return f"/openblas-libs/{version}/download/{filename}"

    def serve(self, filename: str, *route) -> None:
        self.routes[self.path(filename)] = route


@pytest.fixture
def server():
    with Server() as srv:
        yield srv


@pytest.fixture
def legacy(tmp_path, server):
    """Run the CLI on the legacy source against ``server``, with a sha256 table file."""
    table: dict[str, str] = {}
    table_file = tmp_path / "sha256.json"
    cache = tmp_path / "cache"

    def publish(filename: str, data: bytes, *route, hashed: bool = True) -> None:
        if hashed:
            table[filename] = hashlib.sha256(data).hexdigest()
        server.serve(filename, *(route or ("ok",)), data)

    def call(*args: str, **env: str):
        table_file.write_text(json.dumps(table))
        settings = {
            "NW_OPENBLAS_SOURCE": "legacy",
            "OPENBLAS_VERSION": LEGACY_VER,
            "NW_OPENBLAS_LEGACY_URL": server.base,
            "NW_OPENBLAS_SHA256_TABLE": str(table_file),
            "NW_OPENBLAS_CACHE": str(cache),
            "NW_OPENBLAS_TIMEOUT": "5",
            **env,
        }
        return run(*args, tmp_path=tmp_path, **settings)

    call.publish, call.table, call.cache, call.server = publish, table, cache, server
    return call


LINUX64 = f"openblas64_-{LEGACY_VER}-manylinux2014_x86_64.tar.gz"


def assert_nothing_cached(cache: Path) -> None:
    # Lock files stay (empty of data: removing one would race with a waiter).
    files = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert [p for p in files if p.parent != cache / "locks"] == []


def test_legacy_happy_path_strips_the_absolute_prefix(legacy):
    # GIVEN a tarball stored under /usr/local, published with its hash
    legacy.publish(LINUX64, legacy_tarball("/usr/local"))
    # WHEN it is prepared for manylinux2014 x86_64 ILP64
    result = legacy("--plat", "x86_64", "--os", "linux")
    # THEN the tree is extracted without the prefix, and the .pc points at it
    assert (result.returncode, after_downloads(result.stderr, LINUX64)) == (0, ""), result.stderr
    base = Path(result.stdout.strip())
    assert base == legacy.cache / "prepared" / LINUX64.removesuffix(".tar.gz")
    assert sorted(p.name for p in (base / "lib").iterdir()) == [
        "libopenblas64_.so", "libopenblas64_p-r0.3.99.a", "libopenblas64_p-r0.3.99.so",
        "pkgconfig",
    ]  # fmt: skip
    assert os.readlink(base / "lib" / "libopenblas64_.so") == "libopenblas64_p-r0.3.99.so"
    assert (base / "include" / "cblas.h").read_bytes() == b"/* cblas */\n"
    assert not (base / "usr").exists()
    pc = (base / "lib" / "pkgconfig" / "openblas64_.pc").read_text()
    assert pc.splitlines()[:3] == [
        f"prefix={base}",
        "libdir=${prefix}/lib",
        f"includedir={base}/include",
    ]
    # AND --print-version reads the library version from the prepared .pc
    version = legacy("--plat", "x86_64", "--os", "linux", "--print-version")
    assert (version.returncode, version.stdout) == (0, "0.3.99.dev\n")
    # AND a warm run with the server gone makes no request
    legacy.server.release.set()
    hits = dict(legacy.server.hits)
    warm = legacy("--plat", "x86_64", "--os", "linux", **offline_env(legacy.cache.parent))
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, result.stdout, "")
    assert legacy.server.hits == hits


def test_legacy_dot_prefix_and_lp64(legacy):
    name = f"openblas-{LEGACY_VER}-manylinux2010_i686.tar.gz"
    legacy.publish(name, legacy_tarball("./usr/local", suffix=""))
    result = legacy("--plat", "i686", "--os", "linux", MB_ML_VER="2010")
    assert result.returncode == 0, result.stderr
    base = Path(result.stdout.strip())
    assert (base / "lib" / "libopenblas.so").is_symlink()
    assert (base / "lib" / "pkgconfig" / "openblas.pc").read_text().startswith(f"prefix={base}\n")


def test_legacy_windows_zip(legacy):
    name = f"openblas64_-{LEGACY_VER}-win_amd64-gcc_10_3_0.zip"
    legacy.publish(name, legacy_zip("64"))
    result = legacy("--plat", "win_amd64")
    assert result.returncode == 0, result.stderr
    base = Path(result.stdout.strip())
    assert (base / "lib" / "libopenblas64_.dll").read_bytes() == b"MZ not really"
    assert (base / "lib" / "libopenblas64_.lib").is_file()
    assert (base / "lib" / "pkgconfig" / "openblas64_.pc").read_text().splitlines()[1:3] == [
        "libdir=${prefix}/lib",
        f"includedir={base}/include",
    ]


def test_legacy_hash_mismatch(legacy):
    data = legacy_tarball()
    legacy.publish(LINUX64, data)
    legacy.table[LINUX64] = "0" * 64
    result = legacy("--plat", "x86_64", "--os", "linux")
    url = legacy.server.base + f"/{LEGACY_VER}/download/{LINUX64}"
    got = hashlib.sha256(data).hexdigest()
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"{ERR}sha256 mismatch for {url}: expected {'0' * 64}, got {got}\n"
    assert_nothing_cached(legacy.cache)


def test_legacy_name_missing_from_the_table_prints_its_hash(legacy):
    data = legacy_tarball()
    legacy.publish(LINUX64, data, hashed=False)
    result = legacy("--plat", "x86_64", "--os", "linux")
    got = hashlib.sha256(data).hexdigest()
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"{ERR}{LINUX64} is not in the sha256 table; its sha256 is {got} "
        f'(add "{LINUX64}": "{got}" to legacy.sha256 in openblas_libs.json)\n'
    )
    assert_nothing_cached(legacy.cache)


def test_legacy_404_is_not_retried(legacy):
    result = legacy("--plat", "x86_64", "--os", "linux")
    url = legacy.server.base + f"/{LEGACY_VER}/download/{LINUX64}"
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"{ERR}{url}: HTTP 404 Not Found\n"
    assert legacy.server.hits == {legacy.server.path(LINUX64): 1}
    assert_nothing_cached(legacy.cache)


def test_legacy_500_then_success_is_retried(legacy):
    legacy.publish(LINUX64, legacy_tarball(), "fail_then_ok", 1)
    result = legacy("--plat", "x86_64", "--os", "linux")
    assert result.returncode == 0, result.stderr
    assert "HTTP 500, retrying (1/5)" in result.stderr
    assert legacy.server.hits == {legacy.server.path(LINUX64): 2}


def test_legacy_500_every_time_gives_up(legacy):
    legacy.publish(LINUX64, legacy_tarball(), "fail_then_ok", 99)
    result = legacy("--plat", "x86_64", "--os", "linux", NW_OPENBLAS_RETRIES="2")
    url = legacy.server.base + f"/{LEGACY_VER}/download/{LINUX64}"
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"{ERR}{url}: HTTP 500 Internal Server Error"
    assert_nothing_cached(legacy.cache)


def test_legacy_truncated_body(legacy):
    legacy.publish(LINUX64, legacy_tarball(), "truncate")
    result = legacy("--plat", "x86_64", "--os", "linux", NW_OPENBLAS_RETRIES="2")
    url = legacy.server.base + f"/{LEGACY_VER}/download/{LINUX64}"
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1].startswith(
        f"{ERR}download of {url} failed after 2 attempts: "
    )
    assert_nothing_cached(legacy.cache)


def test_legacy_stalled_server_times_out(legacy):
    legacy.publish(LINUX64, legacy_tarball(), "stall")
    result = legacy("--plat", "x86_64", "--os", "linux",
                    NW_OPENBLAS_RETRIES="2", NW_OPENBLAS_TIMEOUT="0.3")  # fmt: skip
    url = legacy.server.base + f"/{LEGACY_VER}/download/{LINUX64}"
    assert (result.returncode, result.stdout) == (1, "")
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"{ERR}download of {url} failed after 2 attempts: ")
    assert "timed out" in last
    assert_nothing_cached(legacy.cache)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([_file("../evil.txt", b"x")], "archive member '../evil.txt' escapes the target directory"),
        ([_file("usr/local/lib/../../../../evil.txt", b"x")],
         "archive member 'lib/../../../../evil.txt' escapes the target directory"),
        ([_file("{outside}/evil.txt", b"x")],
         "archive member '{outside}/evil.txt' escapes the target directory"),
        ([_link("/usr/local/lib/evil.so", "{outside}/evil.txt")],
         "archive link '/usr/local/lib/evil.so' -> '{outside}/evil.txt' "
         "points outside the target directory"),
        ([_link("/usr/local/lib/evil.so", "../../../../evil.txt")],
         "archive link '/usr/local/lib/evil.so' -> '../../../../evil.txt' "
         "points outside the target directory"),
        ([_link("/usr/local/lib/evil.so", "/etc/passwd", tarfile.LNKTYPE)],
         "archive member '/etc/passwd' escapes the target directory"),
        ([_link("/usr/local/lib/null", "", tarfile.CHRTYPE)],
         "archive member '/usr/local/lib/null' is a device or FIFO (refused)"),
    ],
)  # fmt: skip
def test_legacy_hostile_archive_is_refused(legacy, tmp_path, extra, message):
    # GIVEN a correctly hashed tarball with one hostile member
    outside = tmp_path / "outside"
    outside.mkdir()
    for info, _ in extra:
        info.name = info.name.replace("{outside}", str(outside))
        info.linkname = info.linkname.replace("{outside}", str(outside))
    legacy.publish(LINUX64, legacy_tarball(extra=extra))
    # WHEN it is prepared
    result = legacy("--plat", "x86_64", "--os", "linux")
    # THEN it is refused, nothing lands outside, and the cache keeps nothing
    assert (result.returncode, result.stdout) == (1, "")
    expected = ERR + message.replace("{outside}", str(outside)) + "\n"
    assert after_downloads(result.stderr, LINUX64) == expected
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()
    assert_nothing_cached(legacy.cache)


def test_legacy_self_test_of_all_platforms(legacy):
    # GIVEN every legacy archive the platform table names, one missing
    tables = load_tables()
    suffixes = tables["legacy"]["suffixes"]["default"]
    missing = f"openblas64_-{LEGACY_VER}-musllinux_1_1_s390x.tar.gz"
    expected, published = [], []
    for target in all_targets(tables["platforms"]):
        for interface in ("ilp64", "lp64") if target.bits == 64 else ("lp64",):
            sfx = "64_" if interface == "ilp64" else ""
            if target.os == "linux":
                tag = "musllinux_1_1" if target.libc == "musllinux" else "manylinux2014"
                name = f"openblas{sfx}-{LEGACY_VER}-{tag}_{target.arch}.tar.gz"
            else:
                name = f"openblas{sfx}-{LEGACY_VER}-{suffixes[target.key]}"
            if name.endswith(".zip"):
                data = legacy_zip("64" if sfx else "32", sfx)
            else:
                data = legacy_tarball(suffix=sfx, ext="dylib" if target.os == "macos" else "so")
            if name != missing:
                legacy.publish(name, data)
                published.append(name)
            expected.append(["FAIL" if name == missing else "ok", target.key, interface])
    # WHEN all of them are tested
    result = legacy("--test", "all")
    # THEN each gets one line, and the missing one fails the run
    assert [line.split()[:3] for line in result.stdout.splitlines()] == expected
    assert result.returncode == 1
    assert after_downloads(result.stderr, *published).splitlines() == [
        f"{len(expected) - 1} passed, 1 failed, 0 skipped (not published)",
        f"{ERR}1 platform(s) failed the OpenBLAS self-test",
    ]
    (fail,) = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert fail.endswith(f"{missing}: HTTP 404 Not Found")


def test_legacy_macos_name_follows_the_table(legacy):
    # nothing published: the 404 shows the URL built from the table's macOS suffix
    result = legacy("--plat", "macosx_10_9_x86_64", "--lp64")
    url = legacy.server.base + f"/{LEGACY_VER}/download/"
    assert result.returncode == 1
    assert result.stderr == (
        f"{ERR}{url}openblas-{LEGACY_VER}-macosx_10_9_x86_64-gf_c469a42.tar.gz: "
        "HTTP 404 Not Found\n"
    )


def test_main_returns_the_exit_code(tmp_path, monkeypatch, capsys):
    # numpy-wheels openblas calls main(argv): it returns the code the script exits with
    from numpy_wheels.openblas.cli import main

    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NW_OPENBLAS_CACHE", str(tmp_path / "cache"))
    assert main(["--print-version"]) == 0
    assert main(["--bogus"]) == 2
    assert main(["--plat", "sparc", "--os", "linux"]) == 2
    assert main(["--plat", "x86_64", "--os", "linux"]) == 1  # the index refuses connections
    out, err = capsys.readouterr()
    assert out == f"{PIN}\n"
    assert f"{ERR}unsupported platform 'sparc' for linux" in err
