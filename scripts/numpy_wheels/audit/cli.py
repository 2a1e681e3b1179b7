"""``check_wheel.py WHEEL...`` / ``check-wheel`` / ``numpy-wheels check``: audit wheels
and print one verdict per wheel (or ``--json``); the exit status is in ``--help``."""

from __future__ import annotations

import argparse
import json
import re
import sys

from numpy_wheels.errors import FatalError
from numpy_wheels.log import (
    add_verbosity_options,
    add_version_option,
    ci_error,
    log,
    markdown_table,
    plural,
    set_verbosity,
    step_summary,
)

from . import policy
from .report import format_text, json_document, verdict
from .wheel import check_wheels

PROG = "check_wheel.py"

EPILOG = """\
exit status:
  0  every wheel passes (warnings allowed unless --strict)
  1  at least one wheel fails (or, with --strict, has a warning)
  2  bad command line
  3  an input could not be read at all (no such file, not a regular file,
     no permission), and no wheel failed

A failure is something that breaks or is unsafe: a library no loader rule
finds, symbols or a macOS minimum newer than the tag, a wrong architecture, a
RECORD mismatch, an unsafe or clashing member path, a damaged archive, an
OpenBLAS other than the one demanded.  A warning is policy: a runtime that is
common but not guaranteed (MSVCP140.dll, VCRUNTIME140_1.dll), a delay-loaded
or weakly linked library that is missing, bundled software missing from the
license notice.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Audit wheels (any platform, from this host): archive integrity, native "
        "dependencies resolved as the platform's loader does, and NumPy's OpenBLAS and "
        "license.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("wheels", nargs="+", metavar="WHEEL", help="wheel files to audit")
    parser.add_argument("--json", action="store_true", help="print all findings as JSON")
    parser.add_argument(
        "--strict", action="store_true", help="warnings fail the wheel too (exit 1)"
    )
    parser.add_argument(
        "--expect-openblas",
        metavar="VER",
        help="require a bundled OpenBLAS of this version (e.g. 0.3.30); implies NumPy checks",
    )
    parser.add_argument(
        "--expect-interface",
        choices=("ilp64", "lp64"),
        type=str.lower,
        help="require the bundled OpenBLAS to have this integer interface (the build's "
        "NW_OPENBLAS_INTERFACE); implies NumPy checks",
    )
    parser.add_argument(
        "--no-numpy-checks",
        action="store_true",
        help="skip the NumPy-specific checks (on by default for wheels of the project numpy)",
    )
    add_verbosity_options(parser)
    add_version_option(parser)
    return parser


def tell_ci(reports: list, strict: bool, stream=None) -> None:
    """An annotation per wheel that did not pass (a warning for warnings) and a row
    per wheel in the GitHub job summary."""
    for r in reports:
        if not r.passed(strict) or r.unreadable:
            found = r.failures or r.warnings or ["unreadable"]
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            what = found[0] if found[0].startswith(r.name) else f"{r.name}: {found[0]}"
            ci_error(f"{verdict(r, strict)} {what}{more}", PROG, stream=stream)
        elif r.warnings:
            ci_error(f"{r.name}: {r.warnings[0]}", PROG, level="warning", stream=stream)
    rows = [(f"`{r.name}`", verdict(r, strict), len(r.failures), len(r.warnings)) for r in reports]
    step_summary([f"### {PROG}", "", *markdown_table(
        ("wheel", "verdict", "failures", "warnings"), rows)])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    set_verbosity(args.verbose, args.quiet)
    if args.expect_openblas is not None and not re.match(
        r"^\d+\.\d+\.\d+(\.[0-9A-Za-z]+)*$", args.expect_openblas
    ):
        parser.error(f"--expect-openblas: {args.expect_openblas!r} is not a version like 0.3.30")
    if args.no_numpy_checks and (args.expect_openblas or args.expect_interface):
        parser.error("--expect-openblas/--expect-interface: not allowed with --no-numpy-checks")
    numpy_checks = False if args.no_numpy_checks else None
    try:
        reports = check_wheels(
            args.wheels, args.expect_openblas, numpy_checks, args.expect_interface
        )
    except FatalError as exc:  # the policy data unreadable: a broken install
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.return_code
    for r in reports:
        where = f" for {r.platform}" if r.platform else ""
        log(f"{r.name}: {plural(len(r.binaries), 'native file')} audited{where}", verbose_only=True)
    if args.json:
        print(json.dumps(json_document(reports, args.strict), indent=2))
    else:
        print(format_text(reports, args.strict))
    tell_ci(reports, args.strict, sys.stderr if args.json else None)
    if any(not r.passed(args.strict) and not r.unreadable for r in reports):
        return policy.EXIT_FAIL
    return policy.EXIT_UNREADABLE if any(r.unreadable for r in reports) else policy.EXIT_OK
