"""safe_extract vs bare ``tarfile`` (``data`` filter) on a real NumPy sdist.

safe_extract adds to tarfile's own ``data`` filter: a first pass over the
headers (bounds), links made last and checked again, and the move into place.
Prints the median of each and the ratio; never fails on time.

    .venv/bin/python benchmarks/bench_extract.py [--repeat N] [SDIST]

SDIST defaults to the NumPy sdist the tests cached (build/test-cache/sdist/).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from numpy_wheels.archive import safe_extract  # noqa: E402


def bare(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def timed(extract, archive: Path) -> float:
    with tempfile.TemporaryDirectory() as where:
        start = time.perf_counter()
        extract(archive, Path(where) / "out")
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("sdist", nargs="?", type=Path, help="a .tar.gz to extract")
    args = parser.parse_args(argv)
    found = sorted((ROOT / "build" / "test-cache" / "sdist").glob("numpy-*.tar.gz"))
    archive = args.sdist or (found[-1] if found else None)
    if archive is None or not archive.is_file():
        print("bench_extract: no NumPy sdist: give one, or run the tests first", file=sys.stderr)
        return 2
    with tarfile.open(archive) as tar:
        members = len(tar.getmembers())
    ours, theirs = [], []
    for _ in range(args.repeat):
        theirs.append(timed(bare, archive))
        ours.append(timed(safe_extract, archive))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"{archive.name}: {members} members, {archive.stat().st_size / 2**20:.1f} MiB")
    print(f"tarfile data filter {b:6.2f} s   safe_extract {a:6.2f} s   ratio {a / b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
