"""`make rebuild-check`: build the current source a second time and compare.

The first build is the one `make wheels` left in $WHEEL_SDIR (its wheels and
build-report.json).  The second starts from nothing but downloads: a fresh
checkout of the same source (the same commit, the same sdist by sha256, or a
copy of a local tree) in a scratch directory, a fresh work directory (build
venv, meson build directory) and ccache off.  The repaired wheels must be
byte-identical; when they are not, the differing members are named and, where
diffoscope is installed, its first differences are shown.

    rebuild_check.py [--scratch DIR] [--keep]     the check (make rebuild-check)
    rebuild_check.py compare FIRST.whl SECOND.whl  member-by-member comparison only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import ConfigurationError, FatalError
from ..files import file_hash
from ..log import add_version_option, log, run_main
from .paths import ROOT, SOURCE_MARKER

# the numpy-wheels command, as the Makefile runs it (settings resolved the same way)
STEPS = ["-m", "numpy_wheels.cli"]
# Left out of a copied local tree: what a build writes into its source.
BUILD_LITTER = ("build", "dist", "*.egg-info", "__pycache__", SOURCE_MARKER)
DIFFOSCOPE_LINES = 60


# ------------------------------------------------------------------- comparison


def member_differences(first: Path, second: Path) -> list[str]:
    """One line per member that differs between two zip files, in archive order:
    missing on one side, content, timestamp, permissions, compression or order."""
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        ia = {i.filename: i for i in a.infolist()}
        ib = {i.filename: i for i in b.infolist()}
        lines = [f"{n}: only in the first build" for n in ia if n not in ib]
        lines += [f"{n}: only in the second build" for n in ib if n not in ia]
        for name, x in ia.items():
            y = ib.get(name)
            if y is None:
                continue
            what = []
            if x.CRC != y.CRC or x.file_size != y.file_size or a.read(x) != b.read(y):
                what.append("content")
            if x.date_time != y.date_time:
                what.append(f"timestamp {_stamp(x)} vs {_stamp(y)}")
            if x.external_attr != y.external_attr:
                what.append(f"mode {x.external_attr >> 16:o} vs {y.external_attr >> 16:o}")
            packed = (x.compress_type, x.compress_size) != (y.compress_type, y.compress_size)
            if packed and "content" not in what:
                what.append("compression")
            if (x.extra, x.comment, x.create_system) != (y.extra, y.comment, y.create_system):
                what.append("zip header fields")
            if what:
                lines.append(f"{name}: {', '.join(what)}")
        if not lines and [i.filename for i in a.infolist()] != [i.filename for i in b.infolist()]:
            lines.append("member order differs")
        if not lines and first.read_bytes() != second.read_bytes():
            lines.append("zip structure differs (same members, same bytes)")
    return lines


def _stamp(info: zipfile.ZipInfo) -> str:
    return "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*info.date_time)


def diffoscope_head(first: Path, second: Path, lines: int = DIFFOSCOPE_LINES) -> str | None:
    """diffoscope's first ``lines`` lines of text output, or None when it is not installed."""
    exe = shutil.which("diffoscope")
    if exe is None:
        return None
    proc = subprocess.run(
        [exe, "--text", "-", "--no-progress", str(first), str(second)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    out = (proc.stdout or proc.stderr).splitlines()
    return "\n".join(out[:lines])


def compare(first: list[Path], second: list[Path]) -> bool:
    """Print the verdict for two sets of wheels; True when every wheel is byte-identical."""
    by_name = {w.name: w for w in second}
    same = True
    for wheel in first:
        other = by_name.pop(wheel.name, None)
        if other is None:
            print(f"{wheel.name}: not built the second time")
            same = False
            continue
        digest, other_digest = file_hash(wheel), file_hash(other)
        if digest == other_digest:
            print(f"{wheel.name}: reproducible, sha256 {digest}")
            continue
        same = False
        print(f"{wheel.name}: DIFFERS\n  first  sha256 {digest}\n  second sha256 {other_digest}")
        for line in member_differences(wheel, other):
            print(f"  {line}")
        head = diffoscope_head(wheel, other)
        if head is None:
            print("  (install diffoscope for a detailed comparison)")
        else:
            print(f"  diffoscope, first {DIFFOSCOPE_LINES} lines:")
            print("\n".join("    " + line for line in head.splitlines()))
    for name in by_name:
        print(f"{name}: only built the second time")
        same = False
    return same


# ------------------------------------------------------------------- the rebuild


def first_build(wheel_sdir: Path) -> list[Path]:
    """The first build's wheels, as build-report.json lists them, checked by sha256."""
    report_path = wheel_sdir / "build-report.json"
    try:
        report = json.loads(report_path.read_text())
    except OSError:
        raise ConfigurationError(f"no {report_path}; run `make wheels` first") from None
    except ValueError as exc:
        raise FatalError(f"{report_path} is not valid JSON: {exc}") from None
    wheels = []
    for entry in report.get("wheels", []):
        wheel = wheel_sdir / entry["name"]
        if not wheel.is_file():
            raise FatalError(f"{wheel} (in {report_path.name}) is missing")
        if file_hash(wheel) != entry["sha256"]:
            raise FatalError(
                f"{wheel.name} changed since the build: sha256 {file_hash(wheel)}, "
                f"{report_path.name} says {entry['sha256']}"
            )
        wheels.append(wheel)
    if not wheels:
        raise FatalError(f"{report_path} lists no wheel (did `make wheels` fail?)")
    return wheels


def _abs(path: str) -> Path:
    return Path(path) if os.path.isabs(path) else ROOT / path


def scratch_source(repo: Path, scratch_repo: Path, env: dict[str, str]) -> dict[str, str]:
    """The settings that put the same source into ``scratch_repo``: the same commit
    from the same URL, the same release sdist, or a copy of a local tree."""
    facts = _marker(repo)
    if facts.get("kind") == "git" and facts.get("commit"):
        return {"SOURCE": "git", "BUILD_COMMIT": facts["commit"]}
    if facts.get("kind") == "sdist":
        return {"SOURCE": "sdist", "BUILD_COMMIT": env.get("BUILD_COMMIT", "")}
    if not repo.is_dir():
        raise ConfigurationError(f"REPO_DIR {repo} does not exist; run `make wheels` first")
    # Somebody's own tree (a git checkout with its history, or a plain directory).
    shutil.copytree(repo, scratch_repo, symlinks=True, ignore=shutil.ignore_patterns(*BUILD_LITTER))
    return {"SOURCE": "local"}


def rebuild(scratch: Path) -> list[Path]:
    """Run source, build and repair for the same source again, under ``scratch``
    (other absolute paths than the first build's): the repaired wheels."""
    env = dict(os.environ)
    repo = _abs(env.get("REPO_DIR") or "numpy")
    # Another layout too: the source one level deeper than the first build's may be.
    second_repo, second_work = scratch / "tree" / "src" / repo.name, scratch / "tree" / "work"
    env.update(WHEEL_SDIR=str(scratch / "wheelhouse"), USE_CCACHE="0")
    env.update(scratch_source(repo, second_repo, env))
    env.update(REPO_DIR=str(second_repo), NW_WORK_DIR=str(second_work))
    _run_steps(env, second_work)
    _same_sdist(repo, second_repo)
    return sorted((second_work / "repaired").glob("*.whl"))


def _marker(repo: Path) -> dict:
    try:
        return json.loads((repo / SOURCE_MARKER).read_text())
    except (OSError, ValueError):
        return {}


def _run_steps(env: dict[str, str], work: Path) -> None:
    for step in ("source", "build", "repair"):
        proc = subprocess.run([sys.executable, *STEPS, step], env=env, cwd=ROOT)
        if proc.returncode:
            raise FatalError(
                f"the second build failed in step '{step}'; its logs are in {work / 'logs'}"
            )


def _same_sdist(repo: Path, second_repo: Path) -> None:
    """An sdist is taken from the index again: it must be the very same file."""
    first, second = _marker(repo), _marker(second_repo)
    if first.get("kind") == "sdist" and first.get("sha256") != second.get("sha256"):
        raise FatalError(
            f"the index now serves another {first.get('file')}: sha256 {second.get('sha256')}, "
            f"the first build used {first.get('sha256')}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rebuild-check", description=__doc__.splitlines()[0],
        epilog="Exit status: 0 the wheels are byte-identical, 1 they differ or the second "
        "build failed, 2 bad input (no first build, a bad setting).",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command")
    cmp = sub.add_parser("compare", help="compare two wheels member by member")
    cmp.add_argument("first", type=Path)
    cmp.add_argument("second", type=Path)
    parser.add_argument("--scratch", type=Path, help="directory for the second build")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    add_version_option(parser)
    args = parser.parse_args(argv)
    if args.command == "compare":
        for path in (args.first, args.second):
            if not path.is_file():
                parser.error(f"no such file: {path}")
        return 0 if compare([args.first], [args.second]) else 1
    wheels = first_build(_abs(os.environ.get("WHEEL_SDIR") or "wheelhouse"))
    if args.scratch:
        args.scratch.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="rebuild-", dir=args.scratch))
    same = False
    try:
        log(f"second build in {scratch} (ccache off)")
        same = compare(wheels, rebuild(scratch))
    finally:
        if args.keep or not same:  # a failed or differing second build stays for inspection
            log(f"the second build is kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if not same:
        raise FatalError("the second build differs from the first (see above)")
    return 0


if __name__ == "__main__":
    run_main(main, "rebuild-check")
