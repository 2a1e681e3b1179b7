"""Output: stdlib ``logging`` to stderr, CI folds, colour, and the outer ``main``.

stdout is for results, stderr for progress and diagnostics.  Verbosity is the
level of the one ``numpy_wheels`` logger: ``-q``/``NW_QUIET`` shows warnings and
errors only, ``-v``/``NW_VERBOSE`` adds debug lines.  ``step(title)`` folds the
lines of a step in the CI's own syntax (GitHub Actions ``::group::``, Azure
Pipelines ``##[group]``, Travis ``travis_fold``; ``==> title`` elsewhere) and ends it
with its time.  ``colour`` is the one rule for colour (a terminal, never with NO_COLOR);
``ci_error`` the one way to annotate (GitHub ``::error``, Azure ``##vso[task.logissue]``);
``step_summary`` the one writer of GitHub's job summary ($GITHUB_STEP_SUMMARY).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from .errors import FatalError

__all__ = [
    "CIFormatter",
    "add_verbosity_options",
    "add_version_option",
    "ci_error",
    "ci_kind",
    "colour",
    "is_quiet",
    "is_verbose",
    "log",
    "logger",
    "markdown_table",
    "plain_output",
    "plural",
    "run_main",
    "set_verbosity",
    "step",
    "step_summary",
    "toolkit_version",
]

# There is only one stderr per process, so one logger for the whole toolkit.
logger = logging.getLogger("numpy_wheels")


def ci_kind() -> str | None:
    """The CI service this runs on, by the variables each one sets: github, azure, travis."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        return "github"
    if os.environ.get("TF_BUILD"):
        return "azure"
    if os.environ.get("TRAVIS") == "true":
        return "travis"
    return None


def _escape_data(text: str) -> str:
    """GitHub workflow-command escaping of a command's data."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


class CIFormatter(logging.Formatter):
    """Plain ``message`` lines; a record with ``fold`` ("start"/"end") becomes the CI's
    group marker around its message (``fold_id`` names a Travis fold)."""

    def __init__(self, kind: str | None = None) -> None:
        super().__init__("%(message)s")
        self.kind = kind

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fold = getattr(record, "fold", None)
        if fold is None:
            return text
        kind = self.kind if self.kind is not None else ci_kind()
        fid = getattr(record, "fold_id", "step")
        if fold == "start":
            return {
                "github": f"::group::{_escape_data(text)}",
                "azure": f"##[group]{text}",
                "travis": f"travis_fold:start:{fid}\r\033[0K{text}",
            }.get(kind or "", f"==> {text}")
        end = {
            "github": "::endgroup::",
            "azure": "##[endgroup]",
            "travis": f"travis_fold:end:{fid}\r\033[0K",
        }.get(kind or "")
        return f"{text}\n{end}" if end else text


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (a test's capture, rich's live display)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:  # StreamHandler.__init__ sets it
        pass


_state = {"verbose": False, "quiet": False}


def set_verbosity(verbose: bool | None = None, quiet: bool | None = None) -> None:
    """Set either flag (None keeps it); quiet wins over verbose."""
    if verbose is not None:
        _state["verbose"] = bool(verbose)
    if quiet is not None:
        _state["quiet"] = bool(quiet)
    level = logging.DEBUG if _state["verbose"] else logging.INFO
    logger.setLevel(logging.WARNING if _state["quiet"] else level)


def is_verbose() -> bool:
    return _state["verbose"]


def is_quiet() -> bool:
    return _state["quiet"]


def _install() -> None:
    """The handler, once, and the level from NW_VERBOSE/NW_QUIET (as the old flags had)."""
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(CIFormatter())
        logger.addHandler(handler)
        logger.propagate = False  # never twice through a root handler someone else set
    set_verbosity(bool(os.environ.get("NW_VERBOSE")), bool(os.environ.get("NW_QUIET")))


_install()


def log(message: str, *, verbose_only: bool = False) -> None:
    """Progress (info) or, with ``verbose_only``, a debug line; to stderr."""
    logger.log(logging.DEBUG if verbose_only else logging.INFO, message)


def add_verbosity_options(parser: Any) -> None:
    """``-v``/``-q`` (defaults from NW_VERBOSE/NW_QUIET); apply with ``set_verbosity``."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        default=bool(os.environ.get("NW_VERBOSE")),
                        help="more detail on stderr (NW_VERBOSE)")  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true",
                        default=bool(os.environ.get("NW_QUIET")),
                        help="only warnings, errors and results (NW_QUIET)")  # fmt: skip


def _ticks() -> tuple[str, str]:
    encoding = (getattr(sys.stderr, "encoding", None) or "").lower().replace("-", "")
    return ("✓", "✕") if encoding == "utf8" else ("done", "failed")


_fold_count = [0]


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """Fold the lines of a step (on a CI that folds) and end it with ``✓ 1.23s``/``✕``."""
    _fold_count[0] += 1
    sys.stdout.flush()  # the step's own output (stdout) stays inside its fold
    fid = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', title)[:40].strip('_')}.{_fold_count[0]}"
    logger.info(title, extra={"fold": "start", "fold_id": fid})
    start = time.monotonic()
    ok = False
    try:
        yield
        ok = True
    finally:
        good, bad = _ticks()
        mark = colour("PASS" if ok else "FAIL", sys.stderr, good if ok else bad)
        secs = f"{time.monotonic() - start:.2f}s"
        sys.stdout.flush()
        logger.info(f"{mark} {secs:>8}", extra={"fold": "end", "fold_id": fid})


def toolkit_version() -> str:
    """The one version of the whole toolkit: the installed metadata, else pyproject.toml."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numpy-wheels-toolkit")
    except PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


def add_version_option(parser: Any) -> None:
    """``--version``: the program name and the toolkit's version (argparse)."""
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s (numpy-wheels-toolkit) {toolkit_version()}",
    )


_COLOURS = {"PASS": "32", "FAIL": "31", "ERROR": "31", "WARN": "33", "passed": "32",
            "failed": "31"}  # fmt: skip


def plain_output(stream: IO[str] | None = None) -> bool:
    """Whether output is plain (no bar, no colour): not a terminal, or NO_COLOR/CI set."""
    stream = stream or sys.stderr
    if os.environ.get("NO_COLOR") or os.environ.get("CI"):
        return True
    return not (hasattr(stream, "isatty") and stream.isatty())


def colour(word: str, stream: IO[str] | None = None, text: str | None = None) -> str:
    """``text`` (default ``word``) coloured for PASS/FAIL/WARN on a terminal.

    Plain where progress is plain (``plain_output``); NO_COLOR (https://no-color.org)
    always wins; FORCE_COLOR colours a pipe or a CI log too.
    """
    text = word if text is None else text
    if os.environ.get("NO_COLOR") or word not in _COLOURS:
        return text
    if not os.environ.get("FORCE_COLOR") and plain_output(stream or sys.stdout):
        return text
    return f"\033[{_COLOURS[word]}m{text}\033[0m"


def ci_error(message: str, title: str = "", *, level: str = "error",
             stream: IO[str] | None = None) -> None:  # fmt: skip
    """An annotation (``level`` error or warning) in the CI's own syntax (GitHub Actions,
    Azure Pipelines), on ``stream`` (default stdout; stderr where stdout is a document)."""
    first = message.strip().splitlines()[0] if message.strip() else title
    kind = ci_kind()
    out = stream or sys.stdout
    if kind == "github":
        # also : and , escaped in properties
        prop = _escape_data(title).replace(":", "%3A").replace(",", "%2C")
        print(f"::{level}{' title=' + prop if title else ''}::{_escape_data(first)}",
              file=out, flush=True)  # fmt: skip
    elif kind == "azure":
        print(f"##vso[task.logissue type={level}]{first}", file=out, flush=True)


def plural(count: int, noun: str) -> str:
    """``1 file``, ``3 files``: a count and its noun (nouns with a plain -s plural)."""
    return f"{count} {noun}{'s' * (count != 1)}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table; a ``|`` or newline in a cell cannot break it."""

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(cell, row)) + " |" for row in rows]


def step_summary(lines: list[str]) -> None:
    """Append Markdown to GitHub Actions' job summary ($GITHUB_STEP_SUMMARY) when set.

    The summary is a courtesy: a file that cannot be written is a warning, never a failure.
    """
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    try:
        with open(target, "a", encoding="utf-8") as out:
            out.write("\n".join([*lines, "", ""]))
    except OSError as exc:
        logger.warning(f"GITHUB_STEP_SUMMARY {target}: cannot append: {exc.strerror}")


def run_main(main: Callable[[list[str] | None], int], prog: str) -> None:
    """Call ``main`` and turn expected errors into one line and an exit code."""
    try:
        code = main(None)
    except FatalError as exc:
        logger.error(f"{prog}: error: {exc}")
        ci_error(str(exc), prog)
        code = exc.return_code
    except KeyboardInterrupt:
        logger.error(f"{prog}: interrupted")
        code = 130
    sys.exit(code)
