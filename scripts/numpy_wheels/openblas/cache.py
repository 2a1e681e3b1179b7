"""The download cache: verified files, one preparation per entry, atomic trees."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from numpy_wheels.errors import FatalError
from numpy_wheels.files import file_hash, file_lock, sanitize_url
from numpy_wheels.log import log
from numpy_wheels.net import download

from .targets import Options

MARKER = ".nw-openblas.json"


def entry_lock(opts: Options, final: Path):
    """One preparation of a cache entry at a time (another run waits, told by whom)."""
    return file_lock(opts.cache / "locks" / f"{final.name}.lock", f"cache entry {final.name}")


def meta(opts: Options) -> dict[str, str]:
    target = opts.target.describe()
    return {"version": opts.version, "interface": opts.interface, "target": target}


def fetch(url: str, dest: Path, sha256: str | None, opts: Options, verify=None) -> Path:
    """A verified copy of ``url`` in the download cache (re-fetched if it no longer matches)."""
    if dest.is_file():
        if sha256 and file_hash(dest) == sha256.lower():
            log(f"using cached {dest.name}", verbose_only=True)
            return dest
        dest.unlink()
    log(f"downloading {sanitize_url(url)}", verbose_only=True)
    return download(
        url, dest, sha256=sha256, timeout=opts.timeout, retries=opts.retries, verify=verify
    )


def build_tree(final: Path, archive: Path, assemble, meta: dict[str, str]) -> Path:
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


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def pc_value(pc: Path, key: str) -> str | None:
    for line in pc.read_text(encoding="utf-8").splitlines():
        match = re.match(rf"^{re.escape(key)}\s*=\s?(.*)$", line)
        if match:
            return match[1].strip()
    return None
