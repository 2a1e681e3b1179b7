"""`make source`: a git ref from a repository the test makes, or a released sdist
from the real package index (and from a loopback index for the bad cases)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import CACHE, LoopbackServer, make

GIT = [
    "git",
    "-c",
    "user.name=t",
    "-c",
    "user.email=t@example.invalid",
    "-c",
    "init.defaultBranch=main",
]


def git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [*GIT, "-c", "protocol.file.allow=always", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> dict[str, str]:
    """An upstream repository with a tag, a branch and a submodule."""
    base = tmp_path_factory.mktemp("upstream")
    sub, main = base / "sub", base / "project"
    for repo in (sub, main):
        repo.mkdir()
        git("init", "-q", cwd=repo)
    (sub / "vendored.txt").write_text("vendored v1\n")
    git("add", ".", cwd=sub)
    git("commit", "-qm", "sub", cwd=sub)
    (main / "version.txt").write_text("1.0\n")
    git("add", ".", cwd=main)
    git("commit", "-qm", "one", cwd=main)
    git("submodule", "add", "-q", f"file://{sub}", "vendor", cwd=main)
    git("commit", "-qm", "add submodule", cwd=main)
    git("tag", "v1.0", cwd=main)
    first = git("rev-parse", "HEAD", cwd=main)
    git("checkout", "-qb", "feature", cwd=main)
    (main / "version.txt").write_text("feature\n")
    git("commit", "-qam", "feature", cwd=main)
    git("checkout", "-q", "main", cwd=main)
    (main / "version.txt").write_text("2.0.dev0\n")
    git("commit", "-qam", "two", cwd=main)
    return {"url": f"file://{main}", "first": first, "head": git("rev-parse", "HEAD", cwd=main)}


def source(tmp_path: Path, upstream: dict[str, str], commit: str, target="source", **extra):
    env = {
        "REPO_URL": upstream["url"],
        "REPO_DIR": str(tmp_path / "src"),
        "BUILD_COMMIT": commit,
        "SOURCE": "git",
        "NW_WORK_DIR": str(tmp_path / "work"),
        **extra,
    }
    return make(target, tmp_path=tmp_path, env=env)


@pytest.mark.parametrize(
    ("commit", "content"),
    [("v1.0", "1.0\n"), ("feature", "feature\n"), ("main", "2.0.dev0\n"), ("first", "1.0\n")],
)
def test_git_ref_is_checked_out_with_submodules(tmp_path, upstream, commit, content):
    ref = upstream["first"] if commit == "first" else commit
    proc = source(tmp_path, upstream, ref)
    assert proc.returncode == 0, proc.stderr
    src = tmp_path / "src"
    assert (src / "version.txt").read_text() == content
    assert (src / "vendor" / "vendored.txt").read_text() == "vendored v1\n"


def test_git_rerun_cleans_the_checkout(tmp_path, upstream):
    assert source(tmp_path, upstream, "v1.0").returncode == 0
    src = tmp_path / "src"
    (src / "stray.o").write_text("left over from a build")
    (src / "version.txt").write_text("edited")
    proc = source(tmp_path, upstream, "v1.0")
    assert proc.returncode == 0, proc.stderr
    assert not (src / "stray.o").exists()
    assert (src / "version.txt").read_text() == "1.0\n"


def test_unknown_ref_names_ref_and_repository(tmp_path, upstream):
    proc = source(tmp_path, upstream, "no-such-branch")
    assert proc.returncode != 0
    assert f"numpy-wheels: error: unknown ref 'no-such-branch' in {upstream['url']}" in proc.stderr


def test_unreachable_repository(tmp_path, upstream):
    proc = source(tmp_path, {"url": f"file://{tmp_path}/missing"}, "v1.0")
    assert proc.returncode != 0
    assert f"numpy-wheels: error: cannot fetch from file://{tmp_path}/missing" in proc.stderr


def test_nightly_builds_the_nightly_commit(tmp_path, upstream):
    # BUILD_REASON=Schedule swaps in NIGHTLY_BUILD_COMMIT, as on Azure's cron.
    proc = source(
        tmp_path, upstream, "v1.0", NIGHTLY_BUILD_COMMIT="feature", BUILD_REASON="Schedule"
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "src" / "version.txt").read_text() == "feature\n"


def test_local_directory_is_used_as_it_is(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.txt").write_text("mine")
    env = {"REPO_DIR": str(src), "NW_WORK_DIR": str(tmp_path / "work")}
    proc = make("source", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "local directory" in proc.stderr
    assert (src / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(("source", "commit"), [("git", "v1.0"), ("sdist", "v2.4.6")])
def test_a_foreign_directory_is_never_replaced(tmp_path, upstream, source, commit):
    src = tmp_path / "src"
    src.mkdir()
    (src / "mine.txt").write_text("precious")
    proc = make(
        "source",
        tmp_path=tmp_path,
        env={"REPO_URL": upstream["url"], "REPO_DIR": str(src), "BUILD_COMMIT": commit,
             "SOURCE": source, "NW_WORK_DIR": str(tmp_path / "work")},
    )  # fmt: skip
    assert proc.returncode != 0
    assert f"REPO_DIR {src} holds a source this toolkit did not put there" in proc.stderr
    assert (src / "mine.txt").read_text() == "precious"


def test_our_checkout_stays_ours_across_reruns(tmp_path, upstream):
    assert source(tmp_path, upstream, "v1.0").returncode == 0
    marker = json.loads((tmp_path / "src" / ".nw-source.json").read_text())
    assert marker["kind"] == "git" and marker["ref"] == "v1.0"
    # A rerun keeps the marker through git clean -fxd, so the checkout stays ours.
    assert source(tmp_path, upstream, "feature").returncode == 0
    assert (tmp_path / "src" / ".nw-source.json").exists()


def test_your_own_checkout_is_used_only_at_build_commit(tmp_path, upstream):
    src = tmp_path / "src"
    git("clone", "-q", upstream["url"], str(src), cwd=tmp_path)
    env = {"REPO_DIR": str(src), "BUILD_COMMIT": "feature", "NW_WORK_DIR": str(tmp_path / "w"),
           "REPO_URL": "file:///nowhere"}  # fmt: skip
    # At another ref: never switched by make source (issue 12), one line says what to do.
    proc = make("source", tmp_path=tmp_path, env=env)  # SOURCE=auto
    assert proc.returncode != 0
    assert f"REPO_DIR {src} is your git checkout at {upstream['head'][:12]}, not " in proc.stderr
    assert "or build it as it is with SOURCE=local" in proc.stderr
    assert git("rev-parse", "HEAD", cwd=src) == upstream["head"]
    # Checked out there by its owner: built as it is, its origin and history kept.
    git("checkout", "-q", "feature", cwd=src)
    proc = make("source", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (src / "version.txt").read_text() == "feature\n"
    assert git("remote", "get-url", "origin", cwd=src) == upstream["url"]
    assert git("rev-parse", "--is-shallow-repository", cwd=src) == "false"
    assert not (src / ".nw-source.json").exists()


# ------------------------------------------------------------------ sdist


def sdist_env(tmp_path: Path, commit: str, **extra: str) -> dict[str, str]:
    return {
        "REPO_DIR": str(tmp_path / "numpy"),
        "BUILD_COMMIT": commit,
        "NW_WORK_DIR": str(tmp_path / "work"),
        "NW_SDIST_CACHE": str(CACHE / "sdist"),
        **extra,
    }


@pytest.mark.network
def test_release_tag_takes_the_verified_sdist(tmp_path):
    proc = make("source", tmp_path=tmp_path, env=sdist_env(tmp_path, "v2.4.6"))
    assert proc.returncode == 0, proc.stderr
    src = tmp_path / "numpy"
    assert 'version = "2.4.6"' in (src / "pyproject.toml").read_text()
    marker = json.loads((src / ".nw-source.json").read_text())
    archive = CACHE / "sdist" / "numpy-2.4.6.tar.gz"
    assert marker["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.mark.network
def test_version_without_sdist(tmp_path):
    proc = make("source", tmp_path=tmp_path, env=sdist_env(tmp_path, "v9.9.9"))
    assert proc.returncode != 0
    assert "numpy-wheels: error: numpy 9.9.9 has no sdist on the index" in proc.stderr
    assert not (tmp_path / "numpy").exists()


class FakeIndex(LoopbackServer):
    """A PEP 503 page for numpy (``page``) and the file it links to (``body``)."""

    page = body = b""

    def respond(self, handler, route) -> None:
        simple = handler.path.startswith("/simple/")
        data = self.page if simple else self.body
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html" if simple else "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def test_sdist_hash_mismatch_leaves_nothing(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("numpy-7.7.7/pyproject.toml")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"x=1"))
    wrong = "0" * 64
    with FakeIndex() as index:
        index.body = buf.getvalue()
        index.page = (
            f'<html><body><a href="/files/numpy-7.7.7.tar.gz#sha256={wrong}">'
            "numpy-7.7.7.tar.gz</a></body></html>"
        ).encode()
        env = sdist_env(
            tmp_path, "v7.7.7", NW_INDEX_URL=f"{index.base}/simple/",
            NW_SDIST_CACHE=str(tmp_path / "cache"),
        )  # fmt: skip
        proc = make("source", tmp_path=tmp_path, env=env)
    assert proc.returncode != 0
    assert "numpy-wheels: error: sha256 mismatch for" in proc.stderr
    assert f"expected {wrong}" in proc.stderr
    assert not (tmp_path / "numpy").exists()
    assert list((tmp_path / "cache").glob("*")) == []
