"""The real thing, once per test run: `make wheels` from the released NumPy sdist,
linked to scipy-openblas64, repaired by auditwheel, audited, and tested with
NumPy's own test suite in a clean venv."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from conftest import CACHE, HOST_ARCH, PY_TAG, ROOT, make
from numpy_wheels.files import file_hash

# A stable place (not tmp_path): the same build directory and ccache directory
# from one run to the next is what makes a local re-run fast.
WORK = ROOT / "build" / "e2e"


@pytest.fixture(scope="module")
def numpy_build(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e")
    wheelhouse = WORK / "wheelhouse"
    env = {
        "REPO_DIR": str(WORK / "numpy"),
        "WHEEL_SDIR": str(wheelhouse),
        "NW_WORK_DIR": str(WORK / "work"),
        "NW_SDIST_CACHE": str(CACHE / "sdist"),
        "CCACHE_DIR": str(CACHE / "ccache"),
        "NW_OPENBLAS_CACHE": str(CACHE / "openblas"),
    }
    for old in wheelhouse.glob("*.whl"):
        old.unlink()
    proc = make("wheels", tmp_path=tmp_path, env=env, timeout=3600)
    (WORK / "make-wheels.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return wheelhouse, proc


@pytest.mark.slow
def test_repaired_wheel_bundles_openblas64(numpy_build):
    wheelhouse, _ = numpy_build
    (wheel,) = wheelhouse.glob("*.whl")
    tags = rf"{PY_TAG}-{PY_TAG}-manylinux_2_\d+_{HOST_ARCH}"
    assert re.fullmatch(rf"numpy-2\.4\.6-{tags}\.whl", wheel.name), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    openblas = [n for n in names if re.fullmatch(r"numpy\.libs/libscipy_openblas64_-\w+\.so", n)]
    assert len(openblas) == 1, [n for n in names if n.startswith("numpy.libs/")]
    license_text = zipfile.ZipFile(wheel).read("numpy-2.4.6.dist-info/licenses/LICENSE.txt")
    assert b"This binary distribution of NumPy also bundles the following software" in license_text
    assert b"Name: OpenBLAS" in license_text


@pytest.mark.slow
def test_numpy_test_suite_passed_in_a_clean_venv(numpy_build):
    _, proc = numpy_build
    out = proc.stdout
    # pytest's summary line from numpy.test(), then the OpenBLAS and license checks.
    summary = re.search(r"(\d+) passed.* in [\d.]+s", out)
    assert summary and int(summary.group(1)) > 10000, out[-3000:]
    assert not re.search(r"\d+ failed", summary.group(0))
    assert "numpy: LICENSE.txt declares the bundled software" in out
    assert "test-wheel: done" in proc.stderr


@pytest.mark.slow
def test_report_is_consistent_with_the_files(numpy_build):
    wheelhouse, _ = numpy_build
    report = json.loads((wheelhouse / "build-report.json").read_text())
    assert [s["step"] for s in report["steps"]] == [
        "source", "build", "repair", "check", "test-wheel",
    ]  # fmt: skip
    assert all(s["status"] == "passed" and s["seconds"] > 0 for s in report["steps"][1:])
    assert report["source"].startswith("sdist numpy-2.4.6.tar.gz")
    (entry,) = report["wheels"]
    wheel = wheelhouse / entry["name"]
    assert entry["size"] == wheel.stat().st_size
    assert entry["sha256"] == file_hash(wheel)
    assert report["openblas"]
    assert report["tools"]["meson-python"][0].isdigit()
