"""The wheel source (scipy-openblas), and the prepared directory of either source."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from numpy_wheels.archive import safe_extract
from numpy_wheels.errors import FatalError
from numpy_wheels.log import log

from .cache import MARKER, build_tree, entry_lock, fetch, meta, pc_value, remove
from .legacy import prepare_legacy
from .select import file_url, index_files, select_wheel
from .targets import OpenBLASTarget, Options


def prepare(opts: Options, tables: dict[str, Any]) -> Path:
    """The prepared directory for ``opts`` (from the cache when it is there)."""
    if opts.source == "wheel":
        return prepare_wheel(opts, tables)
    return prepare_legacy(opts, tables)


def prepare_wheel(opts: Options, tables: dict[str, Any]) -> Path:
    project = tables["wheel"]["projects"][opts.interface]
    files = index_files(project, opts.version, opts)
    info = select_wheel(files, opts.target, f"{project} {opts.version}")
    filename = info["filename"]
    final = opts.cache / "prepared" / filename[: -len(".whl")]
    with entry_lock(opts, final):
        return _prepare_wheel_entry(opts, project, info, final)


def _prepare_wheel_entry(opts: Options, project: str, info: dict[str, Any], final: Path) -> Path:
    filename = info["filename"]
    if (final / MARKER).is_file():
        log(f"using cached {final}", verbose_only=True)
        return final
    url = file_url(info["url"], opts.index_url)
    archive = fetch(url, opts.cache / "downloads" / filename, info["sha256"], opts)
    module = project.replace("-", "_")

    def assemble(tree: Path) -> None:
        safe_extract(archive, tree, strip_prefix=module)
        for extra in ("__init__.py", "__main__.py", "__pycache__"):
            remove(tree / extra)
        for dist_info in tree.glob("*.dist-info"):
            for lic in dist_info.glob("licenses/*"):
                shutil.move(str(lic), tree / lic.name)
            shutil.rmtree(dist_info)
        libfile, implib = _wheel_library(tree, opts.target, filename)
        shipped = tree / "lib" / "pkgconfig" / "scipy-openblas.pc"
        config = pc_value(shipped, "openblas_config") if shipped.is_file() else None
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

    return build_tree(final, archive, assemble, {"source": "wheel", "file": filename, **meta(opts)})


def _wheel_library(tree: Path, target: OpenBLASTarget, filename: str) -> tuple[str, str | None]:
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
    *,
    libdir: Path,
    includedir: Path,
    config: str,
    target: OpenBLASTarget,
    ilp64: bool,
    libfile: str,
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


def library_version(opts: Options, tables: dict[str, Any]) -> str:
    """The OpenBLAS library version (what threadpoolctl reports) of the selected package."""
    known = tables[opts.source]["library_versions"].get(opts.version)
    if known:
        return known
    pcdir = prepare(opts, tables) / "lib" / "pkgconfig"
    for pc in sorted(pcdir.glob("*.pc")):
        version = pc_value(pc, "version")
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
