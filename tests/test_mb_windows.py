"""travis_steps.sh on a Windows host (Git Bash), checked on Linux.

A stub `uname` first on PATH prints what Git Bash's does (MINGW64_NT-10.0), so
travis_steps.sh takes its Windows branch; `delvewheel`, pip (PIP_CMD) and the
base interpreter of before_install are stubs that record their argv and write
what the real tool writes.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN, clean_env, run_bash

UNAME = textwrap.dedent(
    """\
    #!/bin/bash
    # Test stub: Git Bash's uname.
    if [ "$1" = -m ]; then echo x86_64; else echo MINGW64_NT-10.0; fi
    """
)

# Acts as the tool its file is named for (`python` in a venv: "venv-python"),
# after recording {"tool", "argv", "cwd"} in $NW_STUB_LOG.
STUB = textwrap.dedent(
    """\
    #!{python}
    import json, os, pathlib, shutil, sys
    args = sys.argv[1:]
    tool = os.path.basename(sys.argv[0])
    tool = "venv-python" if tool == "python" else tool
    with open(os.environ["NW_STUB_LOG"], "a") as log:
        log.write(json.dumps({{"tool": tool, "argv": args, "cwd": os.getcwd()}}) + "\\n")
    if tool == "pip":  # pip wheel -w WHEELHOUSE ... : the built, unrepaired wheel
        out = pathlib.Path(args[args.index("-w") + 1])
        (out / "{wheel}").write_bytes(b"PK built")
    elif tool == "delvewheel":  # delvewheel repair -w DEST ... WHEEL: the repaired copy
        out = pathlib.Path(args[args.index("-w") + 1])
        wheel = pathlib.Path(args[-1])
        (out / wheel.name).write_bytes(wheel.read_bytes() + b" repaired")
    elif tool == "base-python":  # python -m venv DIR, in the Windows (Scripts/) layout
        scripts = pathlib.Path(args[2]).absolute() / "Scripts"
        scripts.mkdir(parents=True)
        shutil.copy(__file__, scripts / "python")
        (scripts / "activate").write_text(f"export VIRTUAL_ENV='{{scripts.parent}}'\\n")
    elif args == ["--version"]:
        print("Python 3.12.0")
    """
)

WIN_WHEEL = "numpy-2.4.6-cp312-cp312-win_amd64.whl"

CONFIG = """\
NW_CONFIG_SOURCED=yes
function run_tests {
    "$PYTHON_EXE" -c 'import nwpure; print("answer", nwpure.ANSWER)'
    echo "python $PYTHON_EXE"
}
"""


@pytest.fixture
def win(tmp_path):
    """(run, calls, work): ``run(script, **env)`` sources travis_steps.sh in WORK as
    Git Bash would; ``calls()`` lists the stubs' records."""
    work = tmp_path / "work"
    (work / "proj").mkdir(parents=True)
    os.symlink(ROOT / "multibuild", work / "multibuild")
    (work / "config.sh").write_text(CONFIG)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "uname").write_text(UNAME)
    for name in ("delvewheel", "pip", "base-python"):
        (stubs / name).write_text(STUB.format(python=sys.executable, wheel=WIN_WHEEL))
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    path = f"{stubs}:{clean_env(tmp_path)['PATH']}"

    def run(script: str, **env: str):
        return run_bash(
            f"source multibuild/travis_steps.sh\n{script}",
            tmp_path,
            cwd=work,
            env={"PATH": path, "NW_STUB_LOG": str(log), "REPO_DIR": "proj", **env},
        )

    def calls() -> list[dict]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    run.stubs = stubs
    return run, calls, work


def test_travis_steps_sources_the_windows_files(win):
    # GIVEN Git Bash, an env_vars.sh and a config.sh
    run, _, work = win
    (work / "env_vars.sh").write_text("NW_ENV_VARS_SOURCED=yes\n")
    # WHEN travis_steps.sh is sourced
    result = run(
        "shopt -s extdebug\n"
        "for fn in repair_wheelhouse before_install install_run build_wheel; do\n"
        "    declare -F $fn\n"
        "done\n"
        'echo "config=$NW_CONFIG_SOURCED env_vars=$NW_ENV_VARS_SOURCED CFLAGS=[$CFLAGS]"'
    )
    # THEN repair_wheelhouse is windows_utils.sh's, before_install the Windows
    # one, build_wheel and install_run the common ones, and both project files
    # were read
    assert result.returncode == 0, result.stderr
    where = {line.split()[0]: line.split()[2] for line in result.stdout.splitlines()[:4]}
    assert where == {
        "repair_wheelhouse": "multibuild/windows_utils.sh",
        "before_install": "multibuild/travis_windows_steps.sh",
        "install_run": "multibuild/common_utils.sh",
        "build_wheel": "multibuild/common_utils.sh",
    }
    # configure_build.sh gave MSVC no GNU linker flag
    assert result.stdout.splitlines()[4] == "config=yes env_vars=yes CFLAGS=[]"
    assert (work / "wheelhouse").is_dir()


def test_windows_steps_keep_chosen_strip_flags(win):
    run, _, _ = win
    result = run('echo "[$CFLAGS]"', STRIP_FLAGS="-s")
    assert (result.returncode, result.stdout) == (0, "[-s]\n")


def test_windows_steps_without_config(win):
    run, _, _ = win
    result = run("echo not reached", CONFIG_PATH="nope.sh")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "travis_windows_steps.sh: config file 'nope.sh' not found\n"


def test_build_wheel_then_repair_call_the_stubs(win, tmp_path):
    # GIVEN Git Bash and the OpenBLAS DLLs in a directory
    run, calls, work = win
    pip = run.stubs / "pip"
    # WHEN build_wheel runs (it repairs the wheelhouse itself)
    result = run(
        "build_wheel",
        PIP_CMD=str(pip),
        NW_REPAIR_LIBRARY_PATH="/opt/openblas/bin",
    )
    # THEN pip built in REPO_DIR into the wheelhouse, then delvewheel repaired
    # that wheel into a private directory, bundling from the DLL directory
    assert result.returncode == 0, result.stderr
    wheelhouse = work / "wheelhouse"
    pip_call, delve_call = calls()
    assert pip_call["tool"] == "pip"
    assert pip_call["argv"] == ["wheel", "-w", str(wheelhouse), "--no-deps", "."]
    assert pip_call["cwd"] == str(work / "proj")
    assert delve_call["tool"] == "delvewheel"
    argv = delve_call["argv"]
    assert argv[:2] == ["repair", "-w"]
    assert Path(argv[2]).parent == tmp_path and Path(argv[2]).name.startswith("nw-repair.")
    assert argv[3:] == ["--add-path", "/opt/openblas/bin", "-v", f"{wheelhouse}/{WIN_WHEEL}"]
    # the wheelhouse holds the one repaired wheel
    assert sorted(p.name for p in wheelhouse.iterdir()) == [WIN_WHEEL]
    assert (wheelhouse / WIN_WHEEL).read_bytes() == b"PK built repaired"


def test_deferred_build_then_repair_wheelhouse(win):
    # GIVEN a build that leaves the repair for later
    run, calls, work = win
    # WHEN build_wheel and then repair_wheelhouse into another directory run
    result = run(
        "build_wheel\nrepair_wheelhouse wheelhouse repaired",
        PIP_CMD=str(run.stubs / "pip"),
        NW_DEFER_REPAIR="1",
    )
    # THEN the built wheel stays as it is and its repaired copy is in `repaired`
    assert result.returncode == 0, result.stderr
    assert [c["tool"] for c in calls()] == ["pip", "delvewheel"]
    assert calls()[1]["argv"][3:] == ["-v", f"wheelhouse/{WIN_WHEEL}"]
    assert (work / "wheelhouse" / WIN_WHEEL).read_bytes() == b"PK built"
    assert (work / "repaired" / WIN_WHEEL).read_bytes() == b"PK built repaired"


def test_before_install_makes_a_scripts_layout_venv(win):
    # GIVEN a Windows Python, whose venvs keep their programs in Scripts/
    run, calls, work = win
    # WHEN before_install runs
    result = run(
        'before_install\necho "$PYTHON_EXE|$PIP_CMD|$VIRTUAL_ENV"',
        PYTHON_EXE=str(run.stubs / "base-python"),
    )
    # THEN the venv is made from PYTHON_EXE, activated, and used from then on
    assert result.returncode == 0, result.stderr
    venv_python = f"{work}/venv/Scripts/python"
    assert result.stdout.splitlines() == [
        "Python 3.12.0",
        f"{venv_python}|{venv_python} -m pip|{work}/venv",
    ]
    assert [(c["tool"], c["argv"]) for c in calls()] == [
        ("base-python", ["-m", "venv", "venv"]),
        ("venv-python", ["--version"]),
        ("venv-python", ["-m", "pip", "install", "--upgrade", "pip", "wheel"]),
    ]


@pytest.mark.parametrize(
    ("layout", "python"), [("Scripts", "Scripts/python"), ("bin", "bin/python")]
)
def test_venv_python_layout(bash, tmp_path, layout, python):
    (tmp_path / "v" / layout).mkdir(parents=True)
    r = bash(f"source multibuild/common_utils.sh\n_nw_venv_python {tmp_path}/v")
    assert (r.returncode, r.stdout) == (0, f"{tmp_path}/v/{python}\n")


def write_pure_wheel(wheelhouse: Path) -> None:
    """A minimal pure wheel `nwpure` (no RECORD hashes needed by pip for install)."""
    wheelhouse.mkdir(exist_ok=True)
    dist = "nwpure-1.0.dist-info"
    with zipfile.ZipFile(wheelhouse / "nwpure-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("nwpure.py", "ANSWER = 42\n")
        zf.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: nwpure\nVersion: 1.0\n")
        zf.writestr(
            f"{dist}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{dist}/RECORD", "")


def test_install_run_uses_a_fresh_venv(win, tmp_path):
    # GIVEN a wheelhouse holding a pure wheel and the toolkit's Python
    run, _, work = win
    write_pure_wheel(work / "wheelhouse")
    # WHEN install_run runs
    result = run(
        "install_run",
        PYTHON_EXE=str(VENV_BIN / "python"),
        PIP_NO_INDEX="1",
    )
    # THEN the wheel was installed into, and run_tests ran with, a fresh venv
    # that is gone afterwards
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "answer 42" in lines
    (python_line,) = [line for line in lines if line.startswith("python ")]
    venv = Path(python_line.split()[1]).parents[1]
    assert venv.parent.parent == tmp_path and venv.parent.name.startswith("nw-test-venv.")
    assert not venv.exists()
    assert not list(work.glob("tmp_for_test*"))


# ------------------------------------------------------- the real delvewheel (on Linux)


def unrepaired(official: Path, dest: Path, dlls: Path) -> Path:
    """``official`` as its build left it before delvewheel: the DLLs of
    numpy.libs/ moved out to ``dlls``, delvewheel's mark and their RECORD lines gone."""
    dest.mkdir(parents=True, exist_ok=True)
    dlls.mkdir(parents=True, exist_ok=True)
    out = dest / official.name
    with zipfile.ZipFile(official) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            name, data = info.filename, src.read(info)
            if name.startswith("numpy.libs/"):
                if name.endswith(".dll"):
                    (dlls / Path(name).name).write_bytes(data)
                continue
            if name.endswith(".dist-info/DELVEWHEEL"):
                continue
            if name.endswith(".dist-info/RECORD"):
                keep = [ln for ln in data.split(b"\n") if b"numpy.libs/" not in ln]
                data = b"\n".join(ln for ln in keep if b".dist-info/DELVEWHEEL," not in ln)
            zf.writestr(info, data)
    return out


def pe_imports(data: bytes) -> set[str]:
    import pefile

    pe = pefile.PE(data=data)
    return {entry.dll.decode() for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])}


@pytest.fixture
def delvewheel_only(tmp_path, tools_bin) -> Path:
    """A PATH directory holding just the real delvewheel (pure Python, from the index)."""
    bindir = tmp_path / "delvewheel-bin"
    bindir.mkdir()
    (bindir / "delvewheel").symlink_to(tools_bin / "delvewheel")
    return bindir


def test_repair_wheelhouse_with_the_real_delvewheel(
    bash, tmp_path, official_numpy_wheels, delvewheel_only
):
    # GIVEN NumPy's official Windows wheel as it was before its repair, and the
    # DLLs it needs (OpenBLAS, the C++ runtime) in a directory
    dlls = tmp_path / "dlls"
    wheel = unrepaired(official_numpy_wheels["win_amd64"], tmp_path / "raw", dlls)
    # WHEN repair_wheelhouse runs delvewheel on it, the DLL directory given
    r = bash(
        f"source multibuild/windows_utils.sh\nrepair_wheelhouse {tmp_path}/raw {tmp_path}/out",
        env={"PATH": f"{delvewheel_only}:{VENV_BIN}:/usr/bin:/bin",
             "NW_REPAIR_LIBRARY_PATH": str(dlls)},
    )  # fmt: skip
    # THEN one wheel of the same name came out, its numpy.libs/ holds both DLLs
    # (under delvewheel's mangled names), and the extension imports those names
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (out,) = (tmp_path / "out").iterdir()
    assert out.name == wheel.name
    with zipfile.ZipFile(out) as zf:
        libs = sorted(n.split("/", 1)[1] for n in zf.namelist() if n.startswith("numpy.libs/"))
        libs = [n for n in libs if n]
        assert [n.split("-", 1)[0] for n in libs] == ["libscipy_openblas64_", "msvcp140"]
        assert any(n.endswith(".dist-info/DELVEWHEEL") for n in zf.namelist())
        (ext,) = [n for n in zf.namelist() if "_multiarray_umath" in n and n.endswith(".pyd")]
        imports = pe_imports(zf.read(ext))
    assert set(libs) <= imports, imports


def test_real_delvewheel_missing_dll_keeps_the_input_aside(
    bash, tmp_path, official_numpy_wheels, delvewheel_only
):
    # GIVEN the unrepaired wheel and no directory holding its DLLs
    wheel = unrepaired(official_numpy_wheels["win_amd64"], tmp_path / "wh", tmp_path / "dlls")
    # WHEN it is repaired in place
    r = bash(
        f"source multibuild/windows_utils.sh\nrepair_wheelhouse {tmp_path}/wh",
        env={"PATH": f"{delvewheel_only}:{VENV_BIN}:/usr/bin:/bin"},
    )
    # THEN delvewheel's refusal is the step's: one line naming the wheel, and the
    # input set aside so no later step takes it for repaired
    assert r.returncode == 1
    assert r.stderr.splitlines()[-2:] == [
        f"repair_wheelhouse: delvewheel could not repair {wheel.name}",
        f"repair_wheelhouse: moved the unrepaired wheel aside to {wheel.name}.unrepaired",
    ]
    assert "libscipy_openblas64_" in r.stderr + r.stdout  # delvewheel named the DLL
    assert sorted(p.name for p in (tmp_path / "wh").iterdir()) == [f"{wheel.name}.unrepaired"]
