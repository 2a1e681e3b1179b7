"""NumPy itself through containers, once per test run: `make wheels DOCKER_IMAGE=…`
of an OLDER release's sdist than tests/test_numpy_e2e.py builds (issue 16: a release
builds and tests today as it did on its release day), built and repaired in the
manylinux-shaped image (tests/container_engine.py), audited, and NumPy's own fast
test suite run in a test container.

NumPy 2.3.5 with today's Cython fails its own test_limited_api ("Cython 3.3 requires
the Python Limited API version to be 3.9 or greater"); with the build and test
requirements resolved as of its sdist's upload (DEPS_AS_OF=source, the default) it
passes. One build serves both checks, so `make test` builds NumPy no more often."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from conftest import CACHE, ROOT, make
from container_engine import POLICY

# A stable place (not tmp_path): the meson build directory and the ccache
# directory mounted into the container make a local re-run fast.
WORK = ROOT / "build" / "e2e-container"
CCACHE = CACHE / "ccache-container"
# An older release that uses scipy-openblas, and the day its sdist reached the index.
OLD_RELEASE = "2.3.5"
OLD_RELEASE_UPLOADED = datetime(2025, 11, 16, tzinfo=UTC)


@pytest.fixture(scope="module")
def numpy_container_build(container, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e-container")
    wheelhouse = WORK / "wheelhouse"
    CCACHE.mkdir(parents=True, exist_ok=True)
    env = {
        **container.env,
        "DOCKER_RUN_ARGS": f"--network host -e CCACHE_DIR=/ccache -v {CCACHE}:/ccache",
        "BUILD_COMMIT": f"v{OLD_RELEASE}",
        "DEPS_AS_OF": "source",
        "REPO_DIR": str(WORK / "numpy"),
        "WHEEL_SDIR": str(wheelhouse),
        "NW_WORK_DIR": str(WORK / "work"),
        "NW_SDIST_CACHE": str(CACHE / "sdist"),
        "NW_OPENBLAS_CACHE": str(CACHE / "openblas"),
    }
    for old in wheelhouse.glob("*.whl"):
        old.unlink()
    proc = make("wheels", tmp_path=tmp_path, env=env, timeout=3600)
    (WORK / "make-wheels.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return wheelhouse, proc


@pytest.mark.slow
def test_numpy_wheel_from_the_container_bundles_openblas(numpy_container_build):
    wheelhouse, _ = numpy_container_build
    (wheel,) = wheelhouse.glob("*.whl")
    # the image's policy is the tag auditwheel was asked for
    assert re.fullmatch(
        rf"numpy-{re.escape(OLD_RELEASE)}-cp311-cp311-(manylinux_\w+\.)*manylinux_2_36_x86_64\.whl",
        wheel.name,
    )
    names = zipfile.ZipFile(wheel).namelist()
    openblas = [n for n in names if re.fullmatch(r"numpy\.libs/libscipy_openblas64_-\w+\.so", n)]
    assert len(openblas) == 1, [n for n in names if n.startswith("numpy.libs/")]


@pytest.mark.slow
def test_numpy_test_suite_passed_in_a_test_container(container, numpy_container_build):
    _, proc = numpy_container_build
    out = proc.stdout
    assert "docker_test_wrap.sh: /opt/python/cp311-cp311/bin/python in a container" in out
    assert re.search(
        rf"install_run: container [0-9a-f]{{12}} of {re.escape(container.image)} exited 0", out
    )
    summary = re.search(r"(\d+) passed.* in [\d.]+s", out)
    assert summary and int(summary.group(1)) > 10000, out[-3000:]
    assert not re.search(r"\d+ failed", summary.group(0))
    assert "numpy: LICENSE.txt declares the bundled software" in out


@pytest.mark.slow
def test_numpy_report_names_the_container(container, numpy_container_build):
    wheelhouse, _ = numpy_container_build
    report = json.loads((wheelhouse / "build-report.json").read_text())
    assert report["python_path"] == "/opt/python/cp311-cp311/bin/python"
    assert report["environment"]["build"] == report["environment"]["repair"] == "container"
    assert report["environment"]["image"] == container.image
    assert report["tools"]["meson-python"][0].isdigit()
    assert report["tools"]["auditwheel"].startswith("auditwheel ")
    assert report["source"].startswith(f"sdist numpy-{OLD_RELEASE}.tar.gz")
    assert report["project_version"] == OLD_RELEASE
    assert all(s["status"] == "passed" for s in report["steps"])
    assert POLICY in report["wheels"][0]["name"]


@pytest.mark.slow
def test_old_release_resolved_its_requirements_as_of_its_upload(numpy_container_build):
    wheelhouse, proc = numpy_container_build
    report = json.loads((wheelhouse / "build-report.json").read_text())
    deps = report["deps_as_of"]
    assert deps["basis"].startswith(f"numpy-{OLD_RELEASE}.tar.gz upload"), deps
    moment = datetime.fromisoformat(deps["uploaded_prior_to"].replace("Z", "+00:00"))
    # upload time + DEPS_GRACE_DAYS (14): not today's index
    grace = moment - OLD_RELEASE_UPLOADED
    assert timedelta(days=14) <= grace < timedelta(days=15), deps
    # the date is said once, at the start
    assert f"dependencies as of {deps['uploaded_prior_to']} (numpy-{OLD_RELEASE}" in (
        proc.stderr + proc.stdout
    )
    # pip inside the image got it: every Cython installed (build and test venvs)
    # predates 3.3, which this release's own tests reject
    cython = re.findall(r"\bCython-(\d+)\.(\d+)\.\S+", proc.stdout + proc.stderr)
    assert cython and all((int(a), int(b)) < (3, 3) for a, b in cython), cython
