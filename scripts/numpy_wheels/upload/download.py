"""Fetch the chosen files into the wheelhouse: ``-j`` at a time, each worker on
its own kept-alive connection, resumable (``.part``), verified, then renamed.

A file already in the wheelhouse is checked by size and hash against the
listing, never fetched again (``-c`` re-fetches).  Its bytes are hashed on every
run: nothing on disk vouches for a file but its own bytes.
"""

from __future__ import annotations

import functools
import queue
import threading
from pathlib import Path

from ..errors import DownloadError, FatalError, HTTPStatusError
from ..files import file_hash, sanitize_url
from ..limits import CANCEL
from ..log import log
from ..net import download
from ..progress import Transfers
from .sources import RemoteFile, page_session
from .summary import Entry
from .verify import verify_dist


def check_local(path: Path, rf: RemoteFile) -> str:
    """Verify a file already in the wheelhouse against the listing; return its sha256."""
    st = path.stat()
    if rf.size is not None and st.st_size != rf.size:
        raise DownloadError(f"size {st.st_size} != {rf.size}")
    digest = file_hash(path)
    if rf.sha256 and digest != rf.sha256:
        raise DownloadError("sha256 differs from the staging location's")
    if rf.md5 and not rf.sha256 and file_hash(path, "md5") != rf.md5:
        raise DownloadError("md5 differs from the staging location's")
    verify_dist(path, rf.name, deep=not (rf.sha256 or rf.md5))
    return digest


def find_present(entries: list[Entry], *, jobs: int) -> list[Entry]:
    """Mark each entry whose file is in the wheelhouse already and verified (by size,
    hash and contents, never fetched again) as "cached"; return the others."""
    from concurrent.futures import ThreadPoolExecutor

    def present(entry: Entry) -> bool:
        assert entry.remote is not None
        if not entry.path.exists():
            return False
        try:
            entry.sha256 = check_local(entry.path, entry.remote)
        except DownloadError as exc:
            log(f"{entry.name}: the copy in the wheelhouse fails verification ({exc}); "
                "refetching")  # fmt: skip
            return False
        entry.download, entry.verified = "cached", "ok"
        log(f"{entry.name}: present and verified, not downloading", verbose_only=True)
        return True

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # hashlib frees the GIL
        found = list(pool.map(present, entries))
    return [e for e, there in zip(entries, found, strict=True) if not there]


def fetch(entry: Entry, *, timeout: float, retries: int, progress: Transfers | bool | None,
          session=None,
          allow_insecure: bool = False) -> Entry:  # fmt: skip
    """Download one file into the wheelhouse; a failure is recorded on the entry."""
    rf = entry.remote
    assert rf is not None
    log(f"downloading {sanitize_url(rf.url)}", verbose_only=True)
    # The download resumes the .part an interrupted run left; that copy may be of a
    # file since re-staged (anaconda upload --force), so a resumed file failing its
    # checks is fetched once more from the start.
    resuming = entry.path.with_name(entry.path.name + ".part").exists()
    get = functools.partial(
        download, rf.url, entry.path, sha256=rf.sha256,
        md5=None if rf.sha256 else rf.md5, size=rf.size, timeout=timeout, retries=retries,
        progress=progress, session=session, allow_insecure=allow_insecure,
        verify=lambda p: verify_dist(p, rf.name, deep=not (rf.sha256 or rf.md5)),
    )  # fmt: skip
    try:
        try:
            get()
        except HTTPStatusError:
            raise
        except DownloadError as exc:
            if not resuming:
                raise
            log(f"{rf.name}: the resumed download fails verification ({exc}); starting over")
            get(resume=False)
    except FatalError as exc:
        entry.download, entry.verified, entry.error = "failed", "no", str(exc)
        return entry
    entry.sha256 = rf.sha256 or file_hash(entry.path)  # rf.sha256 was just checked
    entry.download, entry.verified = "downloaded", "ok"
    return entry


def download_all(entries: list[Entry], *, jobs: int, clobber: bool, timeout: float,
                 retries: int, allow_insecure: bool = False) -> None:  # fmt: skip
    """Bring every entry into the wheelhouse, ``jobs`` files at a time: those present
    are verified in place, the rest downloaded; failures are recorded on the entries.

    Each worker keeps one session (one connection per host, reused file after
    file).  The workers are daemon threads and the main thread waits in short
    steps, so Ctrl-C ends the run at once (a worker stops at its next block; a
    ``.part`` stays to be resumed) instead of waiting for every download.
    """
    missing = entries if clobber else find_present(entries, jobs=jobs)
    total = len(missing)
    if not total:
        return
    sizes = [e.remote.size if e.remote else None for e in missing]
    known = None if None in sizes else sum(s or 0 for s in sizes)
    todo: queue.SimpleQueue[Entry] = queue.SimpleQueue()
    done: queue.SimpleQueue[Entry | BaseException] = queue.SimpleQueue()
    for e in missing:
        todo.put(e)

    def work(shown: Transfers) -> None:
        session = page_session(retries, allow_insecure)
        try:
            while not CANCEL.is_set():
                try:
                    entry = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put(fetch(entry, timeout=timeout, retries=retries,
                                   progress=shown, session=session,
                                   allow_insecure=allow_insecure))  # fmt: skip
                except BaseException as exc:  # a bug: handed to the main thread to raise
                    done.put(exc)
        finally:
            session.close()

    # a bar per file under way and an overall bar on a terminal, else a line per file
    with Transfers(files=total, total_bytes=known) as shown:
        for _ in range(min(jobs, total)):
            threading.Thread(target=work, args=(shown,), daemon=True).start()
        try:
            for _ in range(total):
                while True:
                    try:
                        got = done.get(timeout=0.2)
                        break
                    except queue.Empty:
                        continue
                if isinstance(got, BaseException):
                    raise got
        except BaseException:
            CANCEL.set()
            raise
