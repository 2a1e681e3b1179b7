"""--check-version (the OpenBLAS an installed NumPy loads) and --test (every platform)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Any

from numpy_wheels.errors import ConfigurationError, FatalError, NothingToDoError
from numpy_wheels.log import log

from .prepare import prepare, validate_tree
from .targets import Options, all_targets, parse_target


def _openblas_config(filepath: str) -> str | None:
    """openblas_get_config() of an already loaded OpenBLAS, under any of its four names."""
    import ctypes

    try:
        dll = ctypes.CDLL(filepath)
    except OSError:
        return None
    for name in (
        "scipy_openblas_get_config64_",
        "scipy_openblas_get_config",
        "openblas_get_config64_",
        "openblas_get_config",
    ):
        func = getattr(dll, name, None)
        if func is not None:
            func.restype = ctypes.c_char_p
            return (func() or b"").decode("utf-8", "replace")
    return None


def check_version(expected: str, interface: str) -> str:
    """Check the OpenBLAS the installed NumPy loads; return the OK line."""
    # Both live in the tested environment (config.sh's TEST_DEPENDS), not the toolkit's.
    try:
        import numpy
    except ImportError as exc:
        raise ConfigurationError(f"cannot import numpy with {sys.executable}: {exc}") from None
    try:
        import threadpoolctl
    except ImportError:
        raise ConfigurationError(f"threadpoolctl is not installed for {sys.executable}") from None
    found = [i for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"]
    if len(found) != 1:
        paths = ", ".join(i.get("filepath", "?") for i in found) or "none"
        raise FatalError(
            f"numpy {numpy.__version__} loads {len(found)} OpenBLAS libraries, "
            f"expected exactly one: {paths}"
        )
    info = found[0]
    if info.get("version") != expected:
        raise FatalError(
            f"numpy {numpy.__version__} loads OpenBLAS {info.get('version')} "
            f"({info.get('filepath')}), expected {expected}"
        )
    config = _openblas_config(info["filepath"])
    if config is None:
        raise FatalError(f"cannot read the OpenBLAS configuration of {info['filepath']}")
    got = "ilp64" if "USE64BITINT" in config else "lp64"
    if got != interface:
        raise FatalError(
            f"numpy {numpy.__version__} loads an {got.upper()} OpenBLAS ({info['filepath']}), "
            f"expected {interface.upper()}"
        )
    return f"OpenBLAS {expected} ({got}) loaded by numpy {numpy.__version__}: OK"


def run_tests(selected: list[str], opts: Options, tables: dict[str, Any], fixed: bool) -> int:
    """--test: prepare and validate every requested platform; one line each on stdout."""
    platforms = tables["platforms"]
    everything = not selected or selected == ["all"]
    if everything:
        targets = all_targets(platforms)
    else:
        env = os.environ
        targets = [
            parse_target(p, None, env.get("MB_ML_VER"), env.get("MB_ML_LIBC"), platforms)
            for p in selected
        ]
    failures = skipped = passed = 0
    for target in targets:
        if fixed:
            interfaces = [opts.interface]
        else:
            interfaces = ["ilp64", "lp64"] if target.bits == 64 else ["lp64"]
        for interface in interfaces:
            one = replace(opts, target=target, interface=interface)
            label = f"{target.describe():24} {interface}"
            try:
                path = prepare(one, tables)
                problems = validate_tree(path, one)
            except NothingToDoError as exc:
                if not everything:  # asked for by name: missing is a failure
                    problems, path = [str(exc)], None
                else:
                    skipped += 1
                    print(f"SKIP {label} {exc}", flush=True)
                    continue
            except FatalError as exc:
                problems = [str(exc)]
                path = None
            if problems:
                failures += 1
                print(f"FAIL {label} {'; '.join(problems)}", flush=True)
            else:
                passed += 1
                print(f"ok   {label} {path}", flush=True)
    log(f"{passed} passed, {failures} failed, {skipped} skipped (not published)")
    if failures:
        raise FatalError(f"{failures} platform(s) failed the OpenBLAS self-test")
    return 0
