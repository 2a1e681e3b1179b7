"""`make check`: our own builds are audited strictly, against the OpenBLAS version and
interface the build used (read as the build reads them), and never without them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import make


def _check(tmp_path: Path, wheel: Path, env_vars: str, **env: str):
    work = tmp_path / "work"
    (work / "repaired").mkdir(parents=True)
    shutil.copy(wheel, work / "repaired")
    proc = make("check", tmp_path=tmp_path, env={"NW_WORK_DIR": str(work),
                "ENV_VARS_PATH": env_vars, **env})  # fmt: skip
    log = work / "logs" / "check.log"
    return proc, log.read_text() if log.exists() else ""


def test_check_passes_the_builds_openblas_and_runs_strict(official_numpy_wheels, tmp_path):
    # GIVEN the official 2.4.6 wheel in place of our repaired one (same OpenBLAS pin)
    proc, log = _check(tmp_path, official_numpy_wheels["manylinux_x86_64"], "env_vars.sh")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    command = log.splitlines()[0]
    assert " --strict --expect-openblas 0.3.31.188.0 --expect-interface ilp64 " in command
    assert f"PASS {official_numpy_wheels['manylinux_x86_64'].name}" in log


def test_lp64_build_checked_against_lp64(official_numpy_wheels, tmp_path):
    # GIVEN ENV_VARS_PATH=env_vars32.sh (LP64) and a wheel bundling the ILP64 build
    proc, log = _check(tmp_path, official_numpy_wheels["manylinux_x86_64"], "env_vars32.sh")
    # THEN the check follows the build's interface, not a guess from the tag
    assert proc.returncode != 0
    assert "--expect-interface lp64" in log.splitlines()[0]
    assert (
        "numpy.libs/libscipy_openblas64_-32a4b2a6.so: ILP64 OpenBLAS, but the build used "
        "LP64 (NW_OPENBLAS_INTERFACE=lp64)"
    ) in log


@pytest.mark.parametrize(
    ("contents", "plat", "message"),
    [
        # the version cannot be printed: ILP64 asked for a 32-bit target
        ("export NW_OPENBLAS_INTERFACE=ilp64\n", "i686",
         "cannot tell which OpenBLAS the build used (openblas_support.py --print-version: "),
        ("export NW_OPENBLAS_INTERFACE=int128\n", "x86_64",
         "cannot tell the OpenBLAS interface the build used from "),
    ],
)  # fmt: skip
def test_check_never_drops_the_openblas_expectation(
    official_numpy_wheels, tmp_path, contents, plat, message
):
    env_vars = tmp_path / "env_vars_bad.sh"
    env_vars.write_text(contents)
    proc, log = _check(tmp_path, official_numpy_wheels["manylinux_x86_64"], str(env_vars),
                       PLAT=plat)  # fmt: skip
    assert proc.returncode != 0
    assert message in proc.stderr
    assert log == ""  # the audit never ran without its expectation


# ---------------------------------------------------------------- the release gates


def test_stage_gates_on_fail_only_unless_strict(official_numpy_wheels, tmp_path):
    from test_stage import stage, write_manifest

    # GIVEN a wheelhouse whose only wheel has audit warnings (VCRUNTIME140_1.dll)
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    shutil.copy(official_numpy_wheels["win_amd64"], wheelhouse)
    write_manifest(wheelhouse)
    bindir = tmp_path / "stubbin"
    bindir.mkdir()
    (bindir / "anaconda").write_text('#!/bin/bash\necho "uploaded (stub)"\n')
    (bindir / "anaconda").chmod(0o755)
    # WHEN staged by default THEN it uploads, and the warnings are in the output
    proc = stage(tmp_path, wheelhouse, (bindir, tmp_path / "argv"), ANACONDA_TOKEN="t0k")
    assert proc.returncode == 0, proc.stderr
    assert "  warning: numpy/_core/_multiarray_umath.cp311-win_amd64.pyd imports " in proc.stdout
    assert "1 of 1 file ended well: 1 uploaded, 0 already there, 0 failed" in proc.stdout
    # WHEN STAGE_STRICT=1 THEN the same warnings stop it before any upload
    proc = stage(tmp_path, wheelhouse, (bindir, tmp_path / "argv"), ANACONDA_TOKEN="t0k",
                 STAGE_STRICT="1")  # fmt: skip
    assert proc.returncode == 1
    assert "+ .venv/bin/python scripts/check_wheel.py --strict " in proc.stdout
    assert proc.stderr.splitlines()[-1] == "stage: error: check_wheel.py failed; nothing uploaded"
    assert "files ended well" not in proc.stdout


def test_uploader_gates_on_fail_only_unless_strict(official_numpy_wheels, capsys):
    from numpy_wheels.upload.cli import main

    wheel = str(official_numpy_wheels["win_amd64"])
    assert main(["--files", "--no-twine", wheel]) == 0
    out = capsys.readouterr().out
    name = official_numpy_wheels["win_amd64"].name
    assert f"audit warning: {name}: numpy/_core/_multiarray_umath.cp311-win_amd64.pyd " in out
    assert main(["--files", "--no-twine", "--strict", wheel]) == 1
    captured = capsys.readouterr()
    assert f"wheel-uploader: error: {name} fails the audit: " in captured.err
    assert "VCRUNTIME140_1.dll" in captured.err
