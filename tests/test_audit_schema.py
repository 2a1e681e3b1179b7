"""The published schema of ``check_wheel.py --json`` (package data
``numpy_wheels/schemas/check-wheel.schema.json``): real outputs of the script
validate, on failing, unreadable and strict runs (the official corpus is validated
in test_audit_corpus.py); documents that break its promises do not."""

from __future__ import annotations

import copy
import importlib.resources
import json
import subprocess
import sys

import jsonschema
import pytest
from conftest import ROOT, clean_env
from test_check_wheel import LINUX_OPENBLAS, edit_wheel

SCRIPT = ROOT / "scripts" / "check_wheel.py"


def schema() -> dict:
    resource = importlib.resources.files("numpy_wheels") / "schemas" / "check-wheel.schema.json"
    return json.loads(resource.read_text(encoding="utf-8"))


def problems(document: dict) -> list[str]:
    """Every way ``document`` breaks the schema (empty: it validates)."""
    validator = jsonschema.Draft202012Validator(schema())
    return sorted(e.message for e in validator.iter_errors(document))


def run_json(tmp_path, *args) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", *map(str, args)],
        capture_output=True, text=True, env=clean_env(tmp_path), timeout=900,
    )  # fmt: skip
    assert proc.stderr == ""
    return proc.returncode, json.loads(proc.stdout)


def test_the_schema_is_a_valid_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.fixture(scope="module")
def failing_run(official_numpy_wheels, tmp_path_factory):
    """One real run over PASS, FAIL and ERROR inputs of every platform: (exit, document)."""
    tmp = tmp_path_factory.mktemp("schema")

    def drop_openblas(members):
        del members[LINUX_OPENBLAS]

    def tamper(members):
        members["numpy/version.py"] += b"\n# changed\n"

    broken = edit_wheel(official_numpy_wheels["manylinux_x86_64"], tmp, edit=drop_openblas)
    (tmp / "tampered").mkdir()
    tampered = edit_wheel(official_numpy_wheels["win_amd64"], tmp / "tampered", edit=tamper,
                          fix_record=False)  # fmt: skip
    damaged = tmp / "numpy-2.4.6-cp311-cp311-macosx_14_0_arm64.whl"
    damaged.write_bytes(official_numpy_wheels["macosx_arm64"].read_bytes()[:5000])
    inputs = [official_numpy_wheels["macosx_x86_64"], broken, tampered, damaged,
              tmp / "missing-1.0-py3-none-any.whl"]  # fmt: skip
    return run_json(tmp, "--strict", *inputs)


def test_a_failing_run_validates(failing_run):
    code, document = failing_run
    assert code == 1
    verdicts = [w["verdict"] for w in document["wheels"]]
    # the official macOS wheel passes; the broken copies FAIL, the missing file is an ERROR
    assert verdicts == ["PASS", "FAIL", "FAIL", "FAIL", "ERROR"]
    tampered = document["wheels"][2]
    assert tampered["failures"] == [
        "numpy/version.py: sha256 does not match RECORD (file was modified)",
        "numpy/version.py: size 315 does not match RECORD (304)",
    ]
    assert tampered["warnings"] and tampered["binaries"]  # the rest of the audit still ran
    assert problems(document) == []


def test_pass_and_no_numpy_checks_runs_validate(official_numpy_wheels, tmp_path):
    code, document = run_json(tmp_path, "--no-numpy-checks", *official_numpy_wheels.values())
    assert (code, document["ok"]) == (0, True)
    assert {w["platform"] for w in document["wheels"]} == {"linux", "macos", "windows"}
    assert all(w["openblas"] == {} for w in document["wheels"])
    assert problems(document) == []


def _breaks(document: dict) -> dict[str, dict]:
    """Copies of a real document, each breaking one promise of the schema."""
    out = {}

    def variant(name, change):
        doc = copy.deepcopy(document)
        change(doc)
        out[name] = doc

    wheels = lambda d: d["wheels"]  # noqa: E731
    variant("new version", lambda d: d.update(version=3))
    variant("ok but a wheel fails", lambda d: d.update(ok=True))
    variant("PASS with a failure", lambda d: wheels(d)[1].update(verdict="PASS", ok=True))
    variant("no failures key", lambda d: wheels(d)[1].pop("failures"))
    variant("unknown verdict", lambda d: wheels(d)[0].update(verdict="WARN"))
    variant("ERROR without a reason", lambda d: wheels(d)[4].update(failures=[]))
    variant("unknown field", lambda d: wheels(d)[0].update(score=1))
    variant("unknown format", lambda d: wheels(d)[0]["binaries"][0].update(format="wasm"))
    variant("ELF field on Mach-O", lambda d: wheels(d)[0]["binaries"][0].update(runpath=[]))
    variant("bad need kind",
            lambda d: wheels(d)[1]["binaries"][0]["needed"][0].update(kind="dlopen"))  # fmt: skip
    variant("bad macOS version",
            lambda d: wheels(d)[0]["binaries"][0]["min_macos"].update(x86_64="ten"))  # fmt: skip
    variant("openblas without NumPy checks",
            lambda d: wheels(d)[4].update(openblas={"files": []}))  # fmt: skip
    return out


def test_the_schema_rejects_documents_that_break_its_promises(failing_run):
    _code, document = failing_run
    assert problems(document) == []
    for name, broken in _breaks(document).items():
        assert problems(broken), f"the schema accepts a document with {name}"
