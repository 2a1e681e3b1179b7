"""Reproducible wheels: `make rebuild-check` builds the same source a second time
(a fresh checkout at other absolute paths, a fresh work directory, ccache off)
and the repaired wheels must be byte-identical; a build that embeds its own
time is caught with the member named."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CACHE, ROOT, VENV_BIN, clean_env, make
from numpy_wheels.build import provenance
from numpy_wheels.build import rebuild as rebuild_check
from numpy_wheels.files import file_hash
from test_numpy_e2e import WORK
from test_pipeline import fixture_copy
from test_pipeline import settings as local_settings

FIXTURE = ROOT / "tests" / "fixtures" / "clib-demo"
COMMIT_TIME = "2025-06-01T12:00:00+00:00"
# setup.py of a copy that records the moment it was built in the package.
STAMPING_SETUP = """
import time
from pathlib import Path

Path("src/clib_demo/_build_time.py").write_text(f"BUILD_TIME = {time.time()!r}\\n")
"""


def git_source(tmp_path: Path, setup_prefix: str = "") -> tuple[str, str]:
    """A git repository holding the fixture project, committed at COMMIT_TIME."""
    repo = tmp_path / "upstream" / "clib-demo"
    shutil.copytree(FIXTURE, repo, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    setup = repo / "setup.py"
    setup.write_text(setup_prefix + setup.read_text())
    env = clean_env(tmp_path, GIT_AUTHOR_DATE=COMMIT_TIME, GIT_COMMITTER_DATE=COMMIT_TIME)
    for cmd in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "fixture"],
    ):
        subprocess.run(["git", *cmd], cwd=repo, env=env, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(repo), commit


def settings(tmp_path: Path, url: str, commit: str) -> dict[str, str]:
    checkout = tmp_path / "first" / "clib-demo"
    return {
        "SOURCE": "git",
        "REPO_URL": url,
        "BUILD_COMMIT": commit,
        "REPO_DIR": str(checkout),
        "CONFIG_PATH": str(checkout / "config.sh"),
        "WHEEL_SDIR": str(tmp_path / "first" / "wheelhouse"),
        "NW_WORK_DIR": str(tmp_path / "first" / "work"),
    }


def build_and_check(tmp_path: Path, setup_prefix: str = ""):
    url, commit = git_source(tmp_path, setup_prefix)
    env = settings(tmp_path, url, commit)
    built = make("wheels", tmp_path=tmp_path, env=env)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return env, make("rebuild-check", tmp_path=tmp_path, env=env)


@pytest.fixture(scope="module")
def fixture_twice(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("twice")
    env, check = build_and_check(tmp_path)
    return tmp_path, env, check


def test_fixture_built_twice_elsewhere_is_byte_identical(fixture_twice):
    # GIVEN a wheel from `make wheels`, WHEN rebuild-check builds it again
    tmp_path, env, check = fixture_twice
    # THEN the second build (other paths, no ccache) gives the same sha256
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    report = json.loads((Path(env["WHEEL_SDIR"]) / "build-report.json").read_text())
    (entry,) = report["wheels"]
    assert f"{entry['name']}: reproducible, sha256 {entry['sha256']}" in check.stdout
    assert f"second build in {tmp_path}/rebuild-" in check.stderr
    assert "(ccache off)" in check.stderr
    assert not list(tmp_path.glob("rebuild-*"))  # the scratch goes when it matched


def test_members_carry_the_commit_time_and_plain_modes(fixture_twice):
    _, env, _ = fixture_twice
    (wheel,) = Path(env["WHEEL_SDIR"]).glob("*.whl")
    stamp = datetime.fromisoformat(COMMIT_TIME).astimezone(UTC).timetuple()[:6]
    infos = zipfile.ZipFile(wheel).infolist()
    assert {i.date_time for i in infos} == {stamp}
    modes = {i.filename: i.external_attr >> 16 & 0o777 for i in infos}
    # As the build tools wrote them (0o664: setuptools' generated dist-info files),
    # never a umask's or a checkout's.
    assert set(modes.values()) <= {0o644, 0o664, 0o755}, modes


def test_an_embedded_build_time_is_caught_and_named(tmp_path):
    # GIVEN a project whose build writes time.time() into the package
    env, check = build_and_check(tmp_path, STAMPING_SETUP)
    # THEN rebuild-check fails, names the member, and keeps the second build
    assert check.returncode != 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert "DIFFERS" in check.stdout
    assert "  clib_demo/_build_time.py: content\n" in check.stdout
    assert "  clib_demo-1.0.0.dist-info/RECORD: content\n" in check.stdout
    assert "rebuild-check: error: the second build differs from the first" in check.stderr
    assert list(tmp_path.glob("rebuild-*/tree/work/repaired/*.whl"))
    if shutil.which("diffoscope"):
        head = check.stdout.split("diffoscope, first 60 lines:\n", 1)[1]
        assert head.startswith(f"    --- {Path(env['WHEEL_SDIR'])}/clib_demo-"), head[:300]


# ------------------------------------------------------------ no build needed


def _zip(path: Path, members: list[tuple[str, bytes, int, tuple]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode, stamp in members:
            info = zipfile.ZipInfo(name, stamp)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


T0, T1 = (2025, 6, 1, 12, 0, 0), (2026, 1, 2, 3, 4, 6)


def test_member_differences_names_each_kind(tmp_path):
    first = _zip(
        tmp_path / "a.whl",
        [("x.py", b"1", 0o644, T0), ("y.so", b"e", 0o755, T0), ("gone", b"", 0o644, T0)],
    )
    second = _zip(
        tmp_path / "b.whl",
        [("x.py", b"2", 0o644, T0), ("y.so", b"e", 0o644, T1), ("new", b"", 0o644, T0)],
    )
    assert rebuild_check.member_differences(first, second) == [
        "gone: only in the first build",
        "new: only in the second build",
        "x.py: content",
        "y.so: timestamp 2025-06-01T12:00:00 vs 2026-01-02T03:04:06, mode 755 vs 644",
    ]


def test_member_order_alone_is_named(tmp_path):
    a = _zip(tmp_path / "a.whl", [("a", b"1", 0o644, T0), ("b", b"2", 0o644, T0)])
    b = _zip(tmp_path / "b.whl", [("b", b"2", 0o644, T0), ("a", b"1", 0o644, T0)])
    assert rebuild_check.member_differences(a, b) == ["member order differs"]


def test_compare_cli_exit_status(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _zip(tmp_path / "a" / "p-1-py3-none-any.whl", [("a", b"1", 0o644, T0)])
    b = _zip(tmp_path / "b" / "p-1-py3-none-any.whl", [("a", b"1", 0o644, T0)])
    assert rebuild_check.main(["compare", str(a), str(b)]) == 0
    assert f"reproducible, sha256 {file_hash(a)}" in capsys.readouterr().out
    _zip(b, [("a", b"1", 0o600, T0)])
    assert rebuild_check.main(["compare", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "p-1-py3-none-any.whl: DIFFERS" in out
    assert "  a: mode 644 vs 600\n" in out


def test_rebuild_check_needs_a_first_build(tmp_path):
    proc = make("rebuild-check", tmp_path=tmp_path, env={"WHEEL_SDIR": str(tmp_path / "wh")})
    assert proc.returncode != 0
    assert f"no {tmp_path / 'wh' / 'build-report.json'}; run `make wheels` first" in proc.stderr


def test_rebuild_check_refuses_a_wheel_changed_since_the_build(tmp_path):
    wheelhouse = tmp_path / "wh"
    wheelhouse.mkdir()
    wheel = _zip(wheelhouse / "p-1-py3-none-any.whl", [("a", b"", 0o644, T0)])
    report = {"wheels": [{"name": wheel.name, "sha256": "0" * 64}]}
    (wheelhouse / "build-report.json").write_text(json.dumps(report))
    proc = make("rebuild-check", tmp_path=tmp_path, env={"WHEEL_SDIR": str(wheelhouse)})
    assert proc.returncode != 0
    assert (
        f"{wheel.name} changed since the build: sha256 {file_hash(wheel)}, "
        f"build-report.json says {'0' * 64}"
    ) in proc.stderr


# ------------------------------------------------------------------ real NumPy

# The first NumPy build is test_numpy_e2e's when it ran in this session (its
# report is newer than this module's import); otherwise this test makes it.
SESSION_START = time.time()


@pytest.fixture(scope="module")
def numpy_first(tmp_path_factory) -> dict[str, str]:
    """The settings of the first NumPy build, made here unless test_numpy_e2e's is fresh."""
    env = {
        "REPO_DIR": str(WORK / "numpy"),
        "WHEEL_SDIR": str(WORK / "wheelhouse"),
        "NW_WORK_DIR": str(WORK / "work"),
        "NW_SDIST_CACHE": str(CACHE / "sdist"),
        "CCACHE_DIR": str(CACHE / "ccache"),
        "NW_OPENBLAS_CACHE": str(CACHE / "openblas"),
    }
    report = WORK / "wheelhouse" / "build-report.json"
    if not (report.is_file() and report.stat().st_mtime > SESSION_START):
        for old in (WORK / "wheelhouse").glob("*.whl"):
            old.unlink()
        tmp_path = tmp_path_factory.mktemp("numpy-first")
        first = make("wheels", tmp_path=tmp_path, env=env, timeout=3600)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return env


@pytest.mark.slow
def test_numpy_rebuilt_from_nothing_but_downloads_is_byte_identical(numpy_first, tmp_path):
    env, report_path = numpy_first, WORK / "wheelhouse" / "build-report.json"
    (entry,) = json.loads(report_path.read_text())["wheels"]
    # WHEN the same sdist is built again at other absolute paths (NumPy records its
    # build Python and OpenBLAS paths in __config__.py: both are seen through
    # NW_BUILD_ROOT), from a fresh tree, a fresh build venv and meson directory,
    # with ccache off
    start = time.monotonic()
    check = make("rebuild-check", tmp_path=tmp_path, env=env, timeout=5400)
    seconds = time.monotonic() - start
    (WORK / "rebuild-check.log").write_text(
        f"{seconds:.0f} s\n{check.stdout}\n{check.stderr}", encoding="utf-8"
    )
    # THEN the repaired wheel is byte-identical
    assert check.returncode == 0, check.stdout[-5000:] + check.stderr[-5000:]
    assert f"{entry['name']}: reproducible, sha256 {entry['sha256']}" in check.stdout
    assert f"second build in {tmp_path}/rebuild-" in check.stderr  # other paths


@pytest.mark.slow
def test_numpy_provenance_names_sdist_and_openblas_by_digest(numpy_first):
    record_path = WORK / "wheelhouse" / provenance.FILENAME
    record = json.loads(record_path.read_text())
    (entry,) = json.loads((WORK / "wheelhouse" / "build-report.json").read_text())["wheels"]
    assert record["subject"] == [{"name": entry["name"], "digest": {"sha256": entry["sha256"]}}]
    sdist, blas, *installed = record["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert sdist["name"] == "numpy-2.4.6.tar.gz"
    assert sdist["digest"]["sha256"] == file_hash(CACHE / "sdist" / "numpy-2.4.6.tar.gz")
    assert blas["name"].startswith("scipy_openblas64-")
    assert blas["digest"]["sha256"] == file_hash(CACHE / "openblas" / "downloads" / blas["name"])
    names = {d["name"].lower() for d in installed}
    # (ninja is pip-installed only where the machine has none: config.sh's pre_build)
    assert {"meson-python", "cython", "meson"} <= names
    for schema in ("in-toto-statement-v1.json", "slsa-provenance-v1.json"):
        cmd = [str(VENV_BIN / "check-jsonschema"), "--schemafile"]
        cmd += [str(ROOT / "tests" / "schemas" / schema), str(record_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_bad_source_date_epoch_is_one_line(tmp_path):
    project = fixture_copy(tmp_path)
    env = local_settings(tmp_path, project, SOURCE_DATE_EPOCH="yesterday", DEPS_AS_OF="now")
    proc = make("build", tmp_path=tmp_path, env=env)
    assert proc.returncode != 0
    assert "numpy-wheels: error: SOURCE_DATE_EPOCH='yesterday' is not a Unix time" in proc.stderr
    assert not list((tmp_path / "work" / "raw").glob("*.whl"))
