"""Dependencies as of the source (DEPS_AS_OF): the date is chosen from the source,
pip really resolves older requirements with it, and a requirement the date
leaves nothing of is one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import ROOT, clean_env, make, run_bash
from numpy_wheels.build import deps, paths, source
from numpy_wheels.build.deps import DepsDate, explain_failure, git_commit_time, pip_env, resolve
from numpy_wheels.build.settings import Settings
from numpy_wheels.errors import ConfigurationError

FIXTURE = ROOT / "tests" / "fixtures" / "clib-demo"
COMMIT_TIME = datetime(2025, 11, 16, 12, 0, tzinfo=UTC)


@pytest.fixture
def no_date_settings(monkeypatch):
    for name in ("DEPS_AS_OF", "DEPS_GRACE_DAYS", "SOURCE_DATE_EPOCH"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def git_source(tmp_path: Path) -> Path:
    repo = tmp_path / "src"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("[build-system]\nrequires = []\n")
    stamp = COMMIT_TIME.isoformat()
    env = clean_env(tmp_path, GIT_COMMITTER_DATE=stamp, GIT_AUTHOR_DATE=stamp)
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *cmd],
            cwd=repo,
            env=env,
            check=True,
        )
    return repo


def test_source_date_plus_grace_by_default(no_date_settings):
    deps = resolve(COMMIT_TIME, "source commit")
    assert deps.pip_value == "2025-11-30T12:00:00Z"
    assert "source commit 2025-11-16 + 14 days" in deps.describe()
    assert "DEPS_AS_OF=now" in deps.describe()


def test_grace_days_and_source_date_epoch_override_the_source(no_date_settings):
    no_date_settings.setenv("DEPS_GRACE_DAYS", "0")
    assert resolve(COMMIT_TIME, "c").pip_value == "2025-11-16T12:00:00Z"
    no_date_settings.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14T22:13:20Z
    deps = resolve(COMMIT_TIME, "c")
    assert deps.pip_value == "2023-11-14T22:13:20Z"
    assert deps.basis.startswith("SOURCE_DATE_EPOCH")


def test_now_and_explicit_dates(no_date_settings):
    no_date_settings.setenv("DEPS_AS_OF", "now")
    assert resolve(COMMIT_TIME, "c").moment is None
    no_date_settings.setenv("DEPS_AS_OF", "2024-02-06")
    assert resolve(None, "c").pip_value == "2024-02-06T00:00:00Z"  # no grace on a given date
    no_date_settings.setenv("DEPS_AS_OF", "2024-02-06T10:00:00+02:00")
    assert resolve(None, "c").pip_value == "2024-02-06T08:00:00Z"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEPS_AS_OF", "yesterday", "DEPS_AS_OF='yesterday' is not source, now or an ISO date"),
        ("DEPS_GRACE_DAYS", "two", "DEPS_GRACE_DAYS='two' is not a whole number"),
        ("SOURCE_DATE_EPOCH", "-5", "SOURCE_DATE_EPOCH='-5' is not a Unix time"),
    ],
)
def test_bad_settings_are_one_line(no_date_settings, name, value, message):
    no_date_settings.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message):
        resolve(COMMIT_TIME, "c")


def test_a_source_without_a_date_is_not_filtered(no_date_settings):
    deps = resolve(None, "local directory src")
    assert deps.moment is None and deps.pip_value == ""
    assert "today's index (local directory src has no date)" in deps.describe()


def test_git_source_uses_its_commit_time(tmp_path, no_date_settings):
    repo = git_source(tmp_path)
    assert git_commit_time(repo) == COMMIT_TIME
    assert git_commit_time(tmp_path) is None  # not a checkout
    settings = Settings.from_env()
    settings.repo_dir = repo
    assert deps.source_time(settings) == (COMMIT_TIME, "source commit")


def test_sdist_source_uses_the_upload_time_kept_in_its_marker(tmp_path, no_date_settings):
    repo = tmp_path / "numpy"
    repo.mkdir()
    facts = {"kind": "sdist", "file": "numpy-2.3.5.tar.gz", "uploaded": "2025-11-16T22:52:42+00:00"}
    (repo / paths.SOURCE_MARKER).write_text(json.dumps(facts))
    settings = Settings.from_env()
    settings.repo_dir = repo
    when, basis = deps.source_time(settings)
    assert when == datetime(2025, 11, 16, 22, 52, 42, tzinfo=UTC)
    assert basis == "numpy-2.3.5.tar.gz upload"
    assert resolve(when, basis).pip_value == "2025-11-30T22:52:42Z"


@pytest.mark.network
def test_the_index_publishes_the_sdist_upload_time():
    pkg = source._index_sdist("numpy", "2.3.5")
    assert pkg.filename == "numpy-2.3.5.tar.gz"
    assert pkg.upload_time.date().isoformat() == "2025-11-16"


def test_undatable_pip_sources_are_dropped_and_remote_settings_kept(tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\nfind-links = /srv/wheels\ncert = /etc/ssl/x.pem\n"
        "extra-index-url = file:///srv/simple https://mirror.invalid/simple\n"
    )
    env = {"PIP_CONFIG_FILE": str(config), "PATH": "/usr/bin:/bin"}
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], env=env, capture_output=True, text=True
    ).stdout  # pip's own rendering of the configuration
    dated, dropped = pip_env(env, listing)
    assert dropped == ["/srv/wheels", "file:///srv/simple"]
    assert dated["PIP_CONFIG_FILE"] == "/dev/null"
    assert dated["PIP_EXTRA_INDEX_URL"] == "https://mirror.invalid/simple"
    assert dated["PIP_CERT"] == "/etc/ssl/x.pem"
    # Nothing to drop: the environment is left as it was.
    assert pip_env({"A": "1"}, "global.cert='/x'\n") == ({"A": "1"}, [])


def _resolve_cython(tmp_path: Path, venv: Path, date: str) -> str:
    """The Cython version pip picks through pip_opts for NW_DEPS_AS_OF=date."""
    env, _ = pip_env(clean_env(tmp_path), deps._pip_config())
    env |= {"PIP_CMD": f"{venv}/bin/python -m pip", "NW_DEPS_AS_OF": date}
    report = tmp_path / f"report-{date or 'now'}.json"
    script = (
        "source multibuild/common_utils.sh; "
        f'$PIP_CMD install -q --dry-run --ignore-installed --report {report} $(pip_opts) "cython"'
    )
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (item,) = json.loads(report.read_text())["install"]
    return item["metadata"]["version"]


@pytest.mark.network
def test_pip_really_resolves_as_of_the_date(tmp_path):
    # A venv with the pip that `python -m venv` bundles (older than 26.0):
    # pip_opts upgrades it before passing --uploaded-prior-to.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip_version = subprocess.run(
        [str(venv / "bin/python"), "-c", "import pip; print(pip.__version__)"],
        capture_output=True,
        text=True,
    ).stdout
    from packaging.version import Version

    if Version(pip_version) >= Version("26"):  # the upgrade path is what this test covers
        downgrade = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "pip<26"]
        subprocess.run(downgrade, check=True)
    as_of = _resolve_cython(tmp_path, venv, "2025-06-01T00:00:00Z")
    now = _resolve_cython(tmp_path, venv, "")
    # 3.1.1: the newest Cython uploaded before 2025-06-01.
    assert as_of == "3.1.1"
    assert Version(now) > Version(as_of)


@pytest.mark.network
def test_a_requirement_with_no_release_before_the_date_is_one_line(tmp_path):
    project = tmp_path / "clib-demo"
    shutil.copytree(FIXTURE, project, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    env = {
        "REPO_DIR": str(project),
        "CONFIG_PATH": str(project / "config.sh"),
        "WHEEL_SDIR": str(tmp_path / "wheelhouse"),
        "NW_WORK_DIR": str(tmp_path / "work"),
        "DEPS_AS_OF": "2021-01-01",
        "BUILD_DEPENDS": "meson-python",  # first released in 2022
    }
    proc = make("build", tmp_path=tmp_path, env=env)
    assert proc.returncode != 0
    assert "dependencies as of 2021-01-01T00:00:00Z (DEPS_AS_OF=2021-01-01)" in proc.stderr
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert (
        "step 'build' failed: no release of meson-python uploaded before 2021-01-01T00:00:00Z "
        f"installs on Python {python}"
    ) in proc.stderr
    assert "set DEPS_AS_OF=now" in proc.stderr
    assert not list((tmp_path / "wheelhouse").glob("*.whl"))


def test_explain_ignores_failures_that_are_not_about_the_date():
    dated = DepsDate(COMMIT_TIME, "c")
    pip_text = "ERROR: No matching distribution found for cython>=3.0"
    assert "no release of cython" in explain_failure(pip_text, dated, "3.13")
    assert explain_failure(pip_text, DepsDate(None, "now"), "3.13") is None
    assert explain_failure("error: meson failed", dated, "3.13") is None


def test_pip_opts_passes_the_date_on_one_line(tmp_path):
    proc = run_bash(
        "source multibuild/common_utils.sh; pip_opts",
        tmp_path,
        env={"NW_DEPS_AS_OF": "2025-11-30T12:00:00Z", "MANYLINUX_URL": "https://x.invalid/w"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "--find-links https://x.invalid/w --uploaded-prior-to 2025-11-30T12:00:00Z\n"
    )
    assert run_bash("source multibuild/common_utils.sh; pip_opts", tmp_path).stdout == ""
