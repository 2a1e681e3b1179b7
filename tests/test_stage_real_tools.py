"""`make stage` with the real anaconda-client (from the package index) instead of a
stub: its own parser takes the exact command stage.sh builds, and it talks to
:class:`AnacondaApi`, a loopback stand-in for the anaconda.org API (unreachable
here) that answers the calls an upload starts with as the real API does."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN, clean_env, run_pty
from staging_server import make_wheel

TOKEN = "tok-5e1f-secret"


class AnacondaApi:
    """The anaconda.org API calls of `anaconda upload --skip-existing -u ORG FILE`:
    ``HEAD /`` (is the API there), ``GET /user/ORG`` (the token may act for ORG: 401
    otherwise) and ``GET /dist/ORG/PKG/VERSION/FILE`` (200 for files in ``staged``,
    which --skip-existing then skips; 404 otherwise). Any other call gets a 500, so
    an upload that goes further fails. ``calls`` records (method, path, token)."""

    def __init__(self, org: str, token: str, staged: set[str]) -> None:
        self.org, self.token, self.staged = org, token, staged
        self.calls: list[tuple[str, str, str | None]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                auth = self.headers.get("Authorization", "")
                token = auth[len("token ") :] if auth.startswith("token ") else None
                api.calls.append((self.command, self.path, token))
                api.receive(self.path, self.rfile, int(self.headers.get("Content-Length") or 0))
                status, body = api.respond(self.command, self.path, token)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def respond(self, method: str, path: str, token: str | None) -> tuple[int, dict]:
        if method == "HEAD" and path == "/":
            return 200, {}
        if token != self.token:
            return 401, {"error": "Unauthorized: invalid or expired token"}
        if method == "GET" and path == f"/user/{self.org}":
            return 200, {"login": self.org, "user_type": "org", "name": self.org}
        if method == "GET" and path.startswith(f"/dist/{self.org}/"):
            basename = path.rsplit("/", 1)[-1]
            if basename in self.staged:
                return 200, {"basename": basename, "owner": self.org}
            return 404, {"error": f"file {basename} not found"}
        return 500, {"error": "not served by this stand-in"}

    def receive(self, path: str, body, length: int) -> None:
        body.read(length)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def wheelhouse(tmp_path, official_numpy_wheels) -> Path:
    """A real NumPy wheel and a small one, as `make wheels` leaves them (with the
    manifest of the run that made them)."""
    dest = tmp_path / "wheelhouse"
    dest.mkdir()
    shutil.copy(official_numpy_wheels["manylinux_x86_64"], dest)
    make_wheel(dest, "tinyproj", "1.0")
    lines = [
        f"{hashlib.sha256(w.read_bytes()).hexdigest()}  {w.name}\n"
        for w in sorted(dest.glob("*.whl"))
    ]
    (dest / "manifest.sha256").write_text("".join(lines))
    return dest


@pytest.fixture
def anaconda_on_path(tmp_path, tools_bin) -> Path:
    """A PATH directory holding just the real `anaconda` of the tools venv."""
    bindir = tmp_path / "anaconda-bin"
    bindir.mkdir()
    (bindir / "anaconda").symlink_to(tools_bin / "anaconda")
    return bindir


def stage(tmp_path: Path, wheelhouse: Path, bindir: Path, api: AnacondaApi, **env: str):
    """scripts/stage.sh as `make stage` runs it; anaconda-client's config names the API."""
    config = tmp_path / "home" / ".continuum" / "anaconda-client" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"url: {api.url}\n")
    full = clean_env(tmp_path, WHEEL_SDIR=str(wheelhouse), NW_PYTHON=str(VENV_BIN / "python"),
                     STAGE_PROJECT="numpy,tinyproj")  # fmt: skip
    full.update(env, PATH=f"{bindir}:{full['PATH']}")
    return subprocess.run(
        ["bash", "scripts/stage.sh"], cwd=ROOT, env=full, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_anaconda_client_takes_the_stage_command(tmp_path, wheelhouse, anaconda_on_path):
    # GIVEN the API, where both wheels are already staged in the release org
    names = sorted(w.name for w in wheelhouse.glob("*.whl"))
    api = AnacondaApi("multibuild-wheels-staging", TOKEN, set(names))
    try:
        # WHEN `make stage` runs the real anaconda-client
        proc = stage(tmp_path, wheelhouse, anaconda_on_path, api,
                     ANACONDA_TOKEN=TOKEN, BUILD_COMMIT="v2.4.6")  # fmt: skip
    finally:
        api.close()
    # THEN its parser took the command (no usage error), it asked, with the token,
    # for the org and for each wheel under its project and version, and skipped both
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    dists = sorted(p for m, p, _ in api.calls if p.startswith("/dist/"))
    assert dists == [
        f"/dist/multibuild-wheels-staging/numpy/2.4.6/{names[0]}",
        f"/dist/multibuild-wheels-staging/tinyproj/1.0/{names[1]}",
    ]
    assert ("GET", "/user/multibuild-wheels-staging", TOKEN) in api.calls
    assert {t for m, _, t in api.calls if m == "GET"} == {TOKEN}
    assert proc.stdout.splitlines()[-1] == (  # anaconda-client's "already exists", per file
        "2 of 2 files ended well: 0 uploaded, 2 already there, 0 failed"
    )
    assert TOKEN not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("token", "staged", "why"),
    [("not-" + TOKEN, True, "token refused"), (TOKEN, False, "upload refused")],
)
def test_anaconda_failure_fails_the_stage_step(
    tmp_path, wheelhouse, anaconda_on_path, token, staged, why
):
    # GIVEN an API that refuses the token, or the upload itself
    names = {w.name for w in wheelhouse.glob("*.whl")} if staged else set()
    api = AnacondaApi("multibuild-wheels-staging", TOKEN, names)
    try:
        # WHEN `make stage` runs
        proc = stage(tmp_path, wheelhouse, anaconda_on_path, api,
                     ANACONDA_TOKEN=token, BUILD_COMMIT="v2.4.6")  # fmt: skip
    finally:
        api.close()
    # THEN anaconda-client's failure is the step's: non-zero, one line naming it
    assert proc.returncode != 0, why
    assert proc.stderr.splitlines()[-1].startswith(
        "stage: error: anaconda upload to multibuild-wheels-staging failed (exit 1)"
    )
    assert token not in proc.stdout + proc.stderr


def test_make_stage_exit_status_follows_anaconda(tmp_path, wheelhouse, anaconda_on_path):
    api = AnacondaApi("multibuild-wheels-staging", TOKEN, set())
    try:
        config = tmp_path / "home" / ".continuum" / "anaconda-client" / "config.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f"url: {api.url}\n")
        env = {"WHEEL_SDIR": str(wheelhouse), "ANACONDA_TOKEN": TOKEN,
               "STAGE_PROJECT": "numpy,tinyproj"}  # fmt: skip
        env["PATH"] = f"{anaconda_on_path}:{clean_env(tmp_path)['PATH']}"
        proc = subprocess.run(
            ["make", "-C", str(ROOT), "stage", f"VENV={VENV_BIN.parent}"],
            env=clean_env(tmp_path, **env), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        api.close()
    assert proc.returncode == 2  # make's status for a failed recipe
    assert "stage: error: anaconda upload to multibuild-wheels-staging failed" in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr


class UploadsApi(AnacondaApi):
    """Also takes uploads as anaconda.org does: the package and its release exist,
    ``POST /stage/ORG/PKG/VERSION/FILE`` answers where to post the file (its storage:
    ``/s3/`` here, answering 201), ``POST /commit/...`` records it. The file's body is
    read at ``rate`` bytes a second through a small fixed window."""

    def __init__(self, org: str, token: str, rate: float) -> None:
        super().__init__(org, token, set())
        self.rate = rate
        self.stored: list[int] = []  # the size of each form posted to the storage
        self.httpd.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 15)

    def receive(self, path: str, body, length: int) -> None:
        if path != "/s3/":
            return super().receive(path, body, length)
        began, got = time.monotonic(), 0
        while got < length:
            time.sleep(max(0.0, began + got / self.rate - time.monotonic()))
            chunk = body.read(min(1 << 16, length - got))
            if not chunk:
                break
            got += len(chunk)
        self.stored.append(got)

    def respond(self, method: str, path: str, token: str | None) -> tuple[int, dict]:
        org = f"/{self.org}/"
        if path == "/s3/" and method == "POST":
            return 201, {}
        if token == self.token and method == "GET" and path.startswith("/package" + org):
            return 200, {"name": path.rsplit("/", 1)[-1], "package_types": ["pypi"]}
        if token == self.token and method == "GET" and path.startswith("/release" + org):
            return 200, {"version": path.rsplit("/", 1)[-1], "distributions": []}
        if token == self.token and method == "POST" and path.startswith("/stage" + org):
            return 200, {"post_url": f"{self.url}s3/", "form_data": {}, "dist_id": "d1"}
        if token == self.token and method == "POST" and path.startswith("/commit" + org):
            return 200, {"url": f"{self.url}{self.org}"}
        return super().respond(method, path, token)


@pytest.mark.parametrize("mode", ["terminal", "pipe", "NO_COLOR", "CI"])
def test_anaconda_upload_shows_its_bar_on_a_terminal_only(
    tmp_path, wheelhouse, anaconda_on_path, mode
):
    # GIVEN an anaconda.org that stores files at 8 MB/s, and NumPy's 16 MB wheel
    api = UploadsApi("multibuild-wheels-staging", TOKEN, rate=8_000_000)
    config = tmp_path / "home" / ".continuum" / "anaconda-client" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"url: {api.url}\n")
    env = clean_env(tmp_path, WHEEL_SDIR=str(wheelhouse), NW_PYTHON=str(VENV_BIN / "python"),
                    STAGE_PROJECT="numpy,tinyproj", ANACONDA_TOKEN=TOKEN,
                    BUILD_COMMIT="v2.4.6", TERM="xterm-256color", COLUMNS="150")  # fmt: skip
    env["PATH"] = f"{anaconda_on_path}:{env['PATH']}"
    if mode != "NO_COLOR":
        env.pop("NO_COLOR")
    if mode == "CI":
        env["CI"] = "true"
    args = ["bash", str(ROOT / "scripts" / "stage.sh")]
    try:
        # WHEN `make stage` uploads both wheels on a terminal or into a pipe
        if mode == "pipe":
            proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-3000:]
            out = proc.stdout + proc.stderr
        else:
            out = run_pty(args, env, timeout=120)
    finally:
        api.close()
    # THEN both went up whole; a terminal saw tqdm's bar part way, the rest one line a file
    sizes = sorted(w.stat().st_size for w in wheelhouse.glob("*.whl"))
    got = sorted(api.stored)  # each file in its form, to the storage without the token
    assert [c for c in api.calls if c[1] == "/s3/"] == [("POST", "/s3/", None)] * 2
    assert len(got) == 2 and all(0 < g - size < 4096 for g, size in zip(got, sizes, strict=True))
    text = out.replace("\r", "\n")
    for wheel in wheelhouse.glob("*.whl"):  # one line a file: its command
        line = rf"^\+ ANACONDA_API_TOKEN=\*+ anaconda upload .*/{re.escape(wheel.name)}$"
        assert len(re.findall(line, text, re.M)) == 1
        # and on a terminal anaconda-client's own words with its bar
        line = rf'^Uploading file "[^"]+/{re.escape(wheel.name)}"$'
        assert len(re.findall(line, text, re.M)) == (mode == "terminal")
    bars = re.findall(r"^ *(\d+)%\|", text, re.M)
    if mode == "terminal":
        assert any(0 < int(p) < 90 for p in bars), bars  # part way
        assert max(map(int, bars)) >= 90  # (at the end tqdm shows the form's bytes, no %)
    else:
        assert bars == [] and "%|" not in text
    assert TOKEN not in out
