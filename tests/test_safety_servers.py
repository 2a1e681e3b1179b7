"""Issue 12, items 10-12: hostile servers.

Loopback servers (plain http, and https with a certificate made for the test)
that send names meant to escape the cache or drive the terminal, bodies longer
than declared or with no end, pages too big to hold, a byte at a time, and
redirects from https down to http.  Every server stops by itself: each handler
gives up after a few seconds or a few megabytes."""

from __future__ import annotations

import contextlib
import http.server
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, LoopbackServer, clean_env
from numpy_wheels.errors import DownloadError, FatalError
from numpy_wheels.net import download
from numpy_wheels.upload import sources
from numpy_wheels.upload.download import fetch
from numpy_wheels.upload.select import select_files
from numpy_wheels.upload.summary import Entry

LIMIT_SECONDS = 20.0  # no handler lives longer
LIMIT_BYTES = 64 * 2**20  # nor sends more


class Hostile(LoopbackServer):
    """``routes[path] = callable(handler, server)``; counts what each path was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[str, int] = {}
        self.stop = threading.Event()

    def respond(self, handler, route) -> None:
        if route is None:
            handler.send_error(404)
            return
        with contextlib.suppress(OSError):  # the client hung up: what a bounded one does
            route[0](handler, self)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        super().__exit__(*exc)

    def stream(self, handler, block: bytes, pause: float = 0.0) -> None:
        """Send ``block`` again and again until the client leaves or a limit is hit."""
        start, sent = time.monotonic(), 0
        while not self.stop.is_set() and sent < LIMIT_BYTES:
            if time.monotonic() - start > LIMIT_SECONDS:
                break
            sent += len(block)  # counted first: the client may read it and leave at once
            self.sent[handler.path] = sent
            handler.wfile.write(block)
            handler.wfile.flush()
            if pause:
                self.stop.wait(pause)


def endless(ctype: str = "application/octet-stream", block: bytes = b"x" * 65536,
            pause: float = 0.0, length: int | None = None):  # fmt: skip
    def route(handler, server) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", ctype)
        if length is not None:
            handler.send_header("Content-Length", str(length))
        handler.end_headers()
        server.stream(handler, block, pause)

    return (route,)


@pytest.fixture
def hostile():
    with Hostile() as srv:
        yield srv


# ----------------------------------------------------------- 10. names from pages


def json_index(files: list[dict]) -> tuple:
    body = json.dumps({"meta": {"api-version": "1.0"}, "name": "scipy-openblas64",
                       "files": files}).encode()  # fmt: skip

    def route(handler, server) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return (route,)


def openblas(tmp_path: Path, base: str, *args: str, **env: str):
    full = clean_env(tmp_path, NW_OPENBLAS_INDEX_URL=f"{base}/simple/", NW_OPENBLAS_RETRIES="1",
                     NW_OPENBLAS_CACHE=str(tmp_path / "cache"), OPENBLAS_VERSION="0.3.99.1",
                     **env)  # fmt: skip
    script = ROOT / "scripts" / "openblas_support.py"
    return subprocess.run(
        [sys.executable, str(script), "--plat", "x86_64", "--os", "linux", *args],
        env=full, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


STEM = "scipy_openblas64-0.3.99.1-py3-none-"


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        (f"{STEM}x/../../../evil.manylinux2014_x86_64.whl",
         f"file name '{STEM}x/../../../evil.manylinux2014_x86_64.whl' is not one plain path "
         "component"),
        (f"{STEM}manylinux2014_x86_64\x1b]0;owned\x07.whl",
         f"file name '{STEM}manylinux2014_x86_64\\\\x1b]0;owned\\\\x07.whl' holds control "
         "characters"),
        (f"{STEM}manylinux2014_x86_64.whl\x00.whl", "holds a NUL byte"),
        (f"{STEM}{'m' * 300}.manylinux2014_x86_64.whl",
         "file name of 360 bytes is longer than 255"),
    ],
)  # fmt: skip
def test_index_file_names_are_checked_before_any_use(tmp_path, hostile, filename, message):
    hostile.routes["/simple/scipy-openblas64/"] = json_index(
        [{"filename": filename, "url": "/files/x.whl", "hashes": {"sha256": "a" * 64}}]
    )
    proc = openblas(tmp_path, hostile.base)
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"openblas_support.py: error: the index {hostile.base}/simple/: ")
    assert message in line
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr  # never echoed raw
    assert "/files/x.whl" not in hostile.sent and hostile.hits.get("/files/x.whl") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["home", "cache"] if (tmp_path / "cache").exists() else ["home"]
    )
    assert not (tmp_path / "cache" / "index").exists() or not any(
        (tmp_path / "cache" / "index").iterdir()
    )


# --------------------------------------------------------------- 11. bounds


def test_download_stops_at_the_declared_size(tmp_path, hostile):
    hostile.routes["/f"] = endless()  # no Content-Length: the body ends when it likes
    with pytest.raises(DownloadError, match=r"body larger than the declared size \(854 "):
        download(f"{hostile.base}/f", tmp_path / "f", size=854, retries=1)
    assert hostile.sent["/f"] < 16 * 2**20  # stopped early, not after the whole stream
    assert list(tmp_path.iterdir()) == []


def test_download_stops_at_the_cap_when_no_size_is_declared(tmp_path, hostile, monkeypatch):
    monkeypatch.setenv("NW_MAX_DOWNLOAD_BYTES", "100000")
    hostile.routes["/f"] = endless()
    with pytest.raises(DownloadError, match=r"body larger than the limit \(100000 bytes\)"):
        download(f"{hostile.base}/f", tmp_path / "f", retries=1)
    assert hostile.sent["/f"] < 16 * 2**20
    assert list(tmp_path.iterdir()) == []


def test_listing_page_size_is_capped(hostile, monkeypatch):
    monkeypatch.setenv("NW_MAX_PAGE_BYTES", str(2**20))
    hostile.routes["/simple/numpy/"] = endless("text/html", b"<a href='x'>x</a>" * 4096)
    session = sources.page_session(0)
    with pytest.raises(FatalError, match=r"body larger than the limit \(1048576 bytes\)"):
        sources.fetch_page(session, f"{hostile.base}/simple/numpy/", timeout=5)
    session.close()
    assert hostile.sent["/simple/numpy/"] < 16 * 2**20


@pytest.mark.parametrize("what", ["download", "page"])
def test_a_byte_a_tenth_of_a_second_meets_the_deadline(tmp_path, hostile, monkeypatch, what):
    monkeypatch.setenv("NW_REQUEST_DEADLINE", "1")
    hostile.routes["/f"] = endless("text/html", b"<", pause=0.1)  # never idle for `timeout`
    start = time.monotonic()
    with pytest.raises(FatalError, match=r"not complete within 1 s \(NW_REQUEST_DEADLINE\)"):
        if what == "download":
            download(f"{hostile.base}/f", tmp_path / "f", retries=1, timeout=5)
        else:
            session = sources.page_session(0)
            sources.fetch_page(session, f"{hostile.base}/f", timeout=5)
    assert time.monotonic() - start < LIMIT_SECONDS / 2  # well before the server gives up


def test_ctrl_c_stops_parallel_downloads_at_once(tmp_path, hostile):
    # GIVEN a listing whose files arrive a byte at a time
    names = [f"tinyproj-1.0-py3-none-{tag}.whl" for tag in ("any", "win_amd64")]
    page = "".join(f'<a href="/files/{n}">{n}</a>' for n in names).encode()

    def listing(handler, server) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(page)))
        handler.end_headers()
        handler.wfile.write(page)

    hostile.routes["/simple/tinyproj/"] = (listing,)
    for n in names:
        hostile.routes[f"/files/{n}"] = endless(block=b"P", pause=0.1, length=10**6)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "wheel_uploader.py"), "-u",
         f"{hostile.base}/simple/tinyproj/", "--allow-insecure", "-w", str(tmp_path / "w"),
         "-n", "-j", "2", "tinyproj", "1.0"],
        env=clean_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for _ in range(400):  # until both downloads are under way
        if len([n for n in names if hostile.sent.get(f"/files/{n}")]) == 2:
            break
        time.sleep(0.05)
    # WHEN the user presses Ctrl-C
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=LIMIT_SECONDS)
    # THEN the run ends at once, says so, and leaves the .part files to resume
    assert time.monotonic() - start < 3.0
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "wheel-uploader: interrupted"
    assert not [p for p in (tmp_path / "w").iterdir() if p.suffix == ".whl"]


# ------------------------------------------------------- 12. every redirect hop


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class Redirector(http.server.BaseHTTPRequestHandler):
    location = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def https_to_http(certificate, hostile, monkeypatch):
    """An https server whose every path redirects to the same path on plain http
    (its certificate trusted the way requests is told: REQUESTS_CA_BUNDLE)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    hostile.routes["/f"] = endless(length=5, block=b"plain")
    handler = type("H", (Redirector,), {"location": f"{hostile.base}/f"})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_port}/f", str(certificate[0])
    httpd.shutdown()
    httpd.server_close()


def test_https_file_redirected_to_http_is_refused(tmp_path, https_to_http, hostile):
    url, _ = https_to_http
    with pytest.raises(DownloadError, match=r"redirects to plain http \(http://127"):
        download(url, tmp_path / "f", retries=1)
    assert hostile.hits.get("/f") is None  # the plain-http hop was never made
    assert list(tmp_path.iterdir()) == []


def test_https_page_redirected_to_http_is_refused(https_to_http, hostile):
    url, _ = https_to_http
    session = sources.page_session(0)
    with pytest.raises(FatalError, match="redirects to plain http"):
        sources.fetch_page(session, url, timeout=5)
    session.close()
    assert hostile.hits.get("/f") is None


def test_uploader_download_redirected_to_http_is_refused(tmp_path, https_to_http, hostile):
    url, _ = https_to_http
    entry = Entry(
        "tinyproj-1.0-py3-none-any.whl", tmp_path / "tinyproj-1.0-py3-none-any.whl",
        sources.RemoteFile("tinyproj-1.0-py3-none-any.whl", url),
    )  # fmt: skip
    fetch(entry, timeout=5, retries=1, progress=False)
    assert entry.error and "redirects to plain http" in entry.error
    assert hostile.hits.get("/f") is None


def test_gzip_encoded_page_and_file_are_decoded_within_the_bounds(tmp_path, hostile):
    import gzip

    page = b"<a href='/f'>tinyproj-1.0-py3-none-any.whl</a>" * 100
    packed = gzip.compress(page)

    def route(handler, server) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(packed)))
        handler.end_headers()
        handler.wfile.write(packed)

    hostile.routes["/p"] = (route,)
    session = sources.page_session(0)
    got = sources.fetch_page(session, f"{hostile.base}/p", timeout=5)
    session.close()
    assert (got.form, got.body) == ("html", page.decode())
    got = download(f"{hostile.base}/p", tmp_path / "p", retries=1)
    assert got.read_bytes() == page


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tinyproj-1.0-py3-none-any\x1b[2J.whl",
         "file name 'tinyproj-1.0-py3-none-any\\\\x1b[2J.whl' holds control characters"),
        (f"tinyproj-1.0-py3-none-{'a' * 300}.whl", "file name of 326 bytes is longer than 255"),
    ],
)  # fmt: skip
def test_uploader_listing_names_are_checked(name, message):
    # GIVEN a staging listing offering a matching file under a hostile name
    listed = [sources.RemoteFile(name, "http://127.0.0.1:9/f")]
    # WHEN the files of tinyproj 1.0 are chosen, THEN the name is refused, shown escaped
    with pytest.raises(FatalError) as info:
        select_files(listed, "tinyproj", "1.0", ["all"], False, "the listing")
    assert message in str(info.value)
    assert "\x1b" not in str(info.value)
