"""wheel-uploader says what it does (issue 14 item 9) and reads what it is given
(issue 13): an index root, a target wanting a login, an unreachable host, a
read-only --dry-run against the target, the end counts; broken staging markup
(an unclosed ``<a>``) and a ``1.0-post1`` version.

The target is a real pypiserver on loopback; staging is tests/staging_server.py.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, PypiServer, clean_env, closed_port
from numpy_wheels.files import human_size
from numpy_wheels.upload import sources
from numpy_wheels.upload.select import identity, normalize_version
from staging_server import StagingServer, make_wheel

SCRIPT = ROOT / "scripts" / "wheel_uploader.py"
TAGS = ("py3-none-any", "cp312-cp312-win_amd64", "cp312-cp312-macosx_11_0_arm64")
HINT = "the index needs a login: set TWINE_USERNAME and TWINE_PASSWORD, or name a .pypirc "
HINT += "section with -r"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def uploader(tmp_path: Path, *args: object, **env: str) -> subprocess.CompletedProcess[str]:
    """The script as a user runs it: own process, clean environment, no TWINE_*."""
    full = clean_env(tmp_path, **env)
    for name in [n for n in full if n.startswith("TWINE_") and n not in env]:
        del full[name]
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=full,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture
def wheels(tmp_path) -> list[Path]:
    return [make_wheel(tmp_path / "staged", "tinyproj", "1.0", tag) for tag in TAGS]


# ------------------------------------------------------------------ -u at a root


def test_index_root_as_staging_location_names_the_project_url(tmp_path, pypiserver, wheels):
    # GIVEN a real index holding tinyproj, and -u given as its root (and as the
    # server's front page), the way a newcomer copies the URL pip uses
    for wheel in wheels:
        (pypiserver.packages / wheel.name).write_bytes(wheel.read_bytes())
    for given in (pypiserver.simple_url, pypiserver.url):
        # WHEN
        proc = uploader(tmp_path, "-u", given, "--allow-insecure", "-n", "-w", tmp_path / "wh",
                        "TinyProj", "1.0")  # fmt: skip
        # THEN one line says so and names the project's page; exit 2, nothing fetched
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [
            f"wheel-uploader: error: {given} is an index's root, not the page of TinyProj: "
            f"use -u {pypiserver.simple_url}tinyproj/"
        ]
        assert not (tmp_path / "wh").exists()
    # AND the URL it names works
    proc = uploader(tmp_path, "-u", f"{pypiserver.simple_url}tinyproj/", "--allow-insecure",
                    "-n", "-w", tmp_path / "wh", "tinyproj", "1.0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "wh").iterdir()) == sorted(w.name for w in wheels)


def test_simple_root_that_is_not_served_names_the_project_page(tmp_path, wheels):
    with StagingServer(wheels, package="tinyproj") as staging:
        proc = uploader(tmp_path, "-u", f"{staging.url}/simple", "--allow-insecure", "-n",
                        "TinyProj", "1.0")  # fmt: skip
    assert proc.returncode == 3
    assert proc.stderr.splitlines() == [
        f"wheel-uploader: error: no files: {staging.url}/simple: HTTP 404 Not Found "
        f"(the project's page: {staging.url}/simple/tinyproj/)"
    ]


def test_empty_index_root_and_pep691_root(tmp_path, pypiserver):
    proc = uploader(tmp_path, "-u", pypiserver.simple_url, "--allow-insecure", "-n", "numpy", "2.0")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(f"use -u {pypiserver.simple_url}numpy/")
    page = sources.Page("json", {"meta": {"api-version": "1.1"}, "projects": [{"name": "x"}]},
                        "https://h.example/org/simple/")  # fmt: skip
    assert sources.index_root_hint(page, "NumPy") == "https://h.example/org/simple/numpy/"


# ----------------------------------------------------------------------- logins


def test_target_wanting_a_login_names_the_settings(tmp_path, pypiserver, wheels):
    # GIVEN a target that takes uploads only with a login, and none given
    proc = uploader(tmp_path, "--files", "--no-check", "--repository-url", pypiserver.url,
                    wheels[0])  # fmt: skip
    # THEN the error names the settings that give one
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        f"wheel-uploader: error: upload of {wheels[0].name} failed: NonInteractive: "
        f"Credential not found for username; {HINT}"
    )
    assert pypiserver.files() == {}


def test_target_wanting_a_login_to_be_read(tmp_path, tmp_path_factory, wheels):
    server = PypiServer(tmp_path_factory.mktemp("private"), authenticate="update,download,list")
    try:
        proc = uploader(tmp_path, "--files", "--repository-url", server.url, wheels[0])
        dry = uploader(tmp_path, "--files", "--dry-run", "--repository-url", server.url,
                       wheels[0])  # fmt: skip
        wrong = uploader(tmp_path, "--files", "--dry-run", "--repository-url", server.url,
                         wheels[0], TWINE_USERNAME=server.username,
                         TWINE_PASSWORD="not-" + server.password)  # fmt: skip
    finally:
        server.stop()
    # THEN without a login a real run stops before any upload, naming the next step
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"wheel-uploader: error: cannot read {server.simple_url}tinyproj/: HTTP 401 "
        f"Unauthorized; {HINT}"
    ]
    # and a dry run shows what it would run (make stage DRY_RUN=1 needs no login),
    # saying why it cannot tell what is there, with the same next step
    assert dry.returncode == 0, dry.stderr
    assert f"cannot query {server.simple_url} without a login (HTTP 401)" in dry.stderr
    assert HINT in dry.stderr and "+ twine " in dry.stdout
    assert server.files() == {}
    assert wrong.returncode == 1
    assert wrong.stderr.splitlines()[-1].endswith(
        "HTTP 403 Forbidden; the index refused the login given (check "
        "TWINE_USERNAME/TWINE_PASSWORD or the .pypirc section named with -r)"
    )
    assert server.password not in wrong.stdout + wrong.stderr


# ------------------------------------------------------------------ unreachable


@pytest.mark.parametrize("where", ["refused", "no such host", "target refused", "upload refused"])
def test_unreachable_host_is_one_line_naming_it(tmp_path, wheels, where, pypiserver):
    port = closed_port()
    if where == "upload refused":  # the index is read, twine cannot reach the upload URL
        args = ["--files", "--no-check", "--index-url", pypiserver.simple_url,
                "--repository-url", f"http://127.0.0.1:{port}/", wheels[0]]  # fmt: skip
        host, reason = f"127.0.0.1:{port}", "connection refused"
    elif where == "target refused":
        args = ["--files", "--no-check", "--repository-url", f"http://127.0.0.1:{port}/",
                wheels[0]]  # fmt: skip
        host, reason = f"127.0.0.1:{port}", "connection refused"
    elif where == "refused":
        args = ["-u", f"http://127.0.0.1:{port}/simple/tinyproj/", "--allow-insecure", "-n",
                "tinyproj", "1.0"]  # fmt: skip
        host, reason = f"127.0.0.1:{port}", "connection refused"
    else:
        args = ["-u", "https://staging.invalid/simple/tinyproj/", "-n", "tinyproj", "1.0"]
        host, reason = "staging.invalid", "host name not resolved ("  # then the resolver's words
    proc = uploader(tmp_path, "--retries", "2", *args, **pypiserver.twine_env())
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("wheel-uploader:")]
    upload = f"upload of {wheels[0].name} failed: " if where == "upload refused" else ""
    assert len(errors) == 1
    assert errors[0].startswith(f"wheel-uploader: error: {upload}cannot reach {host}: {reason}")
    assert errors == proc.stderr.splitlines()[-1:]
    if where in ("refused", "no such host"):
        assert proc.stderr.splitlines() == errors  # nothing else: no retry chatter


# ---------------------------------------------------------------- --dry-run, counts


def test_dry_run_reads_the_target_and_says_per_file(tmp_path, pypiserver, wheels):
    # GIVEN a target holding one of the three wheels already
    (pypiserver.packages / wheels[1].name).write_bytes(wheels[1].read_bytes())
    before = pypiserver.files()
    with StagingServer(wheels, package="tinyproj") as staging:
        # WHEN --dry-run runs against it
        proc = uploader(tmp_path, "-u", staging.simple_url, "--allow-insecure", "-w",
                        tmp_path / "wh", "--dry-run", "--repository-url", pypiserver.url,
                        "tinyproj", "1.0", **pypiserver.twine_env())  # fmt: skip
        fetched = staging.transfers()
    # THEN each file is named as would-be-uploaded or already there; nothing moved
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for wheel in wheels:
        said = "already there" if wheel == wheels[1] else "would upload"
        assert f"{said}: {wheel.name}" in lines
    assert lines[-1] == "3 of 3 files ended well: 2 would be uploaded, 1 already there, 0 failed"
    assert fetched == [] and not (tmp_path / "wh").exists()
    assert pypiserver.files() == before


def test_counts_uploaded_already_there_failed(tmp_path, pypiserver, wheels):
    with StagingServer(wheels[:2], package="tinyproj") as staging:
        first = uploader(tmp_path, "-u", staging.simple_url, "--allow-insecure", "-w",
                         tmp_path / "wh", "--no-check", "--repository-url", pypiserver.url,
                         "tinyproj", "1.0", **pypiserver.twine_env())  # fmt: skip
    with StagingServer(wheels, package="tinyproj") as staging:
        second = uploader(tmp_path, "-u", staging.simple_url, "--allow-insecure", "-w",
                          tmp_path / "wh", "--no-check", "--repository-url", pypiserver.url,
                          "tinyproj", "1.0", **pypiserver.twine_env())  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == (
        "2 of 2 files ended well: 2 uploaded, 0 already there, 0 failed"
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == (
        "3 of 3 files ended well: 1 uploaded, 2 already there, 0 failed"
    )
    assert pypiserver.files() == {w.name: sha256(w) for w in wheels}


def test_downloads_reuse_their_connections(tmp_path):
    # GIVEN six staged wheels
    wheels = [make_wheel(tmp_path / "s", "tinyproj", "1.0", f"cp3{i}-cp3{i}-win_amd64")
              for i in range(10, 16)]  # fmt: skip
    with StagingServer(wheels, package="tinyproj") as staging:
        # WHEN two workers fetch them
        proc = uploader(tmp_path, "-u", staging.simple_url, "--allow-insecure", "-n",
                        "--no-check", "-j", "2", "-w", tmp_path / "wh",
                        "tinyproj", "1.0")  # fmt: skip
        ports = {port for path, port in staging.peers if "/download/" in path}
    # THEN each worker kept its one connection open from file to file
    assert proc.returncode == 0, proc.stderr
    assert len([p for p in (tmp_path / "wh").iterdir()]) == 6
    assert 1 <= len(ports) <= 2


# ------------------------------------------------------------ what the pages hold


def test_unclosed_anchor_loses_no_link(tmp_path, wheels):
    # GIVEN staging pages whose anchors are never closed (every kind of HTML page)
    with StagingServer(wheels, package="tinyproj", page_size=2) as staging:
        staging.mangle = lambda page: page.replace("</a>", "")
        for url in (staging.files_page_url, staging.listing_url, staging.simple_url):
            staging.pep691 = False
            # WHEN each is read
            proc = uploader(tmp_path, "-u", url, "--allow-insecure", "-n", "--dry-run",
                            "tinyproj", "1.0")  # fmt: skip
            # THEN every file is found, under its own name
            assert proc.returncode == 0, proc.stderr
            said = sorted(ln.split(" -> ")[-1] for ln in proc.stdout.splitlines()
                          if ln.startswith("would download: "))  # fmt: skip
            assert said == sorted(w.name for w in wheels), url


def test_unclosed_anchor_in_the_parsers():
    names = [f"tinyproj-1.0-{t}.whl" for t in TAGS]
    page = "".join(f'<a href="/f/{n}#sha256={"a" * 64}">{n}<br>' for n in names)
    files, paging, _ = sources.parse_links("http://h.example/listing/", page)
    assert [(f.name, f.url, f.sha256) for f in files] == [
        (n, f"http://h.example/f/{n}", "a" * 64) for n in names
    ]
    assert paging is None
    simple = sources.parse_simple(sources.Page("html", page, "http://h.example/simple/t/"))
    assert [(f.name, f.sha256) for f in simple] == [(n, "a" * 64) for n in names]


def _post1_files(dest: Path) -> list[Path]:
    """A wheel whose METADATA says ``1.0-post1`` and a legacy sdist of that name."""
    made = make_wheel(dest / "tmp", "tinyproj", "1.0-post1")
    wheel = dest / "tinyproj-1.0.post1-py3-none-any.whl"
    with zipfile.ZipFile(made) as src, zipfile.ZipFile(wheel, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
    sdist = dest / "tinyproj-1.0-post1.tar.gz"
    members = {"PKG-INFO": b"Metadata-Version: 2.1\nName: tinyproj\nVersion: 1.0-post1\n",
               "pyproject.toml": b"[project]\n"}  # fmt: skip
    with tarfile.open(sdist, "w:gz") as tar:
        for member, text in members.items():
            info = tarfile.TarInfo(f"tinyproj-1.0-post1/{member}")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    return [wheel, sdist]


@pytest.mark.parametrize("asked", ["1.0-post1", "1.0.post1", "1.0post1"])
def test_post_release_spelled_with_a_hyphen(tmp_path, pypiserver, asked):
    files = _post1_files(tmp_path / "staged")
    with StagingServer(files, package="tinyproj") as staging:
        proc = uploader(tmp_path, "-u", staging.listing_url, "--allow-insecure", "--sdist",
                        "-w", tmp_path / "wh", "--no-check", "--repository-url",
                        pypiserver.url, "tinyproj", asked, **pypiserver.twine_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert pypiserver.files() == {f.name: sha256(f) for f in files}
    assert proc.stdout.splitlines()[-1].endswith(": 2 uploaded, 0 already there, 0 failed")


def test_version_and_name_parsing_units():
    assert normalize_version("1.0-post1") == "1.0.post1"
    assert identity("tinyproj-1.0-post1.tar.gz") == ("tinyproj", "1.0.post1", "")
    assert identity("Tiny.Proj-2.0.tar.gz") == ("tiny-proj", "2.0", "")
    assert identity("tinyproj-1.0.post1-py3-none-any.whl") == (
        "tinyproj", "1.0.post1", "py3-none-any")  # fmt: skip
    # a legacy name with a post-release number: the project it belongs to decides
    assert identity("tinyproj-1.0-1.tar.gz", "tinyproj") == ("tinyproj", "1.0.post1", "")
    assert identity("tinyproj-1.0-py3-none-any.zip") is None


def test_sizes_in_the_summary_read_as_sizes():
    assert [human_size(n) for n in (512, 6 * 2**10, 4 * 2**20 + 1, 3 * 2**30)] == [
        "512 B", "6.0 KiB", "4.0 MiB", "3.0 GiB"]  # fmt: skip


def test_failure_is_a_github_annotation_too(tmp_path):
    port = closed_port()
    proc = uploader(tmp_path, "-u", f"http://127.0.0.1:{port}/simple/tinyproj/",
                    "--allow-insecure", "-n", "tinyproj", "1.0", GITHUB_ACTIONS="true")  # fmt: skip
    assert proc.returncode == 1
    message = f"cannot reach 127.0.0.1:{port}: connection refused"
    assert proc.stderr.splitlines() == [f"wheel-uploader: error: {message}"]
    assert proc.stdout.splitlines() == [f"::error title=wheel-uploader::{message}"]
