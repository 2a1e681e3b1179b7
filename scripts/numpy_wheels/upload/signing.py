"""The release notes' checksums (``--hashes``) and GPG signatures (``-s``,
``--sign-hashes``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigurationError, FatalError
from ..files import atomic_write, file_hash


def write_hashes(path: Path, files: Iterable[Path]) -> None:
    """sha256sum-style lines (``sha256sum -c`` accepts them) and an MD5 block, as in
    NumPy's release notes; written whole or not at all."""
    ordered = sorted(files, key=lambda p: p.name)
    text = ["Checksums", "=========", ""]
    for title, algorithm in (("MD5", "md5"), ("SHA256", "sha256")):
        text += [title, "-" * len(title), "::", ""]
        text += [f"    {file_hash(p, algorithm)}  {p.name}" for p in ordered]
        text.append("")
    with atomic_write(path) as out:
        out.write("\n".join(text))


def gpg_sign(path: Path, identity: str | None = None) -> Path:
    """Detached ASCII-armoured signature ``path.asc`` (written to a temporary name first)."""
    gpg = shutil.which("gpg") or shutil.which("gpg2")
    if gpg is None:
        raise ConfigurationError("gpg not found on PATH; needed to sign")
    sig = Path(f"{path}.asc")
    tmp = sig.with_name(f".{sig.name}.part")
    cmd = [gpg, "--batch", "--yes", "--armor", "--detach-sign", "--output", str(tmp)]
    cmd += ["--local-user", identity] if identity else []
    proc = subprocess.run([*cmd, str(path)], capture_output=True, text=True)
    if proc.returncode:
        tmp.unlink(missing_ok=True)
        last = (proc.stderr.strip().splitlines() or ["gpg failed"])[-1]
        raise FatalError(f"signing {path.name} failed: {last}")
    os.replace(tmp, sig)
    return sig
