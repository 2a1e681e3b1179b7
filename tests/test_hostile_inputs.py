"""Hostile files and a newcomer's mistakes that the audit and the uploader once let
through: an extension module that holds no binary, a RECORD naming paths outside
the install root, uploader arguments that reached the network before they were
checked (issue 14: settings checked first, one line, non-zero exit)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT, LoopbackServer, clean_env, make
from numpy_wheels.audit import check_wheel as audit
from test_check_wheel import make_wheel

SCRIPT = str(ROOT / "scripts" / "check_wheel.py")
UPLOADER = str(ROOT / "scripts" / "wheel_uploader.py")
LINUX = "cp311-cp311-manylinux_2_17_x86_64"
WINDOWS = "cp311-cp311-win_amd64"


@pytest.mark.parametrize(
    ("tag", "member", "data", "fmt"),
    [
        (LINUX, "pkg/_x.cpython-311-x86_64-linux-gnu.so", b"not an ELF file\n", "ELF"),
        (LINUX, "pkg/_x.abi3.so", b"", "ELF"),
        (WINDOWS, "pkg/_x.cp311-win_amd64.pyd", b"MZ" + bytes(126), "PE"),  # MZ, no PE header
    ],
)  # fmt: skip
def test_extension_module_that_is_no_binary_fails(tmp_path, tag, member, data, fmt):
    # GIVEN a platform wheel whose extension module is text, empty or a bare DOS header
    wheel = make_wheel(tmp_path, "pkg", "1.0", tag, {member: data})
    # THEN the audit fails it (before: PASS, and the import failed after installing)
    assert audit(wheel).failures == [
        f"{member}: extension module is not a loadable {fmt} binary "
        "(the interpreter cannot import it)"
    ]


def test_other_non_binary_files_named_so_still_pass(tmp_path):
    # a linker script named like a library, and a pure wheel's data file, are no imports
    script = {"pkg/lib/libfoo.so": b"INPUT(libfoo.so.1)\n"}
    linux = make_wheel(tmp_path, "pkg", "1.0", LINUX, script)
    pure = make_wheel(tmp_path, "pure", "1.0", "py3-none-any", {"pure/x.abi3.so": b"data"})
    assert audit(linux).failures == [] and audit(pure).failures == []


@pytest.mark.parametrize(
    ("listed", "problem"),
    [("/etc/passwd", "absolute path"), ("../x.py", "'..' in path"),
     ("pkg/../../x.py", "'..' in path"), ("/pkg/__init__.py", "absolute path")],
)  # fmt: skip
def test_record_path_outside_the_install_root_fails(tmp_path, listed, problem):
    # GIVEN a wheel whose RECORD lists a path outside site-packages (the last one once
    # matched pkg/__init__.py once its leading slash was stripped: a PASS)
    wheel = make_wheel(tmp_path, "pkg", "1.0", "py3-none-any", {"pkg/__init__.py": b"x = 1\n"})
    with zipfile.ZipFile(wheel) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    record = "pkg-1.0.dist-info/RECORD"
    if listed == "/pkg/__init__.py":
        members[record] = members[record].replace(b"pkg/__init__.py,", b"/pkg/__init__.py,")
        line = 1
    else:
        members[record] += f"{listed},,\n".encode()
        line = 5
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    # THEN the CLI names RECORD, the line and the path, and exits 1, no traceback
    proc = subprocess.run([sys.executable, SCRIPT, str(wheel)], capture_output=True, text=True,
                          env=clean_env(tmp_path), timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    expected = f"{record}: line {line} lists {listed}, outside the install root ({problem})"
    assert expected in [x.strip() for x in proc.stdout.splitlines()], proc.stdout


class _Counting(LoopbackServer):
    def respond(self, handler, route) -> None:
        handler.send_error(404)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["../x", "1.0"], "PROJECT '../x' is not a valid project name"),
        (["", "1.0"], "PROJECT '' is not a valid project name"),
        (["a/b", "1.0"], "PROJECT 'a/b' is not a valid project name"),
        (["--retries", "0", "pkg", "1.0"], "--retries must be at least 1, not 0"),
        (["-w", "{afile}", "pkg", "1.0"],
         "-w {afile}: cannot create the wheelhouse: not a directory"),
        (["-w", "{afile}/sub", "pkg", "1.0"],
         "-w {afile}/sub: cannot create the wheelhouse: {afile} is not a directory"),
    ],
)  # fmt: skip
def test_uploader_mistakes_stop_before_any_request(tmp_path, args, message):
    afile = tmp_path / "afile"
    afile.write_text("a file\n")
    with _Counting() as server:
        url = f"{server.base}/simple/pkg/"
        argv = [a.format(afile=afile) for a in args]
        proc = subprocess.run(
            [sys.executable, UPLOADER, "--allow-insecure", "-n", "-u", url, *argv],
            capture_output=True, text=True, env=clean_env(tmp_path), timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"wheel-uploader: error: {message.format(afile=afile)}"
    assert server.hits == {}  # checked before the staging location was read
    assert afile.read_text() == "a file\n"


def test_wheel_filename_with_terminal_escapes_is_refused_and_shown_escaped(tmp_path):
    # GIVEN a good wheel renamed so its platform tag carries an OSC title sequence
    # (packaging parses it: tags are not checked character by character)
    good = make_wheel(tmp_path, "pkg", "1.0", "py3-none-any", {"pkg/__init__.py": b""})
    hostile = good.with_name("pkg-1.0-py3-none-any\x1b]0;owned\x07.whl")
    good.rename(hostile)
    proc = subprocess.run([sys.executable, SCRIPT, str(hostile)], capture_output=True,
                          env=clean_env(tmp_path), timeout=120)  # fmt: skip
    # THEN it fails (it passed) and no escape byte reaches the terminal
    assert proc.returncode == 1
    assert b"\x1b" not in proc.stdout + proc.stderr and b"\x07" not in proc.stdout
    assert proc.stdout.decode().splitlines() == [
        "FAIL pkg-1.0-py3-none-any\\x1b]0;owned\\x07.whl",
        "  pkg-1.0-py3-none-any\\x1b]0;owned\\x07.whl: not a wheel filename "
        "(control character or undecodable byte in it)",
    ]


@pytest.mark.parametrize("where", ["..", "home", "checkout", "with space"])
def test_make_clean_removes_only_the_toolkits_files_from_wheel_sdir(tmp_path, where):
    # GIVEN a WHEEL_SDIR a newcomer points at a directory of their own (before: rm -rf
    # of it, so WHEEL_SDIR=.. took the checkout's parent, WHEEL_SDIR=numpy the source)
    work = tmp_path / "work"
    sdir = {"..": tmp_path, "home": tmp_path / "home", "checkout": tmp_path / "numpy",
            "with space": tmp_path / "my wheels"}[where]  # fmt: skip
    (sdir / "failed").mkdir(parents=True, exist_ok=True)
    for name in ("a-1.0-py3-none-any.whl", "failed/b-1.0-py3-none-any.whl", "manifest.sha256",
                 "build-report.json", "build-provenance.intoto.json",
                 "build-provenance.intoto.json.sig"):  # fmt: skip
        (sdir / name).write_text("toolkit's\n")
    if where != "with space":
        (sdir / "precious.txt").write_text("mine\n")
    (work / "build").mkdir(parents=True)
    # WHEN the recipe of `make clean` runs (its commands, in a scratch directory, so
    # that this checkout's build/ stays)
    recipe = make("-s", "-n", "clean", f"WHEEL_SDIR={sdir}", tmp_path=tmp_path)
    assert recipe.returncode == 0, recipe.stderr
    subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", recipe.stdout], cwd=work, check=True)
    # THEN build/ and the toolkit's files are gone, the user's file stays
    assert not (work / "build").exists()
    if where == "with space":
        assert not sdir.exists()  # nothing else in it: the directory goes too
    else:
        assert sorted(p.name for p in sdir.iterdir() if p.name not in ("work", "home")) == [
            "precious.txt"
        ]
        assert (sdir / "precious.txt").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("setting", "goal", "under"),
    [("WHEEL_SDIR", "wheels", ""), ("WHEEL_SDIR", "wheels", "/sub"),
     ("NW_WORK_DIR", "wheels", ""), ("REPO_DIR", "source", "")],
)  # fmt: skip
def test_directory_setting_naming_a_file_is_one_line_before_any_work(tmp_path, setting, goal,
                                                                     under):  # fmt: skip
    # GIVEN a directory setting that names a file (before: a traceback, after the
    # banner; WHEEL_SDIR only once the build was done).  MB_ML_LIBC=musllinux on this
    # glibc host is refused right after: the make never gets as far as building.
    afile = tmp_path / "afile"
    afile.write_text("a file\n")
    value = f"{afile}{under}"
    proc = make(goal, f"{setting}={value}", "MB_ML_LIBC=musllinux", tmp_path=tmp_path, timeout=300)
    # THEN one line names the setting and what is wrong, exit 2
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    problem = "not a directory" if not under else f"{afile} is not a directory"
    assert f"numpy-wheels: error: {setting}={value!r}: {problem}" in proc.stderr.splitlines()
    assert afile.read_text() == "a file\n"


@pytest.mark.parametrize("body", [b"hello", b"\x1f\x8b not really gzip"])
def test_openblas_wheel_that_is_no_zip_is_one_line(tmp_path, body):
    # GIVEN an index naming a scipy-openblas "wheel" whose bytes (matching its hash)
    # are no zip: tarfile's guesses once made a five-line error
    from test_safety_servers import STEM, Hostile, json_index, openblas

    name = f"{STEM}manylinux2014_x86_64.whl"

    def serve(handler, server) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with Hostile() as server:
        server.routes["/simple/scipy-openblas64/"] = json_index(
            [{"filename": name, "url": f"/files/{name}",
              "hashes": {"sha256": hashlib.sha256(body).hexdigest()}}]
        )  # fmt: skip
        server.routes[f"/files/{name}"] = (serve,)
        proc = openblas(tmp_path, server.base)
    # THEN one error line, and nothing prepared for a later run to trust
    assert proc.returncode == 1
    errors = [x for x in proc.stderr.splitlines() if not x.startswith("downloaded ")]
    assert errors == [f"openblas_support.py: error: {name} is not a readable zip archive"]
    prepared = tmp_path / "cache" / "prepared"
    assert not prepared.exists() or not any(prepared.iterdir())


def test_tarball_that_is_no_archive_is_one_line(tmp_path):
    from numpy_wheels.archive import safe_extract
    from numpy_wheels.errors import FatalError

    archive = tmp_path / "openblas-v0.3.99.tar.gz"
    archive.write_bytes(b"<html>a login page</html>")
    with pytest.raises(FatalError) as caught:
        safe_extract(archive, tmp_path / "out")
    assert str(caught.value) == (
        "openblas-v0.3.99.tar.gz is not a readable tar or zip archive "
        "(file could not be opened successfully)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openblas-v0.3.99.tar.gz"]


def _local_repo(tmp_path):
    repo = tmp_path / "upstream"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)  # fmt: skip
    return repo


@pytest.mark.parametrize("setting", ["BUILD_COMMIT", "NIGHTLY_BUILD_COMMIT"])
def test_ref_that_is_a_git_option_is_refused_before_git_runs(tmp_path, setting):
    # GIVEN a ref that git would read as an option: --upload-pack runs a command
    # (before: it ran, and `make source` reported success)
    repo, pwned = _local_repo(tmp_path), tmp_path / "pwned"
    ref = f"--upload-pack=touch {pwned}; git-upload-pack"
    proc = make("source", "SOURCE=git", f"{setting}={ref}", f"REPO_URL={repo}",
                f"REPO_DIR={tmp_path / 'src'}", f"NW_WORK_DIR={tmp_path / 'work'}",
                tmp_path=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 2
    assert f"numpy-wheels: error: {setting} {ref!r} is not a git tag, branch or hash" in (
        proc.stderr
    )
    assert not pwned.exists() and not (tmp_path / "src").exists()


def test_fetch_passes_the_ref_after_the_options_end(tmp_path):
    # the source step's own guard, should a ref reach it unchecked
    from numpy_wheels.build.source import _fetch_ref
    from numpy_wheels.errors import FatalError

    repo, pwned = _local_repo(tmp_path), tmp_path / "pwned"
    clone = tmp_path / "clone"
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "remote", "add", "origin", str(repo)], check=True)
    with pytest.raises(FatalError):
        _fetch_ref(clone, f"--upload-pack=touch {pwned}; git-upload-pack", str(repo))
    assert not pwned.exists()


def test_uploader_files_given_a_directory_says_so(tmp_path):
    wheel_dir = tmp_path / "pkg-1.0-py3-none-any.whl"
    wheel_dir.mkdir()
    proc = subprocess.run([sys.executable, UPLOADER, "-n", "--files", str(wheel_dir)],
                          capture_output=True, text=True, env=clean_env(tmp_path),
                          timeout=60)  # fmt: skip
    assert (proc.returncode, proc.stderr.strip()) == (
        2, f"wheel-uploader: error: {wheel_dir}: not a regular file"
    )  # fmt: skip


def test_metadata_too_large_is_said_once(tmp_path):
    # GIVEN a METADATA past the audit's bound, correctly listed in RECORD
    from numpy_wheels.audit import policy

    big = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n\n" + b"x" * (16 * policy.MAX_TEXT)
    wheel = make_wheel(tmp_path, "pkg", "1.0", "py3-none-any", {"pkg/__init__.py": b""})
    with zipfile.ZipFile(wheel) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members["pkg-1.0.dist-info/METADATA"] = big
    out = io.StringIO()
    for name, data in members.items():
        if not name.endswith("RECORD"):
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            csv.writer(out, lineterminator="\n").writerow([name, f"sha256={digest.decode()}",
                                                         len(data)])  # fmt: skip
    members["pkg-1.0.dist-info/RECORD"] = (out.getvalue() + "pkg-1.0.dist-info/RECORD,,\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    # THEN one failure (before: three more, about the empty metadata it was taken for)
    assert audit(wheel).failures == [
        f"pkg-1.0.dist-info/METADATA: {len(big)} bytes, too large for a metadata file"
    ]
