"""``python -m numpy_wheels.openblas``: the openblas_support.py command, installed or not."""

import sys

from .cli import main

sys.exit(main())
