"""fill_submodule and clean_code against real local git repositories with submodules."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    # local-path submodules need the file protocol
    "GIT_CONFIG_COUNT": "2",
    "GIT_CONFIG_KEY_0": "protocol.file.allow",
    "GIT_CONFIG_VALUE_0": "always",
    "GIT_CONFIG_KEY_1": "init.defaultBranch",
    "GIT_CONFIG_VALUE_1": "main",
}
SOURCE = f"source {ROOT}/multibuild/common_utils.sh"


def git(cwd: Path, *args: str) -> str:
    import os

    env = {**os.environ, **GIT_ENV, "HOME": str(cwd)}
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.fixture
def repos(tmp_path):
    """origin repos: `sub` (a library) and `proj` (tags v1.0, v2.0; `sub` as submodule)."""
    sub = tmp_path / "origin-sub"
    sub.mkdir()
    git(sub, "init", "-q")
    (sub / "sub.txt").write_text("sub v1\n")
    git(sub, "add", ".")
    git(sub, "commit", "-qm", "sub 1")

    proj = tmp_path / "origin-proj"
    proj.mkdir()
    git(proj, "init", "-q")
    (proj / "a.txt").write_text("one\n")
    git(proj, "add", ".")
    git(proj, "submodule", "add", "-q", str(sub), "sub")
    git(proj, "commit", "-qm", "first")
    git(proj, "tag", "v1.0")
    (proj / "a.txt").write_text("two\n")
    git(proj, "commit", "-qam", "second")
    git(proj, "tag", "v2.0")
    return {"sub": sub, "proj": proj, "v1": git(proj, "rev-parse", "v1.0^{commit}")}


def sh(bash, body: str, cwd: Path, **env: str):
    return bash(f"{SOURCE}\n{body}", cwd=cwd, env={**GIT_ENV, **env})


# ------------------------------------------------------------------ fill_submodule


def test_fill_submodule_makes_self_contained_git_dir(bash, tmp_path, repos):
    # GIVEN a wheels repo with the project as a submodule (`.git` is a file)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    git(wheels, "init", "-q")
    git(wheels, "submodule", "add", "-q", str(repos["proj"]), "proj")
    git(wheels, "submodule", "update", "-q", "--init", "--recursive")
    git(wheels / "proj", "checkout", "-q", "v1.0")
    assert (wheels / "proj" / ".git").is_file()
    # WHEN
    r = sh(bash, "fill_submodule proj", wheels)
    # THEN .git is a directory, HEAD and origin are kept, nested submodule is there
    assert r.returncode == 0, r.stderr
    proj = wheels / "proj"
    assert (proj / ".git").is_dir()
    assert git(proj, "rev-parse", "HEAD") == repos["v1"]
    assert git(proj, "config", "--get", "remote.origin.url") == str(repos["proj"])
    assert (proj / "sub" / "sub.txt").read_text() == "sub v1\n"
    assert [p.name for p in wheels.iterdir() if p.name.startswith(".nw-fill")] == []


def test_fill_submodule_leaves_plain_repo_alone(bash, tmp_path, repos):
    r = sh(bash, "fill_submodule origin-proj && echo ok", tmp_path)
    assert (r.returncode, r.stdout) == (0, "ok\n")


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("''", "fill_submodule: repo_dir not defined"),
        ("missing", "fill_submodule: repository directory 'missing' not found"),
        ("plain", "fill_submodule: 'plain' is not a git checkout"),
    ],
)
def test_fill_submodule_bad_input(bash, tmp_path, arg, message):
    (tmp_path / "plain").mkdir()
    r = sh(bash, f"set +e; fill_submodule {arg}; echo s=$?", tmp_path)
    assert (r.stdout, r.stderr) == ("s=1\n", message + "\n")


# ------------------------------------------------------------------ clean_code


@pytest.fixture
def checkout(tmp_path, repos):
    work = tmp_path / "work"
    work.mkdir()
    git(work, "clone", "-q", str(repos["proj"]), "proj")
    proj = work / "proj"
    (proj / "a.txt").write_text("local edit\n")
    (proj / "junk.o").write_text("untracked\n")
    return work


def test_clean_code_checks_out_and_cleans(bash, checkout, repos):
    r = sh(bash, "clean_code proj v1.0", checkout)
    assert r.returncode == 0, r.stderr
    proj = checkout / "proj"
    assert git(proj, "rev-parse", "HEAD") == repos["v1"]
    assert (proj / "a.txt").read_text() == "one\n"
    assert not (proj / "junk.o").exists()
    assert (proj / "sub" / "sub.txt").read_text() == "sub v1\n"


def test_clean_code_uses_env_and_fetches_new_tags(bash, checkout, repos):
    # GIVEN a tag made on origin after the clone
    (repos["proj"] / "a.txt").write_text("three\n")
    git(repos["proj"], "commit", "-qam", "third")
    git(repos["proj"], "tag", "v3.0")
    # WHEN clean_code takes repo and commit from the environment
    r = sh(bash, "clean_code", checkout, REPO_DIR="proj", BUILD_COMMIT="v3.0")
    # THEN it fetched the tag and checked it out
    assert r.returncode == 0, r.stderr
    assert (checkout / "proj" / "a.txt").read_text() == "three\n"


def test_clean_code_branch_only_on_origin(bash, checkout, repos):
    git(repos["proj"], "checkout", "-qb", "feature")
    (repos["proj"] / "b.txt").write_text("b\n")
    git(repos["proj"], "add", "b.txt")
    git(repos["proj"], "commit", "-qm", "feature")
    r = sh(bash, "clean_code proj feature", checkout)
    assert r.returncode == 0, r.stderr
    assert (checkout / "proj" / "b.txt").exists()


def test_clean_code_fills_submodule_first(bash, tmp_path, repos):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    git(wheels, "init", "-q")
    git(wheels, "submodule", "add", "-q", str(repos["proj"]), "proj")
    r = sh(bash, "clean_code proj v1.0", wheels)
    assert r.returncode == 0, r.stderr
    assert (wheels / "proj" / ".git").is_dir()
    assert git(wheels / "proj", "rev-parse", "HEAD") == repos["v1"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("clean_code", "clean_code: repository directory not defined (pass it or set REPO_DIR)"),
        ("clean_code proj", "clean_code: commit not defined (pass it or set BUILD_COMMIT)"),
        ("clean_code nope v1.0", "clean_code: repository directory 'nope' not found"),
        ("clean_code proj v9.9", "clean_code: commit 'v9.9' not found in 'proj'"),
    ],
)
def test_clean_code_bad_input(bash, checkout, call, message):
    head = git(checkout / "proj", "rev-parse", "HEAD")
    r = sh(bash, f"set +e; {call}; echo s=$?", checkout)
    assert (r.stdout, r.stderr) == ("s=1\n", message + "\n")
    # nothing was touched
    assert git(checkout / "proj", "rev-parse", "HEAD") == head
    assert (checkout / "proj" / "junk.o").exists()


def test_clean_code_under_errexit_stops_the_script(bash, checkout):
    r = sh(bash, "clean_code proj v9.9; echo not-reached", checkout)
    assert (r.returncode, r.stdout) == (1, "")
