"""``python -m numpy_wheels.audit WHEEL...``: the same command as ``check_wheel.py``."""

from numpy_wheels.audit.cli import PROG, main
from numpy_wheels.log import run_main

run_main(main, PROG)
