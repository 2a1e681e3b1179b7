"""The foundation modules on their own: net.download against a loopback HTTP
server with scripted faults, archive.safe_extract against crafted tar and zip
archives, files.atomic_write and file_hash; verbosity."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import LoopbackServer, closed_port
from numpy_wheels import errors, files, log, net
from numpy_wheels.archive import safe_extract

# ------------------------------------------------------------------------- download


class Server(LoopbackServer):
    """Serves ``routes[path] = (kind, body)``; records Range headers."""

    def __init__(self) -> None:
        super().__init__()
        self.ranges: list[str | None] = []

    def respond(self, handler, route) -> None:
        self.ranges.append(handler.headers.get("Range"))
        kind, body = route or ("404", b"")
        if kind.isdigit():
            handler.send_error(int(kind))
            return
        start = 0
        if kind == "ranged" and handler.headers.get("Range"):
            start = int(handler.headers["Range"].split("=")[1].rstrip("-"))
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) - start))
        handler.end_headers()
        handler.wfile.write(body[start:])


@pytest.fixture
def server():
    with Server() as srv:
        yield srv


BODY = bytes(range(256)) * 64


def test_download_verifies_and_renames(server, tmp_path):
    server.routes["/f"] = ("ok", BODY)
    dest = net.download(
        f"{server.base}/f", tmp_path / "f", sha256=hashlib.sha256(BODY).hexdigest(), size=len(BODY)
    )
    assert dest.read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_download_resumes_a_part_file(server, tmp_path):
    server.routes["/f"] = ("ranged", BODY)
    (tmp_path / "f.part").write_bytes(BODY[:1000])
    net.download(f"{server.base}/f", tmp_path / "f", sha256=hashlib.sha256(BODY).hexdigest())
    assert (tmp_path / "f").read_bytes() == BODY
    assert server.ranges == ["bytes=1000-"]


def test_download_rewrites_when_the_range_is_ignored(server, tmp_path):
    server.routes["/f"] = ("ok", BODY)
    (tmp_path / "f.part").write_bytes(b"stale" * 10)
    net.download(f"{server.base}/f", tmp_path / "f", sha256=hashlib.sha256(BODY).hexdigest())
    assert (tmp_path / "f").read_bytes() == BODY


def test_download_hash_mismatch_leaves_nothing(server, tmp_path):
    server.routes["/f"] = ("ok", BODY)
    with pytest.raises(errors.DownloadError, match=r"^sha256 mismatch for .*/f: expected 0+, got "):
        net.download(f"{server.base}/f", tmp_path / "f", sha256="0" * 64, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_download_4xx_is_not_retried(server, tmp_path):
    with pytest.raises(errors.HTTPStatusError, match=r"/missing: HTTP 404 Not Found$"):
        net.download(f"{server.base}/missing", tmp_path / "f", backoff=0)
    assert server.hits == {"/missing": 1}
    assert list(tmp_path.iterdir()) == []


def test_download_5xx_is_retried_then_fails(server, tmp_path):
    server.routes["/f"] = ("503", b"")
    with pytest.raises(errors.HTTPStatusError, match="HTTP 503"):
        net.download(f"{server.base}/f", tmp_path / "f", retries=3, backoff=0)
    assert server.hits == {"/f": 3}


def test_download_never_prints_credentials(tmp_path):
    # A URL requests cannot even parse: its error message quotes the whole URL.
    url = "http://user:s3cret@127.0.0.1:99999/f"
    with pytest.raises(errors.DownloadError) as info:
        net.download(url, tmp_path / "f", retries=1)
    assert "s3cret" not in str(info.value)
    assert "********@127.0.0.1:99999" in str(info.value)


def test_download_bad_url_is_not_retried(tmp_path, capsys):
    # A URL that can never work fails at once, not after the backoff schedule.
    with pytest.raises(errors.DownloadError, match="after 1 attempts"):
        net.download("htp://example.invalid/f", tmp_path / "f", retries=3, backoff=1)
    assert "retrying" not in capsys.readouterr().err


def test_sanitize_url():
    assert files.sanitize_url("https://u:p@host/x?y") == "https://********@host/x?y"
    assert files.sanitize_url("https://host/x") == "https://host/x"


# --------------------------------------------------------------------- safe_extract


def make_tar(path: Path, members: list[tuple[str, str, str | bytes]]) -> Path:
    """members: (kind, name, data-or-linkname) with kind file | dir | sym | hard | chr."""
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = value if isinstance(value, bytes) else value.encode()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "sym": tarfile.SYMTYPE,
                "hard": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
            }[kind]
            info.linkname = value if isinstance(value, str) else ""
            tar.addfile(info)
    return path


@pytest.fixture
def box(tmp_path):
    """tmp_path/box/dest is the target; tmp_path/box holds nothing else afterwards."""
    (tmp_path / "box").mkdir()
    return tmp_path / "box"


def everything_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_extract_tar_with_prefix_and_links(tmp_path, box):
    archive = make_tar(
        tmp_path / "a.tar.gz",
        [
            ("dir", "/usr/local/lib", ""),
            ("file", "/usr/local/lib/libx.so.1", b"ELF"),
            ("sym", "/usr/local/lib/libx.so", "libx.so.1"),
            ("hard", "/usr/local/lib/libx-copy.so", "/usr/local/lib/libx.so.1"),
            ("file", "/usr/local/include/x.h", b"h"),
        ],
    )
    dest = safe_extract(archive, box / "dest", strip_prefix="/usr/local")
    assert everything_under(dest) == [
        "include", "include/x.h", "lib", "lib/libx-copy.so", "lib/libx.so", "lib/libx.so.1",
    ]  # fmt: skip
    assert os.readlink(dest / "lib" / "libx.so") == "libx.so.1"
    assert (dest / "lib" / "libx-copy.so").read_bytes() == b"ELF"
    assert everything_under(box) == ["dest", *(f"dest/{p}" for p in everything_under(dest))]


def test_extract_tar_with_a_link_listed_twice(tmp_path, box):
    # The second copy replaces the link itself, not the file the first one points at.
    link = ("sym", "lib/libx.so", "libx.so.1")
    archive = make_tar(tmp_path / "a.tar.gz", [("file", "lib/libx.so.1", b"ELF"), link, link])
    dest = safe_extract(archive, box / "dest")
    assert (dest / "lib" / "libx.so.1").read_bytes() == b"ELF"
    assert not (dest / "lib" / "libx.so.1").is_symlink()
    assert os.readlink(dest / "lib" / "libx.so") == "libx.so.1"


def test_extract_replaces_an_old_tree(tmp_path, box):
    (box / "dest" / "old").mkdir(parents=True)
    archive = make_tar(tmp_path / "a.tar.gz", [("file", "new", b"n")])
    safe_extract(archive, box / "dest")
    assert everything_under(box) == ["dest", "dest/new"]


def test_extracted_tree_is_not_private(tmp_path, box):
    # Like tar: the new directory follows the umask, not mkdtemp's 0700.
    archive = make_tar(tmp_path / "a.tar.gz", [("file", "x", b"x")])
    old = os.umask(0o022)
    try:
        dest = safe_extract(archive, box / "dest")
    finally:
        os.umask(old)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("file", "../evil", b"x")], "archive member '../evil' escapes the target directory"),
        ([("file", "/abs/evil", b"x")], "archive member '/abs/evil' escapes the target directory"),
        ([("sym", "evil", "../../x")], "archive link 'evil' -> '../../x' points outside"),
        ([("sym", "evil", "/etc")], "archive link 'evil' -> '/etc' points outside"),
        ([("hard", "evil", "../x")], "archive member '../x' escapes the target directory"),
        ([("chr", "null", "")], "archive member 'null' is a device or FIFO (refused)"),
        # Each link is harmless when checked alone; together "a/b" is created through
        # the link "a" -> "." as "b" -> "..", which would leave the target.
        ([("sym", "a", "."), ("sym", "a/b", "..")], "points outside the target directory"),
        # ... and a third link then written through "b" would land outside.
        (
            [("sym", "a", "."), ("sym", "a/b", ".."), ("sym", "b/evil", "x")],
            "points outside the target directory",
        ),
        # A link whose meaning changes when a later link is created.
        ([("sym", "x", "d/.."), ("sym", "d", ".")], "points outside the target directory"),
        # A hard link read through links: would copy a file from outside into the tree.
        (
            [("sym", "a", "."), ("sym", "a/b", ".."), ("hard", "copy", "a/b/secret")],
            "outside the target directory",
        ),
    ],
)
def test_extract_refuses_hostile_tar(tmp_path, box, members, message):
    (tmp_path / "secret").write_text("secret")
    archive = make_tar(tmp_path / "a.tar.gz", [("file", "ok", b"ok"), *members])
    with pytest.raises(errors.FatalError, match=re.escape(message)):
        safe_extract(archive, box / "dest")
    assert everything_under(box) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "box", "secret"]


@pytest.mark.parametrize(
    "members",
    [
        [("file", "a", b"file"), ("file", "a/b", b"under a file")],
        [("file", "lib/x", b"x"), ("sym", "lib", "other")],
    ],
)
def test_extract_conflicting_members_is_one_error(tmp_path, box, members):
    archive = make_tar(tmp_path / "a.tar.gz", members)
    with pytest.raises(errors.FatalError, match=r"^a\.tar\.gz: cannot extract "):
        safe_extract(archive, box / "dest")
    assert everything_under(box) == []


def make_zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def test_extract_zip(tmp_path, box):
    archive = make_zip(tmp_path / "a.zip", [("64/bin/x.dll", b"MZ", 0o100755), ("64/y", b"y", 0)])
    dest = safe_extract(archive, box / "dest", strip_prefix="64")
    assert everything_under(dest) == ["bin", "bin/x.dll", "y"]
    assert stat.S_IMODE((dest / "bin" / "x.dll").stat().st_mode) == 0o755


@pytest.mark.parametrize(
    ("name", "mode", "message"),
    [
        ("../evil", 0o100644, "escapes the target directory"),
        ("/evil", 0o100644, "escapes the target directory"),
        ("C:/evil", 0o100644, "escapes the target directory"),
        ("..\\evil", 0o100644, "escapes the target directory"),
        ("link", 0o120777, "is a symlink"),
    ],
)
def test_extract_refuses_hostile_zip(tmp_path, box, name, mode, message):
    archive = make_zip(tmp_path / "a.zip", [("ok", b"ok", 0o100644), (name, b"/etc", mode)])
    with pytest.raises(errors.FatalError, match=message):
        safe_extract(archive, box / "dest")
    assert everything_under(box) == []


def test_extract_not_an_archive(tmp_path, box):
    (tmp_path / "junk.tar.gz").write_bytes(b"junk")
    with pytest.raises(errors.FatalError, match=r"^junk\.tar\.gz is not a readable tar"):
        safe_extract(tmp_path / "junk.tar.gz", box / "dest")
    assert everything_under(box) == []


def test_extract_truncated_tar(tmp_path, box):
    data = make_tar(tmp_path / "a.tar.gz", [("file", "x", os.urandom(100_000))]).read_bytes()
    (tmp_path / "a.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(errors.FatalError, match="corrupt archive"):
        safe_extract(tmp_path / "a.tar.gz", box / "dest")
    assert everything_under(box) == []


# ---------------------------------------------------------------------- atomic_write


def test_atomic_write_is_whole_or_nothing(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), files.atomic_write(target) as out:
        out.write("half")
        raise RuntimeError
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_follows_the_umask(tmp_path):
    # A report or .pc written by root in a container must stay readable by the user.
    old = os.umask(0o022)
    try:
        with files.atomic_write(tmp_path / "report.json") as out:
            out.write("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644


def test_file_hash(tmp_path):
    (tmp_path / "f").write_bytes(BODY)
    assert files.file_hash(tmp_path / "f") == hashlib.sha256(BODY).hexdigest()
    assert files.file_hash(tmp_path / "f", "md5") == hashlib.md5(BODY).hexdigest()


def test_closed_port_is_retried_then_one_error(tmp_path):
    port = closed_port()
    # one line naming the URL once, and why
    reason = r"Failed to establish a new connection: \[Errno 111\] Connection refused$"
    with pytest.raises(errors.DownloadError, match=rf"failed after 2 attempts: {reason}"):
        net.download(f"http://127.0.0.1:{port}/f", tmp_path / "f", retries=2, backoff=0)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- verbosity


def test_verbose_and_quiet_set_the_log_level(capsys):
    log.set_verbosity(verbose=False, quiet=False)
    log.log("detail", verbose_only=True)
    log.set_verbosity(verbose=True)
    assert log.is_verbose()
    log.log("more detail", verbose_only=True)
    log.set_verbosity(quiet=True)  # quiet wins: only warnings, errors and results
    log.log("progress")
    assert capsys.readouterr().err == "more detail\n"
    log.set_verbosity(verbose=False, quiet=False)


def test_extract_drops_owner_and_special_mode_bits(tmp_path, box):
    # tarfile's data filter: no setuid/setgid/sticky, no group/other write, no
    # archive owner (this runs as root in containers, where chown would apply it).
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tar:
        for name, mode in (("suid", 0o4777), ("plain", 0o666)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = 1, mode, 12345, 12345
            tar.addfile(info, io.BytesIO(b"x"))
    dest = safe_extract(tmp_path / "a.tar.gz", box / "dest")
    assert stat.S_IMODE((dest / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "plain").stat().st_mode) == 0o644
    assert (dest / "suid").stat().st_uid == os.getuid()
