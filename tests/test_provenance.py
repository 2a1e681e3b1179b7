"""The provenance record `make wheels` writes beside build-report.json: an in-toto
Statement v1 with a SLSA Provenance v1 predicate, validated against JSON Schemas
written from the two specifications (tests/schemas/) with check-jsonschema, and
read into the published protobuf messages of both (in-toto-attestation's bindings
of in-toto/attestation's .proto files, the SLSA v1 provenance.proto among them)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN, make
from numpy_wheels.build import provenance
from numpy_wheels.files import file_hash
from test_pipeline import fixture_copy, settings

SCHEMAS = [
    ROOT / "tests" / "schemas" / n for n in ("in-toto-statement-v1.json", "slsa-provenance-v1.json")
]
FIXTURE = ROOT / "tests" / "fixtures" / "clib-demo"
CI_VARIABLES = (
    "GITHUB_ACTIONS", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT", "TF_BUILD", "SYSTEM_COLLECTIONURI", "SYSTEM_TEAMPROJECT",
    "BUILD_BUILDID", "SYSTEM_JOBID", "SYSTEM_JOBATTEMPT", "TRAVIS", "APPVEYOR",
)  # fmt: skip


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against both schemas; returns the last failing run, or the last run."""
    proc = None
    for schema in SCHEMAS:
        cmd = [str(VENV_BIN / "check-jsonschema"), "--schemafile", str(schema), str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            return proc
    return proc


def published(data: dict) -> None:
    """Read ``data`` into the published Statement and Provenance messages: an unknown
    or misspelt field, a wrong type or a time that is not RFC 3339 raises ParseError;
    the in-toto library's own checks (a subject needs a digest) raise ValueError."""
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    Statement.copy_from_pb(json_format.ParseDict(data, statement_pb2.Statement())).validate()
    json_format.ParseDict(data["predicate"], provenance_pb2.Provenance())


@pytest.fixture
def no_ci(monkeypatch):
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)


REPORT = {
    "build_commit": "v2.4.6",
    "platform": "x86_64",
    "python": "Python 3.11.7",
    "deps_as_of": {"uploaded_prior_to": "2026-06-01T23:37:14Z", "basis": "upload + 14 days"},
    "wheels": [{"name": "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl", "sha256": "a" * 64}],
}
SDIST = {"kind": "sdist", "file": "numpy-2.4.6.tar.gz", "sha256": "b" * 64}
T0, T1 = datetime(2026, 6, 1, 12, tzinfo=UTC), datetime(2026, 6, 1, 13, tzinfo=UTC)


def record(tmp_path: Path, marker: dict = SDIST, **kw) -> dict:
    args = dict(
        marker=marker,
        repo_dir=tmp_path,
        repo_url="https://example.org/numpy.git",
        build_python=tmp_path / "no-venv" / "python",
        openblas=None,
        source_date_epoch=1779140400,
        started=T0,
        finished=T1,
    )
    return provenance.statement(REPORT, **{**args, **kw})


def test_sdist_record_is_valid_and_names_wheel_and_source(tmp_path, no_ci):
    path = provenance.write(tmp_path, record(tmp_path))
    proc = validate(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(path.read_text())
    published(data)
    assert data["subject"] == [
        {"name": REPORT["wheels"][0]["name"], "digest": {"sha256": "a" * 64}}
    ]
    (source,) = data["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert source == {
        "name": "numpy-2.4.6.tar.gz",
        "uri": "pkg:pypi/numpy@2.4.6?file_name=numpy-2.4.6.tar.gz",
        "digest": {"sha256": "b" * 64},
    }
    run = data["predicate"]["runDetails"]
    assert run["builder"]["id"] == provenance.LOCAL_BUILDER
    assert run["metadata"]["startedOn"] == "2026-06-01T12:00:00Z"
    assert run["metadata"]["finishedOn"] == "2026-06-01T13:00:00Z"
    params = data["predicate"]["buildDefinition"]["externalParameters"]
    assert params["BUILD_COMMIT"] == "v2.4.6" and params["PLAT"] == "x86_64"
    assert params["ENV_VARS_PATH"]["sha256"] == file_hash(ROOT / "env_vars.sh")


def test_git_source_from_a_path_gets_a_file_uri_and_commit(tmp_path, no_ci):
    marker = {"kind": "git", "ref": "main", "commit": "c" * 40}
    data = record(tmp_path, marker, repo_url=str(tmp_path / "upstream"))
    source = data["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert source["uri"] == f"git+{(tmp_path / 'upstream').as_uri()}@main"
    assert source["digest"] == {"gitCommit": "c" * 40}


def test_credentials_in_the_source_url_stay_out(tmp_path, no_ci):
    marker = {"kind": "git", "ref": "v1", "commit": "c" * 40}
    data = record(tmp_path, marker, repo_url="https://user:s3cret@example.org/x.git")
    assert "s3cret" not in json.dumps(data)


GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.example",
    "GITHUB_REPOSITORY": "org/numpy-wheels",
    "GITHUB_RUN_ID": "123",
    "GITHUB_RUN_ATTEMPT": "2",
}
AZURE = {
    "TF_BUILD": "True",
    "SYSTEM_COLLECTIONURI": "https://dev.example/numpy/",
    "SYSTEM_TEAMPROJECT": "numpy wheels",
    "BUILD_BUILDID": "77",
    "SYSTEM_JOBID": "j1",
}


@pytest.mark.parametrize(
    ("variables", "builder", "invocation"),
    [
        (
            GITHUB,
            "https://github.example/org/numpy-wheels/actions/runs/123",
            "https://github.example/org/numpy-wheels/actions/runs/123/attempts/2",
        ),
        (
            AZURE,
            "https://dev.example/numpy/numpy%20wheels/_build/results?buildId=77",
            "https://dev.example/numpy/numpy%20wheels/_build/results?buildId=77&view=logs&j=j1&attempt=1",
        ),
    ],
    ids=["github", "azure"],
)
def test_the_ci_run_is_the_builder(tmp_path, no_ci, monkeypatch, variables, builder, invocation):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    data = record(tmp_path)
    assert data["predicate"]["runDetails"]["builder"]["id"] == builder
    assert data["predicate"]["runDetails"]["metadata"]["invocationId"] == invocation
    proc = validate(provenance.write(tmp_path, data))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    published(data)


def test_the_published_protos_reject_what_the_specs_forbid(tmp_path, no_ci):
    from google.protobuf.json_format import ParseError

    good = record(tmp_path)
    published(good)  # the record as written passes, so each failure below is the change
    predicate, run = good["predicate"], good["predicate"]["runDetails"]
    bad = {
        "time": {**run, "metadata": {**run["metadata"], "startedOn": "2026-06-01 12:00"}},
        "misspelt": {**run, "builder": {"ID": "urn:x"}},
        "version-type": {**run, "builder": {**run["builder"], "version": {"numpy-wheels": 1}}},
    }
    for details in bad.values():
        with pytest.raises(ParseError):
            published({**good, "predicate": {**predicate, "runDetails": details}})
    with pytest.raises(ValueError, match="digest required"):
        published({**good, "subject": [{"name": "x.whl"}]})


def test_the_schemas_reject_what_the_specs_forbid(tmp_path, no_ci):
    good = record(tmp_path)
    bad = [
        {**good, "_type": "https://in-toto.io/Statement/v0.1"},
        {**good, "subject": []},
        {**good, "subject": [{"name": "x.whl"}]},  # no digest
        {**good, "subject": [{"name": "x.whl", "digest": {"sha256": "ABC"}}]},
    ]
    predicate = good["predicate"]
    bad.append({**good, "predicate": {**predicate, "runDetails": {"builder": {}}}})
    run = {**predicate["runDetails"], "metadata": {"startedOn": "2026-06-01 12:00"}}
    bad.append({**good, "predicate": {**predicate, "runDetails": run}})
    for number, data in enumerate(bad):
        path = tmp_path / f"bad{number}.json"
        path.write_text(json.dumps(data))
        assert validate(path).returncode != 0, data


def test_a_run_without_wheels_leaves_no_record(tmp_path, no_ci):
    (tmp_path / provenance.FILENAME).write_text("{}")
    empty = provenance.statement(
        {**REPORT, "wheels": []},
        marker=SDIST,
        repo_dir=tmp_path,
        repo_url="",
        build_python=tmp_path / "python",
        openblas=None,
        source_date_epoch=None,
        started=T0,
        finished=T1,
    )
    assert provenance.write(tmp_path, empty) is None
    assert not (tmp_path / provenance.FILENAME).exists()


def test_make_wheels_writes_a_valid_record_of_its_wheels(tmp_path):
    # GIVEN the fixture as a plain local directory, WHEN make wheels runs
    project = fixture_copy(tmp_path)
    wheelhouse = tmp_path / "wheelhouse"
    env = settings(tmp_path, project, SOURCE_DATE_EPOCH="1748779200")
    proc = make("wheels", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # THEN the record beside the report validates and names the wheel by sha256
    path = wheelhouse / provenance.FILENAME
    check = validate(path)
    assert check.returncode == 0, check.stdout + check.stderr
    data = json.loads(path.read_text())
    published(data)
    (wheel,) = wheelhouse.glob("*.whl")
    assert data["subject"] == [{"name": wheel.name, "digest": {"sha256": file_hash(wheel)}}]
    build = data["predicate"]["buildDefinition"]
    assert build["internalParameters"]["SOURCE_DATE_EPOCH"] == 1748779200  # yours wins
    assert build["resolvedDependencies"][0]["uri"] == project.as_uri()
    names = {d["name"] for d in build["resolvedDependencies"][1:]}
    assert "pip" in names  # the build environment as installed
    (report,) = data["predicate"]["runDetails"]["byproducts"]
    assert report == {
        "name": "build-report.json",
        "digest": {"sha256": file_hash(wheelhouse / "build-report.json")},
    }
    started = data["predicate"]["runDetails"]["metadata"]["startedOn"]
    assert started <= data["predicate"]["runDetails"]["metadata"]["finishedOn"]
    assert provenance.main([str(path)]) == 0


@pytest.mark.parametrize(
    ("name", "purl"),
    [
        # file names read by packaging, not split by hand: name normalized, version as is
        ("scipy_openblas64-0.3.31.188.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
         "pkg:pypi/scipy-openblas64@0.3.31.188.0"),
        ("Scipy_OpenBLAS32-0.3.30.0.8-1-py3-none-win_amd64.whl",
         "pkg:pypi/scipy-openblas32@0.3.30.0.8"),
    ],
)  # fmt: skip
def test_openblas_dependency_names_the_wheel_as_pypi_does(tmp_path, name, purl):
    prepared = tmp_path / "prepared" / "x"
    prepared.mkdir(parents=True)
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / name).write_bytes(b"wheel")
    (prepared / ".nw-openblas.json").write_text(json.dumps({"file": name}))
    described = provenance.openblas_dependency(prepared)
    assert described["uri"] == f"{purl}?file_name={name}"
    assert described["digest"] == {"sha256": file_hash(tmp_path / "downloads" / name)}


def test_an_sdist_is_named_as_pypi_does(tmp_path, no_ci):
    marker = {**SDIST, "file": "Clib_Demo-1.0.0rc1.tar.gz"}
    (source,) = record(tmp_path, marker)["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert source["uri"] == "pkg:pypi/clib-demo@1.0.0rc1?file_name=Clib_Demo-1.0.0rc1.tar.gz"
