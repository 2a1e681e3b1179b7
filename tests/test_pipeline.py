"""The make targets end to end on the fixture project (tests/fixtures/clib-demo):
a C extension linked against a shared library that only the repair step makes
part of the wheel."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from conftest import HOST_ARCH, PY_TAG, ROOT, VENV_BIN, clean_env, make

FIXTURE = ROOT / "tests" / "fixtures" / "clib-demo"
# The interpreter and machine the suite runs on decide the wheel's tags.
RAW_WHEEL = f"clib_demo-1.0.0-{PY_TAG}-{PY_TAG}-linux_{HOST_ARCH}.whl"


# the schema as the package ships it (package data)
REPORT_SCHEMA = resources.files("numpy_wheels") / "schemas" / "build-report.schema.json"


def schema_errors(report: Path) -> str:
    """What check-jsonschema finds wrong in ``report`` against REPORT_SCHEMA ("" if nothing)."""
    with resources.as_file(REPORT_SCHEMA) as schema:
        cmd = [str(VENV_BIN / "check-jsonschema"), "--schemafile", str(schema), str(report)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    return "" if proc.returncode == 0 else proc.stdout + proc.stderr


def fixture_copy(tmp_path: Path) -> Path:
    """A private copy of the fixture project, so a test can break it."""
    dest = tmp_path / "clib-demo"
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return dest


def settings(tmp_path: Path, project: Path, **extra: str) -> dict[str, str]:
    return {
        "REPO_DIR": str(project),
        "CONFIG_PATH": str(project / "config.sh"),
        "WHEEL_SDIR": str(tmp_path / "wheelhouse"),
        "NW_WORK_DIR": str(tmp_path / "work"),
        **extra,
    }


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """One successful `make wheels` of the fixture, shared by the assertions below."""
    tmp_path = tmp_path_factory.mktemp("pipeline")
    project = fixture_copy(tmp_path)
    env = settings(tmp_path, project)
    # A wheel from an earlier run: it stays, and stays out of this run's report.
    (tmp_path / "wheelhouse").mkdir()
    (tmp_path / "wheelhouse" / "older-0.1-py3-none-any.whl").write_bytes(b"old")
    proc = make("wheels", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp_path, proc


def test_wheels_produces_a_repaired_tested_wheel(pipeline):
    tmp_path, proc = pipeline
    wheels = sorted((tmp_path / "wheelhouse").glob("clib_demo-*.whl"))
    # No MB_ML_VER: auditwheel picks the most compatible policy the wheel allows.
    assert [w.name for w in wheels] == [
        f"clib_demo-1.0.0-{PY_TAG}-{PY_TAG}-manylinux1_{HOST_ARCH}.manylinux_2_5_{HOST_ARCH}.whl"
    ]
    names = zipfile.ZipFile(wheels[0]).namelist()
    grafted = [n for n in names if n.startswith("clib_demo.libs/libclib")]
    assert len(grafted) == 1, names
    # run_tests ran in the clean venv and passed.
    assert "clib_demo.add(2, 3) == 5" in proc.stdout
    assert "PASS clib_demo-1.0.0" in proc.stdout


def test_wheels_report_matches_the_files(pipeline):
    tmp_path, proc = pipeline
    report = json.loads((tmp_path / "wheelhouse" / "build-report.json").read_text())
    assert [s["step"] for s in report["steps"]] == [
        "source", "build", "repair", "check", "test-wheel",
    ]  # fmt: skip
    assert {s["status"] for s in report["steps"]} == {"passed"}
    (entry,) = report["wheels"]
    wheel = tmp_path / "wheelhouse" / entry["name"]
    assert entry["size"] == wheel.stat().st_size
    from numpy_wheels.files import file_hash

    assert entry["sha256"] == file_hash(wheel)
    assert report["tools"]["auditwheel"] == "auditwheel 6.8.2"
    # clib_demo-1.0.0-…whl: the project as packaging reads it from the file name
    assert (report["project"], report["project_version"]) == ("clib-demo", "1.0.0")
    assert report["openblas"] is None
    assert f"sha256 {entry['sha256']}" in proc.stdout  # the table printed at the end


def test_wheels_report_follows_the_published_schema(pipeline, tmp_path):
    first, _ = pipeline
    report = first / "wheelhouse" / "build-report.json"
    assert schema_errors(report) == ""
    # and the schema is not a formality: a wheel without its sha256 is refused
    broken = json.loads(report.read_text())
    del broken["wheels"][0]["sha256"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    assert "'sha256' is a required property" in schema_errors(tmp_path / "broken.json")


def test_the_unrepaired_wheel_is_kept_out_of_the_wheelhouse(pipeline):
    tmp_path, _ = pipeline
    raw = sorted((tmp_path / "work" / "raw").glob("*.whl"))
    assert [w.name for w in raw] == [RAW_WHEEL]
    assert not (tmp_path / "wheelhouse" / raw[0].name).exists()


def test_build_failure_names_the_step_and_shows_the_compiler_error(tmp_path):
    project = fixture_copy(tmp_path)
    ext = project / "src" / "clib_demo" / "_ext.c"
    ext.write_text(ext.read_text() + "\nthis is not C;\n")
    proc = make("wheels", tmp_path=tmp_path, env=settings(tmp_path, project))
    assert proc.returncode != 0
    assert "numpy-wheels: error: step 'build' failed" in proc.stderr
    assert "error:" in proc.stderr.split("lines of its log:", 1)[1]  # the compiler's own line
    assert f"full log: {tmp_path / 'work' / 'logs' / 'build.log'}" in proc.stderr
    # the failed run's report (in the work dir) follows the same schema
    assert schema_errors(tmp_path / "work" / "build-report.json") == ""
    assert not (tmp_path / "wheelhouse").exists() or not list(
        (tmp_path / "wheelhouse").glob("*.whl")
    )


def test_failing_tests_put_the_wheel_in_failed(tmp_path):
    project = fixture_copy(tmp_path)
    config = project / "config.sh"
    config.write_text(config.read_text().replace("!= 5", "!= 6"))
    proc = make("wheels", tmp_path=tmp_path, env=settings(tmp_path, project))
    assert proc.returncode != 0
    assert "step 'test-wheel' failed" in proc.stderr
    assert list((tmp_path / "wheelhouse").glob("*.whl")) == []
    assert len(list((tmp_path / "wheelhouse" / "failed").glob("clib_demo-*.whl"))) == 1
    # A failed run's report is kept in the work dir, apart from the wheelhouse's.
    report = json.loads((tmp_path / "work" / "build-report.json").read_text())
    assert report["steps"][-1] == {**report["steps"][-1], "step": "test-wheel", "status": "failed"}
    assert report["wheels"] == []


def test_run_tests_not_defined(tmp_path):
    project = fixture_copy(tmp_path)
    config = project / "config.sh"
    text = config.read_text()
    config.write_text(text[: text.index("run_tests()")])
    proc = make("wheels", tmp_path=tmp_path, env=settings(tmp_path, project))
    assert proc.returncode != 0
    assert "run_tests is not defined" in proc.stdout + proc.stderr
    assert list((tmp_path / "wheelhouse").glob("*.whl")) == []


def test_missing_config(tmp_path):
    project = fixture_copy(tmp_path)
    env = settings(tmp_path, project, CONFIG_PATH=str(tmp_path / "nope.sh"))
    proc = make("build", tmp_path=tmp_path, env=env)
    assert proc.returncode != 0  # make reports 2 for any failed recipe
    assert (f"numpy-wheels: error: CONFIG_PATH='{tmp_path / 'nope.sh'}': no such file (the "
            "project's build_wheel/run_tests hooks)") in proc.stderr  # fmt: skip
    assert not (tmp_path / "work").exists()  # refused before any step


def test_unknown_plat(tmp_path):
    project = fixture_copy(tmp_path)
    proc = make("build", tmp_path=tmp_path, env=settings(tmp_path, project, PLAT="sparc64"))
    assert proc.returncode != 0
    assert "sparc64" in proc.stderr
    assert list((tmp_path / "work" / "raw").glob("*.whl")) == []


def test_foreign_plat_without_container_engine(tmp_path):
    project = fixture_copy(tmp_path)
    other = "aarch64" if HOST_ARCH != "aarch64" else "x86_64"
    proc = make("build", tmp_path=tmp_path, env=settings(tmp_path, project, PLAT=other))
    assert proc.returncode != 0
    assert (f"numpy-wheels: error: PLAT='{other}' is not buildable natively on this {HOST_ARCH} "
            f"host (valid: {HOST_ARCH}); set DOCKER_IMAGE to a manylinux image for {other} to "
            "build in a container") in proc.stderr  # fmt: skip
    assert not (tmp_path / "work").exists()  # refused before any step


def test_no_supported_wheel(tmp_path):
    project = fixture_copy(tmp_path)
    repaired = tmp_path / "work" / "repaired"
    repaired.mkdir(parents=True)
    other = "s390x" if HOST_ARCH != "s390x" else "aarch64"
    foreign = repaired / f"clib_demo-1.0.0-{PY_TAG}-{PY_TAG}-manylinux_2_17_{other}.whl"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("clib_demo/__init__.py", "")
    # as if make check had passed it: this test is about what install_run says
    from numpy_wheels.files import file_hash

    checked = {foreign.name: file_hash(foreign)}
    (tmp_path / "work" / "checked.json").write_text(json.dumps(checked))
    proc = make("test-wheel", tmp_path=tmp_path, env=settings(tmp_path, project))
    assert proc.returncode != 0
    # one line naming the wheel, its tags and the interpreter, before any venv is made
    assert (f"numpy-wheels: error: {foreign.name} ({PY_TAG}-{PY_TAG}-manylinux_2_17_{other}) "
            f"does not install on {sys.executable} ({PY_TAG})") in proc.stderr  # fmt: skip
    assert "no supported wheels found" not in proc.stdout + proc.stderr
    # it failed no test: it stays where it was, and nothing is in failed/
    assert foreign.is_file() and not (tmp_path / "wheelhouse" / "failed").exists()
    assert list((tmp_path / "wheelhouse").glob("*.whl")) == []


def test_steps_refuse_to_run_out_of_order(tmp_path):
    project = fixture_copy(tmp_path)
    proc = make("repair", tmp_path=tmp_path, env=settings(tmp_path, project))
    assert proc.returncode != 0
    assert "no wheel in" in proc.stderr and "run `make build` first" in proc.stderr


def test_interrupted_build_then_rerun_starts_clean(tmp_path):
    # GIVEN a build held inside its pre_build hook until it is interrupted
    project = fixture_copy(tmp_path)
    config = project / "config.sh"
    held = tmp_path / "held"
    hold = '    if [ -n "${NW_TEST_HOLD:-}" ]; then : > "$NW_TEST_HOLD"; sleep 600; fi\n'
    text = config.read_text().replace('"$clib_source/clib.c"\n', '"$clib_source/clib.c"\n' + hold)
    config.write_text(text)
    env = settings(tmp_path, project)
    proc = subprocess.Popen(
        ["make", "-C", str(ROOT), "build"],
        env=clean_env(tmp_path, NW_TEST_HOLD=str(held), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not held.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the hook, not a fixed wait
    assert held.exists(), proc.communicate()[0].decode()[-3000:]
    # WHEN Ctrl-C reaches the whole foreground group
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=120)[0].decode()
    # THEN the build stopped there: make failed, the step is recorded as
    # interrupted, and no wheel came out of it
    assert proc.returncode != 0, out[-3000:]
    record = json.loads((tmp_path / "work" / "steps.json").read_text())
    assert [(r["step"], r["status"]) for r in record] == [("build", "interrupted")]
    raw = tmp_path / "work" / "raw"
    assert list(raw.glob("*.whl")) == []
    # AND a re-run (debris of an interrupted wheel in raw/) builds just the new wheel
    (raw / f"clib_demo-0.9-{PY_TAG}-{PY_TAG}-linux_{HOST_ARCH}.whl").write_bytes(b"stale")
    rerun = make("build", tmp_path=tmp_path, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert [w.name for w in raw.glob("*.whl")] == [RAW_WHEEL]


@pytest.mark.parametrize(
    ("ci_variable", "begin", "end"),
    [("GITHUB_ACTIONS", "::group::source", "::endgroup::"),
     ("TF_BUILD", "##[group]source", "##[endgroup]"),
     # text=True reads Travis's \r as a line end
     ("TRAVIS", "travis_fold:start:source_clib-demo.1\n\x1b[0Ksource",
      "travis_fold:end:source_clib-demo.1\n\x1b[0K")],
)  # fmt: skip
def test_steps_are_folded_on_ci(tmp_path, ci_variable, begin, end):
    project = fixture_copy(tmp_path)
    env = settings(tmp_path, project, **{ci_variable: "true"})
    proc = make("source", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    text = proc.stderr  # progress, with the fold markers
    assert text.index(f"{begin} (clib-demo)\n") < text.index(f"{end}\n")
    assert "==>" not in proc.stdout + proc.stderr


def test_help_lists_every_target(tmp_path):
    proc = make("help", tmp_path=tmp_path)
    assert proc.returncode == 0
    makefile = (ROOT / "Makefile").read_text()
    targets = [line.split()[1] for line in makefile.splitlines() if line.startswith(".PHONY: ")]
    for target in targets:
        assert f"  {target} " in proc.stdout
    for variable in ("PYTHON", "REPO_DIR", "BUILD_COMMIT", "PLAT", "MB_ML_VER", "WHEEL_SDIR",
                     "CONFIG_PATH", "ENV_VARS_PATH", "DOCKER_IMAGE"):  # fmt: skip
        assert f"  {variable} " in proc.stdout


def test_mb_ml_ver_selects_the_policy(tmp_path):
    project = fixture_copy(tmp_path)
    env = settings(tmp_path, project, MB_ML_VER="2014")
    for target in ("build", "repair"):
        proc = make(target, tmp_path=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
    names = [w.name for w in (tmp_path / "work" / "repaired").glob("*.whl")]
    assert names == [
        f"clib_demo-1.0.0-{PY_TAG}-{PY_TAG}-manylinux2014_{HOST_ARCH}.manylinux_2_17_{HOST_ARCH}.whl"
    ]


def test_impossible_policy_is_a_clear_error(tmp_path):
    project = fixture_copy(tmp_path)
    env = settings(tmp_path, project, AUDITWHEEL_PLAT=f"musllinux_1_2_{HOST_ARCH}")
    assert make("build", tmp_path=tmp_path, env=env).returncode == 0
    proc = make("repair", tmp_path=tmp_path, env=env)
    assert proc.returncode != 0
    assert (
        f"repair_wheelhouse: auditwheel could not repair {RAW_WHEEL} for musllinux_1_2_{HOST_ARCH}"
    ) in proc.stderr
    assert list((tmp_path / "work" / "repaired").glob("*.whl")) == []


@pytest.mark.parametrize(
    "target", ["help", "setup", "wheels", "nightly", "source", "openblas", "build", "repair",
               "check", "test-wheel", "stage", "clean", "lint", "test", "benchmark"],
)  # fmt: skip
def test_make_n_has_no_side_effects(tmp_path, target):
    before = sorted(p.name for p in ROOT.iterdir())
    proc = make("-n", target, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in ROOT.iterdir()) == before
