"""`make stage` (scripts/stage.sh) and what it stages besides the wheels: the project
check, the provenance record merged from the build records (written by the real
provenance code), its signature (keys made here by the real ssh-keygen and gpg),
anaconda-client's commands (a stub recording each call, and the real client against
the loopback API stand-in), and a real pypiserver for the twine target."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from conftest import ROOT, VENV_BIN, clean_env, make
from numpy_wheels.files import file_hash
from numpy_wheels.upload import provenance, provenance_records
from staging_server import make_wheel
from test_stage_real_tools import AnacondaApi
from test_upload_provenance import build_record, ssh_key

TOKEN = "tok-51ab-secret"
ORG = "multibuild-wheels-staging"


def write_record(wheelhouse: Path, wheels: list[Path], name: str = "build-provenance") -> Path:
    """The record `make wheels` leaves beside the wheels, as ``NAME.intoto.json``."""
    record = build_record(wheelhouse.parent, wheels, f"{wheelhouse.name}-{name}")
    return record.rename(wheelhouse / f"{name}.intoto.json")


def write_manifest(wheelhouse: Path) -> None:
    lines = [f"{file_hash(w)}  {w.name}\n" for w in sorted(wheelhouse.glob("*.whl"))]
    (wheelhouse / "manifest.sha256").write_text("".join(lines))


@pytest.fixture
def wheelhouse(tmp_path) -> Path:
    """Two clib_demo wheels of one run: files, manifest and build record."""
    dest = tmp_path / "wheelhouse"
    wheels = [
        make_wheel(dest, "clib_demo", "1.0", "cp311-cp311-manylinux_2_28_x86_64"),
        make_wheel(dest, "clib_demo", "1.0", "cp312-cp312-manylinux_2_28_x86_64"),
    ]
    write_manifest(dest)
    write_record(dest, wheels)
    return dest


@pytest.fixture
def stub(tmp_path) -> tuple[Path, Path]:
    """An `anaconda` that appends each call's argv (one line, words tab-separated) and
    the token it got in its environment."""
    bindir, log = tmp_path / "stubbin", tmp_path / "anaconda-calls.txt"
    bindir.mkdir()
    (bindir / "anaconda").write_text(
        f'#!/bin/bash\n(IFS=$\'\\t\'; echo "$*") >> "{log}"\n'
        f'echo "token:${{ANACONDA_API_TOKEN:-}}" >> "{log}.env"\n'
    )
    (bindir / "anaconda").chmod(0o755)
    return bindir, log


def calls(log: Path) -> list[list[str]]:
    return [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []


def stage(tmp_path: Path, wheelhouse: Path, bindir: Path | None, *bash: str, **env: str):
    full = clean_env(tmp_path, WHEEL_SDIR=str(wheelhouse), NW_PYTHON=str(VENV_BIN / "python"),
                     **env)  # fmt: skip
    if bindir is not None:
        full["PATH"] = f"{bindir}:{full['PATH']}"
    return subprocess.run(["bash", *bash, "scripts/stage.sh"], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def staged_record(wheelhouse: Path) -> Path:
    (record,) = (wheelhouse / "provenance").glob("*.intoto.jsonl")
    return record


# ------------------------------------------------------------------ project check


def test_another_projects_wheels_are_refused_by_numpys_org(tmp_path, wheelhouse, stub):
    # GIVEN clib_demo wheels, WHEN staged to NumPy's staging org (the default)
    proc = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN)
    # THEN one line names the wheel, the org's project and the setting; nothing ran
    assert proc.returncode == 1
    wheel = sorted(wheelhouse.glob("*.whl"))[0].name
    assert proc.stderr.splitlines() == [
        f"stage: error: {wheel} is a clib_demo wheel, but {ORG} takes numpy only "
        "(set STAGE_PROJECT=clib_demo to stage it there); nothing uploaded"
    ]
    assert calls(stub[1]) == []
    # the nightly org too; a project spelled with dashes or case is the same project
    nightly = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, NIGHTLY="1")
    assert "but scientific-python-nightly-wheels takes numpy only" in nightly.stderr
    allowed = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="Clib-Demo")
    assert allowed.returncode == 0, allowed.stderr


def test_other_orgs_check_only_what_stage_project_names(tmp_path, wheelhouse, stub):
    ok = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, ANACONDA_ORG="my-org")
    assert ok.returncode == 0, ok.stderr
    refused = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, ANACONDA_ORG="my-org",
                    STAGE_PROJECT="scipy, numpy")  # fmt: skip
    assert refused.returncode == 1
    assert "but my-org takes scipy,numpy only (set STAGE_PROJECT=clib_demo" in refused.stderr


def test_dry_run_without_a_token_prints_both_commands(tmp_path, wheelhouse, stub):
    env = {"WHEEL_SDIR": str(wheelhouse), "STAGE_PROJECT": "clib_demo"}
    env["PATH"] = f"{stub[0]}:{clean_env(tmp_path)['PATH']}"
    proc = make("stage", "DRY_RUN=1", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    record = staged_record(wheelhouse)
    upload = f"+ ANACONDA_API_TOKEN=******** anaconda upload --skip-existing -u {ORG}"
    assert [ln for ln in proc.stdout.splitlines() if ln.startswith("+ ANACONDA")] == [
        *(f"{upload} {w}" for w in sorted(wheelhouse.glob("*.whl"))),
        f"{upload} -t file -p clib-demo-provenance -v 1.0 {record}",
    ]
    assert "a real run would skip the upload" in proc.stderr
    assert calls(stub[1]) == []


# ---------------------------------------------------------------------- provenance


def test_the_merged_record_is_staged_beside_the_wheels(tmp_path, wheelhouse, stub):
    # GIVEN the wheels of two CI jobs, each with its renamed build record
    linux = sorted(wheelhouse.glob("*.whl"))
    win = make_wheel(wheelhouse, "clib_demo", "1.0", "cp311-cp311-win_amd64")
    write_record(wheelhouse, [win], "build-provenance-windows")
    write_manifest(wheelhouse)
    # WHEN staged
    proc = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="clib_demo")
    assert proc.returncode == 0, proc.stderr
    # THEN one record file holds both jobs' statements and vouches for every wheel
    record = staged_record(wheelhouse)
    assert record.name.startswith("clib_demo-1.0-provenance-")
    assert len(record.read_text().splitlines()) == 2
    vouched = provenance.vouch(provenance_records.load([str(record)]), {
        w.name: file_hash(w) for w in [*linux, win]})  # fmt: skip
    assert len(vouched.by_file) == 3 and vouched.missing == []
    # ... uploaded after the wheels, as a file of the clib-demo-provenance package
    *wheels_calls, files_call = calls(stub[1])
    upload = ["upload", "--skip-existing", "-u", ORG]
    assert wheels_calls == [[*upload, str(w)] for w in sorted([*linux, win])]  # one a file
    assert files_call == [*upload, "-t", "file", "-p", "clib-demo-provenance", "-v", "1.0",
                          str(record)]  # fmt: skip
    assert Path(f"{stub[1]}.env").read_text() == f"token:{TOKEN}\n" * 4
    assert "4 of 4 files ended well: 4 uploaded, 0 already there, 0 failed" in proc.stdout
    # the same records again: the same name (a re-stage skips it, never a stale one)
    again = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="clib_demo")
    assert again.returncode == 0 and staged_record(wheelhouse) == record


def test_a_wheel_changed_after_its_build_is_not_staged(tmp_path, wheelhouse, stub):
    # GIVEN a wheel replaced after the build wrote its record (manifest rewritten too)
    wheel = sorted(wheelhouse.glob("*.whl"))[0]
    built = file_hash(wheel)
    shutil.copy(make_wheel(tmp_path / "evil", "clib_demo", "1.0", wheel.name.split("-", 2)[2]
                           .removesuffix(".whl"), payload=b"x"), wheel)  # fmt: skip
    write_manifest(wheelhouse)
    # WHEN staged, THEN one line with both digests, and nothing uploaded
    proc = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="clib_demo")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        f"stage: error: {wheel.name}: sha256 {file_hash(wheel)} downloaded, but "
        f"{wheelhouse}/build-provenance.intoto.json says {built}; not the file that was built, "
        "nothing uploaded"
    )
    assert calls(stub[1]) == []
    # on GitHub Actions, an annotation too
    github = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="clib_demo",
                   GITHUB_ACTIONS="true")  # fmt: skip
    assert github.stdout.splitlines()[-1].startswith(f"::error title=stage::{wheel.name}: sha256 ")


def test_wheels_without_a_record_are_staged_with_a_warning(tmp_path, wheelhouse, stub):
    (wheelhouse / "build-provenance.intoto.json").unlink()
    proc = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="clib_demo")
    assert proc.returncode == 0, proc.stderr
    assert "staged without a provenance record" in proc.stderr
    assert len(calls(stub[1])) == 2  # the two wheels


# ----------------------------------------------------------------------- signing


@pytest.mark.parametrize("how", ["STAGE_SIGNING_KEY", "STAGE_SIGNING_KEY_FILE", "bash -x", "CRLF"])
def test_ssh_signed_record(tmp_path, wheelhouse, stub, how):
    key, allowed = ssh_key(tmp_path)
    if how == "CRLF":  # a secret pasted from Windows: ssh-keygen cannot load it as it is
        key.write_bytes(key.read_bytes().replace(b"\n", b"\r\n"))
    secret = key.read_bytes().decode()  # as is: read_text() would undo the CRLF
    env = {"STAGE_SIGNING_KEY_FILE": str(key)} if how.endswith("FILE") else {
        "STAGE_SIGNING_KEY": secret}  # fmt: skip
    bash = ("-x",) if how == "bash -x" else ()
    proc = stage(tmp_path, wheelhouse, stub[0], *bash, ANACONDA_TOKEN=TOKEN,
                 STAGE_PROJECT="clib_demo", **env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = staged_record(wheelhouse)
    # THEN the signature checks with the release manager's allowed-signers file
    (loaded, *_) = provenance_records.load([str(record)], key=allowed)
    assert loaded.signed_by == "release@numpy-wheels"
    assert [call[-1] for call in calls(stub[1])[-2:]] == [str(record), f"{record}.sig"]
    # and the key is nowhere: output, argv, left-over files
    body = secret.split("\n")[1]
    assert body not in proc.stdout + proc.stderr
    assert body not in Path(stub[1]).read_text()
    assert not list(tmp_path.glob("nw-sign.*"))


def test_gpg_signed_record(tmp_path, wheelhouse, stub):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", "Stager <s@example.org>",
                    "ed25519", "sign", "never"], check=True, capture_output=True)  # fmt: skip
    secret = subprocess.run([*gpg, "--armor", "--export-secret-keys"], check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    public = tmp_path / "stager.asc"
    subprocess.run([*gpg, "--armor", "--export", "--output", str(public)], check=True)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    proc = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="clib_demo",
                 STAGE_SIGNING_KEY=secret)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = staged_record(wheelhouse)
    (loaded, *_) = provenance_records.load([str(record)], key=public)
    assert loaded.signed_by and calls(stub[1])[-1][-1] == f"{record}.asc"
    assert secret.splitlines()[3] not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not a key", "STAGE_SIGNING_KEY holds neither an OpenSSH nor an OpenPGP private key"),
        ("$(STAGE_SIGNING_KEY)", "STAGE_SIGNING_KEY is an unexpanded CI secret"),
        ("protected", "ssh-keygen could not sign"),
    ],
)
def test_a_key_that_cannot_sign_stops_the_stage(tmp_path, wheelhouse, stub, key, message):
    if key == "protected":
        path = tmp_path / "id-protected"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(path)],
                       check=True)  # fmt: skip
        key = path.read_text()
    proc = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="clib_demo",
                 STAGE_SIGNING_KEY=key)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith(f"stage: error: {message}")
    assert calls(stub[1]) == []


def test_a_key_file_that_cannot_be_read_is_one_line(tmp_path, wheelhouse, stub):
    missing = tmp_path / "no-such-key"
    proc = stage(tmp_path, wheelhouse, stub[0], ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="clib_demo",
                 STAGE_SIGNING_KEY_FILE=str(missing))  # fmt: skip
    assert proc.returncode == 1
    assert [ln for ln in proc.stderr.splitlines() if str(missing) in ln] == [
        f"stage: error: STAGE_SIGNING_KEY_FILE ({missing}) cannot be read; nothing uploaded"
    ]
    assert calls(stub[1]) == []


# ------------------------------------------------------------------- real tools


def test_the_real_anaconda_client_takes_the_provenance_command(tmp_path, wheelhouse, tools_bin):
    # GIVEN the API stand-in, where the wheels and the record are already staged
    bindir = tmp_path / "anaconda-bin"
    bindir.mkdir()
    (bindir / "anaconda").symlink_to(tools_bin / "anaconda")
    first = stage(tmp_path, wheelhouse, None, DRY_RUN="1", STAGE_PROJECT="clib_demo")
    assert first.returncode == 0, first.stderr
    names = {p.name for p in wheelhouse.glob("*.whl")} | {staged_record(wheelhouse).name}
    api = AnacondaApi(ORG, TOKEN, names)
    config = tmp_path / "home" / ".continuum" / "anaconda-client" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"url: {api.url}\n")
    try:
        # WHEN make stage runs the real anaconda-client
        proc = stage(tmp_path, wheelhouse, bindir, ANACONDA_TOKEN=TOKEN, STAGE_PROJECT="clib_demo")
    finally:
        api.close()
    # THEN its parser took the file upload (-t file -p -v) and asked for the record
    # under the provenance package and the version
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    record = staged_record(wheelhouse).name
    assert ("GET", f"/dist/{ORG}/clib-demo-provenance/1.0/{record}", TOKEN) in api.calls
    assert "3 of 3 files ended well: 0 uploaded, 3 already there, 0 failed" in proc.stdout


def test_twine_target_keeps_the_record_as_an_artifact(tmp_path, wheelhouse, pypiserver):
    env = {"STAGE_REPOSITORY_URL": pypiserver.url, **pypiserver.twine_env()}
    proc = stage(tmp_path, wheelhouse, None, **env)  # no STAGE_PROJECT: no check for an index
    assert proc.returncode == 0, proc.stderr
    record = staged_record(wheelhouse)
    assert "the provenance record is not uploaded to the index" in proc.stdout
    assert set(pypiserver.files()) == {w.name for w in wheelhouse.glob("*.whl")}
    # why: pypiserver takes distributions only (the legacy upload API, as twine sends it)
    refused = requests.post(
        pypiserver.url,
        data={":action": "file_upload", "name": "clib_demo", "version": "1.0"},
        files={"content": (record.name, record.read_bytes())},
        auth=(pypiserver.username, pypiserver.password),
        timeout=30,
    )
    assert refused.status_code == 400 and "Bad filename" in refused.text
    # and with STAGE_PROJECT, an index checks the project too
    other = stage(tmp_path, wheelhouse, None, STAGE_PROJECT="numpy", **env)
    assert other.returncode == 1
    assert "but the index takes numpy only" in other.stderr


def test_make_setup_provides_the_anaconda_cli():
    declared = (ROOT / "pyproject.toml").read_text()
    assert '"anaconda-client==' in declared
    proc = subprocess.run([str(VENV_BIN / "anaconda"), "upload", "--help"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "Upload packages" in proc.stdout


class PackagesApi(AnacondaApi):
    """The stand-in, also answering ``GET /package/ORG/NAME`` as anaconda.org does for
    the packages in ``packages`` (name -> its package types); files are not staged."""

    def __init__(self, packages: dict[str, list[str]]) -> None:
        super().__init__(ORG, TOKEN, set())
        self.packages = packages

    def respond(self, method: str, path: str, token: str | None) -> tuple[int, dict]:
        name = path.rsplit("/", 1)[-1]
        if method == "GET" and path == f"/package/{ORG}/{name}" and token == self.token:
            if name in self.packages:
                return 200, {"name": name, "owner": {"login": ORG},
                             "package_types": self.packages[name]}  # fmt: skip
            return 404, {"error": f"package {name} not found"}
        return super().respond(method, path, token)


def test_anaconda_client_refuses_a_file_in_the_wheels_package(tmp_path, wheelhouse, tools_bin):
    # GIVEN the org's clib_demo package, which holds wheels (package type pypi)
    first = stage(tmp_path, wheelhouse, None, DRY_RUN="1", STAGE_PROJECT="clib_demo")
    assert first.returncode == 0, first.stderr
    record = staged_record(wheelhouse)
    api = PackagesApi({"clib_demo": ["pypi"]})
    config = tmp_path / "home" / ".continuum" / "anaconda-client" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"url: {api.url}\n")
    env = clean_env(tmp_path, ANACONDA_API_TOKEN=TOKEN)
    try:
        # WHEN the real anaconda-client uploads the record as a file of that package
        proc = subprocess.run(
            [str(tools_bin / "anaconda"), "upload", "--skip-existing", "-u", ORG, "-t", "file",
             "-p", "clib_demo", "-v", "1.0", str(record)],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        api.close()
    # THEN it refuses before sending a byte: hence the PROJECT-provenance package
    assert proc.returncode != 0
    assert 'You already have a standard python named "clib_demo"' in proc.stdout + proc.stderr
    assert not [c for c in api.calls if c[0] in ("POST", "PUT", "PATCH")]
