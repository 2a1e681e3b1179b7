"""The openblas_support.py / openblas-support command."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from numpy_wheels.errors import ConfigurationError
from numpy_wheels.log import (
    add_verbosity_options,
    add_version_option,
    log,
    run_main,
    set_verbosity,
)

from .checks import check_version, run_tests
from .prepare import library_version, prepare
from .select import numpy_pins
from .tables import load_tables
from .targets import OS_NAMES, SOURCES, Options, host_arch, parse_target, resolve_interface

PROG = "openblas_support.py"


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fetch, verify and unpack OpenBLAS for a NumPy wheel build; "
        "print the prepared directory.",
        epilog="Also read: MB_ML_VER and MB_ML_LIBC (Linux target libc), "
        "NW_OPENBLAS_SHA256_TABLE (a JSON file of extra legacy sha256 entries). "
        "Exit status: 0 done, 1 a download or check failed, 2 bad input, 3 nothing matched.",
    )
    parser.add_argument(
        "--plat",
        default=env.get("PLAT"),
        help="target: x86_64, i686, aarch64, ppc64le, s390x, arm64, universal2 "
        "or a wheel platform tag (env PLAT; default: this machine)",
    )
    parser.add_argument("--os", choices=OS_NAMES, help="target OS (default: this machine's)")
    width = parser.add_mutually_exclusive_group()
    width.add_argument(
        "--ilp64",
        dest="interface",
        action="store_const",
        const="ilp64",
        help="64-bit integer interface (env NW_OPENBLAS_INTERFACE=ilp64)",
    )
    width.add_argument(
        "--lp64",
        dest="interface",
        action="store_const",
        const="lp64",
        help="32-bit integer interface (env NW_OPENBLAS_INTERFACE=lp64)",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default=env.get("NW_OPENBLAS_SOURCE"),
        help="wheel (scipy-openblas, NumPy >= 2) or legacy tarballs "
        "(env NW_OPENBLAS_SOURCE; default wheel)",
    )
    # flags whose default comes from an environment variable (named in the help)
    for flag, var, text in (
        ("--openblas-version", "OPENBLAS_VERSION", "package version instead of the pin"),
        ("--cache-dir", "NW_OPENBLAS_CACHE", "cache (default ~/.cache/numpy-wheels/openblas)"),
        ("--index-url", "NW_OPENBLAS_INDEX_URL", "simple index (default: pip's index)"),
        ("--legacy-url", "NW_OPENBLAS_LEGACY_URL", "base URL of the legacy archives"),
    ):
        parser.add_argument(flag, default=env.get(var), help=f"{text} (env {var})")
    parser.add_argument(
        "--timeout",
        type=float,
        default=env.get("NW_OPENBLAS_TIMEOUT", "30"),
        help="seconds without data before a request fails (env NW_OPENBLAS_TIMEOUT; default 30)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=env.get("NW_OPENBLAS_RETRIES", "5"),
        help="attempts per download (env NW_OPENBLAS_RETRIES; default 5)",
    )
    add_verbosity_options(parser)
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--print-version",
        action="store_true",
        help="print the OpenBLAS library version of the selection",
    )
    action.add_argument(
        "--check-version",
        nargs="?",
        const="",
        default=None,
        metavar="VER",
        help="check the OpenBLAS that the installed numpy loads "
        "(default VER: the selection's library version)",
    )
    action.add_argument(
        "--test", nargs="*", metavar="PLAT", help="prepare and validate PLAT... or all platforms"
    )
    action.add_argument(
        "--show-numpy-pin",
        metavar="NUMPY_VERSION",
        help="print the scipy-openblas pins of a NumPy release's sdist",
    )
    add_version_option(parser)
    return parser


def run(argv: list[str] | None = None) -> int:
    """The command; errors propagate as exceptions (``main`` reports them)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    set_verbosity(args.verbose, args.quiet)
    if args.timeout <= 0 or args.retries < 1:
        parser.error("--timeout must be > 0 and --retries >= 1")
    tables = load_tables()
    env = os.environ
    if env.get("PIP_CERT") and not (env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")):
        env["REQUESTS_CA_BUNDLE"] = env["PIP_CERT"]  # the CA bundle pip is told to trust
    source = args.source or "wheel"
    if source not in SOURCES:
        raise ConfigurationError(f"NW_OPENBLAS_SOURCE={source!r} is not wheel or legacy")
    cache = Path(args.cache_dir or Path.home() / ".cache" / "numpy-wheels" / "openblas")
    cache = cache.expanduser().resolve()
    if args.show_numpy_pin:
        pins = numpy_pins(args.show_numpy_pin, cache, args.timeout, args.index_url)
        for name, version in sorted(pins.items()):
            print(f"{name}=={version}")
        return 0
    target = parse_target(
        args.plat, args.os, env.get("MB_ML_VER"), env.get("MB_ML_LIBC"), tables["platforms"]
    )
    if args.check_version is not None and not args.plat and not args.os:
        target = replace(target, arch=host_arch())
    interface = resolve_interface(args.interface, env.get("NW_OPENBLAS_INTERFACE"), target)
    opts = Options(
        target=target,
        interface=interface,
        source=source,
        version=args.openblas_version or tables[source]["version"],
        cache=cache,
        index_url=args.index_url,
        legacy_url=args.legacy_url or tables["legacy"]["base_url"],
        legacy_table=env.get("NW_OPENBLAS_SHA256_TABLE"),
        timeout=args.timeout,
        retries=args.retries,
    )
    if args.test is not None:
        fixed = bool(args.interface or env.get("NW_OPENBLAS_INTERFACE"))
        return run_tests(args.test, opts, tables, fixed)
    if args.print_version:
        print(library_version(opts, tables))
        return 0
    if args.check_version is not None:
        expected = args.check_version or library_version(opts, tables)
        print(check_version(expected, interface))
        return 0
    path = prepare(opts, tables)
    log(f"OpenBLAS {opts.version} ({interface}) for {target.describe()}: {path}", verbose_only=True)
    print(path)
    return 0


def _with_dependencies(argv: list[str] | None) -> int:
    """``run``; a dependency missing from this interpreter (the stdlib-only paths aside:
    a downloading run with the system python) is one line naming it, not a traceback."""
    try:
        return run(argv)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"{exc.name} is not installed for {sys.executable}; run the toolkit's "
            "python (.venv/bin/python after `make setup`) or openblas-support"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """The command as a console script or `numpy-wheels openblas` runs it: an expected
    error is one line on stderr and its exit code (run_main's), returned."""
    try:
        run_main(lambda _: _with_dependencies(argv), PROG)
    except SystemExit as exc:  # run_main's exit, argparse's --help and usage errors
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return 0  # not reached: run_main always exits
