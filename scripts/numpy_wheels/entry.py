"""For the checkout's script entry points: a script started by a Python that lacks
the toolkit's libraries (``python3 scripts/check_wheel.py``) runs again with the
toolkit's Python, found by the one rule of scripts/toolkit_python.sh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

_AGAIN = "NW_ENTRY_RERUN"  # set for the second run: never loop


def rerun_with_toolkit_python(script: str, missing: ModuleNotFoundError) -> NoReturn:
    """exec ``script`` with the toolkit's Python, or exit with one line saying why not."""
    prog = Path(script).name
    finder = Path(script).resolve().parent / "toolkit_python.sh"
    if not os.environ.get(_AGAIN) and finder.is_file():
        found = subprocess.run(["bash", "-c", 'source "$1" && nw_toolkit_python', "-", finder],
                               capture_output=True, text=True)  # fmt: skip
        python = found.stdout.strip()
        if found.returncode == 0 and python:
            os.execvpe(python, [python, script, *sys.argv[1:]], {**os.environ, _AGAIN: "1"})
    sys.exit(
        f"{prog}: error: {sys.executable} lacks the toolkit's libraries (no module "
        f"{missing.name!r}); run `make setup` in the checkout, or install the toolkit"
    )
