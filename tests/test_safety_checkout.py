"""Issue 12, items 1-3: `make source` never loses your work.

Your git checkout is never forced, cleaned or switched; a new source is built
beside the old and swapped in only when complete; an unchanged source is left
alone and an edited one of ours is never replaced without saying so.  Real git
repositories made by the tests; sdists from a loopback index."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import LoopbackServer, clean_env, make
from test_source import git, upstream  # noqa: F401  (the module's upstream fixture)


def run_source(tmp_path: Path, src: Path, commit: str, url: str, **extra: str):
    env = {"REPO_URL": url, "REPO_DIR": str(src), "BUILD_COMMIT": commit,
           "NW_WORK_DIR": str(tmp_path / "work"), **extra}  # fmt: skip
    return make("source", tmp_path=tmp_path, env=env, timeout=300)


def git_log_stub(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `git` first on PATH that logs each call's arguments, then runs the real git."""
    bindir, log = tmp_path / "gitstub", tmp_path / "git-calls.txt"
    bindir.mkdir(exist_ok=True)
    stub = bindir / "git"
    real = shutil.which("git")
    stub.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >> "{log}"\nexec {real} "$@"\n')
    stub.chmod(0o755)
    return {"PATH": f"{bindir}:{clean_env(tmp_path)['PATH']}"}, log


# ------------------------------------------------------------ 1. your checkout


def test_your_dirty_checkout_is_never_forced_or_cleaned(tmp_path, upstream):  # noqa: F811
    # GIVEN your clone at BUILD_COMMIT's branch, with an edit and an untracked file
    src = tmp_path / "src"
    git("clone", "-q", upstream["url"], str(src), cwd=tmp_path)
    (src / "version.txt").write_text("my edit\n")
    (src / "notes.txt").write_text("mine\n")
    # WHEN make source runs on it (SOURCE=auto, and SOURCE=git)
    for source in ("auto", "git"):
        proc = run_source(tmp_path, src, "main", upstream["url"], SOURCE=source)
        # THEN it stops with one line naming what would be lost and what to do
        assert proc.returncode != 0
        (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("numpy-wheels: error:")]
        assert line == (
            f"numpy-wheels: error: REPO_DIR {src} is your git checkout and has uncommitted changes "
            "(version.txt, notes.txt) that a checkout of BUILD_COMMIT would lose: commit or "
            "stash them, or build the tree as it is with SOURCE=local"
        )
        # AND nothing was touched
        assert (src / "version.txt").read_text() == "my edit\n"
        assert (src / "notes.txt").read_text() == "mine\n"
        assert git("rev-parse", "HEAD", cwd=src) == upstream["head"]


def test_your_checkout_at_another_ref_is_not_switched(tmp_path, upstream):  # noqa: F811
    src = tmp_path / "src"
    git("clone", "-q", upstream["url"], str(src), cwd=tmp_path)
    proc = run_source(tmp_path, src, "v1.0", upstream["url"])
    assert proc.returncode != 0
    assert (
        f"numpy-wheels: error: REPO_DIR {src} is your git checkout at {upstream['head'][:12]}, "
        f"not BUILD_COMMIT=v1.0 ({upstream['first'][:12]}); make source never switches it: "
        f"run `git -C {src} checkout v1.0` yourself, or build it as it is with SOURCE=local"
    ) in proc.stderr
    assert git("rev-parse", "HEAD", cwd=src) == upstream["head"]
    assert (src / "version.txt").read_text() == "2.0.dev0\n"
    # SOURCE=local builds it as it is
    proc = run_source(tmp_path, src, "v1.0", upstream["url"], SOURCE="local")
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------- 2. beside, then swapped in


def make_sdist(version: str, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"numpy-{version}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class SdistIndex(LoopbackServer):
    """A PEP 503 page for numpy linking one sdist with its sha256, and that sdist."""

    def __init__(self, version: str, body: bytes) -> None:
        super().__init__()
        self.name = f"numpy-{version}.tar.gz"
        self.body = body
        digest = hashlib.sha256(body).hexdigest()
        self.page = (
            f'<html><body><a href="/files/{self.name}#sha256={digest}">{self.name}</a>'
            "</body></html>"
        ).encode()

    def respond(self, handler, route) -> None:
        data = self.page if handler.path.startswith("/simple/") else self.body
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def sdist_index():
    body = make_sdist("7.7.7", {"pyproject.toml": b'version = "7.7.7"\n', "a.py": b"A = 1\n"})
    with SdistIndex("7.7.7", body) as index:
        yield index


def sdist_source(tmp_path: Path, index: SdistIndex, **extra: str):
    env = {"REPO_DIR": str(tmp_path / "numpy"), "BUILD_COMMIT": "v7.7.7",
           "NW_WORK_DIR": str(tmp_path / "work"), "NW_INDEX_URL": f"{index.base}/simple/",
           "NW_SDIST_CACHE": str(tmp_path / "sdists"), **extra}  # fmt: skip
    return make("source", tmp_path=tmp_path, env=env, timeout=300)


def test_failed_fetch_keeps_the_old_source(tmp_path, sdist_index):
    # GIVEN a source this toolkit unpacked from an sdist
    assert sdist_source(tmp_path, sdist_index).returncode == 0
    src = tmp_path / "numpy"
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    # WHEN the nightly (git) cannot fetch: offline
    proc = sdist_source(tmp_path, sdist_index, SOURCE="git", BUILD_COMMIT="main",
                        REPO_URL=f"file://{tmp_path}/offline")  # fmt: skip
    # THEN one line, and the old source is there whole, still marked as ours
    assert proc.returncode != 0
    assert f"numpy-wheels: error: cannot fetch from file://{tmp_path}/offline" in proc.stderr
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    assert json.loads((src / ".nw-source.json").read_text())["kind"] == "sdist"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".numpy")) == []


def test_a_failed_first_clone_leaves_nothing(tmp_path, upstream):  # noqa: F811
    src = tmp_path / "src"
    proc = run_source(tmp_path, src, "v1.0", f"file://{tmp_path}/missing", SOURCE="git")
    assert proc.returncode != 0
    assert not src.exists()  # not a bare .git that a later run would call yours
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".src")] == []
    # AND the next run with a good URL simply works
    proc = run_source(tmp_path, src, "v1.0", upstream["url"], SOURCE="git")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((src / ".nw-source.json").read_text())["state"] == "complete"


def test_unknown_ref_is_found_with_ls_remote_never_a_full_fetch(tmp_path, upstream):  # noqa: F811
    env, calls = git_log_stub(tmp_path)
    proc = run_source(tmp_path, tmp_path / "src", "no-such-ref", upstream["url"],
                      SOURCE="git", **env)  # fmt: skip
    assert proc.returncode != 0
    assert f"numpy-wheels: error: unknown ref 'no-such-ref' in {upstream['url']}" in proc.stderr
    log = calls.read_text().splitlines()
    assert any(c.startswith("ls-remote origin") for c in log), log
    assert not [c for c in log if c.startswith("fetch") and "--depth" not in c], log


# -------------------------------------------------- 3. unchanged: nothing done


def test_unchanged_sdist_is_not_unpacked_again(tmp_path, sdist_index):
    assert sdist_source(tmp_path, sdist_index).returncode == 0
    a_py = tmp_path / "numpy" / "a.py"
    inode = a_py.stat().st_ino
    proc = sdist_source(tmp_path, sdist_index)
    assert proc.returncode == 0, proc.stderr
    assert "already holds numpy-7.7.7.tar.gz, unedited: nothing to do" in proc.stderr
    assert a_py.stat().st_ino == inode  # the same file, not a fresh copy


def test_edited_sdist_tree_is_kept_and_said(tmp_path, sdist_index):
    assert sdist_source(tmp_path, sdist_index).returncode == 0
    src = tmp_path / "numpy"
    (src / "a.py").write_text("A = 2  # my edit\n")
    proc = sdist_source(tmp_path, sdist_index)
    assert proc.returncode == 0, proc.stderr
    (kept,) = tmp_path.glob("numpy.edited-*")
    assert (
        f"numpy-wheels: warning: {src} (made by make source) was edited: a.py; kept as {kept}; "
        f"{src} is a fresh copy of numpy-7.7.7.tar.gz"
    ) in proc.stderr
    assert (kept / "a.py").read_text() == "A = 2  # my edit\n"  # nothing lost
    assert (src / "a.py").read_text() == "A = 1\n"


def test_unchanged_checkout_of_ours_is_left_alone(tmp_path, upstream):  # noqa: F811
    src = tmp_path / "src"
    assert run_source(tmp_path, src, "v1.0", upstream["url"], SOURCE="git").returncode == 0
    env, calls = git_log_stub(tmp_path)
    proc = run_source(tmp_path, src, "v1.0", upstream["url"], SOURCE="git", **env)
    assert proc.returncode == 0, proc.stderr
    assert f"{src} is already at v1.0 ({upstream['first']}), unedited: nothing to do" in (
        proc.stderr
    )
    log = calls.read_text().splitlines()
    assert not [c for c in log if c.split()[0] in ("fetch", "checkout", "clean")], log


def test_edited_checkout_of_ours_is_stashed_and_said(tmp_path, upstream):  # noqa: F811
    src = tmp_path / "src"
    assert run_source(tmp_path, src, "v1.0", upstream["url"], SOURCE="git").returncode == 0
    (src / "version.txt").write_text("edited\n")
    proc = run_source(tmp_path, src, "feature", upstream["url"], SOURCE="git")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"numpy-wheels: warning: {src} (made by make source) was edited: version.txt; kept in its "
        f"git stash (git -C {src} stash show -p); checking out feature ("
    ) in proc.stderr
    assert (src / "version.txt").read_text() == "feature\n"
    assert "+edited" in git("stash", "show", "-p", cwd=src)  # nothing lost


def test_nightly_over_an_edited_sdist_tree_keeps_it(tmp_path, sdist_index, upstream):  # noqa: F811
    assert sdist_source(tmp_path, sdist_index).returncode == 0
    src = tmp_path / "numpy"
    (src / "a.py").write_text("A = 3  # my edit\n")
    proc = sdist_source(tmp_path, sdist_index, SOURCE="git", BUILD_COMMIT="main",
                        REPO_URL=upstream["url"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (kept,) = tmp_path.glob("numpy.edited-*")
    assert (kept / "a.py").read_text() == "A = 3  # my edit\n"
    assert (src / "version.txt").read_text() == "2.0.dev0\n"
    assert f"kept as {kept}; {src} is a fresh checkout of main" in proc.stderr
