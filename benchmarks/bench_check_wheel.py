"""Benchmark: audit the whole corpus of official wheels (tests/test_audit_corpus.py:
about 50 NumPy and SciPy wheels) with check_wheel.py, against ``auditwheel show`` of
one manylinux x86_64 wheel alone, measured in the same run.

    .venv/bin/python benchmarks/bench_check_wheel.py [--repeat N] [WHEEL...]

Without WHEEL arguments the corpus is taken from its cache (fetched there first if
missing).  Prints best-of-N wall seconds of each command (both run as fresh
processes) and the ratio; never fails on time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

from numpy_wheels.errors import ConfigurationError  # noqa: E402
from numpy_wheels.log import run_main  # noqa: E402


def official_wheels() -> list[Path]:
    """The audit corpus, from its cache (fetched there if missing)."""
    from test_audit_corpus import corpus_wheels

    return corpus_wheels()


def best_of(cmd: list[str], repeat: int) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        code = subprocess.run(cmd, capture_output=True).returncode
        times.append(time.perf_counter() - start)
    return min(times), code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", nargs="*", type=Path, help="wheels (default: the corpus)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per command (best is kept)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat: must be at least 1")
    wheels = args.wheels or official_wheels()
    linux = next((w for w in reversed(wheels) if "manylinux" in w.name and "x86_64" in w.name),
                 None)  # fmt: skip
    if linux is None:
        raise ConfigurationError("no manylinux x86_64 wheel among the inputs")
    bindir = Path(sys.executable).parent
    ours = [sys.executable, str(ROOT / "scripts" / "check_wheel.py"), *map(str, wheels)]
    theirs = [str(bindir / "auditwheel"), "show", "--json", str(linux)]
    ours_s, ours_rc = best_of(ours, args.repeat)
    theirs_s, theirs_rc = best_of(theirs, args.repeat)
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"check_wheel.py, {len(wheels)} wheels ({size:.1f} MiB): {ours_s:.2f} s (exit {ours_rc})")
    print(f"auditwheel show, {linux.name}: {theirs_s:.2f} s (exit {theirs_rc})")
    print(f"ratio check_wheel(all {len(wheels)}) / auditwheel show(linux only): "
          f"{ours_s / theirs_s:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    run_main(main, "bench_check_wheel.py")
