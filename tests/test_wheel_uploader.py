"""wheel-uploader against a loopback anaconda.org double and a real pypiserver.

The staging side (tests/staging_server.py) serves the shapes anaconda.org serves;
the target is a real pypiserver with htpasswd authentication; the files are real
NumPy 2.4.6 wheels and small valid wheels made here.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN, clean_env, run_pty
from numpy_wheels import log
from numpy_wheels.errors import FatalError
from numpy_wheels.upload import publish, sources
from numpy_wheels.upload.cli import main
from numpy_wheels.upload.select import dist_key
from numpy_wheels.upload.target import UploadTarget, simple_url_for
from staging_server import StagingServer, UploadProxy, make_wheel

SCRIPT = ROOT / "scripts" / "wheel_uploader.py"
NOWHERE = "http://127.0.0.1:9/"  # the discard port: nothing listens there
PLATFORMS = (
    "py3-none-any",
    "cp311-cp311-manylinux_2_28_x86_64",
    "cp311-cp311-musllinux_1_2_x86_64",
    "cp311-cp311-win_amd64",
    "cp311-cp311-macosx_11_0_arm64",
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_sdist(dest: Path, name: str, version: str) -> Path:
    base = f"{name}-{version}"
    path = dest / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in (
            ("PKG-INFO", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
            ("pyproject.toml", "[project]\n"),
        ):
            info = tarfile.TarInfo(f"{base}/{member}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """tinyproj 1.0 for five platforms, one build-tagged wheel, an sdist, and decoys."""
    dest = tmp_path_factory.mktemp("tiny")
    files = [make_wheel(dest, "tinyproj", "1.0", tag) for tag in PLATFORMS]
    tagged = make_wheel(dest / "b", "tinyproj", "1.0", "cp312-cp312-manylinux_2_28_x86_64")
    files.append(tagged.rename(dest / "tinyproj-1.0-1-cp312-cp312-manylinux_2_28_x86_64.whl"))
    files.append(make_sdist(dest, "tinyproj", "1.0"))
    for version in ("1.0.1", "1.0rc1", "1.01"):  # never picked for 1.0
        files.append(make_wheel(dest, "tinyproj", version))
    files.append(make_wheel(dest, "tinyproj-extra", "1.0"))
    return {p.name: p for p in files}


TINY_EXTRA = "tinyproj_extra-1.0-py3-none-any.whl"
TINY_10 = sorted(
    [f"tinyproj-1.0-{t}.whl" for t in PLATFORMS]
    + ["tinyproj-1.0-1-cp312-cp312-manylinux_2_28_x86_64.whl"]
)


@pytest.fixture
def staging(tiny):
    with StagingServer(tiny, package="tinyproj", page_size=3) as server:
        yield server


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    """In-process runs: no leftover verbosity, twine credentials only when a test sets them."""
    log.set_verbosity(verbose=False, quiet=False)
    for name in ("TWINE_USERNAME", "TWINE_PASSWORD", "NW_TWINE"):
        monkeypatch.delenv(name, raising=False)
    # A forgotten --repository-url must never reach a real index: point twine nowhere.
    monkeypatch.setenv("TWINE_REPOSITORY_URL", NOWHERE)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin")


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    """The script as a user runs it (own process, clean environment)."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        env=clean_env(tmp_path, TWINE_REPOSITORY_URL=NOWHERE, **(env or {})),
        capture_output=True,
        text=True,
        timeout=300,
    )


def table(out: str) -> dict[str, tuple[str, str, str]]:
    """Summary rows: file name -> (download, verified, upload)."""
    rows = [re.split(r"\s{2,}", ln) for ln in out.splitlines()]
    return {r[0]: (r[1], r[2], r[3]) for r in rows[1:] if len(r) == 6}


def names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# ----------------------------------------------------------------- find + download


def test_files_page_pagination_to_pypiserver_with_real_numpy_wheels(
    tmp_path, official_numpy_wheels, pypiserver
):
    real = [official_numpy_wheels[k] for k in ("manylinux_x86_64", "win_amd64", "macosx_arm64")]
    decoys = [make_wheel(tmp_path / "decoys", "numpy", v) for v in ("2.4.6rc1", "2.4.60")]
    with StagingServer([*real, *decoys], package="numpy", page_size=2) as server:
        args = ["-u", server.files_page_url, "--allow-insecure", "-w", tmp_path / "wh"]
        args += ["--repository-url", pypiserver.url, "numpy", "2.4.6"]
        proc = run_cli(tmp_path, *args, env=pypiserver.twine_env())
        assert proc.returncode == 0, proc.stderr
        pages = [r[1] for r in server.requests if r[1].endswith("/files")]
        assert len(pages) == 3  # 5 files, 2 a page: every page was read
        assert names(tmp_path / "wh") == sorted(p.name for p in real)
        assert pypiserver.files() == {p.name: sha256(p) for p in real}
        assert "3 of 3 files ended well" in proc.stdout
        for p in real:
            assert table(proc.stdout)[p.name] == ("downloaded", "ok", "uploaded")

        # pip installs the uploaded version from the index (and only from it)
        target = tmp_path / "site"
        pip = [sys.executable, "-m", "pip", "install", "--isolated", "--no-deps", "-q"]
        pip += ["--index-url", pypiserver.simple_url, "--target", str(target), "numpy==2.4.6"]
        pip += ["--only-binary=:all:", "--python-version", "3.11"]  # the wheels' (any host)
        pip += ["--platform", "manylinux_2_28_x86_64"]
        installed = subprocess.run(pip, capture_output=True, text=True, timeout=300)
        assert installed.returncode == 0, installed.stderr
        assert (target / "numpy-2.4.6.dist-info").is_dir()

        # a second run transfers nothing and uploads nothing
        before = len(server.transfers())
        again = run_cli(tmp_path, *args, env=pypiserver.twine_env())
        assert again.returncode == 0, again.stderr
        assert len(server.transfers()) == before
        for p in real:
            assert table(again.stdout)[p.name] == ("cached", "ok", "already there")


def test_api_source_uses_md5_when_sha256_is_none(capsys, tmp_path, staging, tiny):
    staging.no_sha256 = {"tinyproj-1.0-py3-none-any.whl"}
    code, _, err = run(
        capsys, "-u", staging.api_url, "--allow-insecure", "-w", tmp_path, "-n", "tinyproj", "1.0"
    )
    assert code == 0, err
    assert "(api)" in err
    assert names(tmp_path) == TINY_10
    for name in TINY_10:
        assert sha256(tmp_path / name) == sha256(tiny[name])
    # the API's download_url answers with a redirect to the file
    assert any(r[1].startswith("/api/download/") for r in staging.requests)


@pytest.mark.parametrize("pep691", [True, False])
def test_simple_index_json_and_html(capsys, tmp_path, staging, pep691):
    staging.pep691 = pep691
    code, _, err = run(
        capsys,
        "-u",
        staging.simple_url,
        "--allow-insecure",
        "-w",
        tmp_path,
        "-n",
        "tinyproj",
        "1.0",
    )
    assert code == 0, err
    assert names(tmp_path) == TINY_10


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["win", "macosx"], ["cp311-cp311-macosx_11_0_arm64", "cp311-cp311-win_amd64"]),
        (["manylinux"], ["1-cp312-cp312-manylinux_2_28_x86_64",
                         "cp311-cp311-manylinux_2_28_x86_64"]),
        (["musllinux"], ["cp311-cp311-musllinux_1_2_x86_64"]),
        (["cp311-cp311-m"], ["cp311-cp311-macosx_11_0_arm64", "cp311-cp311-manylinux_2_28_x86_64",
                             "cp311-cp311-musllinux_1_2_x86_64"]),
        (["linux"], ["1-cp312-cp312-manylinux_2_28_x86_64", "cp311-cp311-manylinux_2_28_x86_64",
                     "cp311-cp311-musllinux_1_2_x86_64"]),
    ],
)  # fmt: skip
def test_listing_with_type_filter(capsys, tmp_path, staging, types, expected):
    args = ["-u", staging.listing_url, "--allow-insecure", "-w", tmp_path, "-n", "--dry-run"]
    for t in types:
        args += ["-t", t]
    code, out, err = run(capsys, *args, "tinyproj", "1.0")
    assert code == 0, err
    assert "(listing)" in err
    wanted = [f"tinyproj-1.0-{tag}.whl" for tag in expected]
    got = sorted(
        line.rsplit("/", 1)[-1] for line in out.splitlines() if line.startswith("would download:")
    )
    assert got == wanted


def test_names_are_normalised_version_exact_and_sdist_on_request(capsys, tmp_path, staging):
    args = ["-u", staging.files_page_url, "--allow-insecure", "-w", tmp_path, "-n", "--sdist"]
    code, out, err = run(capsys, *args, "TinyProj", "1.0.0")  # 1.0.0 is not 1.0
    assert code == 3
    code, out, err = run(capsys, *args, "Tinyproj.Extra", "1.0")
    assert code == 0, err
    assert names(tmp_path) == ["tinyproj_extra-1.0-py3-none-any.whl"]
    code, out, err = run(capsys, *args, "TINYPROJ", "1.0")
    assert code == 0, err
    assert names(tmp_path) == sorted([*TINY_10, "tinyproj-1.0.tar.gz", TINY_EXTRA])
    rows = [ln.split()[0] for ln in out.splitlines() if ln.startswith("tinyproj")]
    assert rows[-1] == "tinyproj-1.0.tar.gz"  # wheels first, then the sdist


def test_cached_files_are_verified_not_refetched_and_clobber_refetches(capsys, tmp_path, staging):
    args = ["-u", staging.simple_url, "--allow-insecure", "-w", tmp_path, "-n", "-t", "win"]
    assert run(capsys, *args, "tinyproj", "1.0")[0] == 0
    assert len(staging.transfers()) == 1
    assert run(capsys, *args, "tinyproj", "1.0")[0] == 0
    assert len(staging.transfers()) == 1
    wheel = tmp_path / "tinyproj-1.0-cp311-cp311-win_amd64.whl"
    good = wheel.read_bytes()
    wheel.write_bytes(good[:100])  # damaged copy: fetched again
    code, _, err = run(capsys, *args, "tinyproj", "1.0")
    assert code == 0
    assert "fails verification" in err
    assert wheel.read_bytes() == good
    assert run(capsys, *args, "-c", "tinyproj", "1.0")[0] == 0
    assert len(staging.transfers()) == 3


def test_a_file_changed_in_place_is_caught_even_with_its_old_mtime(capsys, tmp_path, staging):
    # GIVEN a wheelhouse the uploader filled
    args = ["-u", staging.simple_url, "--allow-insecure", "-w", tmp_path, "-n", "-t", "win"]
    assert run(capsys, *args, "tinyproj", "1.0")[0] == 0
    wheel = tmp_path / "tinyproj-1.0-cp311-cp311-win_amd64.whl"
    good, st = wheel.read_bytes(), wheel.stat()
    # WHEN a byte is changed in place and the size and mtime are put back
    with wheel.open("r+b") as fobj:
        fobj.seek(len(good) // 2)
        fobj.write(bytes([good[len(good) // 2] ^ 0xFF]))
    os.utime(wheel, ns=(st.st_atime_ns, st.st_mtime_ns))
    code, _, err = run(capsys, *args, "tinyproj", "1.0")
    # THEN the bytes are what is checked: the file fails and is fetched again
    assert code == 0
    assert "fails verification (sha256 differs" in err
    assert wheel.read_bytes() == good and len(staging.transfers()) == 2


def imported(stderr: str) -> set[str]:
    """The top-level packages a ``python -X importtime`` run imported (by any module:
    a thread may end before its own package's line)."""
    return {ln.rsplit("|", 1)[1].strip().split(".")[0] for ln in stderr.splitlines()
            if ln.startswith("import time:") and ln.count("|") == 2}  # fmt: skip


HEAVY = {"requests", "urllib3", "pypi_simple", "bs4", "soupsieve", "pydantic", "rich", "twine"}


def test_help_and_version_import_no_network_or_index_library(tmp_path):
    for flag in ("--help", "--version"):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", str(SCRIPT), flag], capture_output=True,
            text=True, env=clean_env(tmp_path), timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "numpy_wheels" in imported(proc.stderr)
        assert imported(proc.stderr) & HEAVY == set(), flag


def test_a_rerun_with_everything_present_reads_the_index_only(tmp_path, staging):
    # GIVEN a wheelhouse holding every file already
    args = ["-u", staging.simple_url, "--allow-insecure", "-w", tmp_path / "wh", "-n",
            "--no-check", "tinyproj", "1.0"]  # fmt: skip
    assert run_cli(tmp_path, *args).returncode == 0
    before = len(staging.transfers())
    # WHEN it runs again
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), *map(str, args)], capture_output=True,
        text=True, env=clean_env(tmp_path, TWINE_REPOSITORY_URL=NOWHERE), timeout=300,
    )  # fmt: skip
    # THEN nothing is transferred, and neither twine nor the progress display is loaded
    assert proc.returncode == 0, proc.stderr
    assert f"{len(TINY_10)} files of tinyproj 1.0" in proc.stderr
    assert len(staging.transfers()) == before
    assert {"pypi_simple", "requests"} <= imported(proc.stderr)
    assert imported(proc.stderr) & {"rich", "twine"} == set()


def test_dry_run_touches_nothing(capsys, tmp_path, staging, pypiserver, monkeypatch):
    monkeypatch.setenv("TWINE_PASSWORD", pypiserver.password)
    wheelhouse = tmp_path / "never"
    code, out, err = run(
        capsys, "-u", staging.simple_url, "--allow-insecure", "-w", wheelhouse, "--dry-run",
        "--repository-url", pypiserver.url, "-t", "win", "tinyproj", "1.0",
    )  # fmt: skip
    assert code == 0, err
    assert not wheelhouse.exists()
    assert staging.transfers() == []
    assert pypiserver.files() == {}
    assert f"would download: {staging.url}/multibuild-wheels-staging/tinyproj/1.0/download/" in out
    assert (
        f"--repository-url {pypiserver.url} --disable-progress-bar "
        f"{wheelhouse}/tinyproj-1.0-cp311-cp311-win_amd64.whl" in out
    )


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("fault", ["reset", "truncate"])
def test_cut_off_download_is_resumed_with_a_range(capsys, tmp_path, fault):
    wheel = make_wheel(tmp_path / "src", "tinyproj", "1.0", payload=os.urandom(1 << 20))
    with StagingServer([wheel], package="tinyproj") as server:
        server.faults[wheel.name] = [fault]
        code, _, err = run(
            capsys, "-u", server.files_page_url, "--allow-insecure", "-w", tmp_path / "wh", "-n",
            "tinyproj", "1.0",
        )  # fmt: skip
        ranges = [r[2] for r in server.transfers(wheel.name)]
    assert code == 0, err
    assert "retrying (1/5)" in err
    assert len(ranges) == 2 and ranges[0] is None
    start = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= wheel.stat().st_size // 2
    size = wheel.stat().st_size
    assert server.bytes_sent[wheel.name] == size // 2 + (size - start)  # not sent twice
    assert (tmp_path / "wh" / wheel.name).read_bytes() == wheel.read_bytes()
    assert names(tmp_path / "wh") == [wheel.name]


def test_server_error_then_success(capsys, tmp_path, staging):
    name = "tinyproj-1.0-cp311-cp311-win_amd64.whl"
    staging.faults[name] = ["500", "503"]
    staging.page_faults = ["502"]  # the page too: retried by the page session
    code, _, err = run(
        capsys, "-u", staging.files_page_url, "--allow-insecure", "-w", tmp_path, "-n",
        "-t", "win", "tinyproj", "1.0",
    )  # fmt: skip
    assert code == 0, err
    assert "HTTP 500, retrying (1/5)" in err and "HTTP 503, retrying (2/5)" in err
    assert names(tmp_path) == [name]


def test_slow_server_times_out_then_retries(capsys, tmp_path, staging):
    name = "tinyproj-1.0-cp311-cp311-win_amd64.whl"
    staging.slow_delay = 1.5
    staging.faults[name] = ["slow"]
    code, _, err = run(
        capsys, "-u", staging.simple_url, "--allow-insecure", "-w", tmp_path, "-n",
        "-t", "win", "--timeout", "0.5", "tinyproj", "1.0",
    )  # fmt: skip
    assert code == 0, err
    assert "timed out" in err.lower()
    assert names(tmp_path) == [name]


def test_wrong_hash_on_page_fails_and_leaves_nothing(capsys, tmp_path, staging, tiny):
    name = "tinyproj-1.0-cp311-cp311-win_amd64.whl"
    staging.sha256_override[name] = "0" * 64
    code, out, err = run(
        capsys, "-u", staging.simple_url, "--allow-insecure", "-w", tmp_path, "-n",
        "-t", "win", "tinyproj", "1.0",
    )  # fmt: skip
    url = f"{staging.url}/multibuild-wheels-staging/tinyproj/1.0/download/{name}"
    assert code == 1
    assert err.splitlines()[-1] == (
        f"wheel-uploader: error: sha256 mismatch for {url}: expected {'0' * 64}, "
        f"got {sha256(tiny[name])}"
    )
    assert names(tmp_path) == []
    assert table(out)[name] == ("failed", "no", "-")


def test_size_mismatch_from_api(capsys, tmp_path, staging, tiny):
    name = "tinyproj-1.0-cp311-cp311-win_amd64.whl"
    real = tiny[name].stat().st_size
    staging.size_override[name] = real + 7
    code, _, err = run(
        capsys, "-u", staging.api_url, "--allow-insecure", "-w", tmp_path, "-n",
        "-t", "win", "--retries", "2", "tinyproj", "1.0",
    )  # fmt: skip
    url = f"{staging.url}/api/download/multibuild-wheels-staging/tinyproj/1.0/{name}"
    assert code == 1
    assert err.splitlines()[-1] == (
        f"wheel-uploader: error: size mismatch for {url}: expected {real + 7}, got {real}"
    )
    assert names(tmp_path) == []


def test_non_wheel_served_as_whl(capsys, tmp_path):
    name = "tinyproj-1.0-py3-none-any.whl"
    with StagingServer({name: b"<html>oops</html>\n"}, package="tinyproj") as server:
        code, _, err = run(
            capsys, "-u", server.listing_url, "--allow-insecure", "-w", tmp_path, "-n",
            "tinyproj", "1.0",
        )  # fmt: skip
    assert code == 1
    assert err.splitlines()[-1] == (
        f"wheel-uploader: error: {name} is not a valid wheel: File is not a zip file"
    )
    assert names(tmp_path) == []


def test_wheel_whose_metadata_disagrees_with_its_name(capsys, tmp_path):
    wheel = make_wheel(tmp_path / "src", "tinyproj", "1.0", metadata_name="otherproj")
    with StagingServer([wheel], package="tinyproj") as server:
        code, _, err = run(
            capsys, "-u", server.listing_url, "--allow-insecure", "-w", tmp_path / "wh", "-n",
            "tinyproj", "1.0",
        )  # fmt: skip
    assert code == 1
    assert err.splitlines()[-1] == (
        "wheel-uploader: error: tinyproj-1.0-py3-none-any.whl: its metadata names otherproj "
        "1.0, not the project and version of the file name"
    )
    assert names(tmp_path / "wh") == []


# ----------------------------------------------------------------------- bad input


def test_no_files_match(capsys, tmp_path, staging):
    code, _, err = run(
        capsys, "-u", staging.files_page_url, "--allow-insecure", "-w", tmp_path, "tinyproj", "9.9"
    )
    assert code == 3
    assert err.strip() == (
        f"wheel-uploader: error: no files match tinyproj-9.9-*.whl (type all) at "
        f"{staging.files_page_url} (11 files listed, read as files-page)"
    )
    assert names(tmp_path) == []


def test_page_that_is_not_html_or_json(capsys, tmp_path, staging):
    staging.page_faults = ["application/octet-stream"]
    code, _, err = run(
        capsys, "-u", staging.files_page_url, "--allow-insecure", "-w", tmp_path, "tinyproj", "1.0"
    )
    assert code == 1
    assert err.strip() == (
        f"wheel-uploader: error: {staging.files_page_url}: expected an HTML or JSON page, "
        "got Content-Type 'application/octet-stream'"
    )


def test_http_source_refused_without_allow_insecure(capsys, tmp_path, staging):
    code, _, err = run(capsys, "-u", staging.files_page_url, "-w", tmp_path, "tinyproj", "1.0")
    assert code == 2
    assert err.strip() == (
        f"wheel-uploader: error: refusing insecure {staging.files_page_url} "
        "(use --allow-insecure to accept http://)"
    )
    assert staging.requests == []


@pytest.mark.parametrize(
    "listed",
    ["../tinyproj-1.0-cp39-none-any.whl", "/etc/tinyproj-1.0-cp39-none-any.whl",
     "a/tinyproj-1.0-cp39-none-any.whl"],
)  # fmt: skip
def test_file_name_that_is_not_plain_is_refused(capsys, tmp_path, staging, listed):
    staging.listed_only = [listed]
    code, _, err = run(
        capsys, "-u", staging.simple_url, "--allow-insecure", "-w", tmp_path / "wh", "-n",
        "tinyproj", "1.0",
    )  # fmt: skip
    assert code == 1
    assert err.strip() == (
        f"wheel-uploader: error: refusing {listed!r} listed at {staging.simple_url}: "
        "not a plain file name"
    )
    assert not (tmp_path / "wh").exists()
    assert staging.transfers() == []


def test_bad_command_lines(tmp_path):
    proc = run_cli(tmp_path, "numpy")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "wheel-uploader: error: expected PROJECT VERSION (or --files FILE...)"
    )
    proc = run_cli(tmp_path, "numpy", "not a version")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "wheel-uploader: error: VERSION 'not a version' is not a valid version"
    )
    proc = run_cli(tmp_path, "--version")
    version = log.toolkit_version()  # one version for the whole toolkit
    assert (proc.returncode, proc.stdout.strip()) == (
        0,
        f"wheel-uploader (numpy-wheels-toolkit) {version}",
    )
    shim = subprocess.run(
        [ROOT / "scripts" / "wheel-uploader", "--help"], capture_output=True, text=True
    )
    assert shim.returncode == 0 and "--wheel-url-dir" in shim.stdout


def test_simple_url_for_upload_urls():
    assert simple_url_for("https://upload.example.org/legacy/") == ("https://example.org/simple/")
    assert simple_url_for("http://127.0.0.1:8080/") == ("http://127.0.0.1:8080/simple/")
    assert simple_url_for("https://h.example/repo/legacy") == ("https://h.example/repo/simple/")


# -------------------------------------------------------------------------- upload


def upload_args(staging, tmp_path, url, *extra):
    return [
        "-u", staging.simple_url, "--allow-insecure", "-w", tmp_path / "wh",
        "--repository-url", url, *extra, "--sdist", "tinyproj", "1.0",
    ]  # fmt: skip


def test_upload_interrupted_then_rerun_uploads_only_the_rest(
    capsys, tmp_path, staging, tiny, pypiserver, monkeypatch
):
    monkeypatch.setenv("TWINE_USERNAME", pypiserver.username)
    monkeypatch.setenv("TWINE_PASSWORD", pypiserver.password)
    with UploadProxy(pypiserver.url, drop={3}) as proxy:
        code, out, err = run(capsys, *upload_args(staging, tmp_path, proxy.url + "/"))
    assert code == 1
    order = [*TINY_10, "tinyproj-1.0.tar.gz"]
    assert sorted(pypiserver.files()) == order[:2]
    assert err.splitlines()[-1].startswith(f"wheel-uploader: error: upload of {order[2]} failed: ")
    assert table(out)[order[2]] == ("downloaded", "ok", "failed")
    assert table(out)[order[3]] == ("downloaded", "ok", "not run")

    code, out, err = run(capsys, *upload_args(staging, tmp_path, pypiserver.url))
    assert code == 0, err
    assert pypiserver.files() == {n: sha256(tiny[n]) for n in order}
    statuses = {name: row[2] for name, row in table(out).items()}
    assert statuses == {n: "already there" if n in order[:2] else "uploaded" for n in order}
    assert list(statuses)[-1] == "tinyproj-1.0.tar.gz"  # the sdist went last


def test_file_on_index_with_other_content_stops_the_run(
    capsys, tmp_path, staging, tiny, pypiserver, monkeypatch
):
    monkeypatch.setenv("TWINE_USERNAME", pypiserver.username)
    monkeypatch.setenv("TWINE_PASSWORD", pypiserver.password)
    clash = TINY_10[1]
    other = make_wheel(tmp_path / "other", "tinyproj", "1.0", "py3-none-any", payload=b"x" * 99)
    shutil.copy(other, pypiserver.packages / clash)
    code, _, err = run(capsys, *upload_args(staging, tmp_path, pypiserver.url))
    assert code == 1
    assert err.splitlines()[-1] == (
        f"wheel-uploader: error: {clash} is already on {pypiserver.simple_url} with sha256 "
        f"{sha256(other)}, ours is {sha256(tiny[clash])}; stopping, nothing overwritten"
    )
    assert pypiserver.files() == {TINY_10[0]: sha256(tiny[TINY_10[0]]), clash: sha256(other)}


def test_index_rejecting_a_file(capsys, tmp_path, staging, pypiserver, monkeypatch):
    monkeypatch.setenv("TWINE_USERNAME", pypiserver.username)
    monkeypatch.setenv("TWINE_PASSWORD", pypiserver.password)
    with UploadProxy(pypiserver.url, refuse={1: 400}) as proxy:
        code, _, err = run(capsys, *upload_args(staging, tmp_path, proxy.url + "/", "-t", "win"))
        assert code == 1
        assert err.splitlines()[-1] == (
            f"wheel-uploader: error: upload of {TINY_10[4]} failed: HTTPError: 400 Bad Request "
            f"from {proxy.url}/"
        )
    assert pypiserver.files() == {}


def test_wrong_credentials_and_no_secret_printed(tmp_path, staging, pypiserver):
    secret = "not-the-password-" + pypiserver.password
    url = pypiserver.url.replace("http://", f"http://{pypiserver.username}:{secret}@")
    proc = run_cli(tmp_path, *upload_args(staging, tmp_path, url, "-t", "win", "-v"))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        f"wheel-uploader: error: upload of {TINY_10[4]} failed: HTTPError: 403 Forbidden "
        f"from {pypiserver.url}; the index refused the login given (check "
        "TWINE_USERNAME/TWINE_PASSWORD or the .pypirc section named with -r)"
    )
    # The credentials went to twine through its environment: the command line has none.
    assert f"--repository-url http://127.0.0.1:{pypiserver.port}/ " in proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert pypiserver.files() == {}


def test_twine_missing(capsys, tmp_path, staging, monkeypatch):
    monkeypatch.setenv("NW_TWINE", str(tmp_path / "no-twine"))
    code, _, err = run(capsys, *upload_args(staging, tmp_path, "http://127.0.0.1:9/", "-t", "win"))
    assert code == 2
    assert err.splitlines()[-1] == (
        f"wheel-uploader: error: twine not found: NW_TWINE='{tmp_path / 'no-twine'}' does not run"
    )


def test_audit_failure_uploads_nothing(capsys, tmp_path, pypiserver, monkeypatch):
    monkeypatch.setenv("TWINE_PASSWORD", pypiserver.password)
    good = make_wheel(tmp_path / "src", "tinyproj", "1.0", PLATFORMS[3])
    bad = tmp_path / "src" / "tinyproj-1.0-py3-none-any.whl"
    source = make_wheel(tmp_path / "tmp", "tinyproj", "1.0")
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(bad, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("__init__.py"):
                data += b"# changed after RECORD was written\n"
            out.writestr(info, data)
    with StagingServer([good, bad], package="tinyproj") as server:
        code, out, err = run(
            capsys, "-u", server.listing_url, "--allow-insecure", "-w", tmp_path / "wh",
            "--repository-url", pypiserver.url, "tinyproj", "1.0",
        )  # fmt: skip
    assert code == 1
    assert f"wheel-uploader: error: {bad.name} fails the audit: " in err
    assert table(out)[bad.name] == ("downloaded", "audit failed", "-")
    assert pypiserver.files() == {}


# ----------------------------------------------------------------------------- GPG


@pytest.fixture
def gpg_key():
    """A throwaway signing key in its own GNUPGHOME (short path: the agent socket)."""
    home = Path(tempfile.mkdtemp(prefix="nwgpg", dir="/tmp"))
    home.chmod(0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    uid = "NW Test <nw-test@example.invalid>"
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    yield home, uid
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def test_sign_with_twine_and_sign_hashes(tmp_path, staging, tiny, pypiserver, gpg_key):
    home, uid = gpg_key
    hashes = tmp_path / "release" / "checksums.txt"
    args = upload_args(staging, tmp_path, pypiserver.url, "-s", "-i", uid, "-t", "win")
    args[-3:-3] = ["--hashes", hashes, "--sign-hashes"]
    env = dict(pypiserver.twine_env(), GNUPGHOME=str(home))
    proc = run_cli(tmp_path, *args, env=env)
    assert proc.returncode == 0, proc.stderr
    wheelhouse = tmp_path / "wh"
    for name in (TINY_10[4], "tinyproj-1.0.tar.gz"):
        sig = wheelhouse / f"{name}.asc"
        verify = subprocess.run(
            ["gpg", "--verify", sig, wheelhouse / name], env=env, capture_output=True, text=True
        )
        assert verify.returncode == 0, verify.stderr
        assert uid in verify.stderr
    stored = sorted(pypiserver.files())
    assert stored[:2] == [TINY_10[4], f"{TINY_10[4]}.asc"]
    text = hashes.read_text()
    for name in (TINY_10[4], "tinyproj-1.0.tar.gz"):
        assert f"    {sha256(tiny[name])}  {name}\n" in text
        assert f"    {hashlib.md5(tiny[name].read_bytes()).hexdigest()}  {name}\n" in text
    assert text.index("MD5\n---") < text.index("SHA256\n------")
    check = subprocess.run(["sha256sum", "-c", hashes], cwd=wheelhouse, capture_output=True)
    assert check.returncode == 0
    verify = subprocess.run(
        ["gpg", "--verify", f"{hashes}.asc", hashes], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr


@pytest.mark.parametrize("same", [True, False])
def test_index_lists_the_file_under_another_spelling(
    capsys, tmp_path, tiny, pypiserver, monkeypatch, same
):
    """`Tinyproj-1.0-…` on the index is the same distribution as our `tinyproj-1.0-…`:
    skipped when the bytes agree, an error when they differ; never a second copy."""
    monkeypatch.setenv("TWINE_USERNAME", pypiserver.username)
    monkeypatch.setenv("TWINE_PASSWORD", pypiserver.password)
    ours = tiny["tinyproj-1.0-py3-none-any.whl"]
    there = pypiserver.packages / ours.name.replace("tinyproj", "TinyProj")
    if same:
        shutil.copy(ours, there)
    else:
        shutil.copy(make_wheel(tmp_path / "o", "tinyproj", "1.0", payload=b"x"), there)
    code, out, err = run(capsys, "--files", "--repository-url", pypiserver.url, "--no-check", ours)
    assert pypiserver.files() == {there.name: sha256(there)}  # nothing added
    if same:
        assert code == 0, err
        assert table(out)[ours.name][2] == "already there"
    else:
        assert code == 1
        assert err.splitlines()[-1] == (
            f"wheel-uploader: error: {ours.name} is already on {pypiserver.simple_url} as "
            f"{there.name} with sha256 {sha256(there)}, ours is {sha256(ours)}; "
            "stopping, nothing overwritten"
        )


def test_index_without_hashes_is_read_credentials_stay_on_its_host(tmp_path, staging, tiny):
    """A file on the index's page with no published sha256 is read to hash it; the
    index's credentials go only to the index's own origin."""
    name = "tinyproj-1.0-py3-none-any.whl"
    staging.no_sha256 = {name}
    session = sources.page_session(0)
    here = UploadTarget((), f"{staging.url}/simple/", auth=("u", "secret"))
    other = UploadTarget((), f"http://localhost:{staging.port}/simple/", auth=("u", "s"))
    listed = publish.existing_files(session, here, "tinyproj", 5.0)
    there = listed[dist_key(name)]
    assert there.sha256 is None
    for target in (here, other):
        assert publish.remote_sha256(session, there, target, 5.0) == sha256(tiny[name])
    assert [p for p in staging.authorized if "/download/" in p] == [
        staging.download_path(name)
    ]  # only the same-origin read carried them

    staging.faults[name] = ["reset"]
    with pytest.raises(FatalError, match=rf"^cannot read {re.escape(there.url)}: "):
        publish.remote_sha256(session, there, here, 5.0)
    session.close()


@pytest.mark.parametrize("bad", ["wheel-dir", "timeout", "hashes"])
def test_unusable_paths_and_timeout_are_one_line_errors(capsys, tmp_path, staging, bad):
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    args = ["-u", staging.simple_url, "--allow-insecure", "-n", "-t", "win", "--no-check"]
    args += ["-w", afile if bad == "wheel-dir" else tmp_path / "wh"]
    args += {"timeout": ["--timeout", "0"], "hashes": ["--hashes", afile / "sums.txt"]}.get(bad, [])
    code, _, err = run(capsys, *args, "tinyproj", "1.0")
    expected = {
        "wheel-dir": (2, f"wheel-uploader: error: -w {afile}: cannot create the wheelhouse: "),
        "timeout": (2, "wheel-uploader: error: --timeout must be more than 0 seconds, not 0.0"),
        "hashes": (1, f"wheel-uploader: error: --hashes {afile / 'sums.txt'}: cannot write: "),
    }[bad]
    assert code == expected[0]
    lines = err.strip().splitlines()
    # the one file fetched before --hashes fails shows its progress line
    fetched = [line for line in lines if line.startswith("downloaded tinyproj-")]
    assert len(fetched) == (bad == "hashes")
    lines = [line for line in lines if line not in fetched]
    assert len(lines) <= 2 and lines[-1].startswith(expected[1])
    assert afile.read_text() == "not a directory\n"


@pytest.mark.parametrize(
    "files",
    [[{"filename": "tinyproj-1.0-py3-none-any.whl"}], "nope",
     [{"filename": "tinyproj-1.0-py3-none-any.whl", "url": "x", "hashes": "zz"}]],
)  # fmt: skip
def test_malformed_pep691_page_is_one_line_error(files):
    url = "http://127.0.0.1:9/simple/tinyproj/"
    with pytest.raises(FatalError) as info:
        sources.parse_json(url, {"meta": {"api-version": "1.1"}, "files": files})
    assert str(info.value) == f"{url}: malformed PEP 691 project page"


def test_stale_partial_file_that_fails_verification_is_fetched_again(
    capsys, tmp_path, staging, tiny
):
    """A .part left by an interrupted run of a since re-staged file: the resumed
    download fails its hash, so the file is fetched once more from the start."""
    name = "tinyproj-1.0-cp311-cp311-win_amd64.whl"
    good = tiny[name].read_bytes()
    (tmp_path / f"{name}.part").write_bytes(b"\0" * (len(good) // 2))
    code, _, err = run(
        capsys, "-u", staging.simple_url, "--allow-insecure", "-w", tmp_path, "-n",
        "-t", "win", "tinyproj", "1.0",
    )  # fmt: skip
    assert code == 0, err
    assert "starting over" in err
    assert (tmp_path / name).read_bytes() == good
    assert names(tmp_path) == [name]
    ranges = [r[2] for r in staging.transfers(name)]
    assert ranges == [f"bytes={len(good) // 2}-", None]


def test_one_distribution_listed_under_two_spellings_is_taken_once(capsys, tmp_path):
    lower = make_wheel(tmp_path / "a", "tinyproj", "1.0")
    upper = make_wheel(tmp_path / "b", "TinyProj", "1.0")
    with StagingServer([upper, lower], package="tinyproj") as server:
        code, out, err = run(
            capsys, "-u", server.listing_url, "--allow-insecure", "-w", tmp_path / "wh",
            "--dry-run", "-n", "tinyproj", "1.0",
        )  # fmt: skip
    assert code == 0, err
    assert [ln.split(" -> ")[-1] for ln in out.splitlines() if ln.startswith("would")] == [
        str(tmp_path / "wh" / upper.name)  # the first listed
    ]


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DONE = re.compile(r"^downloaded (\S+) \(\d+(?:\.\d)? \w*B in \d+\.\d s\)$")


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict[str, Path]:
    """bigproj 1.0 for four platforms, 200 kB each: several 64 KiB chunks to pace."""
    dest = tmp_path_factory.mktemp("big")
    files = [make_wheel(dest, "bigproj", "1.0", tag, payload=os.urandom(200_000))
             for tag in PLATFORMS[:4]]  # fmt: skip
    return {p.name: p for p in files}


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_parallel_downloads_show_bars_on_a_terminal_and_a_line_per_file_otherwise(
    tmp_path, big, terminal
):
    # GIVEN four staged files, each taking ~0.7 s (time for rich to draw its bars)
    with StagingServer(big, package="bigproj", rate=300_000) as server:
        args = [sys.executable, str(SCRIPT), "-u", server.simple_url, "--allow-insecure",
                "-w", str(tmp_path / "wh"), "-n", "-j", "2", "bigproj", "1.0"]  # fmt: skip
        env = clean_env(tmp_path, TWINE_REPOSITORY_URL=NOWHERE, TERM="xterm-256color",
                        COLUMNS="150", LINES="40")  # fmt: skip
        env.pop("NO_COLOR")
        # WHEN they are fetched two at a time, on a terminal or into a pipe
        if terminal:
            out = run_pty(args, env)
        else:
            proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr
            out = proc.stderr
    plain = ANSI.sub("", out).replace("\r", "\n").splitlines()
    # THEN each file leaves one line, and only a terminal gets bars
    assert sorted(m[1] for line in plain if (m := DONE.match(line))) == sorted(big)
    assert not any(line.startswith("[") for line in plain)  # no [k/N] line of its own
    if terminal:
        frames = [ANSI.sub("", f) for f in re.split(r"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)*", out)]
        assert max(len(re.findall(r"bigproj-1\.0-\S+ +━", f)) for f in frames) == 2  # -j 2
        assert any(re.search(r"[0-3]/4 files +━", f) for f in frames)  # the overall bar
        assert re.search(r"4/4 files +━+ +(\S+)/\1 KiB", ANSI.sub("", out))  # all bytes, at its end
    else:
        assert "\x1b" not in out and "━" not in out


# ----------------------------------------------------------------- upload progress


@pytest.fixture(scope="module")
def huge(tmp_path_factory) -> Path:
    """A 10 MB wheel: more than a loopback socket's send buffer (~4 MiB) takes at once."""
    dest = tmp_path_factory.mktemp("huge")
    return make_wheel(dest, "hugeproj", "1.0", payload=os.urandom(10_000_000))


UPLOADED = re.compile(r"^uploaded (\S+) \(([\d.]+) MiB in [\d.]+ s\)$")


def terminal_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = clean_env(tmp_path, TWINE_REPOSITORY_URL=NOWHERE, TERM="xterm-256color",
                    COLUMNS="150", LINES="40", **extra)  # fmt: skip
    env.pop("NO_COLOR")
    return env


@pytest.mark.parametrize("mode", ["terminal", "pipe", "NO_COLOR", "CI"])
def test_upload_draws_a_bar_of_bytes_sent_on_a_terminal_and_a_line_otherwise(
    tmp_path, huge, pypiserver, mode
):
    # GIVEN a 10 MB wheel and an index that reads uploads at 4 MB/s (~2.5 s)
    env = terminal_env(tmp_path, **pypiserver.twine_env())
    if mode in ("NO_COLOR", "CI"):
        env[mode] = "1"
    with UploadProxy(pypiserver.url, rate=4_000_000) as proxy:
        args = [sys.executable, str(SCRIPT), "--files", "--repository-url", proxy.url + "/",
                str(huge)]  # fmt: skip
        # WHEN it is uploaded on a terminal (with or without NO_COLOR/CI) or into a pipe
        if mode == "pipe":
            proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr
            out = proc.stderr + proc.stdout
        else:
            out = run_pty(args, env)
    # THEN it is on the index once, byte for byte, and the summary counts it
    assert pypiserver.files() == {huge.name: sha256(huge)}
    assert len(proxy.bodies) == 1
    plain = ANSI.sub("", out).replace("\r", "\n").splitlines()
    assert "1 of 1 file ended well: 1 uploaded, 0 already there, 0 failed" in plain
    assert [ln for ln in plain if ln.startswith("+ ")] == [  # the one line per file, as ever
        f"+ {VENV_BIN / 'twine'} --no-color upload --non-interactive --repository-url "
        f"{proxy.url}/ --disable-progress-bar {huge}"
    ]
    assert pypiserver.password not in out
    done = [m for ln in plain if (m := UPLOADED.match(ln))]
    if mode == "terminal":
        # a bar of the bytes sent, drawn while they were on their way, and at the end all
        bar = rf"{re.escape(huge.name)} +[━╸╺]+ +([\d.]+)/([\d.]+) MiB"  # rich's, part drawn
        bars = re.findall(bar, ANSI.sub("", out))
        sent = [(float(a), float(b)) for a, b in bars]
        total = sent[-1][1]
        assert abs(total - huge.stat().st_size / 2**20) < 0.1  # the file and its form
        assert any(0 < a < total for a, _ in sent), sent  # mid-transfer
        assert sent[-1] == (total, total)
        assert [(m[1], float(m[2])) for m in done] == [(huge.name, total)]
    else:
        assert "━" not in out and "\x1b[" not in out
        assert done == []  # the "+ twine" line is the line of the file


UPLOAD_FAULTS = {  # fault -> (proxy settings, the error after "upload of FILE failed: ")
    "refused": ({"refuse": {2: 400}}, "HTTPError: 400 Bad Request from {proxy}/"),
    "wrong password": ({}, "HTTPError: 403 Forbidden from {proxy}/; the index refused the login "
                       "given (check TWINE_USERNAME/TWINE_PASSWORD or the .pypirc section named "
                       "with -r)"),
    "cut off": ({"drop": {2}}, "requests.exceptions.ConnectionError: ('Connection aborted.', "
                "RemoteDisconnected('Remote end closed connection without response'))"),
}  # fmt: skip


@pytest.mark.parametrize("fault", list(UPLOAD_FAULTS))
def test_upload_failures_through_the_bar_read_as_they_do_off_a_terminal(
    tmp_path, tiny, pypiserver, fault
):
    # GIVEN two wheels and an index that refuses the second, a wrong password, or a
    # connection cut during the second upload
    first, second = "tinyproj-1.0-cp311-cp311-win_amd64.whl", "tinyproj-1.0-py3-none-any.whl"
    password = "not-the-password-" + pypiserver.password
    if fault != "wrong password":
        password = pypiserver.password
    env = terminal_env(tmp_path, TWINE_USERNAME=pypiserver.username, TWINE_PASSWORD=password)
    settings, why = UPLOAD_FAULTS[fault]
    # (each 2 KiB form read in ~0.25 s: time for rich to draw its bar, 10 times a second)
    with UploadProxy(pypiserver.url, rate=8_000, **settings) as proxy:
        args = [sys.executable, str(SCRIPT), "--files", "--repository-url", proxy.url + "/",
                str(tiny[second]), str(tiny[first])]  # fmt: skip
        # WHEN they are uploaded on a terminal, where each upload draws its bar
        out = run_pty(args, env, status=1)
    plain = ANSI.sub("", out).replace("\r", "\n").splitlines()
    for name in (first,) if fault == "wrong password" else (first, second):
        assert re.search(rf"^{re.escape(name)} +━+ +[\d.]+/[\d.]+ KiB", "\n".join(plain), re.M)
    # THEN the error is twine's, classified as off a terminal; the counts are exact
    failed = first if fault == "wrong password" else second
    error = f"wheel-uploader: error: upload of {failed} failed: {why.format(proxy=proxy.url)}"
    assert [ln for ln in plain if ln.startswith("wheel-uploader: error:")] == [error]
    if fault == "wrong password":
        assert pypiserver.files() == {}
        assert "0 of 2 files ended well: 0 uploaded, 0 already there, 1 failed, 1 not run" in plain
        assert password not in out and pypiserver.password not in out
        return
    assert pypiserver.files() == {first: sha256(tiny[first])}
    assert [m[1] for ln in plain if (m := re.match(r"uploaded (\S+) \(", ln))] == [first]
    assert "1 of 2 files ended well: 1 uploaded, 0 already there, 1 failed" in plain
    assert pypiserver.password not in out
    # AND a second run uploads only what is missing, each file once
    out = run_pty([*args[:4], pypiserver.url, *args[5:]], env)
    assert pypiserver.files() == {n: sha256(tiny[n]) for n in (first, second)}
    assert "2 of 2 files ended well: 1 uploaded, 1 already there, 0 failed" in ANSI.sub("", out)


@pytest.mark.parametrize("case", ["twine behind a shell script", "-q"])
def test_upload_on_a_terminal_without_a_bar(tmp_path, tiny, pypiserver, case):
    # GIVEN a terminal, and a twine whose #! is no Python to hook (a wrapper), or -q
    name = "tinyproj-1.0-py3-none-any.whl"
    env = terminal_env(tmp_path, **pypiserver.twine_env())
    extra = ["-q"] if case == "-q" else []
    if case != "-q":
        wrapper = tmp_path / "twine-wrapper"
        wrapper.write_text(f'#!/bin/sh\nexec "{VENV_BIN / "twine"}" "$@"\n')
        wrapper.chmod(0o755)
        env["NW_TWINE"] = str(wrapper)
    with UploadProxy(pypiserver.url, rate=8_000) as proxy:
        args = [sys.executable, str(SCRIPT), *extra, "--files", "--repository-url",
                proxy.url + "/", str(tiny[name])]  # fmt: skip
        # WHEN a file is uploaded
        out = run_pty(args, env)
    # THEN it is uploaded as ever, with no bar drawn
    assert pypiserver.files() == {name: sha256(tiny[name])}
    assert "━" not in out
    plain = ANSI.sub("", out).replace("\r", "\n").splitlines()
    assert "1 of 1 file ended well: 1 uploaded, 0 already there, 0 failed" in plain
    assert len([ln for ln in plain if ln.startswith("+ ")]) == (case != "-q")
