#!/usr/bin/env python
"""Print the wheel filenames that the running interpreter can install.

Usage: python supported_wheels.py WHEEL [WHEEL ...]

Each argument is printed unchanged (one a line) when any tag in its filename
(compressed tag sets such as ``py2.py3-none-any`` expanded) is among the
interpreter's ``packaging.tags.sys_tags()``.  Uses packaging only; when the
interpreter has no ``packaging`` installed, pip's vendored copy is used, so a
fresh venv needs nothing installed.  A filename that is not a valid wheel name
is an error (exit 2).
"""

from __future__ import annotations

import os
import sys

try:
    from packaging.tags import sys_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename
except ImportError:  # a fresh venv: pip carries its own packaging
    from pip._vendor.packaging.tags import sys_tags
    from pip._vendor.packaging.utils import InvalidWheelFilename, parse_wheel_filename


def supported(filenames: list[str]) -> list[str]:
    """Return the filenames whose tags the running interpreter supports."""
    system = set(sys_tags())
    keep = []
    for filename in filenames:
        _name, _version, _build, tags = parse_wheel_filename(os.path.basename(filename))
        if tags & system:
            keep.append(filename)
    return keep


def main(argv: list[str]) -> int:
    try:
        for filename in supported(argv):
            print(filename)
    except InvalidWheelFilename as exc:
        print(f"supported_wheels.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
