"""numpy-wheels: the one command the Makefile calls.

    numpy-wheels [NAME=value ...] COMMAND [NAME=value ...] [ARGS ...]

Each command hands its arguments to one part of the package, imported only when
it runs (so `--help` and a bad setting cost no heavy import).
"""

from __future__ import annotations

import difflib
import importlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from . import options
from .errors import ConfigurationError, FatalError
from .log import ci_error, logger, toolkit_version

# command: (module whose main(argv) runs it, argv put first, name in its messages, what it does)
COMMANDS = {
    "wheels": ("numpy_wheels.build.cli", ["wheels"], "", "source, build, repair, check and test"),
    "source": ("numpy_wheels.build.cli", ["source"], "", "put BUILD_COMMIT's source in REPO_DIR"),
    "build": ("numpy_wheels.build.cli", ["build"], "", "build the raw wheel into build/raw/"),
    "repair": ("numpy_wheels.build.cli", ["repair"], "", "repair build/raw/ into build/repaired/"),
    "check": ("numpy_wheels.audit.cli", [], "check_wheel.py",
              "audit WHEEL... (default: the repaired wheels)"),
    "test": ("numpy_wheels.build.cli", ["test"], "", "test the repaired wheel, publish it"),
    "rebuild-check": ("numpy_wheels.build.rebuild", [], "rebuild-check",
                      "build the source again elsewhere; wheels must match by sha256"),
    "stage": ("", [], "", "upload the wheelhouse's manifest (scripts/stage.sh)"),
    "upload": ("numpy_wheels.upload.cli", [], "wheel-uploader",
               "wheel-uploader: staged wheels to an index"),
    "openblas": ("numpy_wheels.openblas.cli", [], "openblas_support.py",
                 "fetch and verify OpenBLAS for PLAT"),
    "set-commit": ("numpy_wheels.set_commit", [], "set-commit",
                   "rewrite BUILD_COMMIT in every CI file"),
}  # fmt: skip
VERBOSITY = ("-q", "--quiet", "-v", "--verbose")
EXIT_STATUS = (
    "Exit status: 0 done, 1 a step or check failed, 2 a bad setting or usage (refused "
    "before any download or build), 130 interrupted; each command's --help says more."
)


def usage(known: list[options.Setting], env: dict[str, str]) -> str:
    lines = [
        "usage: numpy-wheels [-h] [--version] [NAME=value ...] [-q|-v] COMMAND [ARGS ...]",
        "",
        (__doc__ or "").splitlines()[0],
        "",
        "commands:",
        *(f"  {name:<12} {text}" for name, (*_, text) in COMMANDS.items()),
        "",
        f"Settings, as this command sees them (first found: {options.ORDER}):",
        *options.help_lines(known, env),
    ]
    return "\n".join([*lines, "", EXIT_STATUS])


def dispatch(argv: list[str]) -> int:
    known = options.table()  # the package's settings.mk, installed or not
    given, rest = options.split_assignments(argv, known)
    if not rest or rest[0] in ("-h", "--help"):
        text = usage(known, options.resolve(known, given, dict(os.environ)))
        print(text, file=sys.stdout if rest else sys.stderr)  # no command: a usage error
        return 0 if rest else 2
    if rest[0] == "--version":
        print(f"numpy-wheels (numpy-wheels-toolkit) {toolkit_version()}")
        return 0
    flags = []  # -q/-v before the command are the command's own
    while rest[:1] and rest[0] in VERBOSITY:
        flags.append(rest.pop(0))
    if not rest:
        raise ConfigurationError("no command after " + " ".join(flags))
    command, *rest = rest
    rest = [*flags, *rest]
    if command not in COMMANDS:
        near = difflib.get_close_matches(command, COMMANDS, 1, 0.5)
        hint = f"; did you mean numpy-wheels {near[0]}?" if near else ""
        raise ConfigurationError(f"no command {command!r}{hint} (one of: {', '.join(COMMANDS)})")
    more, rest = options.split_assignments(rest, known)
    options.resolve(known, {**given, **more}, os.environ)  # once, before any work
    if command == "stage":
        return stage(rest)
    module, first, prog, _ = COMMANDS[command]
    if command == "check" and not any(not a.startswith("-") for a in rest):
        # no wheel named: the build step audits build/repaired/ strictly, records it
        module, first, prog = "numpy_wheels.build.cli", ["check"], ""
    try:
        tool = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module and not module.startswith(f"{exc.name}."):
            raise  # a dependency of the tool: its own traceback says which
        raise FatalError(f"{command}: {module} is not installed (a broken install?)") from None
    return run(tool.main, [*first, *rest], prog or "numpy-wheels")


def run(main: Callable[[list[str]], int], argv: list[str], prog: str) -> int:
    """``main(argv)``'s status; an expected error as one line under the tool's own name."""
    try:
        return main(argv)
    except FatalError as exc:  # as log.run_main says it
        logger.error(f"{prog}: error: {exc}")
        ci_error(str(exc), prog)
        return exc.return_code


def stage(args: list[str]) -> int:
    """scripts/stage.sh with this environment's tools first on PATH (anaconda, twine)."""
    from .build.paths import ROOT

    script = ROOT / "scripts" / "stage.sh"
    if args[:1] in (["-h"], ["--help"]):  # stage.sh's own header says what it does
        header = script.read_text(encoding="utf-8").split("\nset -", 1)[0].splitlines()[1:]
        print("usage: numpy-wheels [NAME=value ...] stage [-q | -v] [--version]\n")
        print("\n".join(line[2:] for line in header if line.startswith("#")))
        print(f"\n{EXIT_STATUS}")
        return 0
    bindir = str(Path(sys.executable).absolute().parent)
    env = dict(os.environ, NW_PYTHON=sys.executable)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    # stage.sh takes -q, -v, --version and refuses anything else before any upload
    return subprocess.run(["bash", str(script), *args], cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    """The console script: errors as one line and an exit status, never a traceback."""
    try:
        return run(dispatch, sys.argv[1:] if argv is None else argv, "numpy-wheels")
    except KeyboardInterrupt:
        logger.error("numpy-wheels: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
