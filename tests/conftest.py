"""Shared test fixtures.

Shell functions are tested by running a fresh ``bash`` per test (never one shared
shell), with its own HOME and a minimal PATH whose first entry is the toolkit's
venv, so the tests see exactly what `make` sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Real wheels and sdists downloaded by tests are kept here between runs.
CACHE = ROOT / "build" / "test-cache"
# The NumPy release whose official wheels the tests audit, upload and compare.
OFFICIAL_NUMPY = "2.4.6"
OFFICIAL_PLATFORMS = {
    # platform key: (pip --platform values, python tag)
    "manylinux_x86_64": (["manylinux_2_28_x86_64"], "311"),
    "manylinux_aarch64": (["manylinux_2_28_aarch64"], "311"),
    "macosx_x86_64": (["macosx_10_15_x86_64", "macosx_13_0_x86_64", "macosx_14_0_x86_64"], "311"),
    "macosx_arm64": (["macosx_14_0_arm64"], "311"),
    "win_amd64": (["win_amd64"], "311"),
}


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment like a fresh CI shell: own HOME, minimal PATH, no colours."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "HOME": str(home),
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "TMPDIR": str(tmp_path),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_CERT"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env


def run_bash(
    script: str,
    tmp_path: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new bash with the library sourced from ROOT."""
    full_env = clean_env(tmp_path, **(env or {}))
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def bash(tmp_path):
    """``bash(script, **kw)`` -> CompletedProcess; see :func:`run_bash`."""

    def _run(script: str, **kw):
        return run_bash(script, tmp_path, **kw)

    return _run


def make(*args: str, tmp_path: Path, env: dict[str, str] | None = None, timeout: float = 3600):
    """Run ``make -C ROOT args`` in a clean environment that reuses ROOT's .venv."""
    return subprocess.run(
        ["make", "-C", str(ROOT), *args],
        env=clean_env(tmp_path, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pip_download(spec: str, dest: Path, *extra: str) -> list[Path]:
    """Download binary distributions with the toolkit venv's pip (index from pip's config)."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*cmd, "-d", str(dest), *extra, spec], check=True, capture_output=True)
    return sorted(set(dest.iterdir()) - before) or sorted(dest.iterdir())


@pytest.fixture(scope="session")
def official_numpy_wheels() -> dict[str, Path]:
    """The official NumPy wheels of OFFICIAL_NUMPY for five platforms (cached)."""
    wheels = {}
    for key, (platforms, pyver) in OFFICIAL_PLATFORMS.items():
        dest = CACHE / "numpy-official" / key
        found = sorted(dest.glob(f"numpy-{OFFICIAL_NUMPY}-*.whl")) if dest.exists() else []
        if not found:
            extra = ["--python-version", pyver]
            for plat in platforms:
                extra += ["--platform", plat]
            pip_download(f"numpy=={OFFICIAL_NUMPY}", dest, *extra)
            found = sorted(dest.glob(f"numpy-{OFFICIAL_NUMPY}-*.whl"))
        assert len(found) == 1, f"expected one numpy wheel for {key}, got {found}"
        wheels[key] = found[0]
    return wheels
