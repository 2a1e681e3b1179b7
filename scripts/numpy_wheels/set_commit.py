"""Set the NumPy commit that a release builds, in every place that names it.

``make set-commit COMMIT=v2.4.7`` calls ``set_commit.py v2.4.7``: the one
``BUILD_COMMIT`` definition in each CI file (Azure Pipelines, GitHub Actions,
Travis, AppVeyor) and the ``BUILD_COMMIT ?= ...`` default of the settings table
(``scripts/numpy_wheels/data/settings.mk``, which the Makefile includes) are
rewritten, and nothing else.  Every file is checked before any is written, so a
file whose definition is missing or ambiguous leaves all of them untouched.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .build.paths import ROOT
from .errors import ConfigurationError, FatalError
from .files import atomic_write
from .log import add_verbosity_options, add_version_option, log, run_main, set_verbosity

PROG = "set-commit"

# A git tag, branch or hash: also a plain word in YAML, a shell assignment and make.
_COMMIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$")
_QUOTED = r"(?P<q>[\"']?)(?P<value>[A-Za-z0-9][A-Za-z0-9._/+-]*)(?P=q)"
_YAML_KEY = re.compile(rf"^(?P<head>\s*BUILD_COMMIT:\s*){_QUOTED}(?P<tail>\s*(?:#.*)?)$")
_SHELL_ITEM = re.compile(rf"^(?P<head>\s*-\s+BUILD_COMMIT=){_QUOTED}(?P<tail>\s*(?:#.*)?)$")
_MAKE_DEFAULT = re.compile(r"^(?P<head>BUILD_COMMIT \?= )(?P<q>)(?P<value>\S+)(?P<tail>\s*)$")


@dataclass(frozen=True)
class CommitFile:
    """One file that defines BUILD_COMMIT, and the form its definition takes."""

    path: str
    pattern: re.Pattern[str]
    quote: Callable[[str], str]


def _yaml_value(value: str) -> str:
    """``value`` as a YAML scalar that loads back as the same string."""
    # Plain scalars that YAML reads as numbers, booleans or null must be quoted.
    plain_ok = not re.fullmatch(
        r"[-+]?(\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|\.\d+|0x[0-9a-fA-F]+|0o[0-7]+)"
        r"|(?i:true|false|yes|no|on|off|null|y|n|~)",
        value,
    )
    return value if plain_ok else f'"{value}"'


def _same(value: str) -> str:
    return value


# Every file that names the release commit.  The Azure templates and the
# workflow's jobs read the variable; they never define it.
TARGETS = (
    CommitFile("azure-pipelines.yml", _YAML_KEY, _yaml_value),
    CommitFile(".github/workflows/wheels.yml", _YAML_KEY, _yaml_value),
    CommitFile(".travis.yml", _SHELL_ITEM, _same),
    CommitFile("appveyor.yml", _YAML_KEY, _yaml_value),
    CommitFile("scripts/numpy_wheels/data/settings.mk", _MAKE_DEFAULT, _same),
)


def check_commit(commit: str, name: str = "COMMIT") -> str:
    """Return ``commit`` if it can be a git ref; raise ConfigurationError otherwise
    (a ref such as ``--upload-pack=...`` would be an option to git)."""
    if not commit:
        raise ConfigurationError(
            "COMMIT is empty; call it as: make set-commit COMMIT=vX.Y.Z (a tag, branch or hash)"
        )
    bad = (
        not _COMMIT_RE.fullmatch(commit)
        or ".." in commit
        or "//" in commit
        or commit.endswith(("/", ".", ".lock"))
    )
    if bad:
        raise ConfigurationError(
            f"{name} {commit!r} is not a git tag, branch or hash "
            "(letters, digits and . _ / + - only, starting with a letter or digit)"
        )
    return commit


def rewrite(text: str, target: CommitFile, commit: str) -> tuple[str, str]:
    """Return (new text, old value) with the one BUILD_COMMIT definition set to ``commit``."""
    lines = text.splitlines(keepends=True)
    hits = []
    for number, line in enumerate(lines):
        match = target.pattern.match(line.rstrip("\r\n"))
        if match:
            hits.append((number, match))
    if len(hits) != 1:
        found = "no" if not hits else f"{len(hits)}"
        lines_at = ", ".join(str(n + 1) for n, _ in hits)
        where = f" (lines {lines_at})" if hits else ""
        raise FatalError(
            f"{target.path}: expected one BUILD_COMMIT definition, found {found}{where}"
        )
    number, match = hits[0]
    line = lines[number]
    ending = line[len(line.rstrip("\r\n")) :]
    quote = match["q"]
    value = f"{quote}{commit}{quote}" if quote else target.quote(commit)
    lines[number] = f"{match['head']}{value}{match['tail']}{ending}"
    return "".join(lines), match["value"]


def set_commit(root: Path, commit: str) -> list[tuple[str, str]]:
    """Set BUILD_COMMIT in every target under ``root``; return [(path, old value)]."""
    planned = []
    for target in TARGETS:
        path = root / target.path
        try:
            text = path.read_bytes().decode("utf-8")  # keeps CRLF line endings as they are
        except FileNotFoundError:
            raise FatalError(f"{target.path}: file not found under {root}") from None
        new_text, old = rewrite(text, target, commit)
        planned.append((path, target.path, text, new_text, old))
    results = []
    for path, name, text, new_text, old in planned:
        if new_text != text:
            mode = path.stat().st_mode & 0o777
            with atomic_write(path, "wb") as out:
                out.write(new_text.encode("utf-8"))
            path.chmod(mode)  # atomic_write's temporary file starts as 0600
        results.append((name, old))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Rewrite BUILD_COMMIT in every CI file and its default (settings.mk).",
        epilog="Usually called as: make set-commit COMMIT=vX.Y.Z. Exit status: 0 files "
        "rewritten (or already right), 1 a file could not be rewritten, 2 a bad ref.",
    )
    parser.add_argument("commit", help="NumPy tag, branch or hash to build (e.g. v2.4.7)")
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="checkout whose files are rewritten (default: this toolkit's)",
    )
    add_verbosity_options(parser)
    add_version_option(parser)
    args = parser.parse_args(argv)
    set_verbosity(args.verbose, args.quiet)
    commit = check_commit(args.commit.strip())
    log(f"setting BUILD_COMMIT={commit} under {args.root}", verbose_only=True)
    for name, old in set_commit(args.root, commit):
        state = "unchanged" if old == commit else f"{old} -> {commit}"
        print(f"{name}: BUILD_COMMIT {state}")
    return 0


if __name__ == "__main__":
    run_main(main, PROG)
