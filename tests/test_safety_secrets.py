"""Issue 12, items 6-9: tokens and passwords never reach argv, output, files or
another origin.

`make stage` with a stub `anaconda` (anaconda.org is unreachable) and a stub
twine that record what they were given, under `bash -x` and SHELLOPTS=xtrace;
openblas_support.py against a loopback index reached with user:password@;
wheel-uploader's credentials against two loopback origins."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, LoopbackServer, clean_env
from numpy_wheels.files import error_reason, sanitize_url
from numpy_wheels.upload import publish, sources
from numpy_wheels.upload.target import resolve_target
from staging_server import make_wheel

TOKEN = "tok-9c1e-very-secret"
PASSWORD = "pw-s3cret'q\"uote"


def write_manifest(wheelhouse: Path) -> None:
    lines = [
        f"{hashlib.sha256(w.read_bytes()).hexdigest()}  {w.name}\n"
        for w in sorted(wheelhouse.glob("*.whl"))
    ]
    (wheelhouse / "manifest.sha256").write_text("".join(lines))


@pytest.fixture
def wheelhouse(tmp_path) -> Path:
    dest = tmp_path / "wheelhouse"
    make_wheel(dest, "tinyproj", "1.0")
    write_manifest(dest)
    return dest


@pytest.fixture
def stubs(tmp_path) -> Path:
    """`anaconda` and `twine` that record argv, the environment's secrets, and their
    parent's command line (what `ps` shows of the process that started them)."""
    bindir = tmp_path / "stubbin"
    bindir.mkdir()
    for name in ("anaconda", "twine"):
        stub = bindir / name
        stub.write_text(
            "#!/bin/bash\n"
            f'{{ printf "argv:%s\\n" "$@"; tr "\\0" " " < /proc/$PPID/cmdline; echo;\n'
            f'  echo "token:${{ANACONDA_API_TOKEN:-}}"; echo "password:${{TWINE_PASSWORD:-}}"; }}'
            f' > "{tmp_path}/{name}.log"\n'
        )
        stub.chmod(0o755)
    return bindir


def stage(tmp_path: Path, wheelhouse: Path, stubs: Path, *bash_args: str, **env: str):
    full = clean_env(tmp_path, WHEEL_SDIR=str(wheelhouse), NW_PYTHON=sys.executable,
                     STAGE_PROJECT="tinyproj", **env)  # fmt: skip
    full["PATH"] = f"{stubs}:{full['PATH']}"
    return subprocess.run(["bash", *bash_args, "scripts/stage.sh"], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


# ------------------------------------------------------ 6. never on a command line


def test_anaconda_token_goes_through_the_environment(tmp_path, wheelhouse, stubs):
    proc = stage(tmp_path, wheelhouse, stubs, ANACONDA_TOKEN=TOKEN)
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "anaconda.log").read_text()
    assert f"token:{TOKEN}" in log.splitlines()  # anaconda-client reads ANACONDA_API_TOKEN
    argv_and_parent = "\n".join(ln for ln in log.splitlines() if not ln.startswith("token:"))
    assert TOKEN not in argv_and_parent


@pytest.fixture
def empty_index():
    """An index that has nothing yet (every page 404): each wheel goes to twine."""
    with Index() as index:
        yield index.base.replace("http://", f"http://stager:{PASSWORD}@") + "/"


def test_index_password_goes_through_the_environment(tmp_path, wheelhouse, stubs, empty_index):
    proc = stage(tmp_path, wheelhouse, stubs, STAGE_REPOSITORY_URL=empty_index,
                 NW_TWINE=str(stubs / "twine"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "twine.log").read_text()
    assert f"password:{PASSWORD}" in log.splitlines()
    argv_and_parent = "\n".join(ln for ln in log.splitlines() if not ln.startswith("password:"))
    assert "s3cret" not in argv_and_parent  # neither twine's argv nor wheel_uploader's
    assert "s3cret" not in proc.stdout + proc.stderr


# ------------------------------------------------------------- 7. under xtrace


@pytest.mark.parametrize("how", ["bash -x", "SHELLOPTS=xtrace"])
@pytest.mark.parametrize("target", ["anaconda", "twine", "anaconda dry-run"])
def test_no_secret_under_xtrace(tmp_path, wheelhouse, stubs, empty_index, how, target):
    env = {"ANACONDA_TOKEN": TOKEN}
    if target == "twine":
        env |= {"STAGE_REPOSITORY_URL": empty_index, "NW_TWINE": str(stubs / "twine")}
    if target.endswith("dry-run"):
        env["DRY_RUN"] = "1"
    args = ("-x",) if how == "bash -x" else ()
    if how.startswith("SHELLOPTS"):
        env["SHELLOPTS"] = "xtrace"
    proc = stage(tmp_path, wheelhouse, stubs, *args, **env)
    assert "+ " in proc.stderr  # tracing was on
    for secret in (TOKEN, "s3cret"):
        assert secret not in proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr
    if target == "anaconda":
        assert f"token:{TOKEN}" in (tmp_path / "anaconda.log").read_text()
    if target == "twine":
        assert f"password:{PASSWORD}" in (tmp_path / "twine.log").read_text()


# -------------------------------------------- 8. not in files, not in tracebacks


class Index(LoopbackServer):
    """A PEP 503 index: ``routes[path] = (status, content type, body)``; records
    each request's path and Authorization header."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []

    def respond(self, handler, route) -> None:
        self.seen.append((handler.path, handler.headers.get("Authorization")))
        status, ctype, body = route or (404, "text/plain", b"no")
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def openblas(tmp_path: Path, index: Index, *args: str):
    url = index.base.replace("http://", f"http://user:{PASSWORD}@") + "/simple/"
    env = clean_env(tmp_path, NW_OPENBLAS_INDEX_URL=url, NW_OPENBLAS_CACHE=str(tmp_path / "c"),
                    NW_OPENBLAS_RETRIES="1", OPENBLAS_VERSION="0.3.99.1")  # fmt: skip
    script = ROOT / "scripts" / "openblas_support.py"
    return subprocess.run([sys.executable, str(script), "--plat", "x86_64", "--os", "linux", *args],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


WHL = "scipy_openblas64-0.3.99.1-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"


def test_index_credentials_are_not_cached_nor_printed(tmp_path):
    with Index() as index:
        page = f'<a href="/files/{WHL}#sha256={"a" * 64}">{WHL}</a>'.encode()
        index.routes["/simple/scipy-openblas64/"] = (200, "text/html", page)
        proc = openblas(tmp_path, index)
    assert proc.returncode == 1  # the file itself is not there (404): that is all
    cached = list((tmp_path / "c" / "index").glob("*.json"))
    assert len(cached) == 1
    text = cached[0].read_text()
    assert "s3cret" not in text and "user:" not in text
    assert json.loads(text)["files"][0]["url"] == f"{index.base}/files/{WHL}"
    assert "s3cret" not in proc.stdout + proc.stderr
    # the file was asked for with the index's credentials (same origin)
    assert [auth is not None for path, auth in index.seen] == [True, True]


def test_unexpected_content_type_is_one_masked_line(tmp_path):
    with Index() as index:
        index.routes["/simple/scipy-openblas64/"] = (200, "application/x-weird", b"??")
        proc = openblas(tmp_path, index)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(
        "openblas_support.py: error: cannot read the index http://********@127.0.0.1:"
    )
    assert "UnsupportedContentTypeError" in line
    assert "s3cret" not in proc.stderr


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://u:s3cret@[::1/x", "http://********@[::1/x"),  # no parser accepts it
        ("https://u:pa'ss3cret@host/x", "https://********@host/x"),
        ('https://u:pa"s3cret@host/x', "https://********@host/x"),
        ("https://u:pa/s3cret@host/x", "https://********@host/x"),
        ("https://u:s3cret@host:8080/a@b", "https://********@host:8080/a@b"),
        ("https://host:8080/path@x", "https://host:8080/path@x"),  # no userinfo: unchanged
        ("Invalid URL 'https://u:p'ss3cret@h/': No host",
         "Invalid URL 'https://********@h/': No host"),
    ],
)  # fmt: skip
def test_sanitize_url_masks_what_no_parser_accepts(text, shown):
    assert sanitize_url(text) == shown
    assert error_reason(ValueError(text)) == shown


# ------------------------------------------------------ 9. only to their origin


def test_upload_credentials_go_to_their_own_origin_only(monkeypatch):
    monkeypatch.delenv("TWINE_REPOSITORY_URL", raising=False)
    with Index() as upload, Index() as other:
        page = b'<a href="/files/tinyproj-1.0-py3-none-any.whl">tinyproj-1.0-py3-none-any.whl</a>'
        for srv in (upload, other):
            srv.routes["/simple/tinyproj/"] = (200, "text/html", page)
        with_creds = upload.base.replace("http://", f"http://stager:{PASSWORD}@") + "/"
        session = sources.page_session(0)
        # --repository-url A --index-url B: B never gets A's password
        target = resolve_target(repository_url=with_creds, index_url=f"{other.base}/simple/")
        publish.existing_files(session, target, "tinyproj", 5.0)
        assert other.seen == [("/simple/tinyproj/", None)]
        # and A's own index (derived from A) does
        target = resolve_target(repository_url=with_creds)
        publish.existing_files(session, target, "tinyproj", 5.0)
        assert [auth is not None for _, auth in upload.seen] == [True]
        assert "s3cret" not in " ".join(target.twine_args)
        session.close()
