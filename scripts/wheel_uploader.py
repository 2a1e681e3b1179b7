#!/usr/bin/env python3
"""wheel-uploader from a checkout (``scripts/wheel-uploader`` and stage.sh run this
file); the code is the ``numpy_wheels.upload`` package."""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from numpy_wheels.log import run_main
    from numpy_wheels.upload.cli import PROG, main

    run_main(main, PROG)
