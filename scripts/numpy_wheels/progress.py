"""Progress of downloads on stderr."""

from __future__ import annotations

import sys
import time


class FileBar:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, name: str, total: int | None, enabled: bool, done: int = 0) -> None:
        self.name, self.total, self.done = name, total, done
        self.enabled = enabled
        self._last = 0.0

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if self.enabled and now - self._last > 0.1:
            self._last = now
            self._draw()

    def _draw(self, end: str = "") -> None:
        mib = self.done / 2**20
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"{self.name[:40]:40} [{bar:30}] {mib:7.1f} MiB {frac:4.0%}"
        else:
            text = f"{self.name[:40]:40} {mib:7.1f} MiB"
        sys.stderr.write("\r" + text + end)
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw("\n")


def file_bar(name: str, total: int | None, progress: bool | None, done: int = 0) -> FileBar:
    """The bar of one download: ``progress`` forces it on or off; by default on a
    terminal for a file of unknown size or above 4 MiB."""
    if progress is None:
        progress = sys.stderr.isatty() and (total is None or total > 4 * 2**20)
    return FileBar(name, total, progress, done)
