"""What a location offers: the one reader of staging locations and target indexes.

- PEP 503/691 simple pages (project page, HTML or JSON) through pypi-simple;
- anaconda.org's files page (with its "showing P of N" pagination) and plain
  directory listings through beautifulsoup4;
- the anaconda.org JSON files API (a list of dicts, read as it is).

Pages are read with the toolkit's requests session (:func:`page_session`), which
retries 429, 5xx and broken reads itself (urllib3 ``Retry``, honouring
``Retry-After``) and keeps its connections open between requests.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

from ..errors import ConfigurationError, FatalError, NothingToDoError
from ..files import error_reason, printable, sanitize_url
from ..log import toolkit_version
from ..net import http_session

# PEP 691 JSON first, then the anaconda.org API's JSON, then HTML.
ACCEPT = "application/vnd.pypi.simple.v1+json, application/json;q=0.9, text/html;q=0.8"
HTML_TYPES = {"text/html", "application/xhtml+xml", "application/vnd.pypi.simple.v1+html"}
SOURCE_KINDS = ("auto", "files-page", "api", "simple", "listing")
MAX_PAGES = 500
_HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}
_SHOWING = re.compile(r"showing\s+(\d+)\s+of\s+(\d+)", re.IGNORECASE)


@dataclass
class RemoteFile:
    """One file offered by a staging location or an index."""

    name: str
    url: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None


@dataclass
class Page:
    """One page as read: ``form`` is "html" (``body`` text) or "json" (``body`` data)."""

    form: str
    body: Any
    url: str  # after redirects: relative links resolve against it


# --------------------------------------------------------------------------- reading


def page_session(retries: int = 3, allow_insecure: bool = False) -> Any:
    """The toolkit's session (``net.http_session``: ``retries`` attempts for 429,
    5xx and broken reads, Retry-After honoured, bounded pages, the scheme rule on
    every redirect), kept alive between requests.

    A host that cannot be reached at all (name not found, connection refused) is
    not retried: the run says so at once, in one line (:func:`unreachable`).
    """
    session = http_session(retries=retries, allow_insecure=allow_insecure)
    adapter = session.get_adapter("https://")  # one adapter serves http:// and https://
    adapter.max_retries = adapter.max_retries.new(connect=0)
    session.headers["User-Agent"] = _user_agent()
    return session


@functools.cache
def _user_agent() -> str:
    return f"wheel-uploader/{toolkit_version()}"


def unreachable(url: str, exc: BaseException) -> FatalError:
    """One line for a request that failed below HTTP: the host and the cause
    (``cannot reach 127.0.0.1:9: connection refused``), never urllib3's repr chain."""
    import socket
    import ssl

    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1] or sanitize_url(url)
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:  # the innermost reason wins
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return FatalError(f"cannot reach {host}: host name not resolved ({cause.strerror})")
        if isinstance(cause, ConnectionRefusedError):
            return FatalError(f"cannot reach {host}: connection refused")
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None)
            return FatalError(f"cannot reach {host}: TLS failed ({reason or cause})")
        if isinstance(cause, TimeoutError) or type(cause).__name__.endswith("Timeout"):
            return FatalError(f"cannot reach {host}: timed out")
        nested = getattr(cause, "reason", None)
        nested = nested if isinstance(nested, BaseException) else None
        args = getattr(cause, "args", ())
        arg = args[0] if args and isinstance(args[0], BaseException) else None
        cause = nested or arg or cause.__cause__ or cause.__context__
    shown = sanitize_url(url)
    return FatalError(f"cannot read {shown}: {error_reason(exc)}")


def fetch_page(session: Any, url: str, *, timeout: float, auth: Any = None) -> Page | None:
    """GET a page (HTML or JSON); None on 404; a one-line FatalError otherwise."""
    import requests

    shown = sanitize_url(url)
    try:
        resp = session.get(url, headers={"Accept": ACCEPT}, auth=auth, timeout=timeout)
    except requests.ConnectionError as exc:
        raise unreachable(url, exc) from None
    except requests.RequestException as exc:
        raise FatalError(f"cannot read {shown}: {error_reason(exc)}") from None
    if resp.status_code == 404:
        return None
    if resp.status_code >= 400:
        reason = printable(resp.reason or "", 80)
        raise HTTPPageError(f"cannot read {shown}: HTTP {resp.status_code} {reason}",
                            resp.status_code)  # fmt: skip
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    body = resp.text
    if not ctype:
        sniff = body.lstrip()[:1]
        ctype = "application/json" if sniff in ("{", "[") else "text/html" if sniff == "<" else ""
    if ctype.endswith("json"):
        try:
            return Page("json", json.loads(body), resp.url)
        except ValueError:
            raise FatalError(f"{shown}: invalid JSON") from None
    if ctype in HTML_TYPES:
        return Page("html", body, resp.url)
    raise FatalError(
        f"{shown}: expected an HTML or JSON page, got Content-Type "
        f"{printable(ctype, 80) or 'unknown'!r}"
    )


class HTTPPageError(FatalError):
    """A page answered with an HTTP error status (kept, so callers can add a hint)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- parsing


def soup(text: str) -> Any:
    """The page parsed by beautifulsoup4, an ``<a>`` left unclosed closed where the
    next one starts (html.parser would nest the next link inside it, and the first
    link's text would run on into the second's)."""
    from bs4 import BeautifulSoup

    tree = BeautifulSoup(text, "html.parser")
    for inner in tree.select("a a"):
        outer = inner.find_parent("a")
        if outer is not None:
            outer.insert_after(inner.extract())
    return tree


def _looks_like_dist(text: str) -> bool:
    """A dist's name, or that of its PEP 740 attestation staged beside it (FILE.publish.
    attestation: numpy_wheels.upload.attestations takes those, select_files never)."""
    name = text.removesuffix(".publish.attestation")
    return bool(name) and not any(c.isspace() for c in name) and name.endswith((".whl", ".tar.gz"))


def _hash(value: object, algorithm: str) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value if _HEX[algorithm].match(value) else None  # anaconda.org says "None" when absent


def _size(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _remote(name: str, url: str, digests: dict, size: object = None) -> RemoteFile:
    return RemoteFile(name, url, _hash(digests.get("sha256"), "sha256"),
                      _hash(digests.get("md5"), "md5"), _size(size))  # fmt: skip


def parse_links(page_url: str, text: str) -> tuple[list[RemoteFile], tuple[int, int] | None, Any]:
    """Files linked from an anaconda.org files page or a directory listing, its
    "showing P of N" pagination if any, and the parsed tree.

    The file name is the anchor text when that is a distribution name, else the
    last segment of the href; a hash fragment (``#sha256=...``) is kept.  Without
    any such anchor, bare text that is a distribution name is taken as a file
    beside the page (terryfy's Rackspace listing).
    """
    tree = soup(text)
    files: list[RemoteFile] = []
    for anchor in tree.find_all("a", href=True):
        url = urljoin(page_url, str(anchor["href"]))
        parts = urlsplit(url)
        label = anchor.get_text().strip()
        name = label if _looks_like_dist(label) else unquote(parts.path.rsplit("/", 1)[-1])
        if _looks_like_dist(name):
            bare = urlunsplit(parts._replace(fragment=""))
            files.append(_remote(name, bare, dict(parse_qsl(parts.fragment))))
    outside = [s for s in tree.find_all(string=True) if s.find_parent("a") is None]
    if not files:
        for raw in outside:
            name = raw.strip()
            if _looks_like_dist(name):
                files.append(RemoteFile(name, urljoin(page_url, quote(name))))
    showing = _SHOWING.search(tree.get_text(" "))  # anywhere: an unclosed <a> may hold it
    return files, (int(showing[1]), int(showing[2])) if showing else None, tree


def parse_simple(page: Page, project: str = "") -> list[RemoteFile]:
    """Files of a PEP 503 (HTML) or PEP 691 (JSON) project page, read by pypi-simple."""
    from pypi_simple import ProjectPage, UnsupportedRepoVersionError

    shown = sanitize_url(page.url)
    try:
        if page.form == "json":
            parsed = ProjectPage.from_json_data(page.body, page.url)
        else:
            parsed = ProjectPage.from_html(project, str(soup(page.body)), page.url)
    except UnsupportedRepoVersionError as exc:
        raise FatalError(f"{shown}: {error_reason(exc)}") from None
    except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
        raise FatalError(f"{shown}: malformed PEP 691 project page") from None
    return [_remote(p.filename, p.url, p.digests, p.size) for p in parsed.packages]


def preload_simple() -> None:
    """Import pypi-simple (with beautifulsoup4 and pydantic, about 0.15 s of CPU) in a
    background thread while a simple page is on its way: :func:`parse_simple`'s own
    import then finds it loaded, or waits on the import lock until it is.  Called once
    requests is imported, so the two threads never wait on each other's modules."""
    import importlib
    import threading

    def load() -> None:
        with contextlib.suppress(Exception):  # parse_simple's own import says what failed
            importlib.import_module("pypi_simple")

    threading.Thread(target=load, name="preload-pypi-simple", daemon=True).start()


def parse_api(page_url: str, data: object) -> list[RemoteFile]:
    """Files of an anaconda.org files/package/release API answer (conda files ignored
    by name: only wheel and sdist names are kept later)."""
    items = data.get("files", data.get("distributions")) if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise FatalError(
            f"{sanitize_url(page_url)}: JSON is neither an anaconda.org file list "
            "nor a PEP 691 project page"
        )
    files = []
    for item in items:
        name, href = item.get("basename"), item.get("download_url") or item.get("url")
        if isinstance(name, str) and isinstance(href, str):
            # download_url is protocol-relative ("//api.anaconda.org/download/..."): resolve it.
            files.append(_remote(name, urljoin(page_url, href), item, item.get("size")))
    return files


def parse_json(page_url: str, data: object) -> tuple[list[RemoteFile], str]:
    """Files of a JSON page: a PEP 691 project page ("simple") or the anaconda.org API."""
    if isinstance(data, dict) and isinstance(data.get("meta"), dict):
        return parse_simple(Page("json", data, page_url)), "simple"
    return parse_api(page_url, data), "api"


# --------------------------------------------------------------------------- listing


def _with_page(url: str, page: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    query.append(("page", str(page)))
    return urlunsplit(parts._replace(query=urlencode(query), fragment=""))


def _read(page: Page, kind: str, project: str) -> tuple[list[RemoteFile], tuple | None, str]:
    """Files of one page, its pagination, and the kind it was read as."""
    shown = sanitize_url(page.url)
    if page.form == "json":
        if kind in ("files-page", "listing"):
            raise FatalError(f"{shown}: expected an HTML {kind}, got JSON")
        files, detected = parse_json(page.url, page.body)
        return files, None, detected
    if kind == "api":
        raise FatalError(f"{shown}: expected JSON from the anaconda.org API, got HTML")
    if kind == "simple":
        return parse_simple(page, project), None, kind
    files, paging, _tree = parse_links(page.url, str(page.body))
    if kind == "auto":
        kind = "files-page" if paging else "simple" if "simple" in page.url else "listing"
        if kind == "simple":
            files = parse_simple(page, project)
    return files, paging, kind


def _project_url(root: str, project: str) -> str:
    """The project's page under a simple index's root URL."""
    from packaging.utils import canonicalize_name

    return urljoin(root.rstrip("/") + "/", f"{canonicalize_name(project)}/")


def index_root_hint(page: Page, project: str) -> str | None:
    """The project page to suggest when ``page`` is an index's root (a list of
    projects, or a page linking the simple index), else None."""
    from packaging.utils import canonicalize_name

    want = canonicalize_name(project)
    if page.form == "json":
        roots = isinstance(page.body, dict) and isinstance(page.body.get("projects"), list)
        return _project_url(page.url, project) if roots else None
    links = [(a.get_text().strip(), urljoin(page.url, str(a["href"])))
             for a in soup(page.body).find_all("a", href=True)]  # fmt: skip
    for text, href in links:
        last = unquote(urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1])
        if want in (canonicalize_name(text), canonicalize_name(last)):
            return href
    for _text, href in links:
        if urlsplit(href).path.rstrip("/").endswith("/simple"):
            return _project_url(href, project)
    if urlsplit(page.url).path.rstrip("/").endswith("/simple"):  # a simple root, maybe empty
        return _project_url(page.url, project)
    return None


def list_source(
    session: Any, url: str, kind: str = "auto", timeout: float = 30.0, project: str = ""
) -> tuple[list[RemoteFile], str]:
    """Every file the staging location lists (all pages), and the kind read.

    A location that is an index's root rather than the project's page is refused
    with the project URL to use instead.
    """
    found: dict[str, RemoteFile] = {}
    seen: set[str] = set()
    detected, page_url = kind, url
    if kind == "simple" or (kind == "auto" and "simple" in urlsplit(url).path):
        preload_simple()
    for number in range(MAX_PAGES):
        seen.add(page_url)
        page = fetch_page(session, page_url, timeout=timeout)
        if page is None:
            root = number == 0 and urlsplit(page_url).path.rstrip("/").endswith("/simple")
            hint = f" (the project's page: {sanitize_url(_project_url(page_url, project))})"
            raise NothingToDoError(
                f"no files: {sanitize_url(page_url)}: HTTP 404 Not Found{hint * root}"
            )
        is_root = page.form == "json" and isinstance(page.body, dict) and "projects" in page.body
        files, paging, detected = ([], None, kind) if is_root else _read(page, kind, project)
        if number == 0 and not any(_looks_like_dist(f.name) for f in files):
            suggest = index_root_hint(page, project)
            if suggest:
                raise ConfigurationError(
                    f"{sanitize_url(page_url)} is an index's root, not the page of "
                    f"{project}: use -u {sanitize_url(suggest)}"
                )
        new = [f for f in files if f.name not in found]
        for rf in new:
            found[rf.name] = rf
        if detected != "files-page" or paging is None or not new:
            break
        if paging[0] >= paging[1]:
            break
        page_url = _with_page(page.url, paging[0] + 1)
        if page_url in seen:
            break
    return list(found.values()), detected
