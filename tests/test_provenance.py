"""The provenance record `make wheels` writes beside build-report.json: an in-toto
Statement v1 with a SLSA Provenance v1 predicate, validated against JSON Schemas
written from the two specifications (tests/schemas/) with check-jsonschema, and
read into the published protobuf messages of both (in-toto-attestation's bindings
of in-toto/attestation's .proto files, the SLSA v1 provenance.proto among them)."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN, LoopbackServer, make
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
    installed = {d["name"]: d for d in build["resolvedDependencies"][1:]}
    assert "pip" in installed  # the build environment as installed
    # ... each wheel the index serves by its sha256: pip's own download of pip's agrees
    pip_entry = installed["pip"]
    file_name = pip_entry["uri"].partition("?file_name=")[2]
    assert file_name.startswith("pip-") and file_name.endswith(".whl"), pip_entry
    version = pip_entry["uri"].split("@")[1].split("?")[0]
    got = tmp_path / "pip-download"
    subprocess.run(
        [str(VENV_BIN / "python"), "-m", "pip", "download", "--no-deps", "--no-cache-dir",
         "--only-binary=:all:", "-d", str(got), f"pip=={version}"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert pip_entry["digest"] == {"sha256": file_hash(got / file_name)}
    assert pip_entry["downloadLocation"].endswith("/" + file_name)
    with_digest = [d for d in installed.values() if "digest" in d]
    print(f"\n{len(with_digest)} of {len(installed)} build requirements with a digest")
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


# ------------------------------------------- the build requirements' digests


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SimpleIndex(LoopbackServer):
    """A simple index: alpha's page as PEP 691 JSON, beta's as PEP 503 HTML, any
    other project 404; each page lists ``files[project]`` (name, sha256)."""

    prefix = "/simple"

    def __init__(self, files: dict[str, list[tuple[str, str]]]) -> None:
        super().__init__()
        self.files = files

    def respond(self, handler, route) -> None:
        project = handler.path.strip("/").split("/")[-1]
        files = self.files.get(project)
        if files is None:
            body, ctype, status = b"not found", "text/plain", 404
        elif project == "alpha":
            listed = [{"filename": n, "url": f"/files/{n}", "hashes": {"sha256": h}}
                      for n, h in files]  # fmt: skip
            body = json.dumps({"meta": {"api-version": "1.0"}, "name": project, "files": listed})
            body, ctype, status = body.encode(), "application/vnd.pypi.simple.v1+json", 200
        else:
            links = "".join(f'<a href="/files/{n}#sha256={h}">{n}</a>' for n, h in files)
            body, ctype, status = f"<html><body>{links}</body></html>".encode(), "text/html", 200
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def build_env(tmp_path: Path, dists: dict[str, tuple[str, list[str]]]) -> Path:
    """A real interpreter whose site-packages holds ``dists`` (name: version, WHEEL
    Tag lines) as installers leave them; returns its python."""
    venv = tmp_path / "build-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    for name, (version, tags) in dists.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel = "".join(f"Tag: {t}\n" for t in tags)
        (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n{wheel}")
    return venv / "bin" / "python"


DISTS = {
    "alpha": ("1.0", ["py2-none-any", "py3-none-any"]),  # the index has this wheel
    "beta": ("2.0", ["cp311-cp311-linux_x86_64"]),  # built here from the sdist
    "gamma": ("3.0", ["py3-none-any"]),  # not on the index
}
INDEX = {
    "alpha": [
        ("alpha-1.0.tar.gz", sha("sdist")),
        ("alpha-1.0-py3-none-any.whl", sha("a subset of the tags")),
        ("alpha-1.0-1-py2.py3-none-any.whl", sha("another build")),
        ("alpha-1.1-py2.py3-none-any.whl", sha("another version")),
        ("alpha-1.0-py2.py3-none-any.whl", sha("the one")),
    ],
    "beta": [("beta-2.0.tar.gz", sha("b sdist")), ("beta-2.0-py3-none-any.whl", sha("b any"))],
}


def test_build_requirements_get_the_digest_of_the_exact_index_wheel(
    tmp_path, no_ci, monkeypatch, capfd
):
    python = build_env(tmp_path, DISTS)
    with SimpleIndex(INDEX) as index:
        monkeypatch.setenv("NW_INDEX_URL", index.base.replace("//", "//user:s3cret@") + "/")
        data = record(tmp_path, build_python=python)
    deps = {d["name"]: d for d in data["predicate"]["buildDefinition"]["resolvedDependencies"]}
    host = index.base.removesuffix("/simple")  # the file's URL, without the credentials
    assert deps["alpha"] == {
        "name": "alpha",
        "uri": "pkg:pypi/alpha@1.0?file_name=alpha-1.0-py2.py3-none-any.whl",
        "digest": {"sha256": sha("the one")},
        "downloadLocation": f"{host}/files/alpha-1.0-py2.py3-none-any.whl",
    }
    assert deps["beta"] == {"name": "beta", "uri": "pkg:pypi/beta@2.0"}  # tags differ
    assert deps["gamma"] == {"name": "gamma", "uri": "pkg:pypi/gamma@3.0"}  # absent
    assert {p.split("/")[2] for p in index.hits} == {"alpha", "beta", "gamma"}
    assert "warning" not in capfd.readouterr().err  # a project absent is no failure
    assert "s3cret" not in json.dumps(data)
    proc = validate(provenance.write(tmp_path, data))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    published(data)


def test_an_index_that_is_down_is_one_warning_and_no_digests(tmp_path, no_ci, monkeypatch, capfd):
    python = build_env(tmp_path, DISTS)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("NW_INDEX_URL", f"http://127.0.0.1:{port}/simple/")
    data = record(tmp_path, build_python=python)
    deps = data["predicate"]["buildDefinition"]["resolvedDependencies"][1:]
    assert [d["name"] for d in deps] == ["alpha", "beta", "gamma"]
    assert not any("digest" in d for d in deps)
    (line,) = [x for x in capfd.readouterr().err.splitlines() if "warning" in x]
    assert "3 of 3 build requirements not looked up" in line and f"127.0.0.1:{port}" in line
    path = provenance.write(tmp_path, data)
    assert validate(path).returncode == 0


class Failing(LoopbackServer):
    def respond(self, handler, route) -> None:
        handler.send_response(503)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


def test_an_index_that_never_answers_is_not_asked_for_every_project(tmp_path, monkeypatch, capfd):
    dists = {f"dist{n}": ("1.0", ["py3-none-any"]) for n in range(40)}
    python = build_env(tmp_path, dists)
    with Failing() as server:
        monkeypatch.setenv("NW_INDEX_URL", f"{server.base}/simple/")
        deps = provenance.installed(python)
    assert len(deps) == 40 and not any("digest" in d for d in deps)
    assert sum(server.hits.values()) < 40  # the first failures stop the lookups
    (line,) = [x for x in capfd.readouterr().err.splitlines() if "warning" in x]
    assert "40 of 40 build requirements not looked up" in line and "503" in line
