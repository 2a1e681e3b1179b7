"""numpy_wheels.upload.attestations on real PEP 740 publish attestations (Sigstore
signed, from pypi-attestations' own test assets, with the distributions they name),
served by the loopback staging server and handed to the real twine and pypiserver."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import CACHE, VENV_BIN, clean_env
from numpy_wheels.errors import HTTPStatusError
from numpy_wheels.files import file_hash
from numpy_wheels.upload import attestations
from staging_server import StagingServer, UploadProxy, make_wheel
from test_upload_provenance import build_record
from test_upload_provenance_roundtrip import uploader

ASSETS_FROM = "pypi-attestations==0.0.30"  # its sdist carries real attestations in test/assets
WHEEL = "rfc8785-0.1.2-py3-none-any.whl"
SDIST = "gitlab_oidc_project-0.0.3.tar.gz"


@pytest.fixture(scope="session")
def real_assets() -> Path:
    """test/assets of the pypi-attestations sdist (downloaded once by pip, kept)."""
    dest = CACHE / "pypi-attestations"
    assets = dest / "assets"
    if not (assets / f"{WHEEL}{attestations.SUFFIX}").is_file():
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
               "-d", str(dest), ASSETS_FROM]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        (sdist,) = dest.glob("pypi_attestations-*.tar.gz")
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/test/assets/" in m.name and m.isfile()]
            tar.extractall(dest / "unpacked", members=members, filter="data")
        shutil.rmtree(assets, ignore_errors=True)
        (found,) = (dest / "unpacked").glob("*/test/assets")
        found.rename(assets)
    return assets


@pytest.fixture
def staged(tmp_path, real_assets) -> Path:
    """The wheel, the sdist and their attestations, as staged beside each other."""
    dest = tmp_path / "staged"
    dest.mkdir()
    for name in (WHEEL, SDIST):
        shutil.copy(real_assets / name, dest)
        shutil.copy(real_assets / f"{name}{attestations.SUFFIX}", dest)
    return dest


@pytest.mark.parametrize("name", [WHEEL, SDIST])
def test_a_real_attestation_names_its_file(staged, name):
    dist = staged / name
    attestations.check(attestations.path_for(dist), name, file_hash(dist))
    statement = attestations.statement(attestations.path_for(dist))
    assert statement["predicateType"] == "https://docs.pypi.org/attestations/publish/v1"


def test_another_files_bytes_are_refused_naming_both_digests(staged):
    dist = staged / WHEEL
    attested = file_hash(dist)
    make_wheel(staged, "rfc8785", "0.1.2")  # the same name, other bytes
    ours = file_hash(dist)
    with pytest.raises(attestations.AttestationError) as err:
        attestations.check(attestations.path_for(dist), WHEEL, ours)
    assert str(err.value) == (
        f"{WHEEL}{attestations.SUFFIX} names {WHEEL} with sha256 {attested}, the file's is "
        f"{ours}; nothing uploaded"
    )


def test_an_attestation_of_another_file_is_refused(staged):
    # the sdist's attestation staged beside the wheel
    shutil.copy(staged / f"{SDIST}{attestations.SUFFIX}", attestations.path_for(staged / WHEEL))
    with pytest.raises(attestations.AttestationError, match=f"does not name {WHEEL}"):
        attestations.check(attestations.path_for(staged / WHEEL), WHEEL, "0" * 64)


def edited(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "not a PEP 740 attestation object"),
        (lambda d: d.pop("verification_material"), "no envelope or verification_material"),
        (lambda d: d["envelope"].update(statement="not base64!"), "not base64 JSON"),
        (lambda d: d["envelope"].update(signature=""), "has no signature"),
        (lambda d: d["envelope"].update(statement=base64.b64encode(b'{"_type": "x"}').decode()),
         "not an in-toto Statement v1"),
        (lambda d: d["envelope"].update(statement=base64.b64encode(json.dumps(
            {"_type": attestations.STATEMENT_TYPE, "predicateType": "https://example.org/x/v1",
             "subject": [], "predicate": {}}).encode()).decode()),
         "predicateType 'https://example.org/x/v1' is not one PyPI takes"),
    ],
    ids=["version", "no-material", "not-base64", "unsigned", "not-in-toto", "predicate"],
)  # fmt: skip
def test_malformed_attestations_are_one_line(staged, change, message):
    path = attestations.path_for(staged / WHEEL)
    edited(path, change)
    with pytest.raises(attestations.AttestationError, match=message):
        attestations.check(path, WHEEL, file_hash(staged / WHEEL))


def test_fetched_from_beside_the_staged_file_or_none(tmp_path, staged):
    files = {p.name: p for p in staged.iterdir()}
    del files[f"{SDIST}{attestations.SUFFIX}"]  # the sdist was staged without one
    wheelhouse = tmp_path / "wheelhouse"
    with StagingServer(files) as server:
        base = server.listing_url
        got = attestations.fetch(f"{base}{WHEEL}#sha256=abc", wheelhouse / WHEEL,
                                 allow_insecure=True)  # fmt: skip
        assert got == wheelhouse / f"{WHEEL}{attestations.SUFFIX}"
        assert got.read_bytes() == (staged / f"{WHEEL}{attestations.SUFFIX}").read_bytes()
        assert attestations.fetch(f"{base}{SDIST}", wheelhouse / SDIST, allow_insecure=True) is None
        assert not attestations.path_for(wheelhouse / SDIST).exists()
        server.faults[f"{WHEEL}{attestations.SUFFIX}"] = ["403"]
        with pytest.raises(HTTPStatusError, match="403"):
            attestations.fetch(f"{base}{WHEEL}", wheelhouse / WHEEL, allow_insecure=True)


def test_twine_uploads_the_attestation_with_its_file(tmp_path, staged, pypiserver):
    # GIVEN twine's command as twine_inputs builds it, through a proxy that keeps bodies
    with UploadProxy(pypiserver.url) as proxy:
        base = [str(VENV_BIN / "twine"), "--no-color", "upload", "--non-interactive",
                "--disable-progress-bar", "--repository-url", f"{proxy.url}/"]  # fmt: skip
        env = clean_env(tmp_path, **pypiserver.twine_env())
        with_att = subprocess.run([*base, *attestations.twine_inputs(staged / WHEEL)],
                                  capture_output=True, text=True, env=env)  # fmt: skip
        (staged / f"{SDIST}{attestations.SUFFIX}").unlink()
        assert attestations.twine_inputs(staged / SDIST) == [str(staged / SDIST)]
        # twine 7 does not look for attestations beside a file by itself
        alone = subprocess.run([*base, "--attestations", str(staged / SDIST)],
                               capture_output=True, text=True, env=env)  # fmt: skip
    # THEN the wheel's upload request carried its attestation, and the index took the wheel
    assert with_att.returncode == 0, with_att.stdout + with_att.stderr
    (body,) = proxy.bodies
    sent = body.split(b'name="attestations"', 1)[1].split(b"\r\n--", 1)[0].strip()
    attested = json.loads((staged / f"{WHEEL}{attestations.SUFFIX}").read_text())
    assert json.loads(sent) == [attested]
    assert WHEEL in pypiserver.files()
    assert alone.returncode != 0
    assert "has no associated attestations" in " ".join((alone.stdout + alone.stderr).split())


# ------------------------------------------------- through wheel-uploader


def test_staged_attestations_are_checked_and_uploaded(tmp_path, real_assets, pypiserver):
    # GIVEN a real wheel with its real PEP 740 attestation staged beside it
    wheel = real_assets / WHEEL
    record = build_record(tmp_path, [wheel])
    staged = {WHEEL: wheel, f"{WHEEL}{attestations.SUFFIX}":
              real_assets / f"{WHEEL}{attestations.SUFFIX}"}  # fmt: skip
    with StagingServer(staged, package="rfc8785") as staging, UploadProxy(pypiserver.url) as proxy:
        proc = uploader(tmp_path, staging, f"{proxy.url}/", "--provenance", record,
                        "rfc8785", "0.1.2", env=pypiserver.twine_env())  # fmt: skip
    # THEN the attestation went with the wheel to the index
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (body,) = proxy.bodies
    sent = body.split(b'name="attestations"', 1)[1].split(b"\r\n--", 1)[0].strip()
    assert json.loads(sent) == [json.loads(staged[f"{WHEEL}{attestations.SUFFIX}"].read_text())]
    assert set(pypiserver.files()) == {WHEEL}


def test_an_attestation_of_other_bytes_stops_the_upload(tmp_path, real_assets, pypiserver):
    # GIVEN the wheel rebuilt (other bytes, same name) with the old attestation beside it
    wheel = make_wheel(tmp_path / "rebuilt", "rfc8785", "0.1.2")
    record = build_record(tmp_path, [wheel])
    attestation = real_assets / f"{WHEEL}{attestations.SUFFIX}"
    with StagingServer({WHEEL: wheel, attestation.name: attestation},
                       package="rfc8785") as staging:  # fmt: skip
        proc = uploader(tmp_path, staging, pypiserver.url, "--provenance", record,
                        "rfc8785", "0.1.2", env=pypiserver.twine_env())  # fmt: skip
    assert proc.returncode == 1
    assert f"names {WHEEL} with sha256 " in proc.stderr
    assert f"the file's is {file_hash(wheel)}; nothing uploaded" in proc.stderr
    assert pypiserver.files() == {}
