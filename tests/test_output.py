"""What the toolkit says: bad settings refused before any work, `make help`'s
effective values, the settings banner, the end summary, CI annotations, a
truthful build-report.json, --version everywhere."""

from __future__ import annotations

import io
import json
import os
import platform
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, SETTINGS_MK, LoopbackServer, clean_env, make
from numpy_wheels.build import paths, runner
from numpy_wheels.build import settings as nw_settings
from numpy_wheels.files import human_size
from numpy_wheels.log import ci_error, colour
from test_cli import numpy_wheels
from test_pipeline import fixture_copy, settings

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


class Recorder(LoopbackServer):
    """Answers 404 to everything and counts the requests (``hits``)."""

    def respond(self, handler, route) -> None:
        handler.send_error(404)


# ------------------------------------------------------------ early validation

HOST = platform.machine()
# MB_ML_VER's valid values on this host as the message starts listing them
ML_VALID = (
    "1, 2010, 2014, _2_5, _2_12, _2_17, _2_24" if HOST in ("x86_64", "i686") else "2014, _2_17"
)
ML_TAIL = f" for manylinux on {HOST} (auditwheel's policies)"
OTHER_ARCH = "aarch64" if HOST != "aarch64" else "x86_64"
NATIVE = f"is not buildable natively on this {HOST} host"

BAD_SETTINGS = [
    ("PLAT", "sparc",
     "PLAT='sparc' is not one of: x86_64, i686, aarch64, ppc64le, s390x (on linux)"),
    # natively only the host's arch builds (the shell library's _nw_check_plat)
    *[("PLAT", plat, f"PLAT='{plat}' {NATIVE} (valid: {HOST}); set DOCKER_IMAGE to a "
       f"manylinux image for {plat} to build in a container")
      for plat in {OTHER_ARCH, "i686" if HOST != "i686" else "x86_64"}],
    ("MB_ML_VER", "2_28", f"MB_ML_VER='2_28' is not one of: {ML_VALID}, "),
    ("MB_ML_VER", "manylinux2014", f"MB_ML_VER='manylinux2014' is not one of: {ML_VALID}, "),
    # well-shaped, but no policy auditwheel knows: refused before the build, not at repair
    ("MB_ML_VER", "_2_280", f"MB_ML_VER='_2_280' is not one of: {ML_VALID}, "),
    ("MB_ML_VER", "_2_99", f"MB_ML_VER='_2_99' is not one of: {ML_VALID}, "),
    ("MB_ML_VER", "_2_3", f"MB_ML_VER='_2_3' is not one of: {ML_VALID}, "),
    ("PYTHON", "/nonexistent/python3.12", "PYTHON='/nonexistent/python3.12' is not a Python "
     "interpreter that runs here (not found); set PYTHON=python3.X or a path to one, or "
     "MB_PYTHON_VERSION=X.Y"),
    ("PYTHON", "/bin/false", "PYTHON='/bin/false' is not a Python interpreter that runs here "
     "(it does not run)"),
    ("SOURCE_DATE_EPOCH", "abc", "SOURCE_DATE_EPOCH='abc' is not a Unix time (whole seconds "
     "since 1970, e.g. 1700000000)"),
    ("CONFIG_PATH", "/nonexistent.sh", "CONFIG_PATH='/nonexistent.sh': no such file (the "
     "project's build_wheel/run_tests hooks)"),
    ("ENV_VARS_PATH", "/nonexistent.sh", "ENV_VARS_PATH='/nonexistent.sh': no such file (the "
     "build's environment variables)"),
    ("MB_ML_LIBC", "glibc", "MB_ML_LIBC='glibc' is not one of: manylinux, musllinux"),
    ("SOURCE", "svn", "SOURCE='svn' is not one of: auto, git, sdist, local"),
    ("DOCKER_PULL", "sometimes", "DOCKER_PULL='sometimes' is not one of: always, missing, never"),
    ("CONTAINER_ENGINE", "lxc", "CONTAINER_ENGINE='lxc' is not one of: docker, podman"),
    ("USE_CCACHE", "yes", "USE_CCACHE='yes' is not one of: 0, 1"),
    ("NIGHTLY", "true", "NIGHTLY='true' is not one of: 0, 1"),
    ("MB_PYTHON_VERSION", "3", "MB_PYTHON_VERSION='3' is not X.Y (e.g. 3.12)"),
    ("TEST_LABEL", "fast'; rm -rf /", "TEST_LABEL=\"fast'; rm -rf /\" is not one of: fast, full, "
     "or a pytest marker expression"),
    ("DEPS_AS_OF", "yesterday", "DEPS_AS_OF='yesterday' is not source, now or an ISO date"),
    ("DEPS_GRACE_DAYS", "two", "DEPS_GRACE_DAYS='two' is not a whole number of days"),
]  # fmt: skip
if platform.libc_ver()[0] == "glibc":
    BAD_SETTINGS.append(
        (
            "MB_ML_LIBC",
            "musllinux",
            "MB_ML_LIBC='musllinux' is not buildable "
            "natively on this glibc host (valid: manylinux); set DOCKER_IMAGE to a "
            "musllinux image to build in a container",
        )
    )


def _network_env(server: Recorder, tmp_path: Path) -> dict[str, str]:
    """Every place the run would fetch from points at ``server``: the sdist index,
    pip's index, the git remote; REPO_DIR does not exist yet (SOURCE=sdist)."""
    return {
        "NW_INDEX_URL": f"{server.base}/simple/",
        "PIP_INDEX_URL": f"{server.base}/simple/",
        "REPO_URL": f"{server.base}/numpy.git",
        "REPO_DIR": str(tmp_path / "src"),
        "BUILD_COMMIT": "v2.4.6",
        "SOURCE": "sdist",
        "NW_WORK_DIR": str(tmp_path / "work"),
        "NW_SDIST_CACHE": str(tmp_path / "sdist-cache"),
        "WHEEL_SDIR": str(tmp_path / "wheelhouse"),
    }


@pytest.mark.parametrize(("name", "value", "message"), BAD_SETTINGS)
def test_bad_setting_is_refused_before_any_download(tmp_path, name, value, message):
    # GIVEN a loopback server standing in for every source of the run
    with Recorder() as server:
        env = {**_network_env(server, tmp_path), name: value}
        # WHEN the whole run is asked for with one bad setting
        proc = numpy_wheels("wheels", tmp_path=tmp_path, **env)
    # THEN one line names it with the valid values, exit 2, and nothing was fetched
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"numpy-wheels: error: {message}")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert server.hits == {}
    assert not (tmp_path / "src").exists() and not (tmp_path / "work").exists()


def test_good_settings_do_reach_the_server(tmp_path):
    # The control for the test above: the same run with good settings asks the index.
    with Recorder() as server:
        proc = numpy_wheels("source", tmp_path=tmp_path, **_network_env(server, tmp_path))
    assert proc.returncode == 1
    assert server.hits, proc.stderr


def test_make_refuses_a_bad_setting_before_any_step(tmp_path):
    with Recorder() as server:
        env = {**_network_env(server, tmp_path), "MB_ML_VER": "2_28"}
        proc = make("wheels", tmp_path=tmp_path, env=env)
    assert proc.returncode == 2
    assert "numpy-wheels: error: MB_ML_VER='2_28' is not one of" in proc.stderr
    assert "==>" not in proc.stdout and server.hits == {}


def test_a_bad_ml_ver_names_every_policy_and_the_likely_spelling(tmp_path):
    with Recorder() as server:
        env = {**_network_env(server, tmp_path), "MB_ML_VER": "2_28"}
        proc = numpy_wheels("wheels", tmp_path=tmp_path, **env)
    assert proc.returncode == 2 and server.hits == {}
    assert proc.stderr.rstrip().endswith(f"{ML_TAIL}; did you mean MB_ML_VER=_2_28?")
    assert ", _2_28, " in proc.stderr and ", _2_280" not in proc.stderr


@pytest.mark.parametrize("plat", ["x86_64", "i686", "aarch64", "ppc64le", "s390x"])
def test_ml_ver_accepts_exactly_auditwheels_policies_for_the_arch(plat):
    from auditwheel.architecture import Architecture
    from auditwheel.libc import Libc
    from auditwheel.policy import WheelPolicies

    # auditwheel's own API (what `auditwheel repair --plat` accepts for the arch) ...
    policies = WheelPolicies(libc=Libc.GLIBC, arch=Architecture(plat))
    plats = {n for p in policies if p != policies.linux for n in (p.name, *p.aliases)}
    expected = {n.removeprefix("manylinux").removesuffix(f"_{plat}") for n in plats}
    # ... spelled as multibuild joins them: manylinux${MB_ML_VER}_${PLAT}
    assert set(nw_settings.ml_vers("manylinux", plat)) == expected
    assert {"2014", "_2_17", "_2_28"} <= expected and "_2_280" not in expected
    docker = {"DOCKER_IMAGE": "manylinux_2_28", "PLAT": plat}
    for ml_ver in expected:
        nw_settings.validate_settings({**docker, "MB_ML_VER": ml_ver})
    for ml_ver in ("_2_99", "_2_3", "2_28", "_1_2"):
        with pytest.raises(nw_settings.ConfigurationError, match=f"MB_ML_VER='{ml_ver}' is not"):
            nw_settings.validate_settings({**docker, "MB_ML_VER": ml_ver})


@pytest.mark.parametrize("ml_ver", ["1", "2010", "2014", "_2_24", "_2_28", "_2_34"])
def test_multibuild_policies_are_accepted(ml_ver):
    nw_settings.validate_settings({"MB_ML_VER": ml_ver})
    musl = {"MB_ML_VER": "_1_2", "MB_ML_LIBC": "musllinux", "DOCKER_IMAGE": "musllinux_1_2"}
    nw_settings.validate_settings(musl)
    with pytest.raises(nw_settings.ConfigurationError, match="MB_ML_VER='2014' is not one of: "
                       "_1_1, _1_2 for musllinux"):  # fmt: skip
        nw_settings.validate_settings({**musl, "MB_ML_VER": "2014"})


def test_in_a_container_the_image_decides_the_arch(tmp_path):
    # PLAT and MB_ML_LIBC a native build refuses pass validation with DOCKER_IMAGE
    for plat in ("x86_64", "i686", "aarch64", "ppc64le", "s390x"):
        nw_settings.validate_settings({"PLAT": plat, "DOCKER_IMAGE": "manylinux2014"})
    nw_settings.validate_settings({"MB_ML_LIBC": "musllinux", "DOCKER_IMAGE": "musllinux_1_2"})
    nw_settings.validate_settings({"PLAT": HOST})  # and natively, the host's own arch


# ------------------------------------------------------------------- make help


def _help_values(stdout: str) -> dict[str, str]:
    part = stdout.split("Settings, as this make sees them", 1)[1]
    return {m[1]: m[2] for m in re.finditer(r"^  ([A-Z_]+) +(\S+)", part, re.M)}


def test_make_help_shows_effective_values_and_every_setting(tmp_path):
    # GIVEN overrides on the command line and in the environment, and a secret
    env = {"MB_ML_VER": "_2_28", "ANACONDA_TOKEN": "s3cr3t-t0ken"}
    proc = make("help", "PLAT=aarch64", "WHEEL_SDIR=out", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    values = _help_values(proc.stdout)
    # THEN the values this make would use, never the recipe text
    assert values["PLAT"] == "aarch64"
    assert values["MB_ML_VER"] == "_2_28"
    assert values["WHEEL_SDIR"] == "out"
    assert "report in out/" in proc.stdout
    assert "$(" not in proc.stdout
    assert values["ANACONDA_TOKEN"] == "(set)" and "s3cr3t" not in proc.stdout
    # every `?=` setting of the table and every one the Makefile exports is listed
    makefile = (ROOT / "Makefile").read_text()
    declared = re.findall(r"^([A-Z_]+) \?=", SETTINGS_MK.read_text(), re.M)
    exported = re.findall(r"\b([A-Z][A-Z_]+)\b", makefile.split("\nexport ", 1)[1].split("\n\n")[0])
    assert set(exported) <= set(declared) == set(values)
    for name in ("DRY_RUN", "NIGHTLY", "COMMIT", "ANACONDA_ORG", "ANACONDA_TOKEN_FILE",
                 "STAGE_FORCE", "STAGE_REPOSITORY_URL", "NW_QUIET", "NW_VERBOSE"):  # fmt: skip
        assert name in values
    # and what `make stage` reads (its "Depends on"), secrets shown only as set or not
    header = (ROOT / "scripts" / "stage.sh").read_text().split("\nset -", 1)[0]
    read = re.findall(r"\b((?:ANACONDA|STAGE|NUMPY)_[A-Z_]+|DRY_RUN|NIGHTLY)\b", header)
    assert set(read) <= set(values)
    assert values["NUMPY_STAGING_UPLOAD_TOKEN"] == "(empty)"
    line = next(x for x in proc.stdout.splitlines() if x.startswith("  DRY_RUN "))
    assert "upload nothing" in line


def test_make_help_evaluates_the_default_plat(tmp_path):
    proc = make("help", tmp_path=tmp_path)
    assert _help_values(proc.stdout)["PLAT"] == platform.machine()
    assert _help_values(proc.stdout)["MB_ML_VER"] == "(empty)"


@pytest.mark.parametrize(
    ("typed", "suggestion"),
    [("wheel", "; did you mean make wheels?"), ("sourc", "; did you mean make source?"),
     ("xyzzy", "")],
)  # fmt: skip
def test_unknown_target_names_the_nearest(tmp_path, typed, suggestion):
    proc = make(typed, tmp_path=tmp_path)
    assert proc.returncode == 2
    assert f"make: no target '{typed}'{suggestion} (make help lists them)" in proc.stderr


def test_a_mistyped_second_goal_is_refused_before_the_first_runs(tmp_path):
    # GIVEN `make clean wheel`, where clean would delete the wheelhouse
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "keep.whl").write_bytes(b"")
    proc = make("clean", "wheel", f"WHEEL_SDIR={wheelhouse}", tmp_path=tmp_path)
    # THEN the typo is named and clean never ran
    assert proc.returncode == 2
    assert "make: no target 'wheel'; did you mean make wheels?" in proc.stderr
    assert (wheelhouse / "keep.whl").exists()


def test_benchmark_says_first_that_it_builds_numpy(tmp_path):
    proc = make("-n", "benchmark", tmp_path=tmp_path)
    lines = proc.stdout.splitlines()
    first = next(i for i, x in enumerate(lines) if "builds NumPy" in x)
    assert "~20 minutes" in lines[first]
    assert first < next(i for i, x in enumerate(lines) if "benchmarks/*.py" in x)


# --------------------------------------------------------------------- banner


def test_banner_comes_first_and_names_the_settings(tmp_path):
    project = fixture_copy(tmp_path)
    env = settings(tmp_path, project, MB_ML_VER="2014", PLAT="x86_64", DEPS_AS_OF="now")
    proc = numpy_wheels("source", tmp_path=tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "numpy-wheels make source:"
    end = lines.index("")
    banner = {line[2:13].strip(): line[14:] for line in lines[1:end]}
    assert banner["build"] == "native (x86_64 host)"
    assert banner["source"] == f"local directory {project}"
    assert banner["PLAT"] == "x86_64 (linux)"
    assert banner["policy"] == "manylinux2014"
    assert banner["deps as of"] == "now"
    assert banner["work dir"] == str(tmp_path / "work")
    assert banner["wheelhouse"] == str(tmp_path / "wheelhouse")
    # the step's fold (stderr: progress) comes after the banner (stdout: the settings)
    assert proc.stderr.splitlines()[0] == "==> source (clib-demo)"


def test_banner_names_the_container():
    env = {"DOCKER_IMAGE": "quay.io/pypa/manylinux_2_28_x86_64", "CONTAINER_ENGINE": "podman"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("MB_ML_VER", raising=False)
        lines = dict(nw_settings.banner_lines(nw_settings.Settings.from_env()))
    assert lines["build"] == "container quay.io/pypa/manylinux_2_28_x86_64 (podman)"
    assert lines["policy"] == "manylinux: the best the build allows"


def test_quiet_prints_no_banner_and_no_step_output(tmp_path):
    project = fixture_copy(tmp_path)
    proc = numpy_wheels("source", tmp_path=tmp_path, **settings(tmp_path, project, NW_QUIET="1"))
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "")


# ---------------------------------------------------------- end of a whole run


@pytest.fixture(scope="module")
def run_on_github(tmp_path_factory):
    """`make wheels` of the fixture as on GitHub Actions, with a private ccache that
    already counts one miss of somebody else's."""
    tmp_path = tmp_path_factory.mktemp("github")
    project = fixture_copy(tmp_path)
    summary = tmp_path / "step-summary.md"
    ccache_dir = tmp_path / "ccache"
    env = settings(
        tmp_path, project, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary),
        CCACHE_DIR=str(ccache_dir), USE_CCACHE="1",
    )  # fmt: skip
    (tmp_path / "other.c").write_text("int other(void) { return 1; }\n")
    subprocess.run(
        ["ccache", "gcc", "-c", "other.c", "-o", "other.o"],
        cwd=tmp_path, env=clean_env(tmp_path, **env), check=True,
    )  # fmt: skip
    proc = make("wheels", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp_path, env, proc


def _ccache_misses(env: dict[str, str], tmp_path: Path) -> int:
    out = subprocess.run(
        ["ccache", "--print-stats"], env=clean_env(tmp_path, **env), capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    return int(dict(line.split("\t") for line in out.splitlines())["cache_miss"])


def test_summary_gives_paths_sizes_counts_and_time(run_on_github):
    tmp_path, _, proc = run_on_github
    (wheel,) = sorted((tmp_path / "wheelhouse").glob("clib_demo-*.whl"))
    out = proc.stdout
    assert f"\n{wheel}\n" in out
    size = wheel.stat().st_size
    assert size < 2**20  # a small wheel: its size in KiB, never "0.0 MiB"
    assert f"  {size / 1024:.1f} KiB  sha256 " in out and "MiB" not in out
    assert re.search(r"^passed: 1 wheel\(s\) in the wheelhouse from this run, 5 of 5 step\(s\) "
                     r"passed, \d+\.\d s in all$", out, re.M)  # fmt: skip
    assert f"report: {tmp_path / 'wheelhouse' / 'build-report.json'}" in out


def test_github_job_summary_is_a_table(run_on_github):
    tmp_path, _, _ = run_on_github
    text = (tmp_path / "step-summary.md").read_text()
    (wheel,) = sorted((tmp_path / "wheelhouse").glob("clib_demo-*.whl"))
    assert "| step | seconds | status |" in text
    assert re.search(r"^\| test-wheel \| \d+\.\d \| passed \|$", text, re.M)
    assert f"| `{wheel.name}` | {wheel.stat().st_size / 1024:.1f} KiB |" in text


def test_report_tells_the_truth_about_a_local_build(run_on_github):
    tmp_path, env, _ = run_on_github
    report = json.loads((tmp_path / "wheelhouse" / "build-report.json").read_text())
    # a fixture tree built as it is: no ref was built, so none is claimed
    assert "build_commit" not in report and "commit" not in report
    assert report["source"] == f"local directory {tmp_path / 'clib-demo'}"
    assert report["openblas"] is None  # nothing prepared it, no wheel bundles it
    # ccache figures are this build's; the miss counted before it is still in the cache
    assert report["ccache"]["misses"] >= 1
    assert _ccache_misses(env, tmp_path) == report["ccache"]["misses"] + 1


def test_a_failed_run_keeps_the_wheelhouse_report_and_annotates(run_on_github, tmp_path):
    # GIVEN the wheelhouse and report of a passed run
    first, env, _ = run_on_github
    report = first / "wheelhouse" / "build-report.json"
    before = report.read_bytes()
    project = fixture_copy(tmp_path)
    ext = project / "src" / "clib_demo" / "_ext.c"
    ext.write_text(ext.read_text() + "\nthis is not C;\n")
    # WHEN a later run into the same wheelhouse fails to compile (on Azure this time)
    env = {**settings(first, project), "NW_WORK_DIR": str(tmp_path / "work"), "TF_BUILD": "True",
           "CCACHE_DIR": env["CCACHE_DIR"]}  # fmt: skip
    proc = make("wheels", tmp_path=tmp_path, env=env)
    # THEN the error is printed once, with the compiler's line, as an Azure issue too
    assert proc.returncode == 2 and "wheels] Error 1" in proc.stderr  # make's 2, numpy-wheels' 1
    everything = proc.stdout + proc.stderr
    assert everything.count("numpy-wheels: error: step 'build' failed") == 1
    assert "##vso[task.logissue type=error]step 'build' failed (exit 1)" in proc.stdout
    tail = proc.stderr.split("lines of its log:\n", 1)[1].split("\n  full log:")[0]
    assert 1 <= len(tail.splitlines()) <= paths.TAIL_LINES
    assert "error:" in tail
    assert re.search(r"^failed: 0 wheel\(s\) .* 1 of 2 step\(s\) passed", proc.stdout, re.M)
    # the old report stays; this run's is in its work dir
    assert report.read_bytes() == before
    failed = json.loads((tmp_path / "work" / "build-report.json").read_text())
    assert failed["steps"][-1]["status"] == "failed" and failed["wheels"] == []
    assert f"report: {tmp_path / 'work' / 'build-report.json'}" in proc.stdout


def _ccache_with_a_miss(tmp_path: Path) -> Path:
    """A private CCACHE_DIR that counted one miss, and the counters an earlier build
    step left in the work dir (tmp_path/work) before it."""
    ccache_dir = tmp_path / "ccache"
    (tmp_path / "other.c").write_text("int other(void) { return 1; }\n")
    subprocess.run(
        ["ccache", "gcc", "-c", "other.c", "-o", "other.o"], cwd=tmp_path,
        env=clean_env(tmp_path, CCACHE_DIR=str(ccache_dir)), check=True,
    )  # fmt: skip
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "ccache-before.json").write_text('{"hits": 0, "misses": 0}')
    return ccache_dir


def test_a_failed_source_is_reported_as_asked_with_no_stale_figures(tmp_path):
    # GIVEN an index that has nothing, a private ccache that counted a miss, and the
    # counters an earlier build step left in the work dir
    ccache_dir = _ccache_with_a_miss(tmp_path)
    with Recorder() as server:
        env = {**_network_env(server, tmp_path), "CCACHE_DIR": str(ccache_dir)}
        # WHEN `make wheels` fails at the source step
        proc = numpy_wheels("wheels", tmp_path=tmp_path, **env)
    assert proc.returncode == 1 and server.hits, proc.stderr
    report = json.loads((tmp_path / "work" / "build-report.json").read_text())
    # THEN the report describes the source asked for, as the banner did, and nothing fetched
    assert "  source      sdist of numpy v2.4.6 from the index\n" in proc.stdout
    assert report["source"] == "sdist of numpy v2.4.6 from the index (not fetched)"
    assert "build_commit" not in report and "sdist" not in report
    assert report["deps_as_of"] is None
    assert "has no date" not in proc.stdout + proc.stderr  # never "local directory numpy"
    # no build step ran: no ccache figures, though the cache and an old mark are there
    assert [s["step"] for s in report["steps"]] == ["source"]
    assert report["ccache"] == {}
    assert "ccache:" not in proc.stdout


def test_ccache_figures_are_only_this_build_steps(tmp_path):
    # GIVEN a cache that counted a miss, the counters an earlier build left, and a build
    # step that fails before it compiles anything (its index has no OpenBLAS)
    project = fixture_copy(tmp_path)
    ccache_dir = _ccache_with_a_miss(tmp_path)
    with Recorder() as server:
        pip = {
            "PIP_INDEX_URL": f"{server.base}/simple/",
            "PIP_FIND_LINKS": "",
            "PIP_EXTRA_INDEX_URL": "",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_RETRIES": "0",
        }
        env = settings(tmp_path, project, CCACHE_DIR=str(ccache_dir), USE_CCACHE="1", **pip)
        proc = numpy_wheels("wheels", tmp_path=tmp_path, **env)
    assert proc.returncode == 1, proc.stderr
    report = json.loads((tmp_path / "work" / "build-report.json").read_text())
    assert [(s["step"], s["status"]) for s in report["steps"]] == [
        ("source", "passed"),
        ("build", "failed"),
    ]
    # THEN the miss counted before this build is not reported as this build's
    assert report["ccache"] == {"hits": 0, "misses": 0} and "ccache:" not in proc.stdout
    assert _ccache_misses({"CCACHE_DIR": str(ccache_dir)}, tmp_path) == 1


# ------------------------------------------------------------ pieces of output


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (500, "500 B"), (6 * 1024, "6.0 KiB"), (int(17.24 * 2**20), "17.2 MiB"),
     (3 * 2**30, "3.0 GiB")],
)  # fmt: skip
def test_sizes_in_sensible_units(size, text):
    assert human_size(size) == text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_honours_no_color_and_terminals(monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour("FAIL", Terminal()) == "\033[31mFAIL\033[0m"
    assert colour("PASS", io.StringIO()) == "PASS"  # a pipe: plain
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert colour("WARN", io.StringIO()) == "\033[33mWARN\033[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert colour("FAIL", Terminal()) == "FAIL"


def test_ci_annotations(monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    ci_error("100% broken\nsecond line", "steps.py: build")
    assert capsys.readouterr().out == "::error title=steps.py%3A build::100%25 broken\n"
    monkeypatch.delenv("GITHUB_ACTIONS")
    monkeypatch.setenv("TF_BUILD", "True")
    ci_error("broken", "x")
    assert capsys.readouterr().out == "##vso[task.logissue type=error]broken\n"
    monkeypatch.delenv("TF_BUILD")
    ci_error("broken", "x")
    assert capsys.readouterr().out == ""


def test_useful_tail_starts_at_the_error():
    lines = [f"noise {i}" for i in range(100)] + ["a", "b", "c", "x.c:3: error: bad", "end"]
    assert runner.useful_tail(lines) == ["a", "b", "c", "x.c:3: error: bad", "end"]
    assert runner.useful_tail([f"n {i}" for i in range(50)]) == [f"n {i}" for i in range(20, 50)]


# ------------------------------------------------------------------- --version

SCRIPTS = [
    (["-m", "numpy_wheels.cli"], "numpy-wheels"),
    (["-m", "numpy_wheels.build.cli"], "numpy-wheels"),
    (["scripts/openblas_support.py"], "openblas_support.py"),
    (["scripts/check_wheel.py"], "check_wheel.py"),
    (["-m", "numpy_wheels.set_commit"], "set-commit"),
    (["scripts/wheel_uploader.py"], "wheel-uploader"),
    (["-m", "numpy_wheels.build.rebuild"], "rebuild-check"),
    (["-m", "numpy_wheels.build.provenance"], "provenance.py"),
]


@pytest.mark.parametrize(("args", "prog"), SCRIPTS)
def test_every_script_has_the_one_version(args, prog, tmp_path):
    proc = subprocess.run(
        [sys.executable, *args, "--version"], cwd=ROOT, capture_output=True, text=True
    )
    assert (proc.returncode, proc.stdout) == (0, f"{prog} (numpy-wheels-toolkit) {VERSION}\n")
    helped = subprocess.run([sys.executable, *args, "--help"], cwd=ROOT, capture_output=True,
                            text=True)  # fmt: skip
    if prog != "provenance.py":  # the user-facing ones
        assert re.search(r"[Ee]xit", helped.stdout), prog


@pytest.mark.parametrize(
    ("script", "prog"),
    [("scripts/stage.sh", "stage.sh"), ("scripts/wheel-uploader", "wheel-uploader"),
     ("scripts/setup.sh", "setup.sh")],
)  # fmt: skip
def test_every_shell_script_has_the_one_version(script, prog, tmp_path):
    env = clean_env(tmp_path, NW_PYTHON=sys.executable, PYTHON=sys.executable)
    proc = subprocess.run(["bash", script, "--version"], cwd=ROOT, env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, f"{prog} (numpy-wheels-toolkit) {VERSION}\n")
    if prog == "stage.sh":  # as numpy-wheels runs it
        ours = numpy_wheels("stage", "--version", tmp_path=tmp_path)
        assert (ours.returncode, ours.stdout) == (0, proc.stdout)


def test_make_version(tmp_path):
    proc = make("version", tmp_path=tmp_path)
    assert f"\nnumpy-wheels-toolkit {VERSION}\n" in proc.stdout  # between make's own lines
