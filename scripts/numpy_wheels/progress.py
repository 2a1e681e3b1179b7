"""The progress display of downloads, drawn by rich on stderr.

On a terminal: a bar per file under way (several at once with ``-j``) and,
for more than one file, an overall bar; a finished file leaves one line.
Elsewhere (a pipe, a log file) and whenever ``NO_COLOR`` or ``CI`` is set:
no bars, only that one plain line per file.  ``-q`` shows neither.

    with Transfers(files=len(todo), total_bytes=sum(sizes)) as shown:
        ...  # in each worker thread:
        download(url, dest, progress=shown)
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from .files import human_size
from .log import is_quiet, log, plain_output

__all__ = ["FileBar", "Transfers", "plain_output"]


class Transfers:
    """The display of a set of downloads (a context manager; thread-safe).

    ``files`` and ``total_bytes`` (None: not known) size the overall bar, shown
    when there is more than one file; ``enabled=False`` shows nothing at all,
    ``lines=False`` no plain lines (bars on a terminal only); ``verb`` starts the
    line of a finished file.
    """

    # The live display of this process, if any: rich draws one at a time.
    _active: Transfers | None = None

    def __init__(self, files: int = 1, total_bytes: int | None = None, *,
                 enabled: bool = True, lines: bool = True,
                 verb: str = "downloaded") -> None:  # fmt: skip
        self.files, self.total_bytes, self.verb = files, total_bytes, verb
        self.done_files = 0
        self.quiet = is_quiet() or not enabled
        self.plain = self.quiet or plain_output() or Transfers._active is not None
        self.lines = lines or not self.plain
        self._lock = threading.Lock()
        self._rich: Any = None
        self._overall: Any = None

    def __enter__(self) -> Transfers:
        if not self.plain:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._rich = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                redirect_stdout=False,  # stdout is for results, never drawn on stderr
            )
            self._rich.start()
            Transfers._active = self
            if self.files > 1:
                self._overall = self._rich.add_task(self._overall_text(), total=self.total_bytes)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
            Transfers._active = None

    def _overall_text(self) -> str:
        return f"{self.done_files}/{self.files} files"

    def file(self, name: str) -> FileBar:
        """The bar of one file (drawn from its first ``start``)."""
        return FileBar(self, name)

    # called by FileBar, under the display's own lock where rich is not enough
    def _finished(self, bar: FileBar, ok: bool) -> None:
        with self._lock:
            self.done_files += ok
        if self._rich is not None:
            if bar.task is not None:
                self._rich.remove_task(bar.task)
            if self._overall is not None:
                self._rich.update(self._overall, description=self._overall_text())
        if ok and self.lines and not self.quiet:
            secs = time.monotonic() - bar.started
            log(f"{self.verb} {bar.name} ({human_size(bar.done)} in {secs:.1f} s)")


class FileBar:
    """One file's share of a ``Transfers`` display."""

    def __init__(self, shown: Transfers, name: str) -> None:
        self.shown, self.name = shown, name
        self.task: Any = None
        self.done = 0
        self.started = time.monotonic()

    def start(self, total: int | None, done: int = 0) -> None:
        """A (new) attempt: ``done`` bytes are already there (a resumed ``.part``)."""
        rich = self.shown._rich
        if rich is not None:
            if self.task is None:
                self.task = rich.add_task(self.name[:40], total=total, completed=done)
            else:
                rich.update(self.task, total=total, completed=done)
            if self.shown._overall is not None:
                rich.advance(self.shown._overall, done - self.done)
        self.done = done

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        rich = self.shown._rich
        if rich is not None:
            rich.advance(self.task, nbytes)
            if self.shown._overall is not None:
                rich.advance(self.shown._overall, nbytes)

    def finish(self, ok: bool = True) -> None:
        """The file is complete and verified (one line), or failed for good (no line)."""
        self.shown._finished(self, ok)
