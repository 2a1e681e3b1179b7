"""wheel-uploader downloads: parallel (-j N) against one file at a time (terryfy's way).

40 valid wheels of 4 MB (random, incompressible payload; made once under
build/test-cache/bench-uploader/) behind the loopback staging server of the
tests, which adds 50 ms to every request and sends each body at ~20 MB/s per
connection (a CDN link, not loopback speed).  Each run is `wheel-uploader -n
--no-check` (download and verify only) into a fresh wheelhouse; then the
parallel run is repeated with everything present (nothing should transfer).
Prints times and ratios against the sequential run measured in the same
invocation (the median of ``--repeat`` runs each); never fails on time.
``--uploader`` (repeatable) times other checkouts' uploaders in the same
invocation, turn by turn, to compare before and after a change.

    .venv/bin/python benchmarks/bench_uploader.py [--files 40] [--size-mb 4] [--latency 0.05]
                                                  [--rate-mb 20] [--jobs 4 8] [--repeat 1]
                                                  [--uploader PATH/scripts/wheel_uploader.py]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from staging_server import StagingServer, make_wheel  # noqa: E402

SCRIPT = ROOT / "scripts" / "wheel_uploader.py"
CACHE = ROOT / "build" / "test-cache" / "bench-uploader"


def bench_wheels(count: int, size_mb: int) -> list[Path]:
    """``count`` wheels of ``size_mb`` MB, generated once and reused."""
    dest = CACHE / f"{count}x{size_mb}"
    tags = [f"cp3{11 + i % 4}-cp3{11 + i % 4}-manylinux_2_28_x86_64" for i in range(count)]
    wheels = []
    for i, tag in enumerate(tags):
        path = dest / f"benchproj-1.0-{i + 1}-{tag}.whl"
        if not path.exists():
            made = make_wheel(
                dest / "tmp", "benchproj", "1.0", tag, payload=os.urandom(size_mb << 20)
            )
            made.rename(path)
        wheels.append(path)
    return wheels


def timed_run(server: StagingServer, script: Path, wheelhouse: Path,
              jobs: int) -> tuple[float, int, float]:  # fmt: skip
    """Wall time, files transferred and the uploader's own CPU time (user + system)."""
    before = len(server.transfers())
    cmd = [sys.executable, str(script), "-u", server.simple_url, "--allow-insecure"]
    cmd += ["-w", str(wheelhouse), "-n", "--no-check", "-j", str(jobs), "benchproj", "1.0"]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    took = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
    return took, len(server.transfers()) - before, cpu


def one_round(server: StagingServer, script: Path, scratch: Path, jobs: list[int]) -> list:
    """(label, wall, files, CPU) of -j 1, each -j N, then all present (-j jobs[0])."""
    rows = [("sequential (-j 1):", *timed_run(server, script, scratch / "seq", 1))]
    for n in jobs:
        rows.append((f"parallel (-j {n}):", *timed_run(server, script, scratch / f"j{n}", n)))
    again = timed_run(server, script, scratch / f"j{jobs[-1]}", jobs[0])
    rows.append((f"all present (-j {jobs[0]}):", *again))
    shutil.rmtree(scratch)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40, help="number of wheels (40)")
    parser.add_argument("--size-mb", type=int, default=4, help="size of each wheel (4)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (0.05)")
    parser.add_argument("--rate-mb", type=float, default=20.0,
                        help="MB/s per connection (20; 0: as fast as loopback)")  # fmt: skip
    parser.add_argument("--jobs", type=int, nargs="+", default=[4, 8], help="parallel runs")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are printed (1)")
    parser.add_argument("--uploader", type=Path, action="append",
                        help="wheel_uploader.py to time (default: this checkout's); "
                        "repeatable, to compare checkouts in one run")  # fmt: skip
    args = parser.parse_args(argv)
    scripts = args.uploader or [SCRIPT]
    wheels = bench_wheels(args.files, args.size_mb)
    print(f"{args.files} wheels of {args.size_mb} MB, {args.latency * 1000:.0f} ms per request, "
          f"{args.rate_mb:g} MB/s per connection, median of {args.repeat} rounds")  # fmt: skip
    rate = args.rate_mb * 1e6
    rounds: dict[Path, list[list]] = {script: [] for script in scripts}
    with (
        StagingServer(wheels, package="benchproj", latency=args.latency, rate=rate) as server,
        tempfile.TemporaryDirectory(dir=CACHE) as scratch,
    ):
        for r in range(args.repeat):  # turn by turn: a change in load hits every uploader
            for i, script in enumerate(scripts):
                rounds[script].append(one_round(server, script, Path(scratch) / f"{r}-{i}",
                                                args.jobs))  # fmt: skip
    row = "  {:<22} {:6.2f} s  {:2} files transferred  {:5.2f}x  (CPU {:.2f} s)"
    for script in scripts:
        if len(scripts) > 1:
            print(f"{script}:")
        runs = rounds[script]
        median = [[statistics.median(run[k][j] for run in runs) for j in (1, 2, 3)]
                  for k in range(len(runs[0]))]  # fmt: skip
        base = median[0][0]
        for (label, *_), (took, moved, cpu) in zip(runs[0], median, strict=True):
            line = row.format(label, took, round(moved), base / took, cpu)
            print(line + ("  target: under 0.5 s" if label.startswith("all present") else ""))
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
