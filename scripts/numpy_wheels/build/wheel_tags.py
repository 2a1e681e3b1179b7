"""Whether wheels install on an interpreter, asked before the test step: a cp313 wheel
under a Python 3.11 did not fail its tests, it never ran them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import packaging
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from ..errors import ConfigurationError, FatalError

# Run by the other interpreter, with this toolkit's packaging (pure Python) first on its
# path: its own tags as packaging computes them, most preferred first.
_TAGS = "import sys; sys.path.insert(0, sys.argv[1]); from packaging import tags; " \
    "print(tags.interpreter_name() + tags.interpreter_version()); " \
    "print('\\n'.join(map(str, tags.sys_tags())))"  # fmt: skip


def interpreter_tags(python: str) -> tuple[str, set[str]]:
    """(``cp311``-like name, every tag ``python`` installs) as that interpreter says."""
    lib = str(Path(packaging.__file__).parent.parent)
    proc = subprocess.run([python, "-c", _TAGS, lib], capture_output=True, text=True)
    lines = proc.stdout.split()
    if proc.returncode or not lines:
        why = (proc.stderr.strip().splitlines() or ["printed nothing"])[-1]
        raise FatalError(f"cannot ask {python} which wheels it installs: {why}")
    return lines[0], set(lines[1:])


def check_installable(wheels: list[Path], python: str) -> None:
    """Refuse, in one line, the wheels ``python`` cannot install (wrong Python or
    platform), naming each wheel, the interpreter and what it takes."""
    name, supported = interpreter_tags(python)
    wrong = []
    for wheel in wheels:
        try:
            tags = parse_wheel_filename(wheel.name)[3]
        except InvalidWheelFilename as exc:
            raise ConfigurationError(f"{wheel.name}: not a wheel file name ({exc})") from None
        if not {str(t) for t in tags} & supported:
            wrong.append(f"{wheel.name} ({', '.join(sorted(map(str, tags)))})")
    if wrong:
        raise ConfigurationError(
            f"{'; '.join(wrong)} does not install on {python} ({name}); test with the "
            "interpreter it was built for (PYTHON=...) or rebuild for this one"
        )
