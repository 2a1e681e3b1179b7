"""The settings that choose where and with what a build runs (steps.py): the
first line says native or container, MB_PYTHON_VERSION picks the interpreter or
stops, the build venv follows the interpreter, a failing version command is null."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SETTINGS_MK, make
from numpy_wheels.build import report
from numpy_wheels.build.settings import ConfigurationError, select_python
from numpy_wheels.build.venv import make_venv

FIXTURE_ENV = {
    "REPO_DIR": "tests/fixtures/clib-demo",
    "CONFIG_PATH": "tests/fixtures/clib-demo/config.sh",
    "SOURCE": "local",
    "NW_PROJECT": "clib_demo",
}
# A working interpreter of another version (pyenv has several on our machines;
# its shims on PATH fail unless that version is selected).


def version_of(python: str) -> str:
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


# a supported Python of another X.Y than the one running the tests (pyenv's, here)
OTHER = next(
    (
        str(p)
        for p in sorted(Path.home().glob(".pyenv/versions/3.1[1-9]*/bin/python3.1[1-9]"))
        if version_of(str(p)) != "{}.{}".format(*sys.version_info[:2])
    ),
    None,
)


def test_mb_python_version_not_found_stops_before_any_work(tmp_path):
    # GIVEN MB_PYTHON_VERSION no interpreter on PATH has
    env = {**FIXTURE_ENV, "NW_WORK_DIR": str(tmp_path / "work"), "MB_PYTHON_VERSION": "3.99"}
    proc = make("build", tmp_path=tmp_path, env=env, timeout=300)
    # THEN one line naming the setting and what was found, and nothing built
    error = proc.stderr.splitlines()[0]
    assert error.endswith(
        f"MB_PYTHON_VERSION=3.99 but PYTHON={sys.executable} is {version_of(sys.executable)} "
        "and there is no "
        "python3.99 on PATH; install it or set PYTHON=/path/to/python3.99"
    ), proc.stderr
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("wanted", ["3", "3.x", "py3.11"])
def test_mb_python_version_must_be_x_y(wanted):
    with pytest.raises(ConfigurationError, match=rf"MB_PYTHON_VERSION='{wanted}' is not X.Y"):
        select_python("python3", wanted, container=False)


def test_mb_python_version_selects_python_x_y_from_path(tmp_path, monkeypatch):
    assert select_python("python3", "", container=False) == ("python3", version_of("python3"))
    same = version_of("python3")
    assert select_python("python3", same, container=False) == ("python3", same)
    if OTHER is None:
        pytest.skip("no second Python version on this machine")
    # GIVEN pythonX.Y of another version on PATH
    other = version_of(OTHER)
    (tmp_path / f"python{other}").symlink_to(OTHER)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert select_python("python3", other, container=False) == (f"python{other}", other)


def test_mb_python_version_in_a_container_defaults_to_python_s():
    # the image has the interpreter; the host's only gives the default X.Y
    assert select_python("python3", "", container=True) == ("python3", version_of("python3"))
    assert select_python("python3", "3.13", container=True) == ("python3", "3.13")


@pytest.mark.skipif(OTHER is None, reason="no second Python version on PATH")
def test_build_venv_is_remade_when_the_interpreter_changes(tmp_path):
    venv = tmp_path / "venv-build"
    make_venv(sys.executable, venv)
    (venv / "kept").write_text("")
    make_venv(sys.executable, venv)  # same interpreter: kept
    assert (venv / "kept").exists()
    make_venv(OTHER, venv)  # another: made anew, with that interpreter
    assert not (venv / "kept").exists()
    assert version_of(str(venv / "bin" / "python")) == version_of(OTHER)


def test_native_run_says_so_first(tmp_path):
    env = {**FIXTURE_ENV, "NW_WORK_DIR": str(tmp_path / "work"), "REPO_DIR": str(tmp_path / "x")}
    proc = make("build", tmp_path=tmp_path, env=env, timeout=300)
    assert proc.stderr.splitlines()[0] == (
        f"native build with {sys.executable} (Python {version_of(sys.executable)}); "
        "set DOCKER_IMAGE to build in a container"
    )


def test_a_failing_version_command_is_null_not_a_traceback(tmp_path):
    assert report._tool_version([sys.executable, "-c", "import no_such_module"]) is None
    assert report._tool_version([str(tmp_path / "missing")]) is None
    assert report._tool_version([sys.executable, "--version"]).startswith("Python 3.")


def test_report_reads_tools_from_where_the_step_ran(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "BUILD", tmp_path)
    (tmp_path / "tools-build.tsv").write_text(
        "where\tin a container\npython_path\t/opt/python/cp311-cp311/bin/python\n"
        "python\tPython 3.11.2\nmeson-python\t\nauditwheel\tauditwheel 6.8.2 installed at /x\n"
    )
    tools = report._tools_used("build")
    assert tools == {
        "where": "container",
        "python_path": "/opt/python/cp311-cp311/bin/python",
        "python": "Python 3.11.2",
        "meson-python": None,
        "auditwheel": "auditwheel 6.8.2",
    }
    assert report._tools_used("repair") == {}  # the step did not run


def test_makefile_exports_the_container_settings():
    text = (ROOT / "Makefile").read_text()
    names = ["DOCKER_TEST_IMAGE", "DOCKER_PULL", "DOCKER_RUN_ARGS", "CONTAINER_ENGINE"]
    for name in [*names, "MB_PYTHON_VERSION"]:
        assert f"\n{name} ?=" in SETTINGS_MK.read_text()
        assert name in text.split("export ", 1)[1].split("\n\n")[0]
