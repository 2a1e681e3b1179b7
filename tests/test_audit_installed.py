"""The audit installed from the toolkit's own wheel (not editable): ``check-wheel``
finds its policy tables and schema as package data, from any directory."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, clean_env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding the toolkit's wheel; its dependencies are the
    test venv's (a .pth line: that venv's own .pth files, the editable finder
    among them, are not run)."""
    tmp = tmp_path_factory.mktemp("installed")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", ROOT],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("numpy_wheels_toolkit-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {"numpy_wheels/data/check_wheel_policy.json",
            "numpy_wheels/schemas/check-wheel.schema.json"} <= names  # fmt: skip
    assert "check_wheel.py" not in names  # nothing generic at the top level
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel]
    proc = subprocess.run(pip, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run([python, "-c", where], capture_output=True, text=True,
                             check=True).stdout.strip()  # fmt: skip
    (Path(purelib) / "zz-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


def run(bin_dir: Path, tmp_path: Path, *argv) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*map(str, argv)], cwd=tmp_path, capture_output=True, text=True,
                          env=clean_env(tmp_path), timeout=900)  # fmt: skip


def test_installed_check_wheel_audits_with_its_package_data(installed, official_numpy_wheels,
                                                            tmp_path):  # fmt: skip
    # a Windows wheel: judged with the policy tables (system DLLs, machine types)
    wheel = official_numpy_wheels["win_amd64"]
    proc = run(installed, tmp_path, installed / "check-wheel", "--json", wheel)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["wheels"][0]["verdict"] == "PASS"
    # the schema it ships, read from the installed package, accepts it
    validate = (
        "import importlib.resources, json, sys, jsonschema, numpy_wheels.audit as a\n"
        "assert 'site-packages' in a.__file__, a.__file__\n"
        "res = importlib.resources.files('numpy_wheels') / 'schemas/check-wheel.schema.json'\n"
        "jsonschema.validate(json.load(sys.stdin), json.loads(res.read_text()))\n"
    )
    check = subprocess.run([installed / "python", "-c", validate], input=proc.stdout,
                           capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert check.returncode == 0, check.stderr
    # python -m numpy_wheels.audit is the same command; a missing input is exit 3
    missing = run(installed, tmp_path, installed / "python", "-m", "numpy_wheels.audit", "x.whl")
    assert (missing.returncode, missing.stdout) == (3, "ERROR x.whl\n  x.whl: no such file\n")
