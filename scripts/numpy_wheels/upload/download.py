"""Fetch the chosen files into the wheelhouse: ``-j`` at a time, each worker on
its own kept-alive connection, resumable (``.part``), verified, then renamed.

A file already in the wheelhouse is checked by size and hash against the
listing, never fetched again (``-c`` re-fetches).  The hash of a file this tool
read before is recalled from the file's own xattr while its size and mtime are
those it had then (:func:`recalled`), so a re-run reads no file again.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
from pathlib import Path

from ..errors import DownloadError, FatalError, HTTPStatusError
from ..files import file_hash, sanitize_url
from ..log import log
from ..net import CANCEL, download
from ..progress import Transfers
from .sources import RemoteFile, page_session
from .summary import Entry
from .verify import verify_dist

# where a verified file keeps its sha256, size and mtime (see remember_digest)
DIGEST_XATTR = "user.numpy_wheels.sha256"


def remember_digest(path: Path, sha256: str, st: os.stat_result | None = None) -> None:
    """Keep the sha256 of a file's bytes on the file itself (a Linux user xattr), with
    the size and mtime they had (``st``, taken before they were read), so that a re-run
    need not read them again (:func:`recalled`).  Where xattrs are not supported
    nothing is kept, and every run hashes."""
    with contextlib.suppress(AttributeError, OSError):  # no os.setxattr, or not here
        st = st or path.stat()
        os.setxattr(path, DIGEST_XATTR, f"{sha256} {st.st_size} {st.st_mtime_ns}".encode())


def recalled(path: Path, st: os.stat_result) -> str | None:
    """The sha256 :func:`remember_digest` kept, if the file is still the one it read:
    same inode (an xattr stays with its inode), size and mtime.  Not on a filesystem
    with whole-second timestamps, where a rewrite within that second would go unseen."""
    if not st.st_mtime_ns % 1_000_000_000:
        return None
    try:
        sha256, size, mtime_ns = os.getxattr(path, DIGEST_XATTR).decode("ascii").split()
    except (AttributeError, OSError, ValueError):  # none kept, or not readable as kept
        return None
    return sha256 if (size, mtime_ns) == (str(st.st_size), str(st.st_mtime_ns)) else None


def check_local(path: Path, rf: RemoteFile) -> str:
    """Verify a file already in the wheelhouse against the listing; return its sha256."""
    st = path.stat()
    if rf.size is not None and st.st_size != rf.size:
        raise DownloadError(f"size {st.st_size} != {rf.size}")
    digest = recalled(path, st)
    if digest is None:
        digest = file_hash(path)
        remember_digest(path, digest, st)
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
    remember_digest(entry.path, entry.sha256)
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
