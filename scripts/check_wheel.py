#!/usr/bin/env python3
"""Audit wheels before they are staged or uploaded: ``check_wheel.py WHEEL...``.

A thin entry point: the audit is the ``numpy_wheels.audit`` package (``--help``
lists the options and exit codes; installed, the same command is ``check-wheel``).
"""

import sys
from pathlib import Path

if __name__ == "__main__":  # from a checkout: the package is beside this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from numpy_wheels.audit.cli import PROG, main
    from numpy_wheels.log import run_main
except ModuleNotFoundError as missing:  # a Python without the toolkit's libraries
    from numpy_wheels.entry import rerun_with_toolkit_python

    rerun_with_toolkit_python(__file__, missing)

if __name__ == "__main__":
    run_main(main, PROG)
