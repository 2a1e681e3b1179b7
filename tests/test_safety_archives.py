"""Issue 12, item 14: hostile archives.

Tars with symlink loops and tars and zips that expand far beyond their size,
through safe_extract and through openblas_support.py's legacy source
(served on loopback): one line, nothing half-extracted, nothing cached."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from numpy_wheels.archive import safe_extract
from numpy_wheels.errors import FatalError
from test_openblas_support import (  # noqa: F401  (fixtures used by name)
    ERR,
    LINUX64,
    _link,
    after_downloads,
    assert_nothing_cached,
    legacy,
    legacy_tarball,
    server,
)


def tar_of(*members: tuple[tarfile.TarInfo, io.BytesIO | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, data)
    return buf.getvalue()


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def extract(tmp_path: Path, data: bytes, name: str = "a.tar.gz") -> Path:
    archive = tmp_path / name
    archive.write_bytes(data)
    return safe_extract(archive, tmp_path / "out")


def assert_nothing_left(tmp_path: Path, name: str = "a.tar.gz") -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize(
    "links",
    [
        [("loop", "loop")],
        [("a", "b"), ("b", "a")],
        [("d/x", "../y"), ("y", "d/x"), ("d/z", "x")],
    ],
)
def test_symlink_loop_is_one_line_and_leaves_nothing(tmp_path, links):
    data = tar_of(file_member("d/keep.txt", b"k"), *(_link(n, t) for n, t in links))
    with pytest.raises(FatalError) as info:
        extract(tmp_path, data)
    assert str(info.value).startswith("archive member ")
    assert "\n" not in str(info.value)
    assert_nothing_left(tmp_path)


def test_legacy_symlink_loop_caches_nothing(legacy):  # noqa: F811
    legacy.publish(LINUX64, legacy_tarball(extra=[_link("/usr/local/lib/loop", "loop")]))
    result = legacy("--plat", "x86_64", "--os", "linux")
    assert (result.returncode, result.stdout) == (1, "")
    assert "Traceback" not in result.stderr
    (line,) = after_downloads(result.stderr, LINUX64).splitlines()
    assert line.startswith(f"{ERR}archive member ")
    assert_nothing_cached(legacy.cache)


def test_tar_bomb_is_stopped_at_the_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_MAX_EXTRACT_BYTES", str(4 * 2**20))
    bomb = b"\0" * (32 * 2**20)  # 32 MiB of zeros gzip to a few dozen KiB
    data = tar_of(file_member("zeros.bin", bomb))
    assert len(data) < 2**20
    with pytest.raises(FatalError, match=r"a.tar.gz: expands to more than 4194304 bytes"):
        extract(tmp_path, data)
    assert_nothing_left(tmp_path)


def test_declared_giant_member_is_refused_before_any_write(tmp_path):
    # A header that says 1 TiB (the default cap is 512 MiB): refused before reading it.
    info = tarfile.TarInfo("huge.bin")
    info.size = 2**40
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    with pytest.raises(FatalError, match=r"expands to more than 536870912 bytes"):
        extract(tmp_path, header + b"\0" * 4096, name="a.tar")
    assert_nothing_left(tmp_path, "a.tar")


def test_zip_bomb_is_stopped_at_the_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_MAX_EXTRACT_BYTES", str(2**20))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (16 * 2**20))
    with pytest.raises(FatalError, match=r"a.zip: expands to more than 1048576 bytes"):
        extract(tmp_path, buf.getvalue(), name="a.zip")
    assert_nothing_left(tmp_path, "a.zip")


def test_member_count_is_capped(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_MAX_EXTRACT_MEMBERS", "10")
    data = tar_of(*(file_member(f"f{i}", b"") for i in range(20)))
    with pytest.raises(FatalError, match=r"more than 10 members \(NW_MAX_EXTRACT_MEMBERS\)"):
        extract(tmp_path, data)
    assert_nothing_left(tmp_path)


def test_legacy_bomb_caches_nothing(legacy):  # noqa: F811
    bomb = file_member("/usr/local/lib/zeros.bin", b"\0" * (8 * 2**20))
    legacy.publish(LINUX64, legacy_tarball(extra=[bomb]))
    result = legacy("--plat", "x86_64", "--os", "linux", NW_MAX_EXTRACT_BYTES=str(2**20))
    assert (result.returncode, result.stdout) == (1, "")
    assert after_downloads(result.stderr, LINUX64) == (
        f"{ERR}{LINUX64}: expands to more than 1048576 bytes (NW_MAX_EXTRACT_BYTES); refused\n"
    )
    assert_nothing_cached(legacy.cache)
