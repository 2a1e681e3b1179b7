"""The canonical build root (NW_BUILD_ROOT): the build step sees its venv and the
prepared OpenBLAS through fixed paths (what NumPy records in __config__.py is then
the same in every checkout), takes turns with another build on the machine, and
refuses a root another user could control."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import ROOT, make
from numpy_wheels.build import source
from numpy_wheels.build.buildroot import build_root, canonical
from numpy_wheels.errors import ConfigurationError
from test_pipeline import fixture_copy
from test_pipeline import settings as local_settings

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def prepared_openblas(tmp_path: Path) -> Path:
    """A prepared OpenBLAS tree of the shape openblas_support.py makes (absolute .pc paths)."""
    tree = tmp_path / "cache" / "prepared" / "scipy_openblas64-0.3.31-py3-none-any"
    (tree / "include").mkdir(parents=True)
    (tree / "include" / "cblas.h").write_text("/* cblas */\n")
    (tree / "lib" / "pkgconfig").mkdir(parents=True)
    (tree / "lib" / "libscipy_openblas64_.so").write_bytes(b"\x7fELF")
    (tree / "lib" / "pkgconfig" / "scipy-openblas.pc").write_text(
        f"libdir={tree}/lib\nincludedir={tree}/include\nversion=0.3.31\n"
        "Name: scipy-openblas\nDescription: OpenBLAS\nVersion: ${version}\n"
        "Libs: -L${libdir} -lscipy_openblas64_\nCflags: -I${includedir}\n"
    )
    return tree


def pkg_config(query: list[str], env: dict[str, str]) -> str:
    cmd = ["pkg-config", *query, "scipy-openblas"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_python_and_pkg_config_report_the_root_paths(tmp_path, monkeypatch):
    # GIVEN a real venv and a prepared OpenBLAS in this checkout's directories
    root = tmp_path / "root"
    monkeypatch.setenv("NW_BUILD_ROOT", str(root))
    build_venv = tmp_path / "checkout" / "build" / "venv-build"
    venv.create(build_venv, with_pip=False)
    prepared = prepared_openblas(tmp_path)
    # WHEN the build step runs through the root
    with canonical({"NW_OPENBLAS_DIR": str(prepared)}, build_venv) as env:
        code = "import sys; print(sys.executable); print(sys.prefix)"
        proc = subprocess.run([env["PYTHON_EXE"], "-c", code], capture_output=True, text=True)
        pc_env = {**os.environ, "PKG_CONFIG_PATH": f"{env['NW_OPENBLAS_DIR']}/lib/pkgconfig"}
        asked = [["--variable=pcfiledir"], ["--variable=includedir"], ["--libs"]]
        pkg = [pkg_config(q, pc_env) for q in asked]
    # THEN Python (sys.executable as invoked) and pkg-config name only root paths
    assert proc.stdout.split() == [f"{root}/venv/bin/python", f"{root}/venv"]
    assert env["NW_OPENBLAS_DIR"] == f"{root}/openblas"
    assert pkg == [
        f"{root}/openblas/lib/pkgconfig",
        f"{root}/openblas/include",
        f"-L{root}/openblas/lib -lscipy_openblas64_",
    ]
    assert (root / "openblas" / "lib" / "libscipy_openblas64_.so").read_bytes() == b"\x7fELF"
    # the prepared tree itself is left as it was
    assert str(prepared) in (prepared / "lib" / "pkgconfig" / "scipy-openblas.pc").read_text()


HOLD = """
import sys
from pathlib import Path
from numpy_wheels.build.buildroot import canonical
with canonical({"PATH": ""}, Path(sys.argv[1])) as env:
    print("held", Path(env["VIRTUAL_ENV"]).resolve(), flush=True)
    sys.stdin.read()
"""


def test_two_builds_take_turns_and_the_waiter_says_so(tmp_path):
    # GIVEN one build holding the root
    root = tmp_path / "root"
    env = {**os.environ, "NW_BUILD_ROOT": str(root), "PYTHONPATH": str(ROOT / "scripts")}
    env.pop("NW_QUIET", None)
    first, second = tmp_path / "a" / "venv", tmp_path / "b" / "venv"
    for path in (first, second):
        path.mkdir(parents=True)

    def start(venv_dir: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", HOLD, str(venv_dir)], env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip

    holder = start(first)
    assert holder.stdout.readline() == f"held {first}\n"
    # WHEN a second build asks for it
    waiter = start(second)
    line = waiter.stderr.readline()
    # THEN it says once that it waits, and for whom; it goes on when the first ends
    assert line.startswith(
        f"waiting for the build root {root} (NW_BUILD_ROOT): in use by pid {holder.pid}"
    ), line
    holder.stdin.close()
    assert holder.wait() == 0
    assert waiter.stdout.readline() == f"held {second}\n"
    waiter.stdin.close()
    assert waiter.wait() == 0
    assert waiter.stderr.read() == ""


def refused(monkeypatch, root: Path | str) -> str:
    monkeypatch.setenv("NW_BUILD_ROOT", str(root))
    with pytest.raises(ConfigurationError) as exc:
        build_root()
    return str(exc.value)


@as_root
def test_a_root_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    os.chown(root, 4242, 4242)
    message = refused(monkeypatch, root)
    assert message == f"NW_BUILD_ROOT {root} is owned by another user (uid 4242); refused"
    assert not list(root.iterdir())


def test_a_root_writable_by_others_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    root.chmod(0o777)
    message = refused(monkeypatch, root)
    assert message == f"NW_BUILD_ROOT {root} is writable by others (mode 777); refused"


def test_a_symlinked_root_is_refused_and_its_target_untouched(tmp_path, monkeypatch):
    # GIVEN the root's name taken by a symlink to somebody's directory
    target = tmp_path / "theirs"
    target.mkdir()
    (tmp_path / "root").symlink_to(target)
    message = refused(monkeypatch, tmp_path / "root")
    assert message == f"NW_BUILD_ROOT {tmp_path / 'root'} is not a directory (a symlink?); refused"
    assert not list(target.iterdir())


@as_root
def test_a_root_under_another_users_directory_is_refused(tmp_path, monkeypatch):
    parent = tmp_path / "shared"
    parent.mkdir()
    os.chown(parent, 4242, 4242)
    message = refused(monkeypatch, parent / "root")
    assert message == f"NW_BUILD_ROOT: {parent} is owned by another user (uid 4242); refused"
    assert not (parent / "root").exists()


def test_a_shared_parent_needs_the_sticky_bit(tmp_path, monkeypatch):
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o777)
    message = refused(monkeypatch, parent / "root")
    sticky = "is writable by others without the sticky bit"
    assert message == f"NW_BUILD_ROOT: {parent} {sticky}; refused"
    # like /tmp: with the sticky bit the root is made there, ours and 755
    parent.chmod(0o1777)
    monkeypatch.setenv("NW_BUILD_ROOT", str(parent / "root"))
    assert build_root() == parent / "root"
    assert (parent / "root").stat().st_mode & 0o7777 == 0o755


def test_a_relative_root_is_refused(monkeypatch):
    assert refused(monkeypatch, "builds") == "NW_BUILD_ROOT='builds' is not an absolute path"


@as_root
def test_make_build_refuses_before_any_work_in_one_line(tmp_path):
    project = fixture_copy(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    os.chown(root, 4242, 4242)
    env = local_settings(tmp_path, project, NW_BUILD_ROOT=str(root), DEPS_AS_OF="now")
    proc = make("build", tmp_path=tmp_path, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    error = f"NW_BUILD_ROOT {root} is owned by another user (uid 4242); refused"
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [f"numpy-wheels: error: {error}"]
    assert not (tmp_path / "work" / "venv-build").exists()


def test_the_meson_build_directory_is_not_an_edit_of_the_source(tmp_path):
    # the build directory lives inside the source (same relative paths in every checkout)
    tree = tmp_path / "numpy"
    (tree / "build" / "numpy-wheels").mkdir(parents=True)
    (tree / "setup.py").write_text("")
    (tree / "build" / "numpy-wheels" / "build.ninja").write_text("")
    assert list(source._fingerprint(tree)) == ["setup.py"]


def test_a_container_build_gets_the_root_mounted_and_no_venv(tmp_path, monkeypatch):
    root = tmp_path / "root"
    monkeypatch.setenv("NW_BUILD_ROOT", str(root))
    prepared = prepared_openblas(tmp_path)
    given = {"NW_OPENBLAS_DIR": str(prepared), "NW_MOUNT_DIRS": f"/w:{prepared}"}
    with canonical(given, None) as env:
        assert env["NW_MOUNT_DIRS"] == f"/w:{prepared}:{root}"
        assert env["NW_OPENBLAS_DIR"] == f"{root}/openblas"
        assert "PYTHON_EXE" not in env and not (root / "venv").exists()


@as_root
def test_an_ancestor_symlinked_into_another_users_directory_is_refused(tmp_path, monkeypatch):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 4242, 4242)
    (tmp_path / "link").symlink_to(theirs)
    message = refused(monkeypatch, tmp_path / "link" / "root")
    assert message == f"NW_BUILD_ROOT: {theirs} is owned by another user (uid 4242); refused"
    assert not (theirs / "root").exists()
