"""The step runner behind `make source|build|repair|check|test-wheel|wheels`.

Each step is a thin call into the shell library (multibuild/) and config.sh in
a fresh bash, folded and timed; its output is shown and kept in build/logs/.
Wheels move forward through build/raw/, build/repaired/ and $WHEEL_SDIR/ (see
numpy_wheels.build.steps), so that a failed or interrupted run never leaves a
wheel where a later step would take it for good.

One run at a time per work directory (a lock file; a second run waits and says
who holds it).

`make wheels` runs every step and ends with a table and
$WHEEL_SDIR/build-report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime

from ..files import file_lock
from ..log import add_verbosity_options, add_version_option, is_quiet, run_main, set_verbosity
from .paths import BUILD, MANIFEST, REPAIRED, STEP_RECORD
from .report import print_summary, write_provenance, write_report
from .settings import Settings, announce_environment, print_banner, validate_settings
from .steps import STEPS, _wheels, run_step


def run_all(settings: Settings) -> int:
    STEP_RECORD.unlink(missing_ok=True)
    started = datetime.now(UTC)
    (settings.wheel_sdir / MANIFEST).unlink(missing_ok=True)  # a new run: nothing to stage yet
    source, built, failed = "", [], True
    start = time.monotonic()
    try:
        for name in STEPS:
            if name == "test-wheel":  # what it promotes: older wheels stay out of the report
                built = [w.name for w in _wheels(REPAIRED)]
            result = run_step(name, settings)
            source = result.detail if name == "source" else source
        failed = False
    finally:
        path = write_report(settings, source, built, failed)
        report = json.loads(path.read_text())
        if not failed:  # the wheelhouse's record pairs with the wheelhouse's report
            write_provenance(settings, report, started)
        print_summary(report, path, time.monotonic() - start, failed)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="numpy-wheels",
        description=__doc__.splitlines()[0],
        epilog="Exit status: 0 every step passed, 1 a step failed, 2 a bad setting "
        "(refused before any download or build), 130 interrupted.",
    )
    parser.add_argument("step", choices=[*STEPS, "test", "wheels"], help="test: test-wheel")
    parser.add_argument("--nightly", action="store_true", help="build NIGHTLY_BUILD_COMMIT")
    add_verbosity_options(parser)  # -q: step output stays in build/logs/ only
    add_version_option(parser)
    args = parser.parse_args(argv)
    args.step = "test-wheel" if args.step == "test" else args.step
    _set_noise(args.quiet, args.verbose)
    validate_settings(os.environ, args.step)
    settings = Settings.from_env(nightly=args.nightly)
    if not is_quiet():
        print_banner(settings, "make wheels" if args.step == "wheels" else f"make {args.step}")
    if args.step != "source":
        announce_environment(settings)
    with file_lock(BUILD / "lock", f"the work directory {BUILD}"):
        if args.step == "wheels":
            return run_all(settings)
        run_step(args.step, settings)
    return 0


def _set_noise(quiet: bool, verbose: bool) -> None:
    """-q/-v, or NW_QUIET/NW_VERBOSE, for this process and the steps it runs."""
    if quiet:
        os.environ["NW_QUIET"] = "1"
    if verbose:
        os.environ["NW_VERBOSE"] = "1"
    set_verbosity(bool(os.environ.get("NW_VERBOSE")), bool(os.environ.get("NW_QUIET")))


if __name__ == "__main__":
    run_main(main, "numpy-wheels")
