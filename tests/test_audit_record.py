"""``numpy_wheels.audit.check_record``: the one RECORD check, called on an open zip
(the uploader's use) and by the audit (with a visitor reading each member as it is
hashed)."""

from __future__ import annotations

import zipfile

from numpy_wheels.audit import check_record
from test_check_wheel import DIST_INFO, edit_wheel

RECORD = f"{DIST_INFO}/RECORD"


def _check(wheel, **kw) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return check_record(zf, **kw)


def test_official_wheels_agree_with_their_record(official_numpy_wheels):
    for wheel in official_numpy_wheels.values():
        assert (wheel.name, _check(wheel)) == (wheel.name, [])


def test_each_disagreement_is_one_line(official_numpy_wheels, tmp_path):
    src = official_numpy_wheels["manylinux_x86_64"]

    def edit(members):
        members["numpy/version.py"] += b"# edited\n"  # hash and size
        members["numpy/extra.py"] = b"x = 1\n"  # not in RECORD
        del members["numpy/__init__.pyi"]  # in RECORD, not in the archive

    with zipfile.ZipFile(src) as zf:
        record = zf.read(RECORD)
    size = len(_member(src, "numpy/version.py"))
    bad = edit_wheel(src, tmp_path, edit=edit, fix_record=False)
    assert _check(bad) == [
        "numpy/version.py: sha256 does not match RECORD (file was modified)",
        f"numpy/version.py: size {size + 9} does not match RECORD ({size})",
        "numpy/extra.py: not listed in RECORD",
        "numpy/__init__.pyi: listed in RECORD but missing from the archive",
    ]
    assert b"numpy/__init__.pyi," in record  # the entry really was there


def _member(wheel, name: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(name)


def test_no_record_or_two_dist_infos(official_numpy_wheels, tmp_path):
    src = official_numpy_wheels["win_amd64"]

    no_record = tmp_path / src.name
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(no_record, "w") as zout:
        for info in zin.infolist():
            if info.filename != RECORD:
                zout.writestr(info, zin.read(info))
    problems = _check(no_record)
    assert problems[0] == f"{RECORD}: missing"
    assert "numpy/version.py: not listed in RECORD" in problems
    (tmp_path / "two").mkdir()
    two = edit_wheel(src, tmp_path / "two", extra=[("other-1.0.dist-info/METADATA", b"")])
    assert _check(two) == [f"{two.name}: expected one .dist-info directory, found 2"]


def test_the_visitor_sees_every_block_and_its_problems_follow(official_numpy_wheels):
    wheel = official_numpy_wheels["macosx_arm64"]
    seen: dict[str, int] = {}

    def visit(name, info, blocks):
        seen[name] = sum(len(b) for b in blocks) if name.endswith(".py") else 0
        return [f"{name}: seen"] if name == "numpy/version.py" else []

    assert _check(wheel, visit=visit) == ["numpy/version.py: seen"]
    with zipfile.ZipFile(wheel) as zf:
        files = [i for i in zf.infolist() if not i.is_dir()]
        assert set(seen) == {i.filename for i in files}
        assert all(seen[i.filename] == i.file_size for i in files if i.filename.endswith(".py"))
