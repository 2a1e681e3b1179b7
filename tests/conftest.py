"""Shared test fixtures.

Shell functions are tested by running a fresh ``bash`` per test (never one shared
shell), with its own HOME and a minimal PATH whose first entry is the toolkit's
venv, so the tests see exactly what `make` sees.
"""

from __future__ import annotations

import fcntl
import http.server
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import termios
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# the settings table the Makefile includes and the package ships
SETTINGS_MK = ROOT / "scripts" / "numpy_wheels" / "data" / "settings.mk"
# Real wheels and sdists downloaded by tests are kept here between runs.
CACHE = ROOT / "build" / "test-cache"
# The interpreter and machine the suite runs on: expected wheel names derive from
# them (`make test PYTHON=python3.13` on an aarch64 host expects cp313 ... aarch64).
PY_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
HOST_ARCH = sysconfig.get_platform().split("-", 1)[-1]  # x86_64, aarch64, ...
# The NumPy release whose official wheels the tests audit, upload and compare.
OFFICIAL_NUMPY = "2.4.6"
OFFICIAL_PLATFORMS = {
    # platform key: (pip --platform values, python tag)
    "manylinux_x86_64": (["manylinux_2_28_x86_64"], "311"),
    "manylinux_aarch64": (["manylinux_2_28_aarch64"], "311"),
    "macosx_x86_64": (["macosx_10_15_x86_64", "macosx_13_0_x86_64", "macosx_14_0_x86_64"], "311"),
    "macosx_arm64": (["macosx_14_0_arm64"], "311"),
    "win_amd64": (["win_amd64"], "311"),
}
# A suite started in the background by a non-interactive shell (`make test &`)
# inherits SIGINT ignored, and so would every command it runs: the Ctrl-C tests
# then test the shell, not the toolkit.  A handler here is reset to the default
# in the children (exec), as a terminal's Ctrl-C finds them.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The runner's own CI and colour settings (CI=true, GITHUB_ACTIONS, NO_COLOR…)
# would change what the toolkit prints under test: the tests that check CI
# behaviour set these themselves, so the suite means the same on a laptop and
# on any CI service.
for _name in list(os.environ):
    if _name in {"CI", "NO_COLOR", "FORCE_COLOR", "TF_BUILD"} or _name.startswith(
        ("GITHUB_", "SYSTEM_", "TRAVIS", "RUNNER_", "BUILD_BUILD")
    ):
        del os.environ[_name]

# Bound, never-listening sockets held until the run ends: their ports refuse
# connections and no other process can take them meanwhile.
_HELD_PORTS: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port that refuses connections for the rest of the run."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(sock)
    return sock.getsockname()[1]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment like a fresh CI shell: own HOME, minimal PATH, no colours."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "HOME": str(home),
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "TMPDIR": str(tmp_path),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    # The machine's own network settings (CA bundle, proxy, pip's index) stay.
    for name, value in os.environ.items():
        if name.startswith(("PIP_", "SSL_")) or name.endswith(("_CA_BUNDLE", "_PROXY", "_proxy")):
            env.setdefault(name, value)
    env.update(extra)
    return env


def run_bash(
    script: str,
    tmp_path: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new bash with the library sourced from ROOT."""
    full_env = clean_env(tmp_path, **(env or {}))
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def bash(tmp_path):
    """``bash(script, **kw)`` -> CompletedProcess; see :func:`run_bash`."""

    def _run(script: str, **kw):
        return run_bash(script, tmp_path, **kw)

    return _run


def make(*args: str, tmp_path: Path, env: dict[str, str] | None = None, timeout: float = 3600):
    """Run ``make -C ROOT args`` in a clean environment with the venv and interpreter
    running the tests (`make test PYTHON=python3.13 VENV=.venv313` builds cp313)."""
    here = {"VENV": str(VENV_BIN.parent), "PYTHON": sys.executable}
    return subprocess.run(
        ["make", "-C", str(ROOT), *args],
        env=clean_env(tmp_path, **{**here, **(env or {})}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def index_file(spec: str, *pip_args: str) -> tuple[str, str, str]:
    """(file name, URL, sha256) of the wheel pip picks for ``spec``, as the index states
    it now (pip's own resolution and configuration: `pip install --dry-run --report`)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q"]
        cmd += ["--no-deps", "--only-binary=:all:", "--report", str(report), *pip_args, spec]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"pip cannot resolve {spec} {pip_args}: {proc.stderr[-2000:]}")
        (item,) = json.loads(report.read_text())["install"]
    info = item["download_info"]
    sha256 = info.get("archive_info", {}).get("hashes", {}).get("sha256", "")
    return unquote(urlsplit(info["url"]).path.rsplit("/", 1)[-1]), info["url"], sha256


def cached_download(spec: str, dest: Path, *pip_args: str) -> Path:
    """The wheel pip picks for ``spec``, kept in ``dest`` between runs: a kept copy is
    used only while its sha256 matches the index's; otherwise it is fetched again
    (numpy_wheels.net.download: temporary name, sha256 checked, then renamed)."""
    from numpy_wheels.files import file_hash
    from numpy_wheels.net import download

    name, url, sha256 = index_file(spec, *pip_args)
    if url.startswith("file:"):  # a local index (pip's config): used in place, not copied
        local = Path(unquote(urlsplit(url).path))
        if sha256 and file_hash(local) != sha256:
            raise RuntimeError(f"{local}: sha256 differs from its index's {sha256}")
        return local
    if not sha256:
        raise RuntimeError(f"the index gives no sha256 for {url}; not caching it")
    path = dest / name
    if not (path.is_file() and file_hash(path) == sha256):
        download(url, path, sha256=sha256)
    return path


@pytest.fixture(scope="session")
def official_numpy_wheels() -> dict[str, Path]:
    """The official NumPy wheels of OFFICIAL_NUMPY for five platforms (cached)."""
    return fetch_official_numpy_wheels()


def fetch_official_numpy_wheels() -> dict[str, Path]:
    """Download (once) and return the official wheels, keyed by platform."""
    wheels = {}
    for key, (platforms, pyver) in OFFICIAL_PLATFORMS.items():
        extra = ["--python-version", pyver]
        for plat in platforms:
            extra += ["--platform", plat]
        dest = CACHE / "numpy-official" / key
        wheels[key] = cached_download(f"numpy=={OFFICIAL_NUMPY}", dest, *extra)
    return wheels


# Real repair and staging tools that do not belong in the toolkit's venv here (the
# toolkit installs delvewheel/delocate only on their platforms; `make stage` expects
# anaconda-client on PATH), in a venv of their own, per interpreter.
TOOLS = ("anaconda-client==1.16.0", "delvewheel==1.13.2", "delocate==0.13.0")


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    """bin/ of a venv holding TOOLS; pip re-checks the pins every run (a no-op when met)."""
    venv = CACHE / f"tools-{PY_TAG}"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *TOOLS]
    proc = subprocess.run(pip, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv / "bin"


# ---------------------------------------------------------------- pypiserver (uploads)


# pypi-server's own main() (wsgiref), serving on the listening socket whose file
# descriptor is argv[1] instead of binding one itself.
_PYPISERVER_ON_FD = """
import socket, sys, wsgiref.simple_server as ws
from pypiserver.__main__ import main
fd = int(sys.argv.pop(1))
class InheritedSocketServer(ws.WSGIServer):
    def server_bind(self):
        self.socket.close()
        self.socket = socket.socket(fileno=fd)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()
    def server_activate(self):
        pass  # already listening
ws.WSGIServer = InheritedSocketServer
main(sys.argv[1:])
"""


class PypiServer:
    """A real pypiserver on 127.0.0.1 with htpasswd authentication on uploads.

    ``url`` is the upload URL (twine ``--repository-url``), ``simple_url`` the
    index pip reads; ``files()`` maps each stored file name to its sha256.
    """

    def __init__(self, root: Path, username: str = "stager", authenticate: str = "update"):
        import secrets

        from passlib.apache import HtpasswdFile

        self.root, self.username = root, username
        self.password = secrets.token_urlsafe(12)
        self.packages = root / "packages"
        self.packages.mkdir(parents=True)
        htpasswd = HtpasswdFile(str(root / "htpasswd"), new=True)
        htpasswd.set_password(username, self.password)
        htpasswd.save()
        # The test binds and listens; the server inherits that very socket, so the
        # port is never free between being chosen and being served.
        with socket.create_server(("127.0.0.1", 0)) as sock:
            self.port = sock.getsockname()[1]
            self.url = f"http://127.0.0.1:{self.port}/"
            self.simple_url = f"{self.url}simple/"
            cmd = [str(VENV_BIN / "python"), "-c", _PYPISERVER_ON_FD, str(sock.fileno()), "run"]
            cmd += ["-p", str(self.port), "-i", "127.0.0.1", "-a", authenticate]
            cmd += ["-P", str(root / "htpasswd"), "--disable-fallback", "--hash-algo", "sha256"]
            cmd += ["--server", "wsgiref", str(self.packages)]
            # `timeout` makes the server stop by itself even if pytest is killed.
            self._log = open(root / "server.log", "wb")  # noqa: SIM115 - lives as the server does
            self.proc = subprocess.Popen(
                ["timeout", "1800", *cmd],
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                pass_fds=(sock.fileno(),),
            )
        self._wait_ready()

    def _wait_ready(self, limit: float = 30.0) -> None:
        import time
        import urllib.request

        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.root / "server.log").read_text(errors="replace")
                raise RuntimeError(f"pypiserver exited: {log[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)  # polling for readiness, not a fixed wait
        raise RuntimeError(f"pypiserver did not answer on {self.url} within {limit} s")

    def files(self) -> dict[str, str]:
        import hashlib

        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.packages.rglob("*"))
            if p.is_file()
        }

    def twine_env(self) -> dict[str, str]:
        return {"TWINE_USERNAME": self.username, "TWINE_PASSWORD": self.password}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def pypiserver(tmp_path_factory):
    """A fresh authenticated pypiserver per test; see :class:`PypiServer`."""
    server = PypiServer(tmp_path_factory.mktemp("pypiserver"))
    yield server
    server.stop()


class LoopbackServer:
    """An HTTP server on 127.0.0.1 in a thread, for download fault tests.

    ``routes[path]`` holds what a subclass's ``respond(handler, route)`` serves;
    ``hits[path]`` counts requests.  Use as a context manager (stops by itself).
    """

    prefix = ""

    def __init__(self) -> None:
        self.routes: dict[str, tuple] = {}
        self.hits: dict[str, int] = {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                owner.respond(self, owner.routes.get(self.path))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_port}{self.prefix}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def respond(self, handler: http.server.BaseHTTPRequestHandler, route: tuple | None) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- container engine


@pytest.fixture(scope="session")
def container():
    """A real dockerd on a private socket and a manylinux-shaped image, once per
    session (tests/container_engine.py); stopped by PID at the end, even on failure."""
    from container_engine import EngineUnavailable, start_container_engine

    try:
        box = start_container_engine()
    except EngineUnavailable as exc:
        pytest.skip(f"no container engine on this machine: {exc}")
    times = ", ".join(f"{k} {v:.1f} s" for k, v in box.timings.items())
    print(f"\ncontainer engine at {box.engine.host}, image {box.image} ({times})")
    yield box
    box.engine.stop()


def run_pty(args: list[str], env: dict[str, str], timeout: float = 60, status: int = 0) -> str:
    """What a user sees of a command on a terminal (stdout and stderr), once it exits
    with ``status``."""
    master, slave = pty.openpty()
    # a terminal has a size (a new pty's is 0x0, where tqdm draws nothing)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
    proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        try:
            block = os.read(master, 65536) if ready else b""
        except OSError:  # EIO: the child closed the terminal
            block = b""
        if not block:
            break
        out += block
    os.close(master)
    assert proc.wait(timeout=timeout) == status, out.decode(errors="replace")
    return out.decode()
