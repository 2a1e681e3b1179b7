"""Upload each file exactly once: the target's simple page is read first; a file
already there with the same sha256 is left alone, one with another sha256 stops
the run (nothing is ever overwritten), the rest goes to twine, wheels first.

``--dry-run`` reads the target the same way (GET only) and says, per file,
whether it would be uploaded or is already there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ..errors import ConfigurationError, FatalError
from ..files import error_reason, file_hash, mask_credentials, printable, sanitize_url
from ..limits import limit, read_body
from ..log import log
from ..progress import FileBar, Transfers
from . import attestations
from .select import dist_key, identity, plain_name, upload_order
from .sources import HTTPPageError, RemoteFile, fetch_page, page_session, parse_simple, unreachable
from .summary import PRESENT, UPLOADED, WOULD_UPLOAD
from .target import UploadTarget, find_twine

_LOGIN_REFUSED = re.compile(r"\b(401|403)\b|Credential not found|NonInteractive", re.IGNORECASE)


class UploadError(FatalError):
    """The index or twine refused a file; the run stops there."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def existing_files(session: Any, target: UploadTarget, project: str,
                   timeout: float) -> dict[tuple[object, ...], RemoteFile]:  # fmt: skip
    """The project's files on the target index, by :func:`dist_key` (not by spelling)."""
    from packaging.utils import canonicalize_name

    url = urljoin(target.simple_url, f"{canonicalize_name(project)}/")
    try:
        page = fetch_page(session, url, timeout=timeout, auth=target.auth_for(url))
    except HTTPPageError as exc:
        if exc.status in (401, 403):
            raise HTTPPageError(f"{exc}; {target.login_hint()}", exc.status) from None
        raise
    if page is None:
        return {}
    keyed = ((dist_key(plain_name(f.name)), f) for f in parse_simple(page, project))
    return {key: f for key, f in keyed if key is not None}


def remote_sha256(session: Any, rf: RemoteFile, target: UploadTarget, timeout: float) -> str:
    """sha256 of a file on the index: from its page, else by reading the file (with
    the index's credentials only when the file is on the index's own origin)."""
    import requests

    if rf.sha256:
        return rf.sha256
    shown = sanitize_url(rf.url)
    digest = hashlib.sha256()
    deadline = time.monotonic() + limit("NW_REQUEST_DEADLINE")
    most = limit("NW_MAX_DOWNLOAD_BYTES")
    try:
        with session.get(rf.url, stream=True, auth=target.auth_for(rf.url),
                         timeout=timeout) as resp:  # fmt: skip
            if resp.status_code >= 400:
                reason = printable(resp.reason or "", 80)
                raise FatalError(f"cannot read {shown}: HTTP {resp.status_code} {reason}")
            read_body(resp, digest.update, most=most, deadline=deadline, shown=shown)
    except requests.ConnectionError as exc:
        raise unreachable(rf.url, exc) from None
    except (requests.RequestException, OSError) as exc:
        raise FatalError(f"cannot read {shown}: {error_reason(exc)}") from None
    return digest.hexdigest()


def twine_failure(output: str, target: UploadTarget) -> str:
    """The one line of twine's output that says why it failed, URLs masked, and the
    next step when the index wanted a login."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    pick = next((ln for ln in lines if ln.startswith("ERROR")), lines[-1] if lines else "")
    pick = re.sub(r"^ERROR\s+", "", pick)
    reason = printable(mask_credentials(pick), 500).rstrip(".") or "twine failed"
    host = re.search(r"host='([^']+)', port=(\d+)", pick)
    if host and "ConnectionError" in pick.split(":", 1)[0]:  # urllib3's repr chain: host, why
        lowered = pick.lower()
        why = "connection refused" if "refused" in lowered else (
            "host name not resolved" if "resolve" in lowered or "not known" in lowered
            else "connection failed")  # fmt: skip
        return f"cannot reach {host[1]}:{host[2]}: {why}"
    return f"{reason}; {target.login_hint()}" if _LOGIN_REFUSED.search(pick) else reason


def _twine_command(target: UploadTarget, *, sign: bool, identity_: str | None, dry_run: bool,
                   verbose: bool) -> list[str]:  # fmt: skip
    twine = "twine" if dry_run else find_twine()
    base = [twine, "--no-color", "upload", "--non-interactive", *target.twine_args]
    if not verbose:
        base.append("--disable-progress-bar")
    if sign:
        base += ["--sign", *(["--identity", identity_] if identity_ else [])]
    return base


# Run as twine's own console script does, after making its upload body (a
# requests_toolbelt MultipartEncoderMonitor) also report "bytes-read total" per read
# on the descriptor NW_UPLOAD_PROGRESS_FD: the bytes sent, counted where twine's own
# bar counts them.  Output, exit status and errors stay twine's.
_TWINE_COUNTING_BYTES = """
import os, sys
if sys.path and sys.path[0] == "":
    del sys.path[0]  # -c puts the working directory first; a console script does not
fd = int(os.environ.pop("NW_UPLOAD_PROGRESS_FD"))
os.set_inheritable(fd, False)  # not for gpg or keyring helpers
try:
    from requests_toolbelt import MultipartEncoderMonitor as Monitor
    plain_read = Monitor.read
    def read(self, *args, **kwargs):
        chunk = plain_read(self, *args, **kwargs)
        try:
            os.write(fd, b"%d %d\\n" % (self.bytes_read, self.len))
        except OSError:
            pass  # nobody is watching any more: the upload goes on
        return chunk
    Monitor.read = read
except Exception:
    pass  # another twine: no bar, the upload as usual
sys.argv[0] = "twine"
from twine.__main__ import main
sys.exit(main())
"""


def _python_of(script: str) -> str | None:
    """The interpreter on the #! line of a console script, when that is a Python."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline(512)
    except OSError:
        return None
    words = first[2:].split() if first.startswith(b"#!") else []
    found = os.fsdecode(words[0]) if words else ""
    return found if Path(found).name.startswith("python") and os.access(found, os.X_OK) else None


def _follow(feed: Any, bar: FileBar) -> None:
    """Draw the "bytes-read total" lines of an upload on its bar (a reader thread)."""
    sent = -1
    for line in feed:
        try:
            done, total = map(int, line.split())
        except ValueError:
            continue
        if done < sent:  # twine posts again (a redirect or a 5xx retry): a new attempt
            sent = -1
        if sent < 0:
            bar.start(total, done)
        else:
            bar.advance(done - sent)
        sent = done


def _run_twine(cmd: list[str], env: dict[str, str], name: str) -> subprocess.CompletedProcess:
    """twine's run, output captured; on a terminal (progress.py's rule) a bar of the
    bytes sent is drawn meanwhile, when twine runs on a Python this can hook."""
    with Transfers(lines=False, verb="uploaded") as shown:
        python = None if shown.plain else _python_of(cmd[0])
        if python is None:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, env=env)  # fmt: skip
        bar = shown.file(name)
        read_end, write_end = os.pipe()
        with os.fdopen(read_end, "rb") as feed:
            try:
                proc = subprocess.Popen(
                    [python, "-c", _TWINE_COUNTING_BYTES, *cmd[1:]],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, env={**env, "NW_UPLOAD_PROGRESS_FD": str(write_end)},
                    pass_fds=(write_end,),
                )  # fmt: skip
            finally:
                os.close(write_end)  # the reader sees the end when twine exits
            reader = threading.Thread(target=_follow, args=(feed, bar), daemon=True)
            reader.start()
            try:
                out, err = proc.communicate()
            except BaseException:  # as subprocess.run does: no twine left running
                proc.kill()
                proc.wait()
                raise
            reader.join(timeout=5)
        bar.finish(proc.returncode == 0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def upload_exactly_once(
    paths: Iterable[Path],
    target: UploadTarget,
    *,
    hashes: Mapping[Path, str | None] | None = None,
    sign: bool = False,
    identity: str | None = None,
    dry_run: bool = False,
    verbose: bool = False,
    timeout: float = 30.0,
) -> Iterator[tuple[Path, str]]:
    """Upload each file with twine unless the index already has it; yield (path, status).

    status is ``uploaded``, ``already there`` (same sha256) or, with ``dry_run``,
    ``would upload``.  ``hashes`` gives sha256s already known (a file not
    downloaded yet under ``dry_run``).  A file there with a different sha256, or a
    refused upload, raises UploadError: the run stops and nothing is overwritten.
    Re-running after an interruption uploads only what is missing.
    """
    hashes = hashes or {}
    base = _twine_command(target, sign=sign, identity_=identity, dry_run=dry_run,
                          verbose=verbose)  # fmt: skip
    session = page_session(3)
    listings: dict[str, dict[tuple[object, ...], RemoteFile]] = {}
    try:
        for path in upload_order(paths):
            cmd = [*base, *attestations.twine_inputs(path)]
            shown = shlex.join(sanitize_url(a) for a in cmd)
            status = _already_there(session, path, hashes, listings, target, timeout, dry_run)
            if status:
                if dry_run:
                    print(f"already there: {path.name}")
                yield path, status
                continue
            if dry_run:
                print(f"would upload: {path.name}")
                print(f"+ {shown}")
                yield path, WOULD_UPLOAD
                continue
            if sign:
                Path(f"{path}.asc").unlink(missing_ok=True)  # twine's gpg will not overwrite
            log(f"+ {shown}")
            env = {**os.environ, "COLUMNS": "400", **dict(target.twine_env)}  # no wrapped errors
            proc = _run_twine(cmd, env, path.name)
            if verbose or proc.returncode:
                for line in (proc.stdout + proc.stderr).splitlines():
                    log(f"  twine: {line}", verbose_only=not proc.returncode and verbose)
            if proc.returncode:
                why = twine_failure(proc.stdout + proc.stderr, target)
                raise UploadError(f"upload of {path.name} failed: {why}", path)
            yield path, UPLOADED
    finally:
        session.close()


def _already_there(
    session: Any,
    path: Path,
    hashes: Mapping[Path, str | None],
    listings: dict,
    target: UploadTarget,
    timeout: float,
    dry_run: bool = False,
) -> str | None:
    """PRESENT when the target holds this distribution with the same bytes, None when
    it does not hold it; UploadError when it holds other bytes under that name."""
    ident = identity(path.name)
    if ident is None:
        raise ConfigurationError(f"{path}: not a wheel or sdist file name")
    if ident[0] not in listings:
        try:
            listings[ident[0]] = existing_files(session, target, ident[0], timeout)
        except HTTPPageError as exc:  # --dry-run with no login to read: show what would run
            if not (dry_run and exc.status in (401, 403) and not target.auth):
                raise
            log(f"cannot query {target.shown} without a login (HTTP {exc.status}); a real run "
                f"uploads only the files not there yet ({target.login_hint()})")  # fmt: skip
            listings[ident[0]] = {}
    there = listings[ident[0]].get(dist_key(path.name))
    if there is None:
        return None
    ours = hashes.get(path) or (file_hash(path) if path.exists() else None)
    spelled = printable(plain_name(there.name), 120)
    alias = f" as {spelled}" if spelled != path.name else ""
    if ours is None:  # --dry-run, not downloaded, no sha256 staged: cannot compare
        log(f"{path.name}: on {target.shown}{alias}; not compared (no sha256 known yet)")
        return PRESENT
    theirs = remote_sha256(session, there, target, timeout)
    if theirs != ours:
        raise UploadError(
            f"{path.name} is already on {target.shown}{alias} with sha256 {theirs}, "
            f"ours is {ours}; stopping, nothing overwritten",
            path,
        )
    log(f"{path.name}: already on {target.shown}{alias} (same sha256), skipped")
    return PRESENT
