"""The macOS and Windows repair command lines, checked as argv.

Only Linux runs here, so `delocate-wheel` (multibuild/osx_utils.sh) and
`delvewheel` (multibuild/windows_utils.sh) are stub executables first on PATH:
each records its argv and the environment the repair tool depends on, then
writes what the real tool writes (the repaired wheel into -w DIR), or fails, as
the test asks.  `cygpath`, present under Git Bash, is stubbed the same way.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import clean_env, run_bash

STUB = textwrap.dedent(
    """\
    #!{python}
    # Test stub for {name}: record argv, then act as NW_STUB_MODE says.
    import json, os, pathlib, sys
    args = sys.argv[1:]
    with open(os.environ["NW_STUB_LOG"], "a") as log:
        log.write(json.dumps({{"tool": "{name}", "argv": args,
                               "DYLD_LIBRARY_PATH": os.environ.get("DYLD_LIBRARY_PATH")}}) + "\\n")
    mode = os.environ.get("NW_STUB_MODE", "ok")
    if mode == "fail":
        print("{name}: simulated failure", file=sys.stderr)
        sys.exit(3)
    out = pathlib.Path(args[args.index("-w") + 1])
    wheel = pathlib.Path(args[-1])
    if mode in ("ok", "two") and (out / wheel.name).resolve() != wheel.resolve():
        # the repaired wheel ends with a mark; in place (-w its own dir) it is kept as it is
        (out / wheel.name).write_bytes(wheel.read_bytes() + b"repaired")
    if mode == "two":
        (out / ("extra-" + wheel.name)).write_bytes(wheel.read_bytes())
    """
)

CYGPATH = textwrap.dedent(
    """\
    #!/bin/bash
    # Test stub for Git Bash's cygpath -w: /c/dir/x -> C:\\dir\\x
    [ "$1" = -w ] || exit 2
    p=$2
    case "$p" in /[a-z]/*) d=${p:1:1}; p="${d^^}:${p:2}" ;; esac
    printf '%s\\n' "${p//\\//\\\\}"
    """
)

WIN_WHEEL = "numpy-2.4.6-cp312-cp312-win_amd64.whl"
MAC_WHEEL = "numpy-2.4.6-cp312-cp312-macosx_14_0_arm64.whl"
PURE_WHEEL = "demo-1.0-py3-none-any.whl"


def write_stub(stubs: Path, name: str, text: str) -> None:
    path = stubs / name
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def repair_env(tmp_path):
    """(run, calls): ``run(utils, script, **env)`` runs bash with the stubs first on PATH."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("delvewheel", "delocate-wheel"):
        write_stub(stubs, name, STUB.format(python=sys.executable, name=name))
    log = tmp_path / "calls.jsonl"
    base_path = clean_env(tmp_path)["PATH"]

    def run(utils: str, script: str, *, stub_path: bool = True, **env: str):
        full = {
            "PATH": f"{stubs}:{base_path}" if stub_path else base_path,
            "NW_STUB_LOG": str(log),
            **env,
        }
        return run_bash(f"source multibuild/{utils}\n{script}", tmp_path, env=full)

    def calls() -> list[dict]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    run.stubs = stubs
    return run, calls


def wheelhouse(tmp_path: Path, *names: str) -> Path:
    directory = tmp_path / "raw"
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    return directory


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ------------------------------------------------------------------- Windows


def test_delvewheel_argv_with_git_bash_paths(repair_env, tmp_path):
    # GIVEN Git Bash (cygpath) and OpenBLAS DLLs in two POSIX-form directories
    run, calls = repair_env
    write_stub(run.stubs, "cygpath", CYGPATH)
    raw = wheelhouse(tmp_path, WIN_WHEEL)
    out = tmp_path / "repaired"
    # WHEN the wheelhouse is repaired into another directory
    result = run(
        "windows_utils.sh",
        f'repair_wheelhouse "{raw}" "{out}"',
        NW_REPAIR_LIBRARY_PATH="/c/openblas/lib:/d/extra dlls",
    )
    # THEN delvewheel got the native, ;-joined directories, wrote into a private
    # directory, and the one wheel it made is in OUT (the input is kept)
    assert result.returncode == 0, result.stderr
    (call,) = calls()
    argv = call["argv"]
    assert argv[:2] == ["repair", "-w"]
    assert argv[3:] == [
        "--add-path",
        "C:\\openblas\\lib;D:\\extra dlls",
        "-v",
        f"{raw}/{WIN_WHEEL}",
    ]
    assert Path(argv[2]).parent == tmp_path and Path(argv[2]).name.startswith("nw-repair.")
    assert not Path(argv[2]).exists()
    assert listing(out) == [WIN_WHEEL]
    assert (out / WIN_WHEEL).read_bytes().endswith(b"repaired")
    assert listing(raw) == [WIN_WHEEL]


@pytest.mark.parametrize(
    ("library_path", "add_path"),
    [
        ("C:\\openblas\\lib", "C:\\openblas\\lib"),
        (
            "C:\\openblas\\lib;;D:\\dir with space\\bin;",
            "C:\\openblas\\lib;D:\\dir with space\\bin",
        ),
        ("/opt/openblas/lib::/opt/other", "/opt/openblas/lib;/opt/other"),
    ],
)
def test_delvewheel_add_path_from_either_list_form(repair_env, tmp_path, library_path, add_path):
    # Without cygpath (a POSIX host) the entries pass through; only the separator changes.
    run, calls = repair_env
    raw = wheelhouse(tmp_path, WIN_WHEEL)
    result = run(
        "windows_utils.sh", f'repair_wheelhouse "{raw}"', NW_REPAIR_LIBRARY_PATH=library_path
    )
    assert result.returncode == 0, result.stderr
    (call,) = calls()
    assert call["argv"][3:5] == ["--add-path", add_path]


def test_delvewheel_without_library_path_has_no_add_path(repair_env, tmp_path):
    run, calls = repair_env
    raw = wheelhouse(tmp_path, WIN_WHEEL)
    result = run("windows_utils.sh", f'repair_wheelhouse "{raw}"')
    assert result.returncode == 0, result.stderr
    (call,) = calls()
    assert call["argv"][0:2] == ["repair", "-w"]
    assert call["argv"][3:] == ["-v", f"{raw}/{WIN_WHEEL}"]


def test_delvewheel_in_place_leaves_one_wheel_per_input(repair_env, tmp_path):
    # GIVEN a platform wheel and a pure wheel in one directory
    run, calls = repair_env
    raw = wheelhouse(tmp_path, WIN_WHEEL, PURE_WHEEL, "numpy-2.4.6-cp313-cp313-win_amd64.whl")
    # WHEN it is repaired in place
    result = run("windows_utils.sh", f'repair_wheelhouse "{raw}"')
    # THEN delvewheel ran once per platform wheel; no temporary file is left
    assert result.returncode == 0, result.stderr
    assert [c["argv"][-1] for c in calls()] == [
        f"{raw}/{WIN_WHEEL}",
        f"{raw}/numpy-2.4.6-cp313-cp313-win_amd64.whl",
    ]
    assert listing(raw) == sorted([WIN_WHEEL, PURE_WHEEL, "numpy-2.4.6-cp313-cp313-win_amd64.whl"])
    assert (raw / WIN_WHEEL).read_bytes().endswith(b"repaired")
    assert not (raw / PURE_WHEEL).read_bytes().endswith(b"repaired")


def test_delvewheel_copies_pure_wheels_to_out(repair_env, tmp_path):
    run, calls = repair_env
    raw = wheelhouse(tmp_path, PURE_WHEEL)
    out = tmp_path / "repaired"
    result = run("windows_utils.sh", f'repair_wheelhouse "{raw}" "{out}"')
    assert result.returncode == 0, result.stderr
    assert calls() == []
    assert listing(out) == [PURE_WHEEL]


def test_delvewheel_failure_sets_the_input_aside(repair_env, tmp_path):
    run, _ = repair_env
    raw = wheelhouse(tmp_path, WIN_WHEEL)
    result = run("windows_utils.sh", f'repair_wheelhouse "{raw}"', NW_STUB_MODE="fail")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-2:] == [
        f"repair_wheelhouse: delvewheel could not repair {WIN_WHEEL}",
        f"repair_wheelhouse: moved the unrepaired wheel aside to {WIN_WHEEL}.unrepaired",
    ]
    assert listing(raw) == [f"{WIN_WHEEL}.unrepaired"]


@pytest.mark.parametrize(("mode", "count"), [("none", 0), ("two", 2)])
def test_delvewheel_must_write_exactly_one_wheel(repair_env, tmp_path, mode, count):
    run, _ = repair_env
    raw = wheelhouse(tmp_path, WIN_WHEEL)
    out = tmp_path / "repaired"
    result = run("windows_utils.sh", f'repair_wheelhouse "{raw}" "{out}"', NW_STUB_MODE=mode)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"repair_wheelhouse: delvewheel wrote {count} wheels for {WIN_WHEEL}, expected one"
    )
    assert listing(out) == []
    assert listing(raw) == [WIN_WHEEL]


def test_windows_repair_bad_input(repair_env, tmp_path):
    run, _ = repair_env
    result = run("windows_utils.sh", "repair_wheelhouse")
    assert (result.returncode, result.stderr) == (
        1,
        "repair_wheelhouse: input directory not defined\n",
    )
    result = run("windows_utils.sh", f'repair_wheelhouse "{tmp_path}/nowhere"')
    assert (result.returncode, result.stderr) == (
        1,
        f"repair_wheelhouse: input directory '{tmp_path}/nowhere' not found\n",
    )
    raw = wheelhouse(tmp_path, WIN_WHEEL)
    result = run("windows_utils.sh", f'repair_wheelhouse "{raw}"', stub_path=False)
    assert (result.returncode, result.stderr) == (
        1,
        "repair_wheelhouse: delvewheel not found on PATH (pip install delvewheel)\n",
    )


def test_windows_utils_can_be_sourced_twice(repair_env):
    run, _ = repair_env
    result = run(
        "windows_utils.sh",
        "source multibuild/windows_utils.sh\n"
        "is_function repair_wheelhouse; echo $WINDOWS_UTILS_SOURCED",
    )
    assert (result.returncode, result.stdout) == (0, "true\n1\n")


# --------------------------------------------------------------------- macOS


@pytest.mark.parametrize(
    ("plat", "archs"),
    [("x86_64", "x86_64"), ("arm64", "arm64"), ("universal2", "x86_64,arm64")],
)
def test_delocate_argv_and_library_path(repair_env, tmp_path, plat, archs):
    # GIVEN a macOS wheel and the OpenBLAS lib directory the build used
    run, calls = repair_env
    raw = wheelhouse(tmp_path, MAC_WHEEL)
    out = tmp_path / "repaired"
    # WHEN the wheelhouse is repaired for PLAT
    result = run(
        "osx_utils.sh",
        f'repair_wheelhouse "{raw}" "{out}"',
        PLAT=plat,
        NW_REPAIR_LIBRARY_PATH="/opt/openblas/lib",
        DYLD_LIBRARY_PATH="/usr/local/lib",
    )
    # THEN delocate-wheel requires PLAT's architectures, writes into OUT, and
    # finds OpenBLAS first on DYLD_LIBRARY_PATH
    assert result.returncode == 0, result.stderr
    (call,) = calls()
    assert call["argv"] == ["--require-archs", archs, "-w", str(out), "-v", f"{raw}/{MAC_WHEEL}"]
    assert call["DYLD_LIBRARY_PATH"] == "/opt/openblas/lib:/usr/local/lib"
    assert listing(out) == [MAC_WHEEL]


def test_delocate_without_library_path_keeps_dyld_library_path(repair_env, tmp_path):
    run, calls = repair_env
    raw = wheelhouse(tmp_path, MAC_WHEEL, PURE_WHEEL)
    result = run("osx_utils.sh", f'repair_wheelhouse "{raw}"', PLAT="arm64")
    assert result.returncode == 0, result.stderr
    (call,) = calls()
    assert call["argv"] == ["--require-archs", "arm64", "-w", str(raw), "-v", f"{raw}/{MAC_WHEEL}"]
    assert call["DYLD_LIBRARY_PATH"] in (None, "")


def test_delocate_unknown_plat(repair_env, tmp_path):
    run, calls = repair_env
    raw = wheelhouse(tmp_path, MAC_WHEEL)
    result = run("osx_utils.sh", f'repair_wheelhouse "{raw}"', PLAT="ppc")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "repair_wheelhouse: unknown PLAT 'ppc' (expected one of: x86_64 arm64 universal2 intel)"
    )
    assert calls() == []


def test_delocate_failure_is_named(repair_env, tmp_path):
    run, _ = repair_env
    raw = wheelhouse(tmp_path, MAC_WHEEL)
    result = run("osx_utils.sh", f'repair_wheelhouse "{raw}"', PLAT="arm64", NW_STUB_MODE="fail")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"repair_wheelhouse: delocate-wheel could not repair {MAC_WHEEL} for arm64"
    )
