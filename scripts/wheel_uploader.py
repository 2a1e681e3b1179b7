"""wheel-uploader: find staged wheels, download and verify them, upload each exactly once.

    wheel-uploader [-u URL] [-w DIR] [-t TYPE]... [-c] [-n] [-s] [-r REPO | --repository-url URL]
                   [-v] PROJECT VERSION
    wheel-uploader --files [--repository-url URL | -r REPO] [-s] [--dry-run] FILE...

The first form is MacPython/terryfy's ``wheel-uploader``: read the staging
location (an anaconda.org files page with its pagination, the anaconda.org JSON
files API, a PEP 503/691 simple index or a plain directory listing), download
every ``PROJECT-VERSION-*.whl`` that passes the type filter (in parallel, to a
temporary name, verified, then renamed), audit the wheels (check_wheel.py) and
upload them with twine.  The second form uploads local files only; `make stage`
uses it, so both share :func:`upload_exactly_once`: before each upload the
target index's simple page is read, a file already there with the same sha256
is skipped and one with a different sha256 stops the run.
"""

from __future__ import annotations

import argparse
import email.parser
import functools
import html.parser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

import nwlib

PROG = "wheel-uploader"

DEFAULT_STAGING = "https://pypi.anaconda.org/multibuild-wheels-staging/simple/{project}/"
SOURCE_KINDS = ("auto", "files-page", "api", "simple", "listing")
# PEP 691 JSON first, then the anaconda.org API's JSON, then HTML.
ACCEPT = "application/vnd.pypi.simple.v1+json, application/json;q=0.9, text/html;q=0.8"
HTML_TYPES = {"text/html", "application/xhtml+xml", "application/vnd.pypi.simple.v1+html"}
MAX_PAGES = 500
_HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}
_SHOWING = re.compile(r"showing\s+(\d+)\s+of\s+(\d+)", re.IGNORECASE)


class UploadError(nwlib.FatalError):
    """The index or twine refused a file; the run stops there."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


@dataclass
class RemoteFile:
    """One file offered by the staging location."""

    name: str
    url: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None


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
        return self.error is None and self.upload not in ("failed", "not run", "pending")


# ------------------------------------------------------------------------ listing


class _LinkParser(html.parser.HTMLParser):
    """Anchors (href, text) and the text outside anchors, of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[str | None, str]] = []
        self.texts: list[str] = []
        self._href: str | None = None
        self._parts: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._parts = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._parts is not None:
            self.anchors.append((self._href, "".join(self._parts).strip()))
            self._href, self._parts = None, None

    def handle_data(self, data: str) -> None:
        if self._parts is not None:
            self._parts.append(data)
        else:
            self.texts.append(data)


def _looks_like_dist(text: str) -> bool:
    return bool(text) and not any(c.isspace() for c in text) and text.endswith((".whl", ".tar.gz"))


def _hash_or_none(value: object, algorithm: str) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value if _HEX[algorithm].match(value) else None  # anaconda.org says "None" when absent


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_html(page_url: str, text: str) -> tuple[list[RemoteFile], tuple[int, int] | None]:
    """Files linked from an HTML page, and its "showing P of N" pagination if any.

    The file name is the anchor text when that is a distribution name (anaconda.org,
    simple indexes), else the last segment of the href (directory listings); a hash
    fragment (``#sha256=...``) is kept.  Without any such anchor, bare text nodes
    that are distribution names are taken as files beside the page (terryfy's
    Rackspace listing).
    """
    parser = _LinkParser()
    parser.feed(text)
    parser.close()
    files: list[RemoteFile] = []
    for href, label in parser.anchors:
        if not href:
            continue
        url = urljoin(page_url, href)
        parts = urlsplit(url)
        segment = unquote(parts.path.rsplit("/", 1)[-1])
        name = label if _looks_like_dist(label) else segment
        if not _looks_like_dist(name):
            continue
        fragment = dict(parse_qsl(parts.fragment))
        files.append(
            RemoteFile(
                name,
                urlunsplit(parts._replace(fragment="")),
                sha256=_hash_or_none(fragment.get("sha256"), "sha256"),
                md5=_hash_or_none(fragment.get("md5"), "md5"),
            )
        )
    if not files:
        for raw in parser.texts:
            name = raw.strip()
            if _looks_like_dist(name):
                files.append(RemoteFile(name, urljoin(page_url, quote(name))))
    showing = _SHOWING.search(" ".join(parser.texts))
    return files, (int(showing[1]), int(showing[2])) if showing else None


def parse_json(page_url: str, data: object) -> tuple[list[RemoteFile], str]:
    """Files of a PEP 691 project page or an anaconda.org files/package/release answer."""
    if isinstance(data, dict) and isinstance(data.get("meta"), dict) and "files" in data:
        files = []
        try:
            for item in data["files"]:
                hashes = item.get("hashes") or {}
                files.append(
                    RemoteFile(
                        str(item["filename"]),
                        urljoin(page_url, str(item["url"])),
                        sha256=_hash_or_none(hashes.get("sha256"), "sha256"),
                        md5=_hash_or_none(hashes.get("md5"), "md5"),
                        size=_int_or_none(item.get("size")),
                    )
                )
        except (AttributeError, KeyError, TypeError):
            raise nwlib.FatalError(
                f"{nwlib.sanitize_url(page_url)}: malformed PEP 691 project page"
            ) from None
        return files, "simple"
    items = data
    if isinstance(data, dict):
        items = data.get("files", data.get("distributions"))
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise nwlib.FatalError(
            f"{nwlib.sanitize_url(page_url)}: JSON is neither an anaconda.org file list "
            "nor a PEP 691 project page"
        )
    files = []
    for item in items:
        name = item.get("basename")
        if not isinstance(name, str):
            continue
        href = item.get("download_url") or item.get("url")
        if not isinstance(href, str):
            continue
        # download_url is protocol-relative ("//api.anaconda.org/download/..."): resolve it.
        files.append(
            RemoteFile(
                name,
                urljoin(page_url, href),
                sha256=_hash_or_none(item.get("sha256"), "sha256"),
                md5=_hash_or_none(item.get("md5"), "md5"),
                size=_int_or_none(item.get("size")),
            )
        )
    return files, "api"


def _page_session(retries: int, allow_insecure: bool = False):
    """A requests session that retries pages (connection errors, 429, 5xx) by itself,
    bounded in size and time, with the scheme rule on every redirect."""
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = nwlib.http_session(allow_insecure=allow_insecure)
    retry = Retry(
        total=retries,
        backoff_factor=0.25,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=("GET",),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"{PROG}/{nwlib.toolkit_version()}"
    return session


def _unreadable(shown: str, exc: Exception) -> nwlib.FatalError:
    """One line for a request that failed below HTTP (connection, timeout, reset)."""
    return nwlib.FatalError(f"cannot read {shown}: {nwlib.error_reason(exc)}")


def fetch_page(session, url: str, *, timeout: float, auth=None) -> tuple[str, object, str] | None:
    """GET a listing page: ("html", text, final_url), ("json", data, final_url), or None on 404."""
    import requests

    shown = nwlib.sanitize_url(url)
    try:
        resp = session.get(url, headers={"Accept": ACCEPT}, auth=auth, timeout=timeout)
    except requests.RequestException as exc:
        raise _unreadable(shown, exc) from None
    if resp.status_code == 404:
        return None
    if resp.status_code >= 400:
        reason = nwlib.printable(resp.reason or "", 80)
        raise nwlib.FatalError(f"cannot read {shown}: HTTP {resp.status_code} {reason}")
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    body = resp.text
    if not ctype:
        sniff = body.lstrip()[:1]
        ctype = "application/json" if sniff in ("{", "[") else "text/html" if sniff == "<" else ""
    if ctype.endswith("json"):
        try:
            return "json", json.loads(body), resp.url
        except ValueError:
            raise nwlib.FatalError(f"{shown}: invalid JSON") from None
    if ctype in HTML_TYPES:
        return "html", body, resp.url
    raise nwlib.FatalError(
        f"{shown}: expected an HTML or JSON page, got Content-Type "
        f"{nwlib.printable(ctype, 80) or 'unknown'!r}"
    )


def _with_page(url: str, page: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    query.append(("page", str(page)))
    return urlunsplit(parts._replace(query=urlencode(query), fragment=""))


def list_source(
    session, url: str, kind: str = "auto", timeout: float = 30.0
) -> tuple[list[RemoteFile], str]:
    """Every file the staging location lists (all pages), and the detected kind."""
    found: dict[str, RemoteFile] = {}
    seen: set[str] = set()
    detected = kind
    page_url = url
    for _ in range(MAX_PAGES):
        seen.add(page_url)
        got = fetch_page(session, page_url, timeout=timeout)
        if got is None:
            raise nwlib.NothingToDoError(
                f"no files: {nwlib.sanitize_url(page_url)}: HTTP 404 Not Found"
            )
        form, body, final = got
        paging = None
        if form == "json":
            if kind in ("files-page", "listing"):
                raise nwlib.FatalError(
                    f"{nwlib.sanitize_url(page_url)}: expected an HTML {kind}, got JSON"
                )
            files, detected = parse_json(final, body)
        else:
            if kind == "api":
                raise nwlib.FatalError(
                    f"{nwlib.sanitize_url(page_url)}: expected JSON from the anaconda.org API, "
                    "got HTML"
                )
            files, paging = parse_html(final, str(body))
            if kind == "auto":
                detected = "files-page" if paging else "simple" if "simple" in final else "listing"
        new = [f for f in files if f.name not in found]
        for rf in new:
            found[rf.name] = rf
        if detected != "files-page" or paging is None or not new:
            break
        page, pages = paging
        if page >= pages:
            break
        page_url = _with_page(final, page + 1)
        if page_url in seen:
            break
    return list(found.values()), detected


# ---------------------------------------------------------------------- selection


def normalize_version(version: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        raise nwlib.ConfigurationError(f"VERSION {version!r} is not a valid version") from None


def _dist_identity(name: str) -> tuple[str, str, str] | None:
    """(canonical project, normalized version, tag text) of a dist file name, or None."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if name.endswith(".whl"):
            project, version, _build, _tags = parse_wheel_filename(name)
            tags = "-".join(name[: -len(".whl")].split("-")[-3:]).lower()
            return project, str(version), tags
        project, version = parse_sdist_filename(name)
        return project, str(version), ""
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None


def _dist_key(name: str) -> tuple[object, ...] | None:
    """What makes two file names the same distribution on an index: project and
    version normalised, build tag and tag set for a wheel; one sdist per release."""
    from packaging.utils import parse_wheel_filename

    ident = _dist_identity(name)
    if ident is None:
        return None
    if not name.endswith(".whl"):
        return (*ident[:2], "sdist")
    _project, _version, build, tags = parse_wheel_filename(name)
    return (*ident[:2], build, tags)


def _plain_name(raw: str) -> str:
    return raw.replace("\\", "/").rsplit("/", 1)[-1]


def select_files(
    files: Iterable[RemoteFile],
    project: str,
    version: str,
    types: list[str],
    sdist: bool,
    where: str,
) -> list[RemoteFile]:
    """The files of PROJECT VERSION that pass the type filter, wheels first.

    Names are compared after PEP 503/440 normalisation; the version is exact; one
    distribution listed under several spellings is taken once (the first).  A
    matching name that is not a plain file name (``../x.whl``, ``a/b.whl``) is refused.
    """
    from packaging.utils import canonicalize_name

    want = (canonicalize_name(project), normalize_version(version))
    wanted_types = [t.lower() for t in types if t.lower() != "all"]
    if len(wanted_types) < len(types):
        wanted_types = []
    chosen: dict[tuple[object, ...] | None, RemoteFile] = {}
    for rf in files:
        base = _plain_name(rf.name)
        ident = _dist_identity(base)
        if ident is None or ident[:2] != want:
            continue
        if base.endswith(".whl"):
            if wanted_types and not any(t in ident[2] for t in wanted_types):
                continue
        elif not sdist:
            continue
        if rf.name != base or base.startswith("."):
            raise nwlib.FatalError(f"refusing {rf.name!r} listed at {where}: not a plain file name")
        nwlib.check_name(rf.name, f"a file listed at {where}")
        chosen.setdefault(_dist_key(base), rf)
    return sorted(chosen.values(), key=lambda f: (not f.name.endswith(".whl"), f.name))


# ------------------------------------------------------------------- verification


def verify_dist(path: Path, name: str | None = None, *, deep: bool = True) -> None:
    """Raise DownloadError unless ``path`` is a valid wheel (or sdist) matching its name.

    ``deep`` also checks every member's CRC (used when no hash was published).
    """
    name = name or path.name
    ident = _dist_identity(name)
    if ident is None:
        raise nwlib.DownloadError(f"{name} is not a wheel or sdist file name")
    if name.endswith(".whl"):
        meta = _wheel_metadata(path, name, deep)
    else:
        meta = _sdist_metadata(path, name)
    headers = email.parser.BytesParser().parsebytes(meta, headersonly=True)
    got = _dist_identity(f"{headers.get('Name', '')}-{headers.get('Version', '')}.tar.gz")
    if got is None or got[:2] != ident[:2]:
        raise nwlib.DownloadError(
            f"{name}: its metadata names {headers.get('Name')} {headers.get('Version')}, "
            "not the project and version of the file name"
        )


def _wheel_metadata(path: Path, name: str, deep: bool) -> bytes:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {n.split("/", 1)[0] for n in zf.namelist() if ".dist-info/" in n}
            infos = {d for d in infos if d.endswith(".dist-info")}
            if len(infos) != 1:
                raise nwlib.DownloadError(f"{name} is not a valid wheel: {len(infos)} .dist-info")
            info = infos.pop()
            try:
                zf.getinfo(f"{info}/WHEEL")
                meta = zf.read(f"{info}/METADATA")
            except KeyError as exc:
                raise nwlib.DownloadError(
                    f"{name} is not a valid wheel: no {exc.args[0]}"
                ) from None
            if deep and (bad := zf.testzip()) is not None:
                raise nwlib.DownloadError(f"{name} is not a valid wheel: {bad} is corrupt")
            return meta
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise nwlib.DownloadError(f"{name} is not a valid wheel: {exc}") from None


def _sdist_metadata(path: Path, name: str) -> bytes:
    top = name[: -len(".tar.gz")]
    try:
        with tarfile.open(path, "r:gz") as tar:
            info = tar.getmember(f"{top}/PKG-INFO")
            member = tar.extractfile(info)
            if member is None or info.size > 2**20:
                raise KeyError(f"{top}/PKG-INFO")
            return member.read()
    except (tarfile.TarError, OSError, EOFError, KeyError) as exc:
        raise nwlib.DownloadError(f"{name} is not a valid sdist: {exc}") from None


def _check_local(path: Path, rf: RemoteFile) -> str:
    """Verify a file already in the wheelhouse; return its sha256."""
    if rf.size is not None and path.stat().st_size != rf.size:
        raise nwlib.DownloadError(f"size {path.stat().st_size} != {rf.size}")
    digest = nwlib.file_hash(path)
    if rf.sha256 and digest != rf.sha256:
        raise nwlib.DownloadError("sha256 differs from the staging location's")
    if rf.md5 and not rf.sha256 and nwlib.file_hash(path, "md5") != rf.md5:
        raise nwlib.DownloadError("md5 differs from the staging location's")
    verify_dist(path, rf.name, deep=not (rf.sha256 or rf.md5))
    return digest


# ------------------------------------------------------------------------ download


def _fetch(
    entry: Entry, clobber: bool, timeout: float, retries: int, progress: bool,
    allow_insecure: bool = False,
) -> Entry:  # fmt: skip
    rf = entry.remote
    assert rf is not None
    if entry.path.exists() and not clobber:
        try:
            entry.sha256 = _check_local(entry.path, rf)
            entry.download, entry.verified = "cached", "ok"
            nwlib.log(f"{rf.name}: present and verified, not downloading", verbose_only=True)
            return entry
        except nwlib.DownloadError as exc:
            nwlib.log(
                f"{rf.name}: the copy in the wheelhouse fails verification ({exc}); refetching"
            )
    nwlib.log(f"downloading {nwlib.sanitize_url(rf.url)}", verbose_only=True)
    # nwlib.download resumes the .part an interrupted run left; that copy may be of a
    # file since re-staged (anaconda upload --force), so a resumed file failing its
    # checks is fetched once more from the start.
    resuming = entry.path.with_name(entry.path.name + ".part").exists()
    fetch = functools.partial(
        nwlib.download,
        rf.url,
        entry.path,
        sha256=rf.sha256,
        md5=None if rf.sha256 else rf.md5,
        size=rf.size,
        timeout=timeout,
        retries=retries,
        progress=progress,
        verify=lambda p: verify_dist(p, rf.name, deep=not (rf.sha256 or rf.md5)),
        allow_insecure=allow_insecure,
    )
    try:
        try:
            fetch()
        except nwlib.HTTPStatusError:
            raise
        except nwlib.DownloadError as exc:
            if not resuming:
                raise
            nwlib.log(f"{rf.name}: the resumed download fails verification ({exc}); starting over")
            fetch(resume=False)
    except nwlib.FatalError as exc:
        entry.download, entry.verified, entry.error = "failed", "no", str(exc)
        return entry
    entry.sha256 = rf.sha256 or nwlib.file_hash(entry.path)  # rf.sha256 was just checked
    entry.download, entry.verified = "downloaded", "ok"
    return entry


def download_all(
    entries: list[Entry], *, jobs: int, clobber: bool, timeout: float, retries: int,
    allow_insecure: bool = False,
) -> None:  # fmt: skip
    """Fetch every entry in parallel; failures are recorded on the entry, not raised.

    The workers are daemon threads and the main thread waits in short steps, so
    Ctrl-C ends the run at once (a worker stops at its next block; a ``.part``
    stays to be resumed) instead of waiting for every download to finish.
    """
    import queue

    tty = sys.stderr.isatty()
    total = len(entries)
    todo: queue.SimpleQueue[Entry] = queue.SimpleQueue()
    done: queue.SimpleQueue[Entry | BaseException] = queue.SimpleQueue()
    for e in entries:
        todo.put(e)

    def work() -> None:
        while not nwlib.CANCEL.is_set():
            try:
                entry = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put(_fetch(entry, clobber, timeout, retries, tty and jobs == 1,
                                allow_insecure))  # fmt: skip
            except BaseException as exc:  # a bug: handed to the main thread to raise
                done.put(exc)

    for _ in range(max(1, min(jobs, total))):
        threading.Thread(target=work, daemon=True).start()
    try:
        for count in range(1, total + 1):
            while True:
                try:
                    got = done.get(timeout=0.2)
                    break
                except queue.Empty:
                    continue
            if isinstance(got, BaseException):
                raise got
            if tty and jobs > 1:
                sys.stderr.write(f"\r[{count}/{total}] {got.name[:60]:60}")
                if count == total:
                    sys.stderr.write("\n")
                sys.stderr.flush()
    except BaseException:
        nwlib.CANCEL.set()
        raise


# -------------------------------------------------------------------------- upload


@dataclass(frozen=True)
class Target:
    """Where files go: twine's arguments (never a secret: ``twine_env`` carries those),
    and the simple index checked before each upload."""

    twine_args: tuple[str, ...]
    simple_url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)
    upload_url: str = ""
    twine_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def shown(self) -> str:
        return nwlib.sanitize_url(self.simple_url)

    def auth_for(self, url: str) -> tuple[str, str] | None:
        """The upload credentials, for a URL on the origin they were given for only."""
        return self.auth if _origin(url) == _origin(self.upload_url or self.simple_url) else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


def simple_url_for(upload_url: str) -> str:
    """The simple index of an upload URL: ``/legacy/`` dropped, an ``upload.`` host
    label dropped, ``simple/`` appended (pypiserver: ``http://h:p/`` -> ``/simple/``)."""
    parts = urlsplit(upload_url)
    host = parts.hostname or ""
    netloc = host[len("upload.") :] if host.startswith("upload.") else host
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path.rstrip("/")
    if path.endswith("/legacy"):
        path = path[: -len("/legacy")]
    return urlunsplit((parts.scheme, netloc, path + "/simple/", "", ""))


def resolve_target(
    *,
    repository: str | None = None,
    repository_url: str | None = None,
    index_url: str | None = None,
    config_file: str | None = None,
) -> Target:
    """Resolve the upload target as twine will (URL, else the .pypirc section)."""
    from twine import exceptions as twine_exc
    from twine import utils as twine_utils

    env = os.environ
    repository_url = repository_url or env.get("TWINE_REPOSITORY_URL")
    username, password = env.get("TWINE_USERNAME"), env.get("TWINE_PASSWORD")
    config = config_file or twine_utils.DEFAULT_CONFIG_FILE
    secrets: dict[str, str] = {}
    if repository_url:
        url = _without_userinfo(repository_url)
        # Credentials in the URL go to twine through its environment, never argv (ps).
        args: tuple[str, ...] = ("--repository-url", url)
        parts = urlsplit(repository_url)
        if parts.username:
            username, password = unquote(parts.username), unquote(parts.password or "")
            secrets = {"TWINE_USERNAME": username, "TWINE_PASSWORD": password}
    else:
        name = repository or env.get("TWINE_REPOSITORY") or "pypi"
        try:
            section = twine_utils.get_repository_from_config(config, name)
        except twine_exc.TwineException as exc:
            message = str(exc).splitlines()[0]
            raise nwlib.ConfigurationError(f"repository {name!r}: {message}") from None
        except KeyError:  # twine's own lookup of the section's URL
            raise nwlib.ConfigurationError(
                f"repository {name!r}: its section in {config} has no 'repository' URL"
            ) from None
        url = section["repository"] or ""
        username = username or section.get("username")
        password = password or section.get("password")
        args = ("--repository", name)
    if config_file:
        args += ("--config-file", config_file)
    userless = _without_userinfo(url)
    auth = (username, password) if username and password else None
    simple = index_url or simple_url_for(userless)
    return Target(args, simple, auth, upload_url=userless, twine_env=tuple(secrets.items()))


def find_twine() -> str:
    """twine from NW_TWINE, else PATH, else beside this interpreter (its venv's bin/)."""
    wanted = os.environ.get("NW_TWINE")
    if wanted:
        found = shutil.which(wanted)
        if found is None:
            raise nwlib.ConfigurationError(f"twine not found: NW_TWINE={wanted!r} does not run")
        return found
    here = Path(sys.executable).parent
    found = shutil.which("twine") or shutil.which("twine", path=str(here))
    if found is None:
        raise nwlib.ConfigurationError(
            f"twine not found on PATH or in {here}; install it: pip install twine"
        )
    return found


def _existing_files(
    session, target: Target, project: str, timeout: float
) -> dict[tuple[object, ...], RemoteFile]:
    """The project's files on the target index, by :func:`_dist_key` (not by spelling)."""
    from packaging.utils import canonicalize_name

    url = urljoin(target.simple_url, f"{canonicalize_name(project)}/")
    got = fetch_page(session, url, timeout=timeout, auth=target.auth_for(url))
    if got is None:
        return {}
    form, body, final = got
    files = parse_json(final, body)[0] if form == "json" else parse_html(final, str(body))[0]
    keyed = ((_dist_key(_plain_name(f.name)), f) for f in files)
    return {key: f for key, f in keyed if key is not None}


def _remote_sha256(session, rf: RemoteFile, target: Target, timeout: float) -> str:
    """sha256 of a file on the index: from its page, else by reading the file (with
    the index's credentials only when the file is on the index's own origin)."""
    import hashlib

    import requests

    if rf.sha256:
        return rf.sha256
    shown = nwlib.sanitize_url(rf.url)
    digest = hashlib.sha256()
    deadline = time.monotonic() + nwlib.limit("NW_REQUEST_DEADLINE")
    most = nwlib.limit("NW_MAX_DOWNLOAD_BYTES")
    try:
        with session.get(
            rf.url, stream=True, auth=target.auth_for(rf.url), timeout=timeout
        ) as resp:
            if resp.status_code >= 400:
                reason = nwlib.printable(resp.reason or "", 80)
                raise nwlib.FatalError(f"cannot read {shown}: HTTP {resp.status_code} {reason}")
            nwlib.read_body(resp, digest.update, most=most, deadline=deadline, shown=shown)
    except (requests.RequestException, OSError) as exc:
        raise _unreadable(shown, exc) from None
    return digest.hexdigest()


def _twine_failure(output: str) -> str:
    """The one line of twine's output that says why it failed, URLs masked."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    pick = next((ln for ln in lines if ln.startswith("ERROR")), lines[-1] if lines else "")
    pick = re.sub(r"^ERROR\s+", "", pick)
    return nwlib.printable(nwlib.mask_credentials(pick), 500) or "twine failed"


def upload_order(paths: Iterable[Path]) -> list[Path]:
    """Wheels before sdists (twine's order), by name within each."""
    return sorted(paths, key=lambda p: (not p.name.endswith(".whl"), p.name))


def upload_exactly_once(
    paths: Iterable[Path],
    target: Target,
    *,
    sign: bool = False,
    identity: str | None = None,
    dry_run: bool = False,
    verbose: bool = False,
    timeout: float = 30.0,
) -> Iterator[tuple[Path, str]]:
    """Upload each file with twine unless the index already has it; yield (path, status).

    status is ``uploaded``, ``skipped`` (already there, same sha256) or
    ``dry-run``.  A file there with a different sha256, or a refused upload,
    raises UploadError: the run stops and nothing is overwritten.  Re-running after
    an interruption uploads only what is missing.
    """
    ordered = upload_order(paths)
    twine = "twine" if dry_run else find_twine()
    session = _page_session(3)
    listings: dict[str, dict[tuple[object, ...], RemoteFile]] = {}
    base = [twine, "--no-color", "upload", "--non-interactive", *target.twine_args]
    if not verbose:
        base.append("--disable-progress-bar")
    if sign:
        base += ["--sign", *(["--identity", identity] if identity else [])]
    try:
        for path in ordered:
            cmd = [*base, str(path)]
            shown = shlex.join(nwlib.sanitize_url(a) for a in cmd)
            if dry_run:
                print(f"+ {shown}")
                yield path, "dry-run"
                continue
            ident = _dist_identity(path.name)
            if ident is None:
                raise nwlib.ConfigurationError(f"{path}: not a wheel or sdist file name")
            if ident[0] not in listings:
                listings[ident[0]] = _existing_files(session, target, ident[0], timeout)
            ours = nwlib.file_hash(path)
            there = listings[ident[0]].get(_dist_key(path.name))
            if there is not None:
                theirs = _remote_sha256(session, there, target, timeout)
                spelled = nwlib.printable(_plain_name(there.name), 120)
                alias = f" as {spelled}" if spelled != path.name else ""
                if theirs == ours:
                    nwlib.log(
                        f"{path.name}: already on {target.shown}{alias} (same sha256), skipped"
                    )
                    yield path, "skipped"
                    continue
                raise UploadError(
                    f"{path.name} is already on {target.shown}{alias} with sha256 {theirs}, "
                    f"ours is {ours}; stopping, nothing overwritten",
                    path,
                )
            if sign:
                Path(f"{path}.asc").unlink(missing_ok=True)  # twine's gpg will not overwrite
            nwlib.log(f"+ {shown}")
            env = {**os.environ, **dict(target.twine_env)}
            proc = subprocess.run(
                cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env
            )
            if verbose or proc.returncode:
                for line in (proc.stdout + proc.stderr).splitlines():
                    nwlib.log(f"  twine: {line}", verbose_only=not proc.returncode and verbose)
            if proc.returncode:
                raise UploadError(
                    f"upload of {path.name} failed: {_twine_failure(proc.stdout + proc.stderr)}",
                    path,
                )
            yield path, "uploaded"
    finally:
        session.close()


# ---------------------------------------------------------------- hashes, signing


def write_hashes(path: Path, files: Iterable[Path]) -> None:
    """sha256sum-style lines (``sha256sum -c`` accepts them) and an MD5 block, as in
    NumPy's release notes; written whole or not at all."""
    ordered = sorted(files, key=lambda p: p.name)
    text = ["Checksums", "=========", ""]
    for title, algorithm in (("MD5", "md5"), ("SHA256", "sha256")):
        text += [title, "-" * len(title), "::", ""]
        text += [f"    {nwlib.file_hash(p, algorithm)}  {p.name}" for p in ordered]
        text.append("")
    with nwlib.atomic_write(path) as out:
        out.write("\n".join(text))


def gpg_sign(path: Path, identity: str | None = None) -> Path:
    """Detached ASCII-armoured signature ``path.asc`` (written to a temporary name first)."""
    gpg = shutil.which("gpg") or shutil.which("gpg2")
    if gpg is None:
        raise nwlib.ConfigurationError("gpg not found on PATH; needed to sign")
    sig = Path(f"{path}.asc")
    tmp = sig.with_name(f".{sig.name}.part")
    cmd = [gpg, "--batch", "--yes", "--armor", "--detach-sign", "--output", str(tmp)]
    cmd += ["--local-user", identity] if identity else []
    proc = subprocess.run([*cmd, str(path)], capture_output=True, text=True)
    if proc.returncode:
        tmp.unlink(missing_ok=True)
        last = (proc.stderr.strip().splitlines() or ["gpg failed"])[-1]
        raise nwlib.FatalError(f"signing {path.name} failed: {last}")
    os.replace(tmp, sig)
    return sig


# ------------------------------------------------------------------------- summary


def _size(path: Path) -> str:
    if not path.exists():
        return "-"
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def print_summary(entries: list[Entry]) -> None:
    """The table of files: what happened to each, its size and sha256 (stdout)."""
    rows = [("file", "download", "verified", "upload", "size", "sha256")]
    for e in entries:
        rows.append((e.name, e.download, e.verified, e.upload, _size(e.path), e.sha256 or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    good = sum(e.ok for e in entries)
    print(f"{good} of {len(entries)} files ended well")


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Download staged wheels, verify them and upload them with twine, "
        "each file exactly once.",
        epilog="Credentials come from twine's usual places (TWINE_USERNAME, TWINE_PASSWORD, "
        ".pypirc, keyring). Exit status: 0 all files ended well, 1 a failure, 2 bad "
        "input, 3 nothing matched.",
    )
    parser.add_argument("args", nargs="*", metavar="PROJECT VERSION | FILE")
    parser.add_argument(
        "-u",
        "--wheel-url-dir",
        dest="url",
        help="staging location: anaconda.org files page or API URL, simple index page or "
        f"directory listing (default: {DEFAULT_STAGING.format(project='PROJECT')})",
    )
    parser.add_argument(
        "--source-kind", choices=SOURCE_KINDS, default="auto", help="override the detected kind"
    )
    parser.add_argument("-w", "--wheel-dir", default=".", help="wheelhouse (default: cwd)")
    parser.add_argument(
        "-t",
        "--wheel-type",
        action="append",
        dest="types",
        help="platform filter: all, macosx, win, manylinux, musllinux, linux or any tag "
        "substring; repeatable (default: all)",
    )
    parser.add_argument("-c", "--clobber", action="store_true", help="re-download present files")
    parser.add_argument(
        "-n", "--no-twine", action="store_true", help="download and verify only, no upload"
    )
    parser.add_argument("-s", "--sign", action="store_true", help="GPG-sign (twine --sign)")
    parser.add_argument("-i", "--identity", help="GPG identity for -s and --sign-hashes")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-r", "--repository", help=".pypirc repository name (default: pypi)")
    where.add_argument("--repository-url", help="upload URL of the target index")
    parser.add_argument(
        "--index-url", help="simple index of the target (default: derived from its upload URL)"
    )
    parser.add_argument("--config-file", help="the .pypirc to use (default: ~/.pypirc)")
    parser.add_argument("--sdist", action="store_true", help="also take PROJECT-VERSION.tar.gz")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be done, touch nothing"
    )
    parser.add_argument("-j", "--jobs", type=int, default=4, help="parallel downloads (4)")
    parser.add_argument("--no-check", action="store_true", help="skip the check_wheel.py audit")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="an audit warning stops a wheel too (default: FAIL only)",
    )
    parser.add_argument("--hashes", metavar="FILE", help="write MD5/SHA256 lines for the notes")
    parser.add_argument("--sign-hashes", action="store_true", help="GPG-sign the --hashes file")
    parser.add_argument("--allow-insecure", action="store_true", help="accept http:// staging URLs")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per read (30)")
    parser.add_argument("--retries", type=int, default=5, help="attempts per file (5)")
    parser.add_argument(
        "--files", action="store_true", help="upload the local FILEs given (no staging lookup)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="say more (never secrets)")
    nwlib.add_version_option(parser)
    return parser


def _check_scheme(url: str, allow_insecure: bool) -> None:
    scheme = urlsplit(url).scheme
    if scheme == "http" and not allow_insecure:
        raise nwlib.ConfigurationError(
            f"refusing insecure {nwlib.sanitize_url(url)} (use --allow-insecure to accept http://)"
        )
    if scheme not in ("http", "https"):
        raise nwlib.ConfigurationError(f"unsupported URL {nwlib.sanitize_url(url)!r}")


def _audit(entries: list[Entry], strict: bool = False) -> list[str]:
    """Gate each wheel on check_wheel (FAIL only, warnings too when ``strict``);
    returns the warnings, one line each, for the summary."""
    wheels = [e for e in entries if e.name.endswith(".whl")]
    if not wheels:
        return []
    try:
        import check_wheel
    except ImportError:
        raise nwlib.ConfigurationError(
            "the wheel audit (check_wheel.py) is not importable; use --no-check to skip it"
        ) from None
    by_name = {e.name: e for e in wheels}
    warnings = []
    for report in check_wheel.check_wheels([e.path for e in wheels]):
        warnings += [f"{report.name}: {w}" for w in report.warnings]
        entry = by_name.get(Path(report.name).name)
        if entry is not None and not report.passed(strict):
            entry.verified = "audit failed"
            findings = report.failures + (report.warnings if strict else [])
            entry.error = f"{entry.name} fails the audit: " + "; ".join(map(str, findings))
    return warnings


def _upload(entries: list[Entry], opts: argparse.Namespace) -> None:
    target = resolve_target(
        repository=opts.repository,
        repository_url=opts.repository_url,
        index_url=opts.index_url,
        config_file=opts.config_file,
    )
    by_path = {e.path: e for e in entries}
    for e in entries:
        e.upload = "pending"
    try:
        for path, status in upload_exactly_once(
            by_path,
            target,
            sign=opts.sign,
            identity=opts.identity,
            dry_run=opts.dry_run,
            verbose=opts.verbose,
            timeout=opts.timeout,
        ):
            by_path[path].upload = status
    except UploadError as exc:
        by_path[exc.path].upload, by_path[exc.path].error = "failed", str(exc)
    finally:
        for e in entries:
            if e.upload == "pending":
                e.upload = "not run"


def run(opts: argparse.Namespace) -> int:
    if not opts.timeout > 0:  # requests would raise ValueError deep inside
        raise nwlib.ConfigurationError(f"--timeout must be more than 0 seconds, not {opts.timeout}")
    if opts.files:
        return run_files(opts)
    project, version = opts.args
    normalize_version(version)
    types = opts.types or ["all"]
    if opts.jobs < 1:
        raise nwlib.ConfigurationError(f"-j must be at least 1, not {opts.jobs}")
    url = opts.url or DEFAULT_STAGING.format(project=project)
    _check_scheme(url, opts.allow_insecure)
    session = _page_session(opts.retries, opts.allow_insecure)
    try:
        listed, kind = list_source(session, url, opts.source_kind, opts.timeout)
    finally:
        session.close()
    where = nwlib.sanitize_url(url)
    chosen = select_files(listed, project, version, types, opts.sdist, where)
    if not chosen:
        looked = f"{project}-{version}-*.whl" + (f" or {project}-{version}.tar.gz" * opts.sdist)
        raise nwlib.NothingToDoError(
            f"no files match {looked} (type {', '.join(types)}) at {where} "
            f"({len(listed)} files listed, read as {kind})"
        )
    for rf in chosen:
        _check_scheme(rf.url, opts.allow_insecure)
    wheelhouse = Path(opts.wheel_dir).expanduser()
    entries = [Entry(rf.name, wheelhouse / rf.name, rf) for rf in chosen]
    nwlib.log(f"{len(entries)} files of {project} {version} at {where} ({kind})")
    if opts.dry_run:
        for e in entries:
            e.download = "present" if e.path.exists() else "would download"
            print(f"{e.download}: {nwlib.sanitize_url(rf_url(e))} -> {e.path}")
    else:
        try:
            wheelhouse.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise nwlib.ConfigurationError(
                f"-w {wheelhouse}: cannot create the wheelhouse: {exc.strerror}"
            ) from None
        with nwlib.file_lock(wheelhouse, f"wheelhouse {wheelhouse}"):
            download_all(
                entries, jobs=opts.jobs, clobber=opts.clobber, timeout=opts.timeout,
                retries=opts.retries, allow_insecure=opts.allow_insecure,
            )  # fmt: skip
            return _finish(entries, opts)
    return _finish(entries, opts)


def rf_url(entry: Entry) -> str:
    return entry.remote.url if entry.remote else str(entry.path)


def run_files(opts: argparse.Namespace) -> int:
    entries = []
    for arg in opts.args:
        path = Path(arg).expanduser()
        if not path.is_file():
            raise nwlib.ConfigurationError(f"{arg}: no such file")
        if _dist_identity(path.name) is None:
            raise nwlib.ConfigurationError(f"{arg}: not a wheel or sdist file name")
        entries.append(Entry(path.name, path, download="local"))
    if not entries:
        raise nwlib.NothingToDoError("--files given but no FILE to upload")
    if not opts.dry_run:
        for e in entries:
            verify_dist(e.path)
            e.sha256, e.verified = nwlib.file_hash(e.path), "ok"
    return _finish(entries, opts)


def _finish(entries: list[Entry], opts: argparse.Namespace) -> int:
    """Audit, hashes file, upload, summary: the shared tail of both forms."""
    warnings: list[str] = []
    try:
        if all(e.ok for e in entries) and not opts.dry_run:
            if not opts.no_check:
                warnings = _audit(entries, opts.strict)
            if opts.hashes and all(e.ok for e in entries):
                hashes = Path(opts.hashes).expanduser()
                try:
                    write_hashes(hashes, [e.path for e in entries])
                except OSError as exc:
                    raise nwlib.FatalError(
                        f"--hashes {hashes}: cannot write: {exc.strerror}"
                    ) from None
                if opts.sign_hashes:
                    gpg_sign(hashes, opts.identity)
        if all(e.ok for e in entries) and not opts.no_twine:
            _upload(entries, opts)
    finally:
        print_summary(entries)
        for line in warnings:
            print(f"audit warning: {line}")
    for e in entries:
        if e.error:
            print(f"{PROG}: error: {e.error}", file=sys.stderr)
    return 0 if all(e.ok for e in entries) else 1


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]) and run; expected errors -> one line + code."""
    parser = build_parser()
    opts = parser.parse_args(argv)
    if not opts.files and len(opts.args) != 2:
        parser.error("expected PROJECT VERSION (or --files FILE...)")
    if opts.sign_hashes and not opts.hashes:
        parser.error("--sign-hashes needs --hashes FILE")
    if opts.verbose:
        nwlib.VERBOSE = True
    try:
        return run(opts)
    except nwlib.FatalError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.return_code


if __name__ == "__main__":
    nwlib.run_main(main, PROG)
