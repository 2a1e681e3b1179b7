"""Provenance records as the release reads them: what vouches for each staged file.

`make wheels` writes one in-toto Statement (SLSA Provenance v1) per build; `make
stage` merges those of a run into one JSON Lines file and may sign it
(``ssh-keygen -Y sign`` with :data:`NAMESPACE`, or a detached GPG signature).
``wheel-uploader --provenance PATH_OR_URL`` (repeatable) loads them here:

- :func:`load` reads each record (a Statement, a DSSE envelope holding one, a JSON
  array or JSON Lines of either) and, with ``--provenance-key`` (an ssh
  allowed-signers file or a GPG public key), checks its detached signature
  (``RECORD.sig`` or ``RECORD.asc`` beside it) before trusting a byte of it;
- :func:`vouch` then maps every downloaded file to the record that names it with
  the same sha256, before anything is uploaded: a different sha256, or a file no
  record names, stops the run; :func:`missing` lists subjects that were not staged.

The staging org's own hashes are not enough: whoever holds its token controls
them too. A record is only as good as where it came from (the CI artifact or a
signature by a key the release manager holds).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigurationError, FatalError, HTTPStatusError
from ..files import atomic_write, file_hash, printable, sanitize_url
from ..log import ci_error, log
from ..net import download

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
# ssh-keygen -Y sign/verify namespace: a signature made for anything else never counts.
NAMESPACE = "numpy-wheels-provenance"
SIGNATURE_SUFFIXES = (".sig", ".asc")  # ssh-keygen's name, gpg --armor's name
MAX_RECORD_BYTES = 16 * 2**20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ProvenanceError(FatalError):
    """A record that cannot be read or trusted, or a file it does not vouch for."""


@dataclass
class Record:
    """One Statement: where it came from, its subjects (name -> sha256), its builder."""

    source: str  # the PATH or URL as given, credentials masked
    index: int  # its place in the file (1-based; a merged file holds several)
    subjects: dict[str, str]
    builder: str = ""
    signed_by: str | None = None  # who signed the file, when --provenance-key checked it

    @property
    def label(self) -> str:
        return f"{self.source}#{self.index}" if self.index > 1 else self.source

    def describe(self) -> str:
        """What the summary prints for a file this record vouched for."""
        who = f", signed by {self.signed_by}" if self.signed_by else ""
        return f"{self.label} (builder {self.builder or 'unknown'}{who})"


@dataclass
class Vouched:
    """The outcome of :func:`vouch`: file name -> record; subjects nobody staged."""

    by_file: dict[str, Record] = field(default_factory=dict)
    missing: list[tuple[str, Record]] = field(default_factory=list)


# ------------------------------------------------------------------------ reading


def _is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def _fetch(url: str, dest: Path, *, timeout: float, allow_insecure: bool) -> Path | None:
    """Download ``url`` to ``dest``; None when the server says 404 (no such file)."""
    try:
        return download(
            url, dest, timeout=timeout, retries=3, progress=False, resume=False,
            allow_insecure=allow_insecure,
        )  # fmt: skip
    except HTTPStatusError as exc:
        if exc.status == 404:
            return None
        raise


def _read_source(
    source: str, workdir: Path, *, timeout: float, allow_insecure: bool
) -> tuple[bytes, bytes | None, str]:
    """(record bytes, detached signature bytes or None, the shown name) of one source."""
    shown = sanitize_url(source)
    if _is_url(source):
        if urlsplit(source).scheme == "http" and not allow_insecure:
            raise ConfigurationError(
                f"--provenance {shown}: refusing http:// (use --allow-insecure to accept it)"
            )
        here = workdir / f"record-{len(list(workdir.iterdir()))}"
        got = _fetch(source, here, timeout=timeout, allow_insecure=allow_insecure)
        if got is None:
            raise ProvenanceError(f"--provenance {shown}: HTTP 404 Not Found")
        signature = None
        base = urlsplit(source)
        for suffix in SIGNATURE_SUFFIXES:
            sig_url = base._replace(path=base.path + suffix).geturl()
            sig = _fetch(sig_url, here.with_name(here.name + suffix), timeout=timeout,
                         allow_insecure=allow_insecure)  # fmt: skip
            if sig is not None:
                signature = sig.read_bytes()
                break
        return got.read_bytes(), signature, shown
    path = Path(source).expanduser()
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise ProvenanceError(f"--provenance {shown}: larger than {MAX_RECORD_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise ProvenanceError(f"--provenance {shown}: cannot read: {exc.strerror}") from None
    signature = None
    for suffix in SIGNATURE_SUFFIXES:
        sig = path.with_name(path.name + suffix)
        if sig.is_file():
            signature = sig.read_bytes()
            break
    return data, signature, shown


def _statements(data: bytes, shown: str) -> list[dict]:
    """The Statements in a record file: one JSON value (a Statement, an envelope or a
    list of them) or JSON Lines of them."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProvenanceError(f"{shown}: not UTF-8 text") from None
    try:
        values = [json.loads(text)]
    except ValueError:
        try:
            values = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise ProvenanceError(f"{shown}: neither JSON nor JSON Lines: {exc}") from None
    flat: list[object] = []
    for value in values:
        flat += value if isinstance(value, list) else [value]
    statements = [_unwrap(value, shown) for value in flat]
    if not statements:
        raise ProvenanceError(f"{shown}: holds no statement")
    return statements


def _unwrap(value: object, shown: str) -> dict:
    """A Statement, from itself or from the DSSE envelope around it."""
    if isinstance(value, dict) and "payload" in value and "payloadType" in value:
        if value["payloadType"] != DSSE_PAYLOAD_TYPE:
            raise ProvenanceError(
                f"{shown}: an envelope of {printable(str(value['payloadType']), 80)!r}, "
                f"not {DSSE_PAYLOAD_TYPE}"
            )
        try:
            value = json.loads(base64.b64decode(value["payload"], validate=True))
        except (ValueError, TypeError):
            raise ProvenanceError(
                f"{shown}: an envelope whose payload is not base64 JSON"
            ) from None
    if not isinstance(value, dict) or value.get("_type") != STATEMENT_TYPE:
        raise ProvenanceError(f"{shown}: not an in-toto Statement v1 ({STATEMENT_TYPE})")
    if value.get("predicateType") != PREDICATE_TYPE:
        raise ProvenanceError(
            f"{shown}: predicateType is "
            f"{printable(str(value.get('predicateType')), 80)!r}, not {PREDICATE_TYPE}"
        )
    return value


def _subjects(statement: dict, shown: str) -> dict[str, str]:
    subjects: dict[str, str] = {}
    items = statement.get("subject")
    if not isinstance(items, list) or not items:
        raise ProvenanceError(f"{shown}: a statement without subjects")
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        digest = item.get("digest") if isinstance(item, dict) else None
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(name, str) or not isinstance(sha, str) or not _SHA256.match(sha):
            raise ProvenanceError(f"{shown}: a subject without a name and a sha256: {item!r:.120}")
        if subjects.get(name, sha) != sha:
            raise ProvenanceError(f"{shown}: names {name} twice, with two sha256s")
        subjects[name] = sha
    return subjects


def _builder(statement: dict) -> str:
    try:
        return str(statement["predicate"]["runDetails"]["builder"]["id"])
    except (KeyError, TypeError):
        return ""


def load(
    sources: Iterable[str],
    *,
    key: Path | None = None,
    timeout: float = 30.0,
    allow_insecure: bool = False,
) -> list[Record]:
    """Every Statement of every source (PATH or URL), signatures checked against
    ``key`` when given (then an unsigned record is refused)."""
    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="nw-provenance-") as tmp:
        for source in sources:
            data, signature, shown = _read_source(
                source, Path(tmp), timeout=timeout, allow_insecure=allow_insecure
            )
            signed_by = None
            if key is not None:
                if signature is None:
                    raise ProvenanceError(
                        f"--provenance {shown}: no signature beside it (.sig or .asc) to check "
                        "against --provenance-key; nothing uploaded"
                    )
                signed_by = verify_signature(data, signature, key, shown)
            for number, statement in enumerate(_statements(data, shown), 1):
                where = f"{shown}#{number}" if number > 1 else shown
                subjects = _subjects(statement, where)
                records.append(Record(shown, number, subjects, _builder(statement), signed_by))
    return records


# ---------------------------------------------------------------------- signatures


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
    made_by = "gpg" if b"-----BEGIN PGP SIGNATURE-----" in signature[:100] else "ssh"
    if b"-----BEGIN SSH SIGNATURE-----" not in signature[:100] and made_by == "ssh":
        made_by = "gpg"  # a binary OpenPGP signature (gpg --detach-sign without --armor)
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


# ---------------------------------------------------------------------- vouching


def vouch(records: list[Record], files: dict[str, str]) -> Vouched:
    """Map each file (name -> sha256 of the downloaded bytes) to the first record that
    names it with that sha256; raise on a file named with another sha256, or named by
    no record.  Subjects of the records that are not among ``files`` are returned."""
    if not records:
        raise ConfigurationError("--provenance: no record given")
    result = Vouched()
    for name, sha in files.items():
        named = [(r, r.subjects[name]) for r in records if name in r.subjects]
        match = next((r for r, theirs in named if theirs == sha), None)
        if match is not None:
            result.by_file[name] = match
        elif named:
            record, theirs = named[0]
            raise ProvenanceError(
                f"{name}: sha256 {sha} downloaded, but {record.label} says {theirs}; "
                "not the file that was built, nothing uploaded"
            )
        else:
            raise ProvenanceError(
                f"{name}: no provenance record names it (read {len(records)} statements from "
                f"{', '.join(sorted({r.source for r in records}))}); nothing uploaded"
            )
    seen: set[str] = set()
    for record in records:
        for name in record.subjects:
            if name not in files and name not in seen:
                seen.add(name)
                result.missing.append((name, record))
    return result


# ------------------------------------------------------------- wheel-uploader's use


def add_arguments(parser) -> None:
    """``--provenance`` (repeatable) and ``--provenance-key`` on wheel-uploader's parser."""
    parser.add_argument(
        "--provenance", action="append", metavar="PATH_OR_URL", default=[],
        help="a provenance record (`make wheels`' build-provenance.intoto.json, or the "
        "merged one `make stage` stages), repeatable: every file must be a subject of one "
        "with the same sha256, checked before any upload",
    )  # fmt: skip
    parser.add_argument(
        "--provenance-key", metavar="FILE", type=Path,
        help="check each record's signature (RECORD.sig or RECORD.asc beside it) with this "
        "ssh allowed-signers file or GPG public key; an unsigned record is refused",
    )  # fmt: skip


def records_for(opts) -> list[Record] | None:
    """The records ``opts`` names (signatures checked), or None without --provenance."""
    if opts.provenance_key is not None and not opts.provenance:
        raise ConfigurationError("--provenance-key needs --provenance PATH_OR_URL")
    if not opts.provenance:
        return None
    records = load(opts.provenance, key=opts.provenance_key, timeout=opts.timeout,
                   allow_insecure=opts.allow_insecure)  # fmt: skip
    log(f"{len(records)} provenance statements from {len(opts.provenance)} records")
    return records


def gate(entries, records: list[Record] | None) -> Vouched | None:
    """Before any upload: every entry (name, sha256) vouched for, else ProvenanceError.
    The entries are wheel-uploader's summary rows."""
    if records is None:
        return None
    return vouch(records, {e.name: e.sha256 or file_hash(e.path) for e in entries})


def summary_lines(vouched: Vouched | None) -> list[str]:
    """What the summary says of the records: who vouched for each file, and what was
    named but not staged."""
    if vouched is None:
        return []
    lines = [f"{name}: vouched for by {r.describe()}" for name, r in vouched.by_file.items()]
    lines += [f"{name}: named by {r.label} but not staged" for name, r in vouched.missing]
    return lines


# ------------------------------------------------------------------- staging side

BUILD_RECORDS = ("build-provenance.intoto.json", "build-provenance-*.intoto.json")


def staged_name(project: str, version: str, data: bytes) -> str:
    """The staged file's name: project and version, then the content's digest, so a
    re-stage of other records never hides behind a file already staged (--skip-existing)."""
    return f"{project}-{version}-provenance-{hashlib.sha256(data).hexdigest()[:16]}.intoto.jsonl"


def merge_for_stage(wheel_dir: Path, wheels: list[Path], out_dir: Path) -> Path | None:
    """Check that the build records in ``wheel_dir`` (this run's, and other CI jobs'
    renamed build-provenance-NAME.intoto.json) name every wheel to stage with its
    sha256, and write the records that do as one JSON Lines file in ``out_dir``
    (emptied first: it holds this stage's record only).  None when there is no record."""
    from packaging.utils import parse_wheel_filename

    paths = sorted({p for pattern in BUILD_RECORDS for p in wheel_dir.glob(pattern)})
    if not paths:
        return None
    records = load(map(str, paths))
    vouched = vouch(records, {w.name: file_hash(w) for w in wheels})
    used = {(r.source, r.index) for r in vouched.by_file.values()}
    lines = []
    for path in paths:
        statements = _statements(path.read_bytes(), str(path))
        for number, statement in enumerate(statements, 1):
            if (str(path), number) in used:
                lines.append(json.dumps(statement, sort_keys=True, separators=(",", ":")))
    data = ("\n".join(lines) + "\n").encode()
    project, version, *_ = parse_wheel_filename(wheels[0].name)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.intoto.jsonl*"):
        old.unlink()
    out = out_dir / staged_name(project.replace("-", "_"), str(version), data)
    with atomic_write(out, "wb") as fobj:
        fobj.write(data)
    return out


def main(argv: list[str] | None = None) -> int:
    """``stage OUT_DIR WHEEL_DIR WHEEL...`` (scripts/stage.sh): print the merged record's
    path, or nothing (with a warning) when the wheels have no record."""
    import argparse

    parser = argparse.ArgumentParser(prog="provenance", description=merge_for_stage.__doc__)
    parser.add_argument("command", choices=["stage"])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("wheel_dir", type=Path)
    parser.add_argument("wheels", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        out = merge_for_stage(args.wheel_dir, args.wheels, args.out_dir)
    except FatalError as exc:
        print(f"stage: error: {exc}", file=sys.stderr)
        ci_error(str(exc), "stage")
        return exc.return_code
    if out is None:
        print(
            f"stage: warning: no build-provenance*.intoto.json in {args.wheel_dir}/; the wheels "
            "are staged without a provenance record",
            file=sys.stderr,
        )
    else:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
