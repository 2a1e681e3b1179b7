"""The canonical build root (NW_BUILD_ROOT): the fixed paths through which the
build step sees its build venv (natively) and the prepared OpenBLAS, so that a
project recording them (NumPy's ``numpy/__config__.py``: the build Python and
the OpenBLAS pkg-config paths) records the same text in every checkout.

    $NW_BUILD_ROOT/lock        held for the build step: two builds take turns
    $NW_BUILD_ROOT/venv        symlink to this checkout's build venv
    $NW_BUILD_ROOT/openblas/   the prepared OpenBLAS: include/ and lib/*
                               symlinked, lib/pkgconfig/*.pc rewritten to here
                               (a container build mounts the root at its own path)

A symlink serves for the venv because Python keeps ``sys.executable`` as
invoked, and pkg-config reports the directory it was given; it would not for
the source or the meson build directory, which meson resolves (realpath):
those stay in the checkout, the build directory inside the source
(runner.meson_build_dir), so the relative paths the compiler sees are the same.

The root sits under a shared /tmp by default: one owned by another user,
writable by others, or reached through another user's symlink is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigurationError
from ..files import file_lock
from .venv import venv_env

DEFAULT_ROOT = "/tmp/numpy-wheels-build"


def build_root() -> Path | None:
    """NW_BUILD_ROOT, checked (made when missing): ours, and writable only by us.
    None where symlinks and file ownership are not the POSIX kind (Windows)."""
    if os.name != "posix":
        return None
    given = os.environ.get("NW_BUILD_ROOT") or DEFAULT_ROOT
    root = Path(given)
    if not root.is_absolute():
        raise ConfigurationError(f"NW_BUILD_ROOT={given!r} is not an absolute path")
    real = Path(os.path.realpath(root.parent))  # and where a symlinked ancestor leads
    for parent in dict.fromkeys([*reversed(root.parents), *reversed(real.parents), real]):
        _check_parent(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o755)
    info = os.lstat(root)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ConfigurationError(f"NW_BUILD_ROOT {root} is not a directory (a symlink?); refused")
    if info.st_uid != os.geteuid():
        raise ConfigurationError(
            f"NW_BUILD_ROOT {root} is owned by another user (uid {info.st_uid}); refused"
        )
    if info.st_mode & 0o022:
        raise ConfigurationError(
            f"NW_BUILD_ROOT {root} is writable by others (mode {info.st_mode & 0o7777:o}); refused"
        )
    return root


def _check_parent(path: Path) -> None:
    """An ancestor of the root may be shared (/tmp) only with the sticky bit, and
    must belong to root or to us (else its owner could swap the root)."""
    info = os.lstat(path)
    if info.st_uid not in (0, os.geteuid()):
        raise ConfigurationError(
            f"NW_BUILD_ROOT: {path} is owned by another user (uid {info.st_uid}); refused"
        )
    if stat.S_ISDIR(info.st_mode) and info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise ConfigurationError(
            f"NW_BUILD_ROOT: {path} is writable by others without the sticky bit; refused"
        )


@contextlib.contextmanager
def canonical(env: dict[str, str], venv: Path | None) -> Iterator[dict[str, str]]:
    """Hold the build root, point it at ``venv`` (None in a container: the image's
    Python) and ``env``'s NW_OPENBLAS_DIR, and yield ``env`` naming them through
    it; a container (NW_MOUNT_DIRS set) gets the root mounted at its own path."""
    root = build_root()
    if root is None:  # Windows: the checkout's own paths
        yield venv_env(venv, env) if venv else env
        return
    with file_lock(root / "lock", f"the build root {root} (NW_BUILD_ROOT)"):
        env = dict(env)
        if venv:
            _link(root / "venv", venv)
            env = venv_env(root / "venv", env)
        if env.get("NW_OPENBLAS_DIR"):
            env["NW_OPENBLAS_DIR"] = str(_mirror_openblas(Path(env["NW_OPENBLAS_DIR"]), root))
        if "NW_MOUNT_DIRS" in env:
            env["NW_MOUNT_DIRS"] += os.pathsep + str(root)
        yield env


def _link(link: Path, target: Path) -> None:
    """``link`` -> ``target``, replaced in one rename (a directory there goes first)."""
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    new = link.with_name(f".{link.name}.new")
    new.unlink(missing_ok=True)
    os.symlink(target, new)
    os.replace(new, link)


def _mirror_openblas(prepared: Path, root: Path) -> Path:
    """$root/openblas: ``prepared``'s entries symlinked, except lib/pkgconfig, whose
    .pc files (absolute paths to ``prepared``) are rewritten to name $root/openblas."""
    mirror = root / "openblas"
    if mirror.is_symlink() or mirror.is_file():
        mirror.unlink()
    shutil.rmtree(mirror, ignore_errors=True)
    mirror.mkdir()
    for entry in prepared.iterdir():
        if entry.name != "lib":
            os.symlink(entry, mirror / entry.name)
            continue
        (mirror / "lib").mkdir()
        for item in entry.iterdir():
            if item.name != "pkgconfig":
                os.symlink(item, mirror / "lib" / item.name)
                continue
            (mirror / "lib" / "pkgconfig").mkdir()
            for pc in item.iterdir():
                text = pc.read_text(encoding="utf-8").replace(str(prepared), str(mirror))
                (mirror / "lib" / "pkgconfig" / pc.name).write_text(text, encoding="utf-8")
    return mirror
