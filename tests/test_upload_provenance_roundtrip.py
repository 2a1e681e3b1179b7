"""The provenance round trip through the real release path: records written by the
real provenance code for the wheels a build made, the wheels staged on the loopback
staging server (where whoever holds the staging token controls files and hashes),
`wheel-uploader --provenance` run as the release manager runs it, a real pypiserver
as the target.  A file swapped after the build never reaches the index."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, clean_env
from numpy_wheels.files import file_hash
from staging_server import StagingServer, make_wheel
from test_upload_provenance import build_record, ssh_key, ssh_sign

UPLOADER = ROOT / "scripts" / "wheel-uploader"
NOWHERE = "http://127.0.0.1:9/"


@pytest.fixture
def built(tmp_path) -> list[Path]:
    dest = tmp_path / "built"
    return [make_wheel(dest, "tinyproj", "1.0", tag) for tag in
            ("py3-none-any", "cp311-cp311-manylinux_2_28_x86_64")]  # fmt: skip


def uploader(tmp_path: Path, staging: StagingServer, target: str, *args, env=None):
    cmd = [str(UPLOADER), "-u", staging.simple_url, "--allow-insecure", "-w",
           str(tmp_path / "release"), "--repository-url", target, "--no-check",
           *map(str, args)]  # fmt: skip
    return subprocess.run(cmd, env=clean_env(tmp_path, TWINE_REPOSITORY_URL=NOWHERE, **(env or {})),
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    ("dry_run", "seen", "then"),
    [((), "downloaded", "nothing uploaded"),
     (("--dry-run",), "published by staging", "a real run refuses it and uploads nothing")],
    ids=["upload", "dry-run"],
)  # fmt: skip
def test_a_file_swapped_after_the_build_is_refused_and_nothing_uploaded(
    tmp_path, built, pypiserver, dry_run, seen, then
):
    # GIVEN the build's record, and staging where one wheel was swapped afterwards
    # (the staging page's own sha256 is the swapped file's: it says nothing)
    record = build_record(tmp_path, built)
    swapped = make_wheel(tmp_path / "evil", "tinyproj", "1.0", payload=b"not what was built")
    staged = {built[0].name: swapped, built[1].name: built[1]}
    with StagingServer(staged, package="tinyproj") as staging:
        # WHEN the release manager uploads with --provenance, or previews it with --dry-run
        proc = uploader(tmp_path, staging, pypiserver.url, *dry_run, "--provenance", record,
                        "tinyproj", "1.0", env=pypiserver.twine_env())  # fmt: skip
        fetched = staging.transfers()
    # THEN one line names the file and both digests (the dry run: from the digest the
    # page publishes, no wheel downloaded), and the index got nothing
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert errors == [
        f"wheel-uploader: error: {built[0].name}: sha256 {file_hash(swapped)} {seen}, "
        f"but {record} says {file_hash(built[0])}; not the file that was built, {then}"
    ]
    assert pypiserver.files() == {}
    if dry_run:  # the other file is still shown vouched for
        assert fetched == []
        assert f"provenance: {built[1].name}: vouched for by {record}" in proc.stdout
        assert "1 of 2 files ended well: 0 would be uploaded, 0 already there, 1 failed" in (
            proc.stdout
        )


def test_each_file_vouched_for_and_unstaged_subjects_reported(tmp_path, built, pypiserver):
    # GIVEN two CI jobs' records, one naming a wheel that was never staged, signed
    key, allowed = ssh_key(tmp_path)
    never = make_wheel(tmp_path / "unstaged", "tinyproj", "1.0", "cp311-cp311-win_amd64")
    first = build_record(tmp_path, built[:1], "linux")
    second = build_record(tmp_path, [built[1], never], "other")
    for record in (first, second):
        ssh_sign(record, key)
    with StagingServer(built, package="tinyproj") as staging:
        proc = uploader(tmp_path, staging, pypiserver.url, "--provenance", first, "--provenance",
                        second, "--provenance-key", allowed, "tinyproj", "1.0",
                        env=pypiserver.twine_env())  # fmt: skip
    # THEN both are uploaded, the summary says which record vouched for each, and
    # the record's wheel that staging lacks is reported
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(pypiserver.files()) == {w.name for w in built}
    out = proc.stdout + proc.stderr
    for wheel, record in ((built[0], first), (built[1], second)):
        assert re.search(rf"{re.escape(wheel.name)}: vouched for by {re.escape(str(record))} "
                         r"\(builder .*, signed by release@numpy-wheels\)", out), out  # fmt: skip
    assert f"{never.name}: named by {second} but not staged" in out


def test_a_staged_file_no_record_names_is_refused(tmp_path, built, pypiserver):
    record = build_record(tmp_path, built[:1])
    with StagingServer(built, package="tinyproj") as staging:
        proc = uploader(tmp_path, staging, pypiserver.url, "--provenance", record,
                        "tinyproj", "1.0", env=pypiserver.twine_env())  # fmt: skip
    assert proc.returncode == 1
    assert f"{built[1].name}: no provenance record names it" in proc.stderr
    assert pypiserver.files() == {}


def test_two_records_disagreeing_about_a_staged_file_upload_nothing(tmp_path, built, pypiserver):
    # GIVEN two jobs' records of one wheel name with two sha256s, staging holding the first
    rebuilt = make_wheel(tmp_path / "rebuilt", "tinyproj", "1.0", payload=b"a second build")
    first, second = build_record(tmp_path, built, "a"), build_record(tmp_path, [rebuilt], "b")
    with StagingServer(built, package="tinyproj") as staging:
        proc = uploader(tmp_path, staging, pypiserver.url, "--provenance", first, "--provenance",
                        second, "tinyproj", "1.0", env=pypiserver.twine_env())  # fmt: skip
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert errors == [
        f"wheel-uploader: error: {built[0].name}: {first} says sha256 {file_hash(built[0])}, "
        f"{second} says {file_hash(rebuilt)}; the records disagree, nothing uploaded"
    ]
    assert pypiserver.files() == {}


def test_a_bad_signature_stops_before_any_download(tmp_path, built, pypiserver):
    record = build_record(tmp_path, built)
    key, allowed = ssh_key(tmp_path)
    ssh_sign(record, key)
    record.write_text(record.read_text().replace('"x86_64"', '"aarch64"'))
    with StagingServer(built, package="tinyproj") as staging:
        proc = uploader(tmp_path, staging, pypiserver.url, "--provenance", record,
                        "--provenance-key", allowed, "tinyproj", "1.0",
                        env=pypiserver.twine_env())  # fmt: skip
        assert staging.transfers() == []
    assert proc.returncode == 1
    assert f"{record}: bad signature" in proc.stderr
    assert pypiserver.files() == {}


def test_the_uploaders_help_documents_the_options():
    proc = subprocess.run([str(UPLOADER), "--help"], capture_output=True, text=True, timeout=60)
    text = " ".join(proc.stdout.split())
    for option in ("--provenance PATH_OR_URL", "--provenance-key FILE"):
        assert option in text, proc.stdout
    assert "(with --provenance: which record vouches for it" in text, proc.stdout


# ------------------------------------------------------------- --dry-run previews it


def test_a_dry_run_names_the_record_vouching_for_each_file_and_downloads_nothing(
    tmp_path, built, pypiserver
):
    # GIVEN the build's record and staging holding what was built
    record = build_record(tmp_path, built)
    with StagingServer(built, package="tinyproj") as staging:
        # WHEN the release manager previews the release
        proc = uploader(tmp_path, staging, pypiserver.url, "--dry-run", "--provenance", record,
                        "tinyproj", "1.0")  # fmt: skip
        fetched = staging.transfers()
    # THEN each file is vouched for by the record, judged on staging's published
    # sha256: no wheel downloaded, nothing uploaded
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for wheel in built:
        said = rf"^provenance: {re.escape(wheel.name)}: vouched for by {re.escape(str(record))} "
        assert re.search(said + r"\(builder ", proc.stdout, re.M), proc.stdout
        assert f"would upload: {wheel.name}" in proc.stdout.splitlines()
    assert fetched == [] and pypiserver.files() == {}
    assert not (tmp_path / "release").exists()


def test_a_dry_run_reports_unstaged_subjects_and_refuses_unnamed_files(tmp_path, built, pypiserver):
    # GIVEN a record naming the first staged wheel and a wheel never staged, not the second
    never = make_wheel(tmp_path / "unstaged", "tinyproj", "1.0", "cp311-cp311-win_amd64")
    record = build_record(tmp_path, [built[0], never])
    with StagingServer(built, package="tinyproj") as staging:
        proc = uploader(tmp_path, staging, pypiserver.url, "--dry-run", "--provenance", record,
                        "tinyproj", "1.0")  # fmt: skip
        fetched = staging.transfers()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: {built[1].name}: no provenance record names it" in proc.stderr
    assert "a real run refuses it and uploads nothing" in proc.stderr
    assert f"provenance: {built[0].name}: vouched for by {record}" in proc.stdout
    assert f"provenance: {never.name}: named by {record} but not staged" in proc.stdout
    assert fetched == [] and pypiserver.files() == {}


def test_a_dry_run_without_a_published_digest_says_the_check_needs_the_download(
    tmp_path, built, pypiserver
):
    record = build_record(tmp_path, built)
    with StagingServer(built, package="tinyproj") as staging:
        staging.no_sha256.add(built[0].name)
        proc = uploader(tmp_path, staging, pypiserver.url, "--dry-run", "--provenance", record,
                        "tinyproj", "1.0")  # fmt: skip
        fetched = staging.transfers()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        f"provenance: {built[0].name}: named by {record}, but staging publishes no sha256 "
        "for it: the check needs the download (a real run makes it)"
    ) in proc.stdout
    assert f"provenance: {built[1].name}: vouched for by {record}" in proc.stdout
    assert fetched == [] and pypiserver.files() == {}


def test_a_files_dry_run_judges_the_local_files(tmp_path, built, pypiserver):
    # GIVEN the build's record of the first wheel only, and both wheels given as --files
    record = build_record(tmp_path, built[:1])
    cmd = [str(UPLOADER), "--files", "--dry-run", "--repository-url", pypiserver.url,
           "--provenance", str(record), *map(str, built)]  # fmt: skip
    proc = subprocess.run(cmd, env=clean_env(tmp_path, TWINE_REPOSITORY_URL=NOWHERE),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"provenance: {built[0].name}: vouched for by {record}" in proc.stdout
    assert f"error: {built[1].name}: no provenance record names it" in proc.stderr
    assert pypiserver.files() == {}
