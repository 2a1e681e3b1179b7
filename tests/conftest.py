"""Shared test fixtures.

Shell functions are tested by running a fresh ``bash`` per test (never one shared
shell), with its own HOME and a minimal PATH whose first entry is the toolkit's
venv, so the tests see exactly what `make` sees.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Real wheels and sdists downloaded by tests are kept here between runs.
CACHE = ROOT / "build" / "test-cache"
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
    """Run ``make -C ROOT args`` in a clean environment that reuses ROOT's .venv."""
    return subprocess.run(
        ["make", "-C", str(ROOT), *args],
        env=clean_env(tmp_path, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pip_download(spec: str, dest: Path, *extra: str) -> list[Path]:
    """Download binary distributions with the toolkit venv's pip (index from pip's config)."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*cmd, "-d", str(dest), *extra, spec], check=True, capture_output=True)
    return sorted(set(dest.iterdir()) - before) or sorted(dest.iterdir())


@pytest.fixture(scope="session")
def official_numpy_wheels() -> dict[str, Path]:
    """The official NumPy wheels of OFFICIAL_NUMPY for five platforms (cached)."""
    return fetch_official_numpy_wheels()


def fetch_official_numpy_wheels() -> dict[str, Path]:
    """Download (once) and return the official wheels, keyed by platform."""
    wheels = {}
    for key, (platforms, pyver) in OFFICIAL_PLATFORMS.items():
        dest = CACHE / "numpy-official" / key
        found = sorted(dest.glob(f"numpy-{OFFICIAL_NUMPY}-*.whl")) if dest.exists() else []
        if not found:
            extra = ["--python-version", pyver]
            for plat in platforms:
                extra += ["--platform", plat]
            pip_download(f"numpy=={OFFICIAL_NUMPY}", dest, *extra)
            found = sorted(dest.glob(f"numpy-{OFFICIAL_NUMPY}-*.whl"))
        assert len(found) == 1, f"expected one numpy wheel for {key}, got {found}"
        wheels[key] = found[0]
    return wheels


# ---------------------------------------------------------------- pypiserver (uploads)


class PypiServer:
    """A real pypiserver on 127.0.0.1 with htpasswd authentication on uploads.

    ``url`` is the upload URL (twine ``--repository-url``), ``simple_url`` the
    index pip reads; ``files()`` maps each stored file name to its sha256.
    """

    def __init__(self, root: Path, username: str = "stager", authenticate: str = "update"):
        import secrets
        import socket

        from passlib.apache import HtpasswdFile

        self.root, self.username = root, username
        self.password = secrets.token_urlsafe(12)
        self.packages = root / "packages"
        self.packages.mkdir(parents=True)
        htpasswd = HtpasswdFile(str(root / "htpasswd"), new=True)
        htpasswd.set_password(username, self.password)
        htpasswd.save()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.simple_url = f"{self.url}simple/"
        cmd = [str(VENV_BIN / "pypi-server"), "run", "-p", str(self.port), "-i", "127.0.0.1"]
        cmd += ["-a", authenticate, "-P", str(root / "htpasswd"), "--disable-fallback"]
        cmd += ["--hash-algo", "sha256", "--server", "wsgiref", str(self.packages)]
        # `timeout` makes the server stop by itself even if pytest is killed.
        self._log = open(root / "server.log", "wb")  # noqa: SIM115 - lives as the server does
        self.proc = subprocess.Popen(
            ["timeout", "1800", *cmd], stdout=subprocess.DEVNULL, stderr=self._log
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
