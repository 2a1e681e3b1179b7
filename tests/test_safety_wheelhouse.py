"""Issue 12, item 4: the wheelhouse holds exactly what this run produced.

`make check` and `make test-wheel` on a small real wheel (installed in a real
venv, tested by a config.sh whose run_tests passes, fails or hangs): an
interrupted test run is not a failed one, a failed run leaves no older copy
behind to be staged, the manifest lists exactly this run's wheels and `make
stage` uploads those only, and a wheel `make check` never saw is not promoted."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, clean_env, make
from staging_server import make_wheel

CONFIG = """\
run_tests() {
    "$PYTHON_EXE" -c 'import tinyproj'
    if [ -n "${TINY_HANG:-}" ]; then touch "$TINY_HANG"; sleep 60; fi
    [ -z "${TINY_FAIL:-}" ]
}
"""
WHEEL = "tinyproj-1.0-py3-none-any.whl"


@pytest.fixture
def project(tmp_path) -> dict[str, str]:
    """A source dir, a config.sh, and a repaired wheel waiting in the work dir."""
    (tmp_path / "src").mkdir()
    (tmp_path / "config.sh").write_text(CONFIG)
    make_wheel(tmp_path / "work" / "repaired", "tinyproj", "1.0")
    return {
        "REPO_DIR": str(tmp_path / "src"),
        "CONFIG_PATH": str(tmp_path / "config.sh"),
        "WHEEL_SDIR": str(tmp_path / "wheelhouse"),
        "NW_WORK_DIR": str(tmp_path / "work"),
        "SOURCE": "local",
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_interrupted_tests_leave_the_wheel_where_it_was(tmp_path, project):
    assert make("check", tmp_path=tmp_path, env=project).returncode == 0
    started = tmp_path / "tests-started"
    proc = subprocess.Popen(
        ["make", "-C", str(ROOT), "test-wheel"],
        env=clean_env(tmp_path, **project, TINY_HANG=str(started)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    for _ in range(1200):  # until run_tests really runs (the venv is made first)
        if started.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert started.exists(), proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert f"interrupted: the wheel(s) stay in {tmp_path / 'work' / 'repaired'}" in err
    assert (tmp_path / "work" / "repaired" / WHEEL).is_file()
    assert not (tmp_path / "wheelhouse" / "failed" / WHEEL).exists()
    assert not (tmp_path / "wheelhouse" / WHEEL).exists()


def test_failed_tests_leave_no_older_copy_to_stage(tmp_path, project):
    # GIVEN a wheel of the same name that passed in an earlier run
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / WHEEL).write_bytes(b"an older build that passed")
    assert make("check", tmp_path=tmp_path, env=project).returncode == 0
    # WHEN this run's wheel fails its tests
    proc = make("test-wheel", tmp_path=tmp_path, env={**project, "TINY_FAIL": "1"})
    assert proc.returncode != 0
    # THEN the failed one is in failed/, the older copy is gone, and stage has nothing
    assert (wheelhouse / "failed" / WHEEL).is_file()
    assert not (wheelhouse / WHEEL).exists()
    assert (wheelhouse / "manifest.sha256").read_text() == ""
    staged = make("stage", "DRY_RUN=1", tmp_path=tmp_path,
                  env={"WHEEL_SDIR": str(wheelhouse), "ANACONDA_TOKEN": "t",
                       "STAGE_PROJECT": "tinyproj"})  # fmt: skip
    assert staged.returncode != 0
    assert (
        f"stage: error: {wheelhouse}/manifest.sha256 lists no wheels (the last run produced "
        "none); nothing to stage"
    ) in staged.stderr


def test_stage_uploads_exactly_the_manifest(tmp_path, project):
    # GIVEN wheels of earlier runs in the wheelhouse
    wheelhouse = tmp_path / "wheelhouse"
    older = make_wheel(wheelhouse, "tinyproj", "0.9")
    assert make("check", tmp_path=tmp_path, env=project).returncode == 0
    # WHEN this run passes
    proc = make("test-wheel", tmp_path=tmp_path, env=project)
    assert proc.returncode == 0, proc.stderr
    # THEN the manifest lists exactly its wheel, and stage uploads that one only
    ours = wheelhouse / WHEEL
    assert (wheelhouse / "manifest.sha256").read_text() == f"{sha256(ours)}  {WHEEL}\n"
    staged = make("stage", "DRY_RUN=1", tmp_path=tmp_path,
                  env={"WHEEL_SDIR": str(wheelhouse), "ANACONDA_TOKEN": "t",
                       "STAGE_PROJECT": "tinyproj"})  # fmt: skip
    assert staged.returncode == 0, staged.stderr
    (shown,) = [ln for ln in staged.stdout.splitlines() if "anaconda upload" in ln]
    assert shown.endswith(f" -u multibuild-wheels-staging {ours}")
    assert str(older) not in staged.stdout
    # AND a wheel changed after the run is refused, nothing uploaded
    make_wheel(wheelhouse, "tinyproj", "1.0", payload=b"swapped")
    staged = make("stage", "DRY_RUN=1", tmp_path=tmp_path,
                  env={"WHEEL_SDIR": str(wheelhouse), "ANACONDA_TOKEN": "t",
                       "STAGE_PROJECT": "tinyproj"})  # fmt: skip
    assert staged.returncode != 0
    assert f"stage: error: {ours} changed since make test-wheel listed it" in staged.stderr
    assert "anaconda upload" not in staged.stdout


def test_promotion_needs_check_to_have_passed_on_that_file(tmp_path, project):
    assert make("check", tmp_path=tmp_path, env=project).returncode == 0
    # a later `make repair` (or a hand) put another wheel of that name in place
    make_wheel(tmp_path / "work" / "repaired", "tinyproj", "1.0", payload=b"unchecked")
    proc = make("test-wheel", tmp_path=tmp_path, env=project)
    assert proc.returncode != 0
    assert (
        f"numpy-wheels: error: {WHEEL}: not passed by make check as it is now (new or changed "
        "since); run `make check` first"
    ) in proc.stderr
    assert not (tmp_path / "wheelhouse" / WHEEL).exists()
    # after make check passes on it, it is promoted
    assert make("check", tmp_path=tmp_path, env=project).returncode == 0
    proc = make("test-wheel", tmp_path=tmp_path, env=project)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "wheelhouse" / WHEEL).is_file()


def test_stage_takes_the_manifests_of_several_ci_jobs(tmp_path):
    # GIVEN one directory holding the wheels and renamed manifests of two CI jobs,
    # and a wheel no manifest lists
    wheelhouse = tmp_path / "wheelhouse"
    first = make_wheel(wheelhouse, "tinyproj", "1.0")
    second = make_wheel(wheelhouse, "tinyproj", "1.0", "cp311-cp311-win_amd64")
    stray = make_wheel(wheelhouse, "tinyproj", "0.9")
    for job, wheel in (("linux", first), ("windows", second)):
        (wheelhouse / f"manifest-{job}.sha256").write_text(f"{sha256(wheel)}  {wheel.name}\n")
    # WHEN make stage runs
    staged = make("stage", "DRY_RUN=1", tmp_path=tmp_path,
                  env={"WHEEL_SDIR": str(wheelhouse), "ANACONDA_TOKEN": "t",
                       "STAGE_PROJECT": "tinyproj"})  # fmt: skip
    # THEN it uploads the wheels of both jobs, and only those
    assert staged.returncode == 0, staged.stderr
    shown = [ln for ln in staged.stdout.splitlines() if "anaconda upload" in ln]
    assert [ln.split(" -u multibuild-wheels-staging ")[1] for ln in shown] == [
        str(first), str(second)]  # fmt: skip
    assert str(stray) not in staged.stdout
