"""wheel-uploader as the release manager runs it: credentials from a `.pypirc` in
HOME (no TWINE_* variables), https staging locations, a real pypiserver as the
target, real GPG signatures.

The https side is :class:`TlsFront`, an HTTPS proxy on loopback that answers for
any host itself with a certificate made here, so the seed's own command line
(``-u https://…``, no ``--allow-insecure``) and the default staging URL run
unchanged without reaching the network.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import socketserver
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from conftest import ROOT, VENV_BIN, PypiServer, clean_env
from numpy_wheels.upload.cli import DEFAULT_STAGING
from staging_server import StagingServer, _StagingHandler, make_wheel

CDN = "wheels.invalid"  # a reserved name: only TlsFront answers for it
DEFAULT = urlsplit(DEFAULT_STAGING.format(project="numpy"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TlsFront:
    """HTTPS proxy on 127.0.0.1: CONNECT is accepted for any host, TLS is ended with a
    certificate for ``hosts`` (its own CA: ``ca``), and GETs are answered from
    ``routes[(host, path)] = (content type, body)``; anything else is a 404.
    ``requests`` records (host, path) of every GET."""

    def __init__(self, tmp: Path, hosts: list[str]) -> None:
        self.ca, key = tmp / "front-ca.pem", tmp / "front-key.pem"
        san = ",".join(f"DNS:{h}" for h in hosts)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", f"/CN={hosts[0]}",
             "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out", str(self.ca)],
            check=True, capture_output=True,
        )  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca, key)
        self.routes: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            host: str | None = None

            def log_message(self, *args) -> None:
                pass

            def do_CONNECT(self) -> None:
                self.host = self.path.rsplit(":", 1)[0]
                self.send_response(200, "Connection established")
                self.end_headers()
                tls = context.wrap_socket(self.connection, server_side=True)
                self.connection = self.request = tls
                self.rfile = tls.makefile("rb")
                self.wfile = socketserver._SocketWriter(tls)
                self.close_connection = False  # urllib3 says CONNECT … HTTP/1.0

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                front.requests.append((self.host or "", path))
                ctype, body = front.routes.get((self.host or "", path), ("text/plain", b""))
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.proxy = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, host: str, page: str, files: list[Path], *, absolute: bool) -> None:
        """A page at ``page`` linking each file (with its sha256), and the files beside it."""
        links = []
        for f in files:
            href = f"{page}{quote(f.name)}" if absolute else quote(f.name)
            links.append(f'<a href="{html.escape(href)}#sha256={sha256(f)}">{f.name}</a><br/>')
            self.routes[(host, f"{page}{f.name}")] = ("application/octet-stream", f.read_bytes())
        body = f"<html><body>{''.join(links)}</body></html>".encode()
        self.routes[(host, page)] = ("text/html", body)

    def env(self) -> dict[str, str]:
        """Environment that sends https requests through this front and trusts it."""
        return {"HTTPS_PROXY": str(self.proxy), "https_proxy": str(self.proxy),
                "REQUESTS_CA_BUNDLE": str(self.ca), "NO_PROXY": "", "no_proxy": ""}  # fmt: skip

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def front(tmp_path):
    server = TlsFront(tmp_path, [CDN, DEFAULT.hostname])
    yield server
    server.close()


@pytest.fixture
def gnupg():
    """A throwaway default signing key (short GNUPGHOME: the agent's socket path)."""
    home = Path(tempfile.mkdtemp(prefix="nwgpg", dir="/tmp"))
    home.chmod(0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    uid = "NW Release <nw-release@example.invalid>"
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    yield home
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def write_pypirc(path: Path, sections: dict[str, dict[str, str]]) -> Path:
    text = "[distutils]\nindex-servers =\n" + "".join(f"    {name}\n" for name in sections)
    for name, values in sections.items():
        text += f"\n[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def uploader(tmp_path: Path, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``command`` typed at a shell whose HOME is tmp_path/home; no TWINE_* variables."""
    full = clean_env(tmp_path, **env)
    for name in [n for n in full if n.startswith("TWINE_") and n not in env]:
        del full[name]
    return subprocess.run(
        ["bash", "-c", command], env=full, capture_output=True, text=True, timeout=600,
        cwd=tmp_path,
    )  # fmt: skip


def table(out: str) -> dict[str, tuple[str, str, str]]:
    rows = [re.split(r"\s{2,}", ln) for ln in out.splitlines()]
    return {r[0]: (r[1], r[2], r[3]) for r in rows[1:] if len(r) == 6}


# --------------------------------------------------------------- the seed's command


def test_seed_release_command_through_pypirc(
    tmp_path, front, pypiserver, gnupg, official_numpy_wheels
):
    # GIVEN the release manager's ~/.pypirc naming `warehouse` (password in the file),
    # staged wheels on an https CDN listing, a decoy release and a Linux wheel there
    home = tmp_path / "home"
    write_pypirc(home / ".pypirc", {"warehouse": {
        "repository": pypiserver.url, "username": pypiserver.username,
        "password": pypiserver.password}})  # fmt: skip
    wanted = [official_numpy_wheels["win_amd64"], official_numpy_wheels["macosx_arm64"]]
    decoy = make_wheel(tmp_path / "decoy", "numpy", "2.4.60", "cp311-cp311-win_amd64")
    listed = [*wanted, official_numpy_wheels["manylinux_x86_64"], decoy]
    front.serve(CDN, "/", listed, absolute=False)
    # WHEN the seed's own command line runs (through a shell: `~` is the user's)
    proc = uploader(
        tmp_path,
        f"{VENV_BIN}/wheel-uploader -r warehouse -u https://{CDN}/ -s -v -w ~/wheelhouse "
        "-t win -t macosx numpy 2.4.6",
        GNUPGHOME=str(gnupg), **front.env(),
    )  # fmt: skip
    # THEN exactly the two wanted wheels were fetched over https, verified, signed
    # and uploaded with the .pypirc credentials, each with its signature
    assert proc.returncode == 0, proc.stderr[-3000:]
    fetched = sorted(p for h, p in front.requests if h == CDN and p != "/")
    assert fetched == sorted(f"/{w.name}" for w in wanted)
    stored = pypiserver.files()
    assert sorted(stored) == sorted([w.name for w in wanted] + [f"{w.name}.asc" for w in wanted])
    for w in wanted:
        assert stored[w.name] == sha256(w)
        assert table(proc.stdout)[w.name] == ("downloaded", "ok", "uploaded")
        sig = pypiserver.packages / f"{w.name}.asc"
        check = subprocess.run(
            ["gpg", "--verify", str(sig), str(home / "wheelhouse" / w.name)],
            env=dict(os.environ, GNUPGHOME=str(gnupg)), capture_output=True, text=True,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
    assert "--repository warehouse" in proc.stderr  # twine was told the .pypirc name
    assert pypiserver.password not in proc.stdout + proc.stderr

    # a second run of the same command uploads nothing and fetches nothing
    before = len(front.requests)
    again = uploader(
        tmp_path,
        f"{VENV_BIN}/wheel-uploader -r warehouse -u https://{CDN}/ -s -v -w ~/wheelhouse "
        "-t win -t macosx numpy 2.4.6",
        GNUPGHOME=str(gnupg), **front.env(),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert front.requests[before:] == [(CDN, "/")]
    assert {table(again.stdout)[w.name] for w in wanted} == {("cached", "ok", "already there")}


def test_default_staging_url(tmp_path, front, pypiserver):
    # GIVEN no -u: the default is the simple index of the organisation `make stage`
    # uploads releases to (numpy_wheels/stage.py's STAGING_ORG), served here by the front
    stage_py = (ROOT / "scripts" / "numpy_wheels" / "stage.py").read_text()
    org = re.search(r'^STAGING_ORG = "([^"]+)"$', stage_py, re.M)
    assert org and DEFAULT.scheme == "https"
    assert DEFAULT.path == f"/{org[1]}/simple/numpy/"
    wheels = [make_wheel(tmp_path / "s", "numpy", "2.4.6", t)
              for t in ("cp312-cp312-win_amd64", "cp312-cp312-macosx_11_0_arm64")]  # fmt: skip
    front.serve(DEFAULT.hostname, DEFAULT.path, wheels, absolute=True)
    write_pypirc(tmp_path / "home" / ".pypirc", {"warehouse": {
        "repository": pypiserver.url, "username": pypiserver.username,
        "password": pypiserver.password}})  # fmt: skip
    # WHEN
    proc = uploader(
        tmp_path, f"{VENV_BIN}/wheel-uploader -r warehouse -w wh numpy 2.4.6", **front.env()
    )
    # THEN the page read was the default one, for this project, and both were uploaded
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert front.requests[0] == (DEFAULT.hostname, DEFAULT.path)
    assert pypiserver.files() == {w.name: sha256(w) for w in wheels}


# ------------------------------------------------------------- .pypirc variations


def test_pypirc_password_from_the_environment_for_a_private_index(tmp_path, tmp_path_factory):
    # GIVEN an index where reading also needs a login, and a .pypirc section with
    # the user name only: the password comes from TWINE_PASSWORD
    server = PypiServer(tmp_path_factory.mktemp("private"), authenticate="update,download,list")
    try:
        write_pypirc(tmp_path / "home" / ".pypirc", {"private": {
            "repository": server.url, "username": server.username}})  # fmt: skip
        wheels = [make_wheel(tmp_path / "s", "tinyproj", "1.0", t)
                  for t in ("py3-none-any", "cp312-cp312-win_amd64")]  # fmt: skip
        with StagingServer(wheels, package="tinyproj") as staging:
            command = (f"{VENV_BIN}/wheel-uploader -r private -u {staging.simple_url} "
                       "--allow-insecure -w wh tinyproj 1.0")  # fmt: skip
            # WHEN it runs twice
            first = uploader(tmp_path, command, TWINE_PASSWORD=server.password)
            second = uploader(tmp_path, command, TWINE_PASSWORD=server.password)
            without = uploader(tmp_path, command)
        # THEN the first uploads, the second reads the private index (with the
        # .pypirc user and the environment's password) and skips both
        assert first.returncode == 0, first.stderr[-3000:]
        assert server.files() == {w.name: sha256(w) for w in wheels}
        assert second.returncode == 0, second.stderr[-3000:]
        assert {table(second.stdout)[w.name][2] for w in wheels} == {"already there"}
        # and without the password the index refuses to be read: one line, exit 1
        assert without.returncode == 1
        assert without.stderr.splitlines()[-1] == (
            f"wheel-uploader: error: cannot read {server.simple_url}tinyproj/: "
            f"HTTP 401 Unauthorized; the index needs a login: user {server.username!r} has "
            "no password; set TWINE_PASSWORD or the password of the .pypirc section named "
            "with -r"
        )
        for proc in (first, second, without):
            assert server.password not in proc.stdout + proc.stderr
    finally:
        server.stop()


def test_config_file_option(tmp_path, pypiserver):
    # GIVEN a .pypirc outside HOME (and none in HOME)
    conf = write_pypirc(tmp_path / "release" / "pypirc", {"warehouse": {
        "repository": pypiserver.url, "username": pypiserver.username,
        "password": pypiserver.password}})  # fmt: skip
    wheel = make_wheel(tmp_path / "s", "tinyproj", "1.0")
    with StagingServer([wheel], package="tinyproj") as staging:
        base = (f"{VENV_BIN}/wheel-uploader -u {staging.listing_url} --allow-insecure "
                "-w wh tinyproj 1.0")  # fmt: skip
        # WHEN --config-file names it
        proc = uploader(tmp_path, f"{base} --config-file {conf} -r warehouse")
        # ... and when it is not given, the same -r looks in ~/.pypirc
        missing = uploader(tmp_path, f"{base} -r warehouse")
    # THEN twine got the same file, and the upload used its credentials
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"--repository warehouse --config-file {conf}" in proc.stderr
    assert pypiserver.files() == {wheel.name: sha256(wheel)}
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[-1] == (
        "wheel-uploader: error: repository 'warehouse': Missing 'warehouse' section from ~/.pypirc."
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"username": "u"}, "its section in ~/.pypirc has no 'repository' URL"),
        (None, "Missing 'elsewhere' section from ~/.pypirc."),
    ],
)
def test_pypirc_mistakes_are_one_line(tmp_path, section, message):
    # GIVEN a .pypirc a newcomer got wrong: no URL in the section, or no such section
    write_pypirc(tmp_path / "home" / ".pypirc", {"warehouse": section or {"repository": "x"}})
    wheel = make_wheel(tmp_path / "s", "tinyproj", "1.0")
    # WHEN
    name = "warehouse" if section else "elsewhere"
    proc = uploader(tmp_path, f"{VENV_BIN}/wheel-uploader --files -r {name} {wheel}")
    # THEN one line naming the repository, exit 2, no traceback
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == f"wheel-uploader: error: repository {name!r}: {message}"
    assert "Traceback" not in proc.stderr


def test_index_url_option_is_the_index_checked(tmp_path, tmp_path_factory, pypiserver):
    # GIVEN a target and, at --index-url, another index already holding the file
    # with other bytes
    other = PypiServer(tmp_path_factory.mktemp("other"))
    try:
        write_pypirc(tmp_path / "home" / ".pypirc", {"warehouse": {
            "repository": pypiserver.url, "username": pypiserver.username,
            "password": pypiserver.password}})  # fmt: skip
        ours = make_wheel(tmp_path / "s", "tinyproj", "1.0")
        theirs = make_wheel(tmp_path / "o", "tinyproj", "1.0", payload=b"other")
        shutil.copy(theirs, other.packages / theirs.name)
        command = f"{VENV_BIN}/wheel-uploader --files -r warehouse {ours}"
        # WHEN the run is told to check that index
        proc = uploader(tmp_path, f"{command} --index-url {other.simple_url}")
        # THEN that index was read: the run stops, the target is left alone
        assert proc.returncode == 1
        assert proc.stderr.splitlines()[-1] == (
            f"wheel-uploader: error: {ours.name} is already on {other.simple_url} with sha256 "
            f"{sha256(theirs)}, ours is {sha256(ours)}; stopping, nothing overwritten"
        )
        assert pypiserver.files() == {}
        # and without --index-url the target's own index is checked, and it uploads
        proc = uploader(tmp_path, command)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert pypiserver.files() == {ours.name: sha256(ours)}
    finally:
        other.stop()


# --------------------------------------------------------------- -j, --source-kind


class GatedStaging(StagingServer):
    """Counts file downloads in flight; the first ones wait (5 s at most) until
    ``gate`` are in flight at once, so parallel fetching shows as a count."""

    def __init__(self, files, gate: int) -> None:
        super().__init__(files, package="tinyproj")
        self.gate, self.in_flight, self.most = gate, 0, 0
        self.opened = threading.Event()
        self.cond = threading.Condition()
        outer = self

        class Handler(_StagingHandler):
            def _file(self, name: str) -> None:
                with outer.cond:
                    outer.in_flight += 1
                    outer.most = max(outer.most, outer.in_flight)
                    if outer.in_flight >= outer.gate:
                        outer.opened.set()
                    outer.cond.notify_all()
                    if not outer.cond.wait_for(outer.opened.is_set, timeout=5):
                        outer.opened.set()  # not parallel: stop holding the rest
                try:
                    super()._file(name)
                finally:
                    with outer.cond:
                        outer.in_flight -= 1

        self.handler = Handler


@pytest.mark.parametrize("jobs", [1, 3])
def test_jobs_is_the_number_of_parallel_downloads(tmp_path, jobs):
    wheels = [make_wheel(tmp_path / "s", "tinyproj", "1.0", f"cp3{i}-cp3{i}-win_amd64")
              for i in range(10, 15)]  # fmt: skip
    with GatedStaging(wheels, gate=jobs) as staging:
        proc = uploader(
            tmp_path,
            f"{VENV_BIN}/wheel-uploader -n -j {jobs} -u {staging.simple_url} --allow-insecure "
            "-w wh tinyproj 1.0",
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert staging.most == jobs
    assert sorted(p.name for p in (tmp_path / "wh").iterdir()) == sorted(w.name for w in wheels)


@pytest.mark.parametrize(
    ("kind", "url"),
    [("files-page", "files_page_url"), ("api", "api_url"), ("simple", "simple_url"),
     ("listing", "listing_url")],
)  # fmt: skip
def test_source_kind_reads_each_kind(tmp_path, kind, url):
    wheels = [make_wheel(tmp_path / "s", "tinyproj", "1.0", f"cp3{i}-cp3{i}-win_amd64")
              for i in range(10, 15)]  # fmt: skip
    with StagingServer(wheels, package="tinyproj", page_size=2) as staging:
        proc = uploader(
            tmp_path,
            f"{VENV_BIN}/wheel-uploader -n --source-kind {kind} -u {getattr(staging, url)} "
            "--allow-insecure -w wh tinyproj 1.0",
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"5 files of tinyproj 1.0 at {getattr(staging, url)} ({kind})" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "wh").iterdir()) == sorted(w.name for w in wheels)


@pytest.mark.parametrize(
    ("kind", "url", "message"),
    [
        ("api", "files_page_url", "expected JSON from the anaconda.org API, got HTML"),
        ("files-page", "api_url", "expected an HTML files-page, got JSON"),
        ("listing", "api_url", "expected an HTML listing, got JSON"),
    ],
)
def test_source_kind_that_does_not_match_the_page(tmp_path, kind, url, message):
    wheel = make_wheel(tmp_path / "s", "tinyproj", "1.0")
    with StagingServer([wheel], package="tinyproj") as staging:
        proc = uploader(
            tmp_path,
            f"{VENV_BIN}/wheel-uploader -n --source-kind {kind} -u {getattr(staging, url)} "
            "--allow-insecure -w wh tinyproj 1.0",
        )
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        f"wheel-uploader: error: {getattr(staging, url)}: {message}"
    )
    assert not (tmp_path / "wh").exists()
