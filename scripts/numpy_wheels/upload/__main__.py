"""``python -m numpy_wheels.upload``: the wheel-uploader command."""

from ..log import run_main
from .cli import PROG, main

run_main(main, PROG)
