"""Small NumPy-specific helpers for config.sh's hooks.

Runs under the build or test venv's Python, so it uses the standard library only.

    numpy_tools.py build-requires SOURCE_DIR   the [build-system] requires, one per line
    numpy_tools.py check-license DIST          the installed DIST's LICENSE.txt declares
                                               what the wheel bundles
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

BUNDLE_RE = re.compile(r"This binary distribution of \w+ also bundles the following software")


def build_requires(source_dir: Path) -> list[str]:
    pyproject = source_dir / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"numpy_tools.py: error: cannot read {pyproject}: {exc}") from None
    return list(data.get("build-system", {}).get("requires", []))


def check_license(dist_name: str) -> list[str]:
    """Problems with DIST's license text (empty when it is complete)."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return [f"{dist_name} is not installed"]
    files = [f for f in dist.files or () if f.name == "LICENSE.txt" and "licenses" in f.parts]
    files = files or [f for f in dist.files or () if f.name == "LICENSE.txt"]
    if not files:
        return [f"{dist_name} has no LICENSE.txt"]
    text = "\n".join(Path(dist.locate_file(f)).read_text(encoding="utf-8") for f in files)
    problems = []
    if "Copyright (c)" not in text or "NumPy Developers" not in text:
        problems.append("LICENSE.txt lacks the NumPy copyright notice")
    if not BUNDLE_RE.search(text):
        problems.append("LICENSE.txt does not declare the bundled software")
    bundled = {Path(str(f)).name for f in dist.files or () if ".libs" in str(f.parent)}
    if any("openblas" in name for name in bundled) and "OpenBLAS" not in text:
        problems.append("the wheel bundles OpenBLAS but LICENSE.txt does not name it")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="numpy_tools.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build-requires").add_argument("source_dir", type=Path)
    sub.add_parser("check-license").add_argument("dist")
    args = parser.parse_args(argv)
    if args.command == "build-requires":
        print("\n".join(build_requires(args.source_dir)))
        return 0
    problems = check_license(args.dist)
    for problem in problems:
        print(f"numpy_tools.py: error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.dist}: LICENSE.txt declares the bundled software")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
