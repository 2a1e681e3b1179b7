"""Fetch, verify and prepare OpenBLAS for a NumPy wheel build.

Two sources, one result: a directory with ``lib/`` (the shared library as the
wheel ships it), ``include/`` and ``lib/pkgconfig/*.pc`` whose paths point at
that directory.  Its absolute path is the one line printed on stdout, so a
build does ``basedir=$(python scripts/openblas_support.py)`` and puts
``$basedir/lib/pkgconfig`` on ``PKG_CONFIG_PATH``.

- ``wheel`` (NumPy >= 2.0): the ``scipy-openblas64`` (ILP64) or
  ``scipy-openblas32`` (LP64) wheel for the *target* platform, found on the
  package index, verified against the index's sha256; the ``.pc`` file has the
  content of the package's ``get_pkg_config()``.
- ``legacy`` (NumPy 1.x): ``{BASE}/{VER}/download/openblas{""|64_}-{VER}-{PLATTAG}``
  tarballs/zips, verified against the sha256 table in ``openblas_libs.json``.

Everything is cached (``NW_OPENBLAS_CACHE``, default ~/.cache/numpy-wheels/openblas):
a warm run reads the cached index answer and prepared tree and makes no
network request.  Pins, platform suffixes and hashes live in openblas_libs.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nwlib
from nwlib import ConfigurationError, FatalError, NothingToDoError, log

PROG = "openblas_support.py"
TABLES = Path(__file__).resolve().with_name("openblas_libs.json")
MARKER = ".nw-openblas.json"
INTERFACES = ("ilp64", "lp64")
SOURCES = ("wheel", "legacy")
OS_NAMES = ("linux", "macos", "windows")
LIBCS = ("manylinux", "musllinux")
# manylinux spellings of PEP 513/571/599 and the glibc version each stands for
LEGACY_MANYLINUX = {"1": (2, 5), "2010": (2, 12), "2014": (2, 17)}
ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "i386": "i686", "x86": "i686", "win32": "i686"}
ARCH_ALIASES |= {"aarch64_be": "aarch64", "arm64": "arm64", "aarch64": "aarch64"}


# ------------------------------------------------------------------------ tables


def load_tables(path: Path = TABLES) -> dict[str, Any]:
    """Read openblas_libs.json and check the keys this script relies on."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the OpenBLAS table {path}: {exc}") from None
    need = {
        "platforms": ("linux", "macos", "windows"),
        "wheel": ("version", "projects", "library_versions"),
        "legacy": ("version", "base_url", "manylinux_default", "musllinux_tag", "suffixes"),
    }
    for section, keys in need.items():
        for key in keys:
            if key not in data.get(section, {}):
                raise ConfigurationError(f"{path.name}: missing {section}.{key}")
    data["legacy"].setdefault("sha256", {})
    data["legacy"].setdefault("library_versions", {})
    return data


def legacy_sha256_table(tables: dict[str, Any], extra: str | None) -> dict[str, str]:
    """The legacy sha256 table, plus entries from the JSON file ``extra`` (if any)."""
    table = dict(tables["legacy"]["sha256"])
    if extra:
        try:
            more = json.loads(Path(extra).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"NW_OPENBLAS_SHA256_TABLE {extra}: {exc}") from None
        if not isinstance(more, dict):
            raise ConfigurationError(f"NW_OPENBLAS_SHA256_TABLE {extra}: expected a JSON object")
        table.update(more)
    return table


# ---------------------------------------------------------------------- platforms


@dataclass(frozen=True)
class Target:
    """The platform OpenBLAS is prepared for (not necessarily the host)."""

    os: str  # linux | macos | windows
    arch: str  # x86_64 i686 aarch64 ppc64le s390x (linux); x86_64 arm64 (macos); ...
    libc: str | None = None  # manylinux | musllinux (linux only)
    libc_tag: str | None = None  # "manylinux2014", "manylinux_2_28", "musllinux_1_2"
    libc_max: tuple[int, int] | None = None  # newest libc the build may require
    macos_max: tuple[int, int] | None = None  # deployment target, from a full tag

    @property
    def bits(self) -> int:
        return 32 if self.arch == "i686" else 64

    @property
    def key(self) -> str:
        """Short name: manylinux_x86_64, musllinux_aarch64, macosx_arm64, win_amd64, win32."""
        if self.os == "linux":
            return f"{self.libc}_{self.arch}"
        if self.os == "macos":
            return f"macosx_{self.arch}"
        return {"x86_64": "win_amd64", "i686": "win32"}.get(self.arch, f"win_{self.arch}")

    def describe(self) -> str:
        if self.libc_tag:
            return f"{self.libc_tag}_{self.arch}"
        if self.macos_max:
            return f"macosx_{self.macos_max[0]}_{self.macos_max[1]}_{self.arch}"
        return self.key


def host_os() -> str:
    system = platform.system()
    return {"Linux": "linux", "Darwin": "macos", "Windows": "windows"}.get(system, system.lower())


def host_arch() -> str:
    machine = platform.machine().lower()
    arch = ARCH_ALIASES.get(machine, machine)
    if arch == "x86_64" and sys.maxsize < 2**32:
        arch = "i686"  # a 32-bit interpreter in a 64-bit container
    if arch == "aarch64" and host_os() == "macos":
        arch = "arm64"
    return arch


def _libc_from_ml_ver(libc: str, ml_ver: str) -> tuple[str, tuple[int, int] | None]:
    """``MB_ML_VER`` (``2014``, ``_2_28``, ``_1_2``) -> (tag prefix, libc bound)."""
    ml_ver = ml_ver.strip()
    if libc == "manylinux" and ml_ver in LEGACY_MANYLINUX:
        return f"manylinux{ml_ver}", LEGACY_MANYLINUX[ml_ver]
    match = re.fullmatch(r"_?(\d+)_(\d+)", ml_ver)
    if not match:
        allowed = "1, 2010, 2014, _2_24, _2_28" if libc == "manylinux" else "_1_1, _1_2"
        raise ConfigurationError(f"MB_ML_VER={ml_ver!r} is not a {libc} version ({allowed})")
    bound = (int(match[1]), int(match[2]))
    return f"{libc}_{bound[0]}_{bound[1]}", bound


def _parse_wheel_tag(tag: str) -> Target | None:
    """A full wheel platform tag -> Target, or None if it is not one."""
    match = re.fullmatch(r"(manylinux|musllinux)_(\d+)_(\d+)_(\w+)", tag)
    if match:
        libc, bound = match[1], (int(match[2]), int(match[3]))
        return Target("linux", match[4], libc, f"{libc}_{match[2]}_{match[3]}", bound)
    match = re.fullmatch(r"manylinux(1|2010|2014)_(\w+)", tag)
    if match:
        bound = LEGACY_MANYLINUX[match[1]]
        return Target("linux", match[2], "manylinux", f"manylinux{match[1]}", bound)
    match = re.fullmatch(r"(manylinux|musllinux)_([a-z]\w*)", tag)  # a Target.key: no bound
    if match:
        return Target("linux", match[2], match[1])
    match = re.fullmatch(r"linux_(\w+)", tag)
    if match:
        return Target("linux", match[1], "manylinux")
    match = re.fullmatch(r"macosx_([a-z]\w*)", tag)
    if match:
        return Target("macos", match[1])
    match = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", tag)
    if match:
        return Target("macos", match[3], macos_max=(int(match[1]), int(match[2])))
    if tag in ("win_amd64", "win32", "win_arm64"):
        return Target("windows", {"win_amd64": "x86_64", "win32": "i686"}.get(tag, "arm64"))
    return None


def parse_target(
    plat: str | None,
    os_name: str | None,
    ml_ver: str | None,
    libc: str | None,
    platforms: dict[str, list[str]],
) -> Target:
    """Resolve PLAT (arch or full tag), --os, MB_ML_VER and MB_ML_LIBC into a Target."""
    plat = (plat or "").strip()
    libc = (libc or "manylinux").strip()
    if libc not in LIBCS:
        raise ConfigurationError(f"MB_ML_LIBC={libc!r} is not one of {', '.join(LIBCS)}")
    target = _parse_wheel_tag(plat) if plat else None
    if target is not None:
        if os_name and os_name != target.os:
            raise ConfigurationError(f"PLAT={plat} is a {target.os} platform, not {os_name}")
    else:
        os_name = os_name or host_os()
        if os_name not in OS_NAMES:
            raise ConfigurationError(f"unsupported OS {os_name!r} (expected linux, macos, windows)")
        arch = plat or host_arch()
        if arch in ("universal2", "intel"):
            # As numpy's get_plat(): a universal2 build runs once per architecture.
            if host_os() != "macos":
                raise ConfigurationError(
                    f"PLAT={arch} has no OpenBLAS of its own; set PLAT=x86_64 or PLAT=arm64"
                )
            arch = host_arch()
        arch = ARCH_ALIASES.get(arch.lower(), arch.lower())
        if os_name == "macos" and arch == "aarch64":
            arch = "arm64"
        target = Target(os_name, arch)
        if os_name == "linux":
            tag, bound = (None, None)
            if ml_ver:
                tag, bound = _libc_from_ml_ver(libc, ml_ver)
            target = replace(target, libc=libc, libc_tag=tag, libc_max=bound)
    if target.arch not in platforms.get(target.os, []):
        known = ", ".join(platforms.get(target.os, []))
        raise ConfigurationError(
            f"unsupported platform {plat or target.arch!r} for {target.os} (known: {known})"
        )
    return target


def all_targets(platforms: dict[str, list[str]]) -> list[Target]:
    """Every platform `--test all` covers."""
    targets = []
    for libc in LIBCS:
        targets += [Target("linux", arch, libc) for arch in platforms["linux"]]
    targets += [Target("macos", arch) for arch in platforms["macos"]]
    targets += [Target("windows", arch) for arch in platforms["windows"]]
    return targets


# ------------------------------------------------------------------------ options


@dataclass(frozen=True)
class Options:
    """Everything one preparation needs, resolved once from flags and environment."""

    target: Target
    interface: str  # ilp64 | lp64
    source: str  # wheel | legacy
    version: str
    cache: Path
    index_url: str | None
    legacy_url: str
    legacy_table: str | None
    timeout: float
    retries: int


def resolve_interface(flag: str | None, env: str | None, target: Target) -> str:
    value = (flag or env or "").strip().lower()
    if value and value not in INTERFACES:
        raise ConfigurationError(f"NW_OPENBLAS_INTERFACE={value!r} is not ilp64 or lp64")
    value = value or ("ilp64" if target.bits == 64 else "lp64")
    if value == "ilp64" and target.bits == 32:
        raise ConfigurationError(
            f"ILP64 OpenBLAS does not exist for 32-bit {target.describe()}; use lp64"
        )
    return value


# ----------------------------------------------------------------- wheel source


def _index_url(explicit: str | None) -> str:
    """The simple index: --index-url / NW_OPENBLAS_INDEX_URL, pip's index, or the default."""
    if explicit:
        return explicit
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    import subprocess

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    from pypi_simple import PYPI_SIMPLE_ENDPOINT

    return PYPI_SIMPLE_ENDPOINT


def index_files(project: str, version: str, opts: Options) -> list[dict[str, Any]]:
    """The wheels of ``project==version`` on the index (cached: releases are immutable).

    The cache holds no credentials: file URLs are stored without their userinfo,
    which :func:`_file_url` puts back for the index's own origin only.
    """
    cached = opts.cache / "index" / f"{project}-{version}.json"
    if cached.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            files = json.loads(cached.read_text(encoding="utf-8"))["files"]
            for info in files:
                nwlib.check_name(info["filename"], f"cached index answer {cached.name}")
            return files
    from packaging.version import InvalidVersion, Version

    try:
        want = Version(version)
    except InvalidVersion:
        raise ConfigurationError(f"OPENBLAS_VERSION={version!r} is not a valid version") from None
    page, shown = _project_page(project, opts.index_url, opts.timeout)
    versions, files = set(), []
    for pkg in page.packages:
        if pkg.package_type != "wheel" or not pkg.version:
            continue
        with contextlib.suppress(InvalidVersion):
            versions.add(pkg.version)
            if Version(pkg.version) == want and "sha256" in pkg.digests:
                nwlib.check_name(pkg.filename, f"the index {shown}")
                size = getattr(pkg, "size", None)
                files.append(
                    {
                        "filename": pkg.filename,
                        "url": _without_userinfo(pkg.url),
                        "size": size,
                        "sha256": pkg.digests["sha256"],
                    }
                )
    if not files:
        newest = ", ".join(nwlib.printable(v, 40) for v in sorted(versions, key=_version_key)[-3:])
        newest = newest or "none"
        raise FatalError(f"{project} {version} is not on the index {shown} (newest: {newest})")
    with nwlib.atomic_write(cached) as out:
        json.dump({"project": project, "version": version, "files": files}, out, indent=1)
    return files


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


def _file_url(url: str, index_url: str | None) -> str:
    """``url`` with the index's credentials when it is on the index's own origin."""
    index = urlsplit(_index_url(index_url))
    target = urlsplit(url)
    userinfo = index.netloc.rsplit("@", 1)[0] if "@" in index.netloc else ""
    same = (target.scheme, target.netloc) == (index.scheme, index.netloc.rsplit("@", 1)[-1])
    if not userinfo or not same:
        return url
    return urlunsplit(target._replace(netloc=f"{userinfo}@{target.netloc}"))


def _project_page(project: str, index_url: str | None, timeout: float) -> tuple[Any, str]:
    """(the project's page on the simple index, the index URL as it may be shown)."""
    from pypi_simple import NoSuchProjectError, PyPISimple

    url = _index_url(index_url)
    shown = nwlib.sanitize_url(url)
    log(f"querying {shown} for {project}", verbose_only=True)
    try:
        with PyPISimple(endpoint=url, session=nwlib.http_session()) as client:
            return client.get_project_page(project, timeout=timeout), shown
    except NoSuchProjectError:
        raise FatalError(f"{project} is not on the index {shown}") from None
    except FatalError:
        raise
    except Exception as exc:  # any client error (content type, JSON, HTTP): one line
        raise FatalError(
            f"cannot read the index {shown}: {type(exc).__name__}: {nwlib.error_reason(exc)}"
        ) from None


def _version_key(text: str) -> Any:
    from packaging.version import Version

    return Version(text)


def _tag_rank(tag: str, target: Target) -> tuple[int, int] | None:
    """How well one wheel platform tag fits ``target``: None if not at all, higher is better."""
    found = _parse_wheel_tag(tag)
    if found is None or found.os != target.os:
        return None
    if target.os == "linux":
        if found.libc != target.libc or found.arch != target.arch or found.libc_max is None:
            return None
        if target.libc_max and found.libc_max > target.libc_max:
            return None
        return found.libc_max
    if target.os == "macos":
        fat = {"universal2": ("x86_64", "arm64"), "universal": ("x86_64",), "intel": ("x86_64",)}
        if found.arch != target.arch and target.arch not in fat.get(found.arch, ()):
            return None
        if target.macos_max and found.macos_max and found.macos_max > target.macos_max:
            return None
        # the oldest deployment target is the one that runs everywhere the build may
        return (-found.macos_max[0], -found.macos_max[1]) if found.macos_max else (0, 0)
    return (0, 0) if found.arch == target.arch else None


def select_wheel(files: list[dict[str, Any]], target: Target, what: str) -> dict[str, Any]:
    """The best wheel in ``files`` for ``target``, or an error naming what exists."""
    best, best_rank, published = None, None, set()
    for info in files:
        tags = info["filename"][: -len(".whl")].split("-")[-1].split(".")
        published.update(tags)
        for tag in tags:
            rank = _tag_rank(tag, target)
            if rank is not None and (best_rank is None or rank > best_rank):
                best, best_rank = info, rank
    if best is None:
        names = ", ".join(sorted(published))
        raise NothingToDoError(f"no {what} wheel for {target.describe()} (published: {names})")
    return best


def prepare_wheel(opts: Options, tables: dict[str, Any]) -> Path:
    project = tables["wheel"]["projects"][opts.interface]
    files = index_files(project, opts.version, opts)
    info = select_wheel(files, opts.target, f"{project} {opts.version}")
    filename = info["filename"]
    final = opts.cache / "prepared" / filename[: -len(".whl")]
    with _entry_lock(opts, final):
        return _prepare_wheel_entry(opts, project, info, final)


def _entry_lock(opts: Options, final: Path):
    """One preparation of a cache entry at a time (another run waits, told by whom)."""
    return nwlib.file_lock(opts.cache / "locks" / f"{final.name}.lock", f"cache entry {final.name}")


def _prepare_wheel_entry(opts: Options, project: str, info: dict[str, Any], final: Path) -> Path:
    filename = info["filename"]
    if (final / MARKER).is_file():
        log(f"using cached {final}", verbose_only=True)
        return final
    url = _file_url(info["url"], opts.index_url)
    archive = _fetch(url, opts.cache / "downloads" / filename, info["sha256"], opts)
    module = project.replace("-", "_")

    def assemble(tree: Path) -> None:
        nwlib.safe_extract(archive, tree, strip_prefix=module)
        for extra in ("__init__.py", "__main__.py", "__pycache__"):
            _remove(tree / extra)
        for dist_info in tree.glob("*.dist-info"):
            for lic in dist_info.glob("licenses/*"):
                shutil.move(str(lic), tree / lic.name)
            shutil.rmtree(dist_info)
        libfile, implib = _wheel_library(tree, opts.target, filename)
        shipped = tree / "lib" / "pkgconfig" / "scipy-openblas.pc"
        config = _pc_value(shipped, "openblas_config") if shipped.is_file() else None
        if not config:
            raise FatalError(
                f"{filename} has no openblas_config in lib/pkgconfig/scipy-openblas.pc"
            )
        text = pkg_config_text(
            libdir=final / "lib",
            includedir=final / "include",
            config=config,
            target=opts.target,
            ilp64=opts.interface == "ilp64",
            libfile=implib or libfile,
        )
        shipped.write_text(text, encoding="utf-8")

    return _build_tree(
        final, archive, assemble, {"source": "wheel", "file": filename, **_meta(opts)}
    )


def _wheel_library(tree: Path, target: Target, filename: str) -> tuple[str, str | None]:
    """(shared library name, import library name or None) in ``tree/lib``."""
    lib = tree / "lib"
    suffix = {"linux": ".so", "macos": ".dylib", "windows": ".dll"}[target.os]
    found = sorted(p.name for p in lib.glob(f"libscipy_openblas*{suffix}")) if lib.is_dir() else []
    if not found:
        raise FatalError(f"{filename} has no lib/libscipy_openblas*{suffix}")
    implib = None
    if target.os == "windows":
        libs = sorted(p.name for p in lib.glob("*.lib"))
        if not libs:
            raise FatalError(f"{filename} has no import library lib/*.lib")
        implib = libs[0]
    if not (tree / "include" / "cblas.h").is_file():
        raise FatalError(f"{filename} has no include/cblas.h")
    return found[0], implib


def pkg_config_text(
    *, libdir: Path, includedir: Path, config: str, target: Target, ilp64: bool, libfile: str
) -> str:
    """What ``scipy_openblas{32,64}.get_pkg_config()`` returns for an unpacked copy.

    ``config`` is the library's ``openblas_get_config()`` string (read from the
    wheel's own .pc, since a foreign platform's library cannot be loaded here).
    """
    stem = libfile.rsplit(".", 1)[0]
    if target.os == "windows":
        extralib = "" if target.arch == "arm64" else "-defaultlib:advapi32 -lgfortran -lquadmath"
        libs = f"-L${{libdir}} -l{stem}"
    else:
        extralib = f"-lm -lpthread -lgfortran -lquadmath -L${{libdir}} -l{stem[3:]}"
        libs = f"${{libdir}}/{libfile} -Wl,-rpath,${{libdir}}"
    cflags = "-DBLAS_SYMBOL_PREFIX=scipy_"
    if ilp64:
        cflags += " -DBLAS_SYMBOL_SUFFIX=64_ -DHAVE_BLAS_ILP64 -DOPENBLAS_ILP64_NAMING_SCHEME"
    lines = [
        f"libdir={libdir}",
        f"includedir={includedir}",
        f"openblas_config= {config}",
        f"version={config.split(' ')[1]}",
        f"extralib={extralib}",
        "Name: openblas",
        "Description: OpenBLAS is an optimized BLAS library based on GotoBLAS2 1.13 BSD version",
        "Version: ${version}",
        "URL: https://github.com/xianyi/OpenBLAS",
        f"Libs: {libs}",
        "Libs.private: ${extralib}",
        f"Cflags: -I${{includedir}} {cflags}",
    ]
    return "\n".join(lines).replace("\\", "/") + "\n"


# ---------------------------------------------------------------- legacy source


def legacy_filename(opts: Options, tables: dict[str, Any]) -> str:
    legacy, target = tables["legacy"], opts.target
    if target.os == "linux":
        tag = target.libc_tag
        if tag is None:
            tag = legacy["musllinux_tag"] if target.libc == "musllinux" else None
            tag = tag or _libc_from_ml_ver("manylinux", legacy["manylinux_default"])[0]
        plattag = f"{tag}_{target.arch}.tar.gz"
    else:
        suffixes = {**legacy["suffixes"]["default"], **legacy["suffixes"].get(opts.version, {})}
        if target.key not in suffixes:
            raise NothingToDoError(f"no legacy OpenBLAS archive for {target.describe()}")
        plattag = suffixes[target.key]
    return f"openblas{'64_' if opts.interface == 'ilp64' else ''}-{opts.version}-{plattag}"


def prepare_legacy(opts: Options, tables: dict[str, Any]) -> Path:
    filename = legacy_filename(opts, tables)
    stem = re.sub(r"\.(tar\.gz|tgz|zip)$", "", filename)
    final = opts.cache / "prepared" / stem
    with _entry_lock(opts, final):
        return _prepare_legacy_entry(opts, tables, filename, final)


def _prepare_legacy_entry(
    opts: Options, tables: dict[str, Any], filename: str, final: Path
) -> Path:
    if (final / MARKER).is_file():
        log(f"using cached {final}", verbose_only=True)
        return final
    table = legacy_sha256_table(tables, opts.legacy_table)
    url = f"{opts.legacy_url.rstrip('/')}/{opts.version}/download/{filename}"
    expected = table.get(filename)

    def not_in_table(path: Path) -> None:
        observed = nwlib.file_hash(path)
        raise FatalError(
            f"{filename} is not in the sha256 table; its sha256 is {observed} "
            f'(add "{filename}": "{observed}" to legacy.sha256 in {TABLES.name})'
        )

    verify = None if expected else not_in_table
    archive = _fetch(url, opts.cache / "downloads" / filename, expected, opts, verify)

    def assemble(tree: Path) -> None:
        nwlib.safe_extract(archive, tree, strip_prefix=_archive_prefix(archive))
        if opts.target.os == "windows":
            for dll in (tree / "bin").glob("*.dll"):
                (tree / "lib").mkdir(exist_ok=True)
                shutil.copy2(dll, tree / "lib" / dll.name)
        libs = list((tree / "lib").glob("libopenblas*")) if (tree / "lib").is_dir() else []
        if not libs:
            raise FatalError(f"{filename} has no lib/libopenblas*")
        if not list(tree.glob("include/*blas*.h")):
            raise FatalError(f"{filename} has no include/*blas*.h")
        for pc in (tree / "lib" / "pkgconfig").glob("*.pc"):
            _rewrite_prefix(pc, final)

    return _build_tree(
        final, archive, assemble, {"source": "legacy", "file": filename, **_meta(opts)}
    )


def _archive_prefix(archive: Path) -> str | None:
    """The build prefix the archive stores (``usr/local``, ``64``) above lib/ and include/."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
        else:
            with tarfile.open(archive) as tar:
                names = tar.getnames()
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise FatalError(f"{archive.name} is not a readable archive: {exc}") from None
    prefixes = set()
    for name in names:
        parts = PurePosixPath(re.sub(r"^(?:\.?/)+", "", name.replace("\\", "/"))).parts
        for i, part in enumerate(parts):
            if part in ("lib", "include", "bin"):
                prefixes.add("/".join(parts[:i]))
                break
    if len(prefixes) != 1:
        return None  # no single prefix: extract as stored (absolute names are refused)
    return prefixes.pop() or None


def _rewrite_prefix(pc: Path, final: Path) -> None:
    """Point a tarball's .pc at the extracted copy (``prefix=`` and paths under it)."""
    text = pc.read_text(encoding="utf-8")
    old = _pc_value(pc, "prefix")
    lines = []
    for line in text.splitlines():
        if re.match(r"^prefix\s*=", line):
            line = f"prefix={final}"
        elif old and old != "/" and re.match(rf"^\w+\s*=\s*{re.escape(old)}(/|$)", line):
            key, value = line.split("=", 1)
            line = f"{key.strip()}={final}{value.strip()[len(old) :]}"
        lines.append(line)
    pc.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------ shared steps


def _meta(opts: Options) -> dict[str, str]:
    target = opts.target.describe()
    return {"version": opts.version, "interface": opts.interface, "target": target}


def _fetch(url: str, dest: Path, sha256: str | None, opts: Options, verify=None) -> Path:
    """A verified copy of ``url`` in the download cache (re-fetched if it no longer matches)."""
    if dest.is_file():
        if sha256 and nwlib.file_hash(dest) == sha256.lower():
            log(f"using cached {dest.name}", verbose_only=True)
            return dest
        dest.unlink()
    log(f"downloading {nwlib.sanitize_url(url)}", verbose_only=True)
    return nwlib.download(
        url, dest, sha256=sha256, timeout=opts.timeout, retries=opts.retries, verify=verify
    )


def _build_tree(final: Path, archive: Path, assemble, meta: dict[str, str]) -> Path:
    """Run ``assemble(tree)`` in a scratch directory; rename it to ``final`` when complete.

    An archive that cannot be assembled is removed from the cache as well.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part"))
    try:
        tree = scratch / "tree"
        try:
            assemble(tree)
        except FatalError:
            archive.unlink(missing_ok=True)
            raise
        (tree / MARKER).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        tree.chmod(0o755)  # mkdtemp made it private; builds may run as another user
        if final.exists():
            shutil.rmtree(final)
        os.replace(tree, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _pc_value(pc: Path, key: str) -> str | None:
    for line in pc.read_text(encoding="utf-8").splitlines():
        match = re.match(rf"^{re.escape(key)}\s*=\s?(.*)$", line)
        if match:
            return match[1].strip()
    return None


def prepare(opts: Options, tables: dict[str, Any]) -> Path:
    """The prepared directory for ``opts`` (from the cache when it is there)."""
    if opts.source == "wheel":
        return prepare_wheel(opts, tables)
    return prepare_legacy(opts, tables)


def library_version(opts: Options, tables: dict[str, Any]) -> str:
    """The OpenBLAS library version (what threadpoolctl reports) of the selected package."""
    known = tables[opts.source]["library_versions"].get(opts.version)
    if known:
        return known
    pcdir = prepare(opts, tables) / "lib" / "pkgconfig"
    for pc in sorted(pcdir.glob("*.pc")):
        version = _pc_value(pc, "version")
        if version and "$" not in version:
            return version
    raise FatalError(f"no version= line in {pcdir}/*.pc")


def validate_tree(path: Path, opts: Options) -> list[str]:
    """What a prepared tree lacks (empty when lib, headers and .pc are all there)."""
    problems = []
    patterns = {"linux": "*.so*", "macos": "*.dylib", "windows": "*.dll"}
    if not list((path / "lib").glob(f"lib*openblas*{patterns[opts.target.os].lstrip('*')}")):
        problems.append(f"no shared library lib/{patterns[opts.target.os]}")
    if opts.target.os == "windows" and not list((path / "lib").glob("*.lib")):
        problems.append("no import library lib/*.lib")
    if not (path / "include" / "cblas.h").is_file():
        problems.append("no include/cblas.h")
    pcs = list((path / "lib" / "pkgconfig").glob("*.pc"))
    if not pcs:
        problems.append("no lib/pkgconfig/*.pc")
    for pc in pcs:
        text = pc.read_text(encoding="utf-8")
        if str(path) not in text:
            problems.append(f"{pc.name} does not point at {path}")
    return problems


# ---------------------------------------------------------------------- checks


def _openblas_config(filepath: str) -> str | None:
    """openblas_get_config() of an already loaded OpenBLAS, under any of its four names."""
    import ctypes

    try:
        dll = ctypes.CDLL(filepath)
    except OSError:
        return None
    for name in (
        "scipy_openblas_get_config64_",
        "scipy_openblas_get_config",
        "openblas_get_config64_",
        "openblas_get_config",
    ):
        func = getattr(dll, name, None)
        if func is not None:
            func.restype = ctypes.c_char_p
            return (func() or b"").decode("utf-8", "replace")
    return None


def check_version(expected: str, interface: str) -> str:
    """Check the OpenBLAS the installed NumPy loads; return the OK line."""
    try:
        import threadpoolctl
    except ImportError:
        raise ConfigurationError(f"threadpoolctl is not installed for {sys.executable}") from None
    try:
        import numpy
    except ImportError as exc:
        raise ConfigurationError(f"cannot import numpy with {sys.executable}: {exc}") from None
    found = [i for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"]
    if len(found) != 1:
        paths = ", ".join(i.get("filepath", "?") for i in found) or "none"
        raise FatalError(
            f"numpy {numpy.__version__} loads {len(found)} OpenBLAS libraries, "
            f"expected exactly one: {paths}"
        )
    info = found[0]
    if info.get("version") != expected:
        raise FatalError(
            f"numpy {numpy.__version__} loads OpenBLAS {info.get('version')} "
            f"({info.get('filepath')}), expected {expected}"
        )
    config = _openblas_config(info["filepath"])
    if config is None:
        raise FatalError(f"cannot read the OpenBLAS configuration of {info['filepath']}")
    got = "ilp64" if "USE64BITINT" in config else "lp64"
    if got != interface:
        raise FatalError(
            f"numpy {numpy.__version__} loads an {got.upper()} OpenBLAS ({info['filepath']}), "
            f"expected {interface.upper()}"
        )
    return f"OpenBLAS {expected} ({got}) loaded by numpy {numpy.__version__}: OK"


def run_tests(selected: list[str], opts: Options, tables: dict[str, Any], fixed: bool) -> int:
    """--test: prepare and validate every requested platform; one line each on stdout."""
    platforms = tables["platforms"]
    everything = not selected or selected == ["all"]
    if everything:
        targets = all_targets(platforms)
    else:
        env = os.environ
        targets = [
            parse_target(p, None, env.get("MB_ML_VER"), env.get("MB_ML_LIBC"), platforms)
            for p in selected
        ]
    failures = skipped = passed = 0
    for target in targets:
        if fixed:
            interfaces = [opts.interface]
        else:
            interfaces = ["ilp64", "lp64"] if target.bits == 64 else ["lp64"]
        for interface in interfaces:
            one = replace(opts, target=target, interface=interface)
            label = f"{target.describe():24} {interface}"
            try:
                path = prepare(one, tables)
                problems = validate_tree(path, one)
            except NothingToDoError as exc:
                if not everything:  # asked for by name: missing is a failure
                    problems, path = [str(exc)], None
                else:
                    skipped += 1
                    print(f"SKIP {label} {exc}", flush=True)
                    continue
            except FatalError as exc:
                problems = [str(exc)]
                path = None
            if problems:
                failures += 1
                print(f"FAIL {label} {'; '.join(problems)}", flush=True)
            else:
                passed += 1
                print(f"ok   {label} {path}", flush=True)
    log(f"{passed} passed, {failures} failed, {skipped} skipped (not published)")
    if failures:
        raise FatalError(f"{failures} platform(s) failed the OpenBLAS self-test")
    return 0


def numpy_pins(
    numpy_version: str, cache: Path, timeout: float, index_url: str | None = None
) -> dict[str, str]:
    """scipy-openblas pins in NumPy's sdist (requirements/ci_requirements.txt)."""
    page, shown = _project_page("numpy", index_url, timeout)
    sdists = [
        p
        for p in page.packages
        if p.version == numpy_version and p.package_type == "sdist" and "sha256" in p.digests
    ]
    if not sdists:
        raise FatalError(f"numpy {numpy_version} has no sdist on the index {shown}")
    sdist = sdists[0]
    path = cache / "downloads" / nwlib.check_name(sdist.filename, f"the index {shown}")
    lock = cache / "locks" / f"{sdist.filename}.lock"
    with nwlib.file_lock(lock, f"cache entry {sdist.filename}"):
        if not (path.is_file() and nwlib.file_hash(path) == sdist.digests["sha256"]):
            url = _file_url(sdist.url, index_url)
            nwlib.download(url, path, sha256=sdist.digests["sha256"], timeout=timeout)
    pins = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.name.endswith("/requirements/ci_requirements.txt") and member.isfile():
                    if member.size > 2**20:
                        raise FatalError(f"{sdist.filename}: {member.name} is over 1 MiB")
                    text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                    for match in re.finditer(r"^(scipy-openblas\d+)==(\S+)", text, re.M):
                        pins[match[1]] = match[2]
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise FatalError(f"{sdist.filename} is not a readable sdist: {exc}") from None
    if not pins:
        raise FatalError(f"{sdist.filename} pins no scipy-openblas in ci_requirements.txt")
    return pins


# ------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fetch, verify and unpack OpenBLAS for a NumPy wheel build; "
        "print the prepared directory.",
        epilog="Also read: MB_ML_VER and MB_ML_LIBC (Linux target libc), "
        "NW_OPENBLAS_SHA256_TABLE (a JSON file of extra legacy sha256 entries). "
        "Exit status: 0 done, 1 a download or check failed, 2 bad input, 3 nothing matched.",
    )
    parser.add_argument(
        "--plat",
        default=env.get("PLAT"),
        help="target: x86_64, i686, aarch64, ppc64le, s390x, arm64, universal2 "
        "or a wheel platform tag (env PLAT; default: this machine)",
    )
    parser.add_argument("--os", choices=OS_NAMES, help="target OS (default: this machine's)")
    width = parser.add_mutually_exclusive_group()
    width.add_argument(
        "--ilp64",
        dest="interface",
        action="store_const",
        const="ilp64",
        help="64-bit integer interface (env NW_OPENBLAS_INTERFACE=ilp64)",
    )
    width.add_argument(
        "--lp64",
        dest="interface",
        action="store_const",
        const="lp64",
        help="32-bit integer interface (env NW_OPENBLAS_INTERFACE=lp64)",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default=env.get("NW_OPENBLAS_SOURCE"),
        help="wheel (scipy-openblas, NumPy >= 2) or legacy tarballs "
        "(env NW_OPENBLAS_SOURCE; default wheel)",
    )
    # flags whose default comes from an environment variable (named in the help)
    for flag, var, text in (
        ("--openblas-version", "OPENBLAS_VERSION", "package version instead of the pin"),
        ("--cache-dir", "NW_OPENBLAS_CACHE", "cache (default ~/.cache/numpy-wheels/openblas)"),
        ("--index-url", "NW_OPENBLAS_INDEX_URL", "simple index (default: pip's index)"),
        ("--legacy-url", "NW_OPENBLAS_LEGACY_URL", "base URL of the legacy archives"),
    ):
        parser.add_argument(flag, default=env.get(var), help=f"{text} (env {var})")
    parser.add_argument(
        "--timeout",
        type=float,
        default=env.get("NW_OPENBLAS_TIMEOUT", "30"),
        help="seconds without data before a request fails (env NW_OPENBLAS_TIMEOUT; default 30)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=env.get("NW_OPENBLAS_RETRIES", "5"),
        help="attempts per download (env NW_OPENBLAS_RETRIES; default 5)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--print-version",
        action="store_true",
        help="print the OpenBLAS library version of the selection",
    )
    action.add_argument(
        "--check-version",
        nargs="?",
        const="",
        default=None,
        metavar="VER",
        help="check the OpenBLAS that the installed numpy loads "
        "(default VER: the selection's library version)",
    )
    action.add_argument(
        "--test", nargs="*", metavar="PLAT", help="prepare and validate PLAT... or all platforms"
    )
    action.add_argument(
        "--show-numpy-pin",
        metavar="NUMPY_VERSION",
        help="print the scipy-openblas pins of a NumPy release's sdist",
    )
    nwlib.add_version_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        nwlib.VERBOSE = True
    if args.timeout <= 0 or args.retries < 1:
        parser.error("--timeout must be > 0 and --retries >= 1")
    tables = load_tables()
    env = os.environ
    if env.get("PIP_CERT") and not (env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")):
        env["REQUESTS_CA_BUNDLE"] = env["PIP_CERT"]  # the CA bundle pip is told to trust
    source = args.source or "wheel"
    if source not in SOURCES:
        raise ConfigurationError(f"NW_OPENBLAS_SOURCE={source!r} is not wheel or legacy")
    cache = Path(args.cache_dir or Path.home() / ".cache" / "numpy-wheels" / "openblas")
    cache = cache.expanduser().resolve()
    if args.show_numpy_pin:
        pins = numpy_pins(args.show_numpy_pin, cache, args.timeout, args.index_url)
        for name, version in sorted(pins.items()):
            print(f"{name}=={version}")
        return 0
    target = parse_target(
        args.plat, args.os, env.get("MB_ML_VER"), env.get("MB_ML_LIBC"), tables["platforms"]
    )
    if args.check_version is not None and not args.plat and not args.os:
        target = replace(target, arch=host_arch())
    interface = resolve_interface(args.interface, env.get("NW_OPENBLAS_INTERFACE"), target)
    opts = Options(
        target=target,
        interface=interface,
        source=source,
        version=args.openblas_version or tables[source]["version"],
        cache=cache,
        index_url=args.index_url,
        legacy_url=args.legacy_url or tables["legacy"]["base_url"],
        legacy_table=env.get("NW_OPENBLAS_SHA256_TABLE"),
        timeout=args.timeout,
        retries=args.retries,
    )
    if args.test is not None:
        fixed = bool(args.interface or env.get("NW_OPENBLAS_INTERFACE"))
        return run_tests(args.test, opts, tables, fixed)
    if args.print_version:
        print(library_version(opts, tables))
        return 0
    if args.check_version is not None:
        expected = args.check_version or library_version(opts, tables)
        print(check_version(expected, interface))
        return 0
    path = prepare(opts, tables)
    log(f"OpenBLAS {opts.version} ({interface}) for {target.describe()}: {path}", verbose_only=True)
    print(path)
    return 0


if __name__ == "__main__":
    nwlib.run_main(main, PROG)
