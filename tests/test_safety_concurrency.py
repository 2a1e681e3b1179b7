"""Issue 12, item 5: two runs at once.

Several openblas_support.py on one cache, two wheel-uploaders on one -w, two
`make` runs in one work directory: the second waits for the first (fcntl lock
files, released by the kernel whatever happens to the holder) and says who
holds it.  The holder here is the test itself, so the wait is deterministic."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, clean_env
from staging_server import make_wheel
from test_openblas_support import (  # noqa: F401  (fixtures used by name)
    LEGACY_VER,
    LINUX64,
    SCRIPT,
    legacy,
    legacy_tarball,
    server,
)

HOLDER = "pid 4242 (a test holding the lock)"


@contextlib.contextmanager
def held(path: Path, text: str = HOLDER):
    """Hold the lock a run would take on ``path`` (a lock file or a directory)."""
    if path.is_dir():
        fd = os.open(path, os.O_RDONLY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        os.write(fd, text.encode())
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def wait_for(path: Path, text: str, proc: subprocess.Popen, limit: float = 60.0) -> str:
    """Poll the file a process writes its stderr to until ``text`` appears."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = path.read_text() if path.exists() else ""
        if text in got:
            return got
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"{text!r} never appeared; stderr: {path.read_text()!r}")


def legacy_env(tmp_path: Path, legacy) -> dict[str, str]:  # noqa: F811
    table = tmp_path / "table.json"
    table.write_text(json.dumps(legacy.table))
    return clean_env(
        tmp_path, NW_OPENBLAS_SOURCE="legacy", OPENBLAS_VERSION=LEGACY_VER,
        NW_OPENBLAS_LEGACY_URL=legacy.server.base, NW_OPENBLAS_SHA256_TABLE=str(table),
        NW_OPENBLAS_CACHE=str(legacy.cache), NW_OPENBLAS_TIMEOUT="10",
    )  # fmt: skip


def test_openblas_second_run_waits_for_the_cache_entry_and_says_who(tmp_path, legacy):  # noqa: F811
    legacy.publish(LINUX64, legacy_tarball())
    env = legacy_env(tmp_path, legacy)
    stem = LINUX64.removesuffix(".tar.gz")
    err = tmp_path / "err.txt"
    with held(legacy.cache / "locks" / f"{stem}.lock"), open(err, "w") as errf:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--plat", "x86_64", "--os", "linux"],
            env=env, stdout=subprocess.PIPE, stderr=errf, text=True,
        )  # fmt: skip
        wait_for(err, f"waiting for cache entry {stem}: in use by {HOLDER}", proc)
        assert proc.poll() is None  # still waiting, nothing fetched meanwhile
        assert legacy.server.hits == {}
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.read_text()
    assert out.strip() == str(legacy.cache / "prepared" / stem)


def test_openblas_many_runs_at_once_fetch_once_and_agree(tmp_path, legacy):  # noqa: F811
    legacy.publish(LINUX64, legacy_tarball())
    env = legacy_env(tmp_path, legacy)
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), "--plat", "x86_64", "--os", "linux"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [r[1] for r in results]
    assert len({out for out, _ in results}) == 1
    assert legacy.server.hits == {legacy.server.path(LINUX64): 1}


def test_uploader_second_run_on_one_wheelhouse_waits(tmp_path):
    from staging_server import StagingServer

    source = tmp_path / "staged"
    make_wheel(source, "tinyproj", "1.0")
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    err = tmp_path / "err.txt"
    with StagingServer(sorted(source.iterdir()), package="tinyproj") as staging:
        with held(wheelhouse), open(err, "w") as errf:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "wheel_uploader.py"), "-u",
                 staging.simple_url, "--allow-insecure", "-w", str(wheelhouse),
                 "-n", "--no-check", "tinyproj", "1.0"],
                env=clean_env(tmp_path), stdout=subprocess.PIPE, stderr=errf, text=True,
            )  # fmt: skip
            wait_for(err, f"waiting for wheelhouse {wheelhouse}: in use by pid {os.getpid()}",
                     proc)  # fmt: skip
            assert list(wheelhouse.iterdir()) == []
        _out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.read_text()
    assert [p.name for p in wheelhouse.iterdir()] == ["tinyproj-1.0-py3-none-any.whl"]


def test_make_second_run_in_one_work_dir_waits(tmp_path):
    work = tmp_path / "work"
    (tmp_path / "src").mkdir()
    env = clean_env(tmp_path, REPO_DIR=str(tmp_path / "src"), SOURCE="local",
                    NW_WORK_DIR=str(work))  # fmt: skip
    err = tmp_path / "err.txt"
    with held(work / "lock"), open(err, "w") as errf:
        proc = subprocess.Popen(["make", "-C", str(ROOT), "source"], env=env,
                                stdout=subprocess.PIPE, stderr=errf, text=True)  # fmt: skip
        wait_for(err, f"waiting for the work directory {work}: in use by {HOLDER}", proc)
        assert not (work / "steps.json").exists()
    proc.communicate(timeout=60)
    assert proc.returncode == 0, err.read_text()
    assert json.loads((work / "steps.json").read_text())[0]["status"] == "passed"
