"""Cold vs warm `openblas_support.py` (what `make openblas` runs).

Cold: an empty cache, so the index is queried and the wheel downloaded, verified
and unpacked.  Warm: the same call again, answered from the cache.  Prints the
median of each and the cold/warm ratio; never fails on time.

    .venv/bin/python benchmarks/bench_openblas.py [--repeat N] [--plat PLAT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "openblas_support.py"


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(SCRIPT), *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind (default 3)")
    parser.add_argument("--plat", default="manylinux_2_28_x86_64", help="target platform")
    args = parser.parse_args(argv)
    cold, warm = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NW_OPENBLAS_CACHE=cache)
            cold.append(timed(["--plat", args.plat], env))
            warm += [timed(["--plat", args.plat], env) for _ in range(3)]
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"openblas_support.py --plat {args.plat} (scipy-openblas wheel, pinned version)")
    print(f"  cold (empty cache, download+verify+unpack): median {c:.3f} s over {len(cold)} runs")
    print(f"  warm (cache hit, no network):               median {w:.3f} s over {len(warm)} runs")
    print(f"  cold / warm: {c / w:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
