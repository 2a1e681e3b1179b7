"""A loopback stand-in for anaconda.org staging (which this machine cannot reach).

It serves the shapes the real service serves, from files the test gives it:

- ``/ORG/PKG/files``: the files page, a table whose rows link
  ``/ORG/PKG/VERSION/download/FILE``, ``page_size`` rows a page, footer
  ``« Previous  showing P of N  Next »`` (``?page=N``; ``?page=0`` shows the first
  page labelled "showing 0 of N", as the real site does);
- ``/api/package/ORG/PKG/files``: the JSON files API (``basename``, ``version``,
  ``type``, ``md5``, ``sha256`` - the string ``"None"`` for files in ``no_sha256`` -,
  ``size``, protocol-relative ``download_url`` that answers with a 302);
- ``/simple/PKG/``: a PEP 503 page with ``#sha256=`` fragments (none for files in
  ``no_sha256``), or PEP 691 JSON when asked for it in ``Accept``;
- ``/listing/``: a plain directory listing, files beside it;
- file downloads with HTTP range support.

Faults are injected per file (``faults[name] = ["reset", "500", ...]``, one per
request, in order: an HTTP status such as "500", "reset", "truncate", "slow",
"norange", "garbage") or per page (``page_faults``: a status or a Content-Type to
serve the page as); ``latency`` delays every request, ``rate`` (bytes a second)
paces each file body per connection; ``mangle`` rewrites every HTML page (broken
markup).  ``requests`` records (method, path, Range) of every request, ``authorized``
the paths of those that came with an ``Authorization`` header, ``peers`` the
client port of each request (connections reused show as one port).
:class:`UploadProxy` forwards to a real index and drops or refuses chosen uploads.
"""

from __future__ import annotations

import hashlib
import html
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

CHUNK = 1 << 16
PEP691 = "application/vnd.pypi.simple.v1+json"


def _version_of(name: str) -> str:
    return name.split("-")[1] if name.endswith(".whl") else name[: -len(".tar.gz")].split("-")[-1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    """Start/stop of a threaded HTTP server on 127.0.0.1 with a free port."""

    handler: type[BaseHTTPRequestHandler]

    def start(self):
        handler = type("Handler", (self.handler,), {"app": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class StagingServer(_Base):
    def __init__(
        self,
        files: dict[str, Path | bytes] | list[Path],
        *,
        org: str = "multibuild-wheels-staging",
        package: str = "numpy",
        page_size: int = 3,
        latency: float = 0.0,
        slow_delay: float = 2.0,
        rate: float = 0.0,
    ) -> None:
        if isinstance(files, list):
            files = {p.name: p for p in files}
        self.files: dict[str, Path | bytes] = dict(files)
        self.org, self.package = org, package
        self.page_size, self.latency, self.slow_delay = page_size, latency, slow_delay
        self.rate = rate
        self.mangle: Callable[[str], str] | None = None
        self.faults: dict[str, list[str]] = {}
        self.page_faults: list[str] = []
        self.sha256_override: dict[str, str] = {}
        self.no_sha256: set[str] = set()
        self.size_override: dict[str, int] = {}
        self.pep691 = True  # False: the simple page is HTML whatever Accept says
        self.listed_only: list[str] = []  # names shown on pages with no file behind them
        self.requests: list[tuple[str, str, str | None]] = []
        self.peers: list[tuple[str, int]] = []  # (path, client port): one port per connection
        self.authorized: list[str] = []
        self.bytes_sent: dict[str, int] = {}
        self._digests: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.handler = _StagingHandler

    # ---- URLs the tests hand to wheel-uploader
    @property
    def files_page_url(self) -> str:
        return f"{self.url}/{self.org}/{self.package}/files"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/package/{self.org}/{self.package}/files"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/{self.package}/"

    @property
    def listing_url(self) -> str:
        return f"{self.url}/listing/"

    # ---- data
    def data(self, name: str) -> bytes:
        content = self.files[name]
        return content if isinstance(content, bytes) else Path(content).read_bytes()

    def size(self, name: str) -> int:
        if name in self.size_override:
            return self.size_override[name]
        content = self.files[name]
        return len(content) if isinstance(content, bytes) else Path(content).stat().st_size

    def digest(self, name: str, algorithm: str = "sha256") -> str:
        if algorithm == "sha256" and name in self.sha256_override:
            return self.sha256_override[name]
        key = (name, algorithm)
        if key not in self._digests:  # the files do not change while served
            self._digests[key] = hashlib.new(algorithm, self.data(name)).hexdigest()
        return self._digests[key]

    def names(self) -> list[str]:
        return [*sorted(self.files), *self.listed_only]

    def download_path(self, name: str) -> str:
        return f"/{self.org}/{self.package}/{_version_of(name)}/download/{quote(name)}"

    def take_fault(self, name: str | None) -> str | None:
        with self._lock:
            queue = self.page_faults if name is None else self.faults.get(name, [])
            return queue.pop(0) if queue else None

    def transfers(self, name: str | None = None) -> list[tuple[str, str, str | None]]:
        """Requests that fetched file bodies (optionally of one file)."""
        return [
            r
            for r in self.requests
            if "/download/" in r[1]
            and not r[1].startswith("/api/")
            and (name is None or r[1].endswith("/" + quote(name)))
        ]


class _StagingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as real file servers set: without it a kept-alive connection waits
    # out the client's delayed ACK (~40 ms) between the headers and the body
    disable_nagle_algorithm = True
    app: StagingServer

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        app = self.app
        parts = urlsplit(self.path)
        with app._lock:
            app.requests.append(("GET", parts.path, self.headers.get("Range")))
            app.peers.append((parts.path, self.client_address[1]))
            if self.headers.get("Authorization"):
                app.authorized.append(parts.path)
        if app.latency:
            time.sleep(app.latency)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        prefix = f"/{app.org}/{app.package}/"
        if path == prefix + "files":
            return self._page(self._files_page(query))
        if path == f"/api/package/{app.org}/{app.package}/files":
            return self._page(json.dumps(self._api_files()), "application/json")
        if path == f"/simple/{app.package}/":
            if app.pep691 and PEP691 in self.headers.get("Accept", ""):
                return self._page(json.dumps(self._simple_json()), PEP691)
            return self._page(self._simple_html())
        if path == "/listing/":
            return self._page(self._listing())
        if path.startswith(f"/api/download/{app.org}/{app.package}/"):
            name = path.rsplit("/", 1)[-1]
            return self._redirect(app.download_path(name))
        if path.startswith(prefix) and "/download/" in path:
            return self._file(path.rsplit("/", 1)[-1])
        if path.startswith("/listing/"):
            return self._file(path[len("/listing/") :])
        self._send(404, b"not found\n", "text/plain")

    # ---- responses
    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", {"Location": location})

    def _page(self, body: str, ctype: str = "text/html; charset=utf-8") -> None:
        fault = self.app.take_fault(None)
        if fault and fault.isdigit():
            return self._send(int(fault), b"server error\n", "text/plain")
        if fault and "/" in fault:  # a content type: serve the page as that
            ctype = fault
        if self.app.mangle and ctype.startswith("text/html"):
            body = self.app.mangle(body)
        self._send(200, body.encode(), ctype)

    def _file(self, name: str) -> None:
        app = self.app
        if name not in app.files:
            return self._send(404, b"not found\n", "text/plain")
        fault = app.take_fault(name)
        if fault and fault.isdigit():
            return self._send(int(fault), b"injected failure\n", "text/plain")
        if fault == "slow":
            time.sleep(app.slow_delay)
        if fault == "garbage":
            content = b"<html>not a wheel</html>\n" * 40
            return self._send(200, content, "application/octet-stream")
        content = app.files[name]
        total = len(content) if isinstance(content, bytes) else Path(content).stat().st_size
        start = 0
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and fault != "norange":
            start = int(wanted[len("bytes=") :].split("-")[0] or 0)
            if start >= total:
                return self._send(416, b"", "text/plain", {"Content-Range": f"*/{total}"})
        length = total - start
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        self.end_headers()
        if fault in ("reset", "truncate"):
            half = app.data(name)[start : start + length // 2]
            self.wfile.write(half)
            self.wfile.flush()
            self._count(name, len(half))
            if fault == "reset":  # RST instead of FIN
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.close_connection = True
            return
        if app.rate:
            self._paced(app.data(name)[start:], app.rate)
        elif isinstance(content, bytes):
            self.wfile.write(content[start:])
        else:  # zero-copy from the file, as real file servers do
            self.wfile.flush()
            with open(content, "rb") as fobj:
                self.connection.sendfile(fobj, start, length)
        self._count(name, length)

    def _paced(self, body: bytes, rate: float) -> None:
        """Send ``body`` at ``rate`` bytes a second (a link of that speed)."""
        began = time.monotonic()
        for sent in range(0, len(body), CHUNK):
            ahead = began + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            self.wfile.write(body[sent : sent + CHUNK])

    def _count(self, name: str, nbytes: int) -> None:
        with self.app._lock:
            self.app.bytes_sent[name] = self.app.bytes_sent.get(name, 0) + nbytes

    # ---- page bodies
    def _files_page(self, query: dict[str, list[str]]) -> str:
        app = self.app
        names = app.names()
        pages = max(1, -(-len(names) // app.page_size))
        raw = query.get("page", [None])[0]
        label = int(raw) if raw is not None and raw.isdigit() else 1
        index = min(max(label, 1), pages)
        rows = []
        for i, name in enumerate(names[(index - 1) * app.page_size : index * app.page_size]):
            href = html.escape(
                f"/{app.org}/{app.package}/{_version_of(_plain(name))}/download/{quote(name)}"
            )
            size = app.size(name) / 1e6 if name in app.files else 0.0
            rows.append(
                f'<tr><td><input type="checkbox" name="distributions_ids" value="{i}"></td>'
                f"<td>Standard Python</td><td>{size:.1f} MB</td>\n"
                f'<td><a href="{href}" data-toggle="tooltip" title="Download">'
                f'<i class="fa fa-download"></i></a> | \n<a href="{href}">{html.escape(name)}</a>'
                f"</td><td>3 days ago</td><td>0</td><td>main</td></tr>"
            )
        prev = f'<a href="?page={index - 1}">&laquo; Previous</a>' if index > 1 else ""
        nxt = f'<a href="?page={index + 1}">Next &raquo;</a>' if index < pages else ""
        return (
            "<!DOCTYPE html><html><head><title>Files :: Anaconda.org</title></head><body>"
            f'<div class="container"><a href="/{app.org}">{app.org}</a> / packages / '
            f"{app.package}<ul><li>Files</li><li>Labels</li><li>Badges</li></ul>"
            '<form><table class="table"><thead><tr><th></th><th>Type</th><th>Size</th>'
            "<th>Name</th><th>Uploaded</th><th>Downloads</th><th>Labels</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></form>"
            f'<ul class="pagination"><li>{prev}</li><li>showing {label} of {pages}</li>'
            f"<li>{nxt}</li></ul></div></body></html>"
        )

    def _api_files(self) -> list[dict]:
        app = self.app
        out = [
            {  # a conda file of the same package: must be ignored
                "basename": "linux-64/numpy-1.0-py_0.tar.bz2",
                "type": "conda",
                "version": "1.0",
                "md5": "0" * 32,
                "sha256": "None",
                "size": 1,
                "download_url": f"//127.0.0.1:{app.port}/api/download/x/y/1.0/linux-64/z.tar.bz2",
            }
        ]
        for name in sorted(app.files):
            version = _version_of(name)
            out.append(
                {
                    "basename": name,
                    "type": "pypi",
                    "distribution_type": "wheel" if name.endswith(".whl") else "sdist",
                    "version": version,
                    "md5": app.digest(name, "md5"),
                    "sha256": "None" if name in app.no_sha256 else app.digest(name),
                    "size": app.size(name),
                    "full_name": f"{app.org}/{app.package}/{version}/{name}",
                    "download_url": f"//127.0.0.1:{app.port}/api/download/"
                    f"{app.org}/{app.package}/{version}/{quote(name)}",
                    "labels": ["main"],
                    "ndownloads": 0,
                    "upload_time": "2026-11-20 10:00:00.000000+00:00",
                }
            )
        return out

    def _simple_html(self) -> str:
        app = self.app
        links = []
        for name in app.names():
            hashed = name in app.files and name not in app.no_sha256
            frag = f"#sha256={app.digest(name)}" if hashed else ""
            href = html.escape(f"../..{app.download_path(_plain(name))}{frag}")
            links.append(f'<a href="{href}">{html.escape(name)}</a><br/>')
        return (
            '<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.1">'
            f"<title>Links for {app.package}</title></head><body><h1>Links for {app.package}"
            f"</h1>{''.join(links)}</body></html>"
        )

    def _simple_json(self) -> dict:
        app = self.app
        return {
            "meta": {"api-version": "1.1"},
            "name": app.package,
            "files": [
                {
                    "filename": name,
                    "url": f"../..{app.download_path(_plain(name))}",
                    "hashes": {"sha256": app.digest(name)}
                    if name in app.files and name not in app.no_sha256
                    else {},
                    **({"size": app.size(name)} if name in app.files else {}),
                }
                for name in app.names()
            ],
        }

    def _listing(self) -> str:
        links = "".join(
            f'<a href="{html.escape(quote(n))}">{html.escape(n)}</a>\n' for n in self.app.names()
        )
        return f"<html><head><title>Index of /listing</title></head><body><pre>{links}</pre>"


def _plain(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def make_wheel(
    dest: Path,
    name: str,
    version: str,
    tag: str = "py3-none-any",
    *,
    payload: bytes = b"",
    metadata_name: str | None = None,
) -> Path:
    """Write a valid wheel ``{name}-{version}-{tag}.whl`` (module, dist-info, RECORD).

    ``payload`` goes into a data file stored uncompressed (random bytes make a wheel
    of that size); ``metadata_name`` makes METADATA disagree with the file name.
    """
    import base64
    import zipfile

    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    members = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {metadata_name or name}\nVersion: {version}\n"
        ).encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: staging_server\nRoot-Is-Purelib: "
            f"{'true' if tag.endswith('any') else 'false'}\nTag: {tag}\n"
        ).encode(),
    }
    if payload:
        members[f"{dist}/payload.bin"] = payload
    record = []
    for member, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{member},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            kind = zipfile.ZIP_STORED if member.endswith(".bin") else zipfile.ZIP_DEFLATED
            zf.writestr(member, data, compress_type=kind)
    return path


class UploadProxy(_Base):
    """Forwards every request to ``target``; the POSTs numbered in ``drop`` (1-based)
    are cut off with no answer, those in ``refuse`` get that status instead; ``bodies``
    keeps every POST body as sent (what the index was asked to store); ``rate`` (bytes
    a second) paces the reading of each POST body (a slow uplink)."""

    def __init__(self, target: str, *, drop=(), refuse: dict[int, int] | None = None,
                 rate: float = 0.0) -> None:  # fmt: skip
        self.target = target.rstrip("/")
        self.drop, self.refuse, self.rate = set(drop), dict(refuse or {}), rate
        self.posts = 0
        self.bodies: list[bytes] = []
        self.handler = _ProxyHandler
        self._lock = threading.Lock()

    def start(self):
        super().start()
        if self.rate:  # a small fixed window: a sender cannot park megabytes in our buffers
            self._httpd.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 15)
        return self


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: UploadProxy
    HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        body = self._paced_body(int(self.headers.get("Content-Length", 0)), self.app.rate)
        with self.app._lock:
            self.app.posts += 1
            self.app.bodies.append(body)
            number = self.app.posts
        if number in self.app.drop:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if number in self.app.refuse:
            status = self.app.refuse[number]
            self.send_response(status, "Bad Request" if status == 400 else None)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._forward(body)

    def _paced_body(self, length: int, rate: float) -> bytes:
        if not rate:
            return self.rfile.read(length)
        began, body = time.monotonic(), b""
        while len(body) < length:
            time.sleep(max(0.0, began + len(body) / rate - time.monotonic()))
            chunk = self.rfile.read(min(CHUNK, length - len(body)))
            if not chunk:
                break
            body += chunk
        return body

    def _forward(self, body: bytes | None) -> None:
        import requests

        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP}
        resp = requests.request(
            "POST" if body is not None else "GET",
            self.app.target + self.path,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=60,
        )
        content = resp.content
        self.send_response(resp.status_code, resp.reason)
        for key, value in resp.headers.items():
            if key.lower() not in self.HOP | {"content-encoding"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
