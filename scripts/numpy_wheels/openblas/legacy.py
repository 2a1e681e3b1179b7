"""The legacy source (NumPy 1.x): OpenBLAS tarballs and zips checked against the table."""

from __future__ import annotations

import re
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from numpy_wheels.archive import safe_extract
from numpy_wheels.errors import FatalError, NothingToDoError
from numpy_wheels.files import file_hash
from numpy_wheels.log import log

from .cache import MARKER, build_tree, entry_lock, fetch, meta, pc_value
from .tables import TABLES, legacy_sha256_table
from .targets import Options, libc_from_ml_ver


def legacy_filename(opts: Options, tables: dict[str, Any]) -> str:
    legacy, target = tables["legacy"], opts.target
    if target.os == "linux":
        tag = target.libc_tag
        if tag is None:
            tag = legacy["musllinux_tag"] if target.libc == "musllinux" else None
            tag = tag or libc_from_ml_ver("manylinux", legacy["manylinux_default"])[0]
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
    with entry_lock(opts, final):
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
        observed = file_hash(path)
        raise FatalError(
            f"{filename} is not in the sha256 table; its sha256 is {observed} "
            f'(add "{filename}": "{observed}" to legacy.sha256 in {TABLES.name})'
        )

    verify = None if expected else not_in_table
    archive = fetch(url, opts.cache / "downloads" / filename, expected, opts, verify)

    def assemble(tree: Path) -> None:
        safe_extract(archive, tree, strip_prefix=_archive_prefix(archive))
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

    return build_tree(
        final, archive, assemble, {"source": "legacy", "file": filename, **meta(opts)}
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
    old = pc_value(pc, "prefix")
    lines = []
    for line in text.splitlines():
        if re.match(r"^prefix\s*=", line):
            line = f"prefix={final}"
        elif old and old != "/" and re.match(rf"^\w+\s*=\s*{re.escape(old)}(/|$)", line):
            key, value = line.split("=", 1)
            line = f"{key.strip()}={final}{value.strip()[len(old) :]}"
        lines.append(line)
    pc.write_text("\n".join(lines) + "\n", encoding="utf-8")
