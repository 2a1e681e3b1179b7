#!/usr/bin/env python3
"""Fetch, verify and prepare OpenBLAS for a NumPy wheel build (numpy_wheels.openblas).

The entry point the design names; installed, the same command is `openblas-support`.
--check-version and --print-version need only the standard library, so NumPy's
test environment runs this file without the toolkit installed.
"""

import sys
from pathlib import Path

_here = Path(__file__).resolve().parent
if (_here / "numpy_wheels").is_dir():  # a checkout: its package, not an installed one
    sys.path.insert(0, str(_here))

from numpy_wheels.openblas.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
