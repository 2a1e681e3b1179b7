"""Detached signatures of provenance records: ``ssh-keygen -Y verify`` against an
allowed-signers file (namespace :data:`NAMESPACE`) or ``gpg --verify`` against a
public key imported into a throwaway keyring.  Each answers who signed, or raises
ProvenanceError: a record is only as good as the key that signed it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import ConfigurationError
from ..files import printable
from .provenance_records import ProvenanceError

# ssh-keygen -Y sign/verify namespace: a signature made for anything else never counts.
NAMESPACE = "numpy-wheels-provenance"


def key_kind(key: Path) -> str:
    """``gpg`` for an OpenPGP public key (armoured or binary), ``ssh`` for an
    allowed-signers file."""
    try:
        head = key.read_bytes()[:4096]
    except OSError as exc:
        raise ConfigurationError(f"--provenance-key {key}: cannot read: {exc.strerror}") from None
    if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in head or (head[:1] and head[0] & 0x80):
        return "gpg"
    if b"PRIVATE KEY" in head:
        raise ConfigurationError(
            f"--provenance-key {key}: a private key; give the public side (an ssh "
            "allowed-signers file or a GPG public key)"
        )
    return "ssh"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(f"{name} not found on PATH; needed for --provenance-key")
    return found


def _last_line(proc: subprocess.CompletedProcess[str], fallback: str) -> str:
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return printable(lines[-1] if lines else fallback, 300)


def verify_signature(data: bytes, signature: bytes, key: Path, shown: str) -> str:
    """Check ``signature`` over ``data``; return who signed it, or raise."""
    kind = key_kind(key)
    head = signature.lstrip()[:100]
    if head.startswith(b"-----BEGIN SSH SIGNATURE-----"):
        made_by = "ssh"
    elif head.startswith(b"-----BEGIN PGP SIGNATURE-----") or (head[:1] and head[0] & 0x80):
        made_by = "gpg"  # armoured, or binary (an OpenPGP packet tag has its top bit set)
    else:
        raise ProvenanceError(
            f"{shown}: the signature beside it is neither an SSH nor an OpenPGP signature; "
            "nothing uploaded"
        )
    if made_by != kind:
        raise ProvenanceError(
            f"{shown}: signed with {made_by}, but --provenance-key {key} is an {kind} key"
        )
    with tempfile.TemporaryDirectory(prefix="nw-verify-") as tmp:
        record, sig = Path(tmp) / "record", Path(tmp) / "record.sig"
        record.write_bytes(data)
        sig.write_bytes(signature)
        return (_verify_ssh if kind == "ssh" else _verify_gpg)(record, sig, key, shown, Path(tmp))


def _verify_ssh(record: Path, sig: Path, key: Path, shown: str, tmp: Path) -> str:
    ssh_keygen = _tool("ssh-keygen")
    find = subprocess.run(
        [ssh_keygen, "-Y", "find-principals", "-s", str(sig), "-f", str(key)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    principals = find.stdout.split()
    if find.returncode or not principals:
        raise ProvenanceError(
            f"{shown}: its signature is by no key of --provenance-key {key}; nothing uploaded"
        )
    with record.open("rb") as stdin:
        proc = subprocess.run(
            [ssh_keygen, "-Y", "verify", "-f", str(key), "-I", principals[0], "-n", NAMESPACE,
             "-s", str(sig)],
            stdin=stdin, capture_output=True, text=True,
        )  # fmt: skip
    if proc.returncode:
        raise ProvenanceError(
            f"{shown}: bad signature ({_last_line(proc, 'ssh-keygen -Y verify failed')}); "
            "nothing uploaded"
        )
    return principals[0]


def _verify_gpg(record: Path, sig: Path, key: Path, shown: str, tmp: Path) -> str:
    gpg = _tool("gpg")
    home = tmp / "gnupg"
    home.mkdir(mode=0o700)
    base = [gpg, "--batch", "--no-tty", "--homedir", str(home)]
    imported = subprocess.run([*base, "--import", str(key)], capture_output=True, text=True)
    if imported.returncode:
        raise ConfigurationError(
            f"--provenance-key {key}: not a GPG public key ({_last_line(imported, 'gpg failed')})"
        )
    proc = subprocess.run(
        [*base, "--status-fd", "1", "--verify", str(sig), str(record)],
        capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"},
    )  # fmt: skip
    valid = [ln.split()[2] for ln in proc.stdout.splitlines() if ln.startswith("[GNUPG:] VALIDSIG")]
    if proc.returncode or not valid:
        raise ProvenanceError(
            f"{shown}: bad signature ({_last_line(proc, 'gpg --verify failed')}); nothing uploaded"
        )
    return valid[0]
