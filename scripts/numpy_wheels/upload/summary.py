"""What happened to each file: one :class:`Entry` per file, printed at the end as a
table and a line of counts (``3 uploaded, 3 already there, 0 failed``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..files import human_size
from ..log import colour, markdown_table, plural, step_summary
from .sources import RemoteFile

# upload column: what the target index got (or, with --dry-run, would get)
UPLOADED, PRESENT, FAILED, NOT_RUN = "uploaded", "already there", "failed", "not run"
WOULD_UPLOAD = "would upload"


@dataclass
class Entry:
    """One file of this run and what happened to it (a row of the summary)."""

    name: str
    path: Path
    remote: RemoteFile | None = None
    download: str = "-"
    verified: str = "-"
    upload: str = "-"
    error: str | None = None
    sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.upload not in (FAILED, NOT_RUN, "pending")


def _size(path: Path) -> str:
    try:
        return human_size(path.stat().st_size)
    except OSError:
        return "-"


def counts(entries: list[Entry], *, uploading: bool, dry_run: bool, paint: bool = False) -> str:
    """The end line: uploaded / already there / failed (``--dry-run``: would be
    uploaded), or with ``-n`` downloaded / already in the wheelhouse / failed; ``paint``
    colours the failures for stdout."""
    ups, downs = [e.upload for e in entries], [e.download for e in entries]
    not_run = ups.count(NOT_RUN)
    bad = sum(not e.ok for e in entries) - not_run
    failed = colour("FAIL", text=f"{bad} failed") if bad and paint else f"{bad} failed"
    failed += f", {not_run} not run" if not_run else ""
    if uploading:
        done = WOULD_UPLOAD if dry_run else UPLOADED
        shown = "would be uploaded" if dry_run else UPLOADED
        return f"{ups.count(done)} {shown}, {ups.count(PRESENT)} already there, {failed}"
    done = "would download" if dry_run else "downloaded"
    shown = "would be downloaded" if dry_run else "downloaded"
    present = downs.count("cached") + downs.count("present")
    return f"{downs.count(done)} {shown}, {present} already in the wheelhouse, {failed}"


def print_summary(entries: list[Entry], *, uploading: bool = True, dry_run: bool = False) -> None:
    """The table of files: what happened to each, its size and sha256 (stdout; on
    GitHub Actions also a table in the job summary)."""
    rows = [("file", "download", "verified", "upload", "size", "sha256")]
    for e in entries:
        rows.append((e.name, e.download, e.verified, e.upload, _size(e.path), e.sha256 or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    good = sum(e.ok for e in entries)
    ended = f"{good} of {plural(len(entries), 'file')} ended well"
    word = "PASS" if good == len(entries) else "FAIL"
    tally = counts(entries, uploading=uploading, dry_run=dry_run)
    painted = counts(entries, uploading=uploading, dry_run=dry_run, paint=True)
    print(f"{colour(word, text=ended)}: {painted}")
    table = markdown_table(rows[0][:4], ((f"`{r[0]}`", *r[1:4]) for r in rows[1:]))
    step_summary(["### wheel-uploader", "", *table, "", f"{ended}: {tally}"])
