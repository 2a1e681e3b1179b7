"""Provenance records as the release reads them: each Statement, and what it names.

`make wheels` writes one in-toto Statement (SLSA Provenance v1) per build; `make
stage` merges those of a run into one JSON Lines file and may sign it.
:func:`load` reads each record given to ``wheel-uploader --provenance PATH_OR_URL``
(a Statement, a DSSE envelope holding one, a JSON array or JSON Lines of either)
and, with ``--provenance-key``, has its detached signature (``RECORD.sig`` or
``RECORD.asc`` beside it) checked (:mod:`.provenance_signatures`) before trusting
a byte of it.  :mod:`.provenance` matches the files to the records.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigurationError, FatalError, HTTPStatusError
from ..files import printable, sanitize_url
from ..net import download

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
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
    source: str, workdir: Path, *, timeout: float, allow_insecure: bool, signed: bool
) -> tuple[bytes, bytes | None, str]:
    """(record bytes, detached signature bytes or None, the shown name) of one source;
    the signature is looked for only when ``signed`` (a key will check it)."""
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
        for suffix in SIGNATURE_SUFFIXES if signed else ():
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
    for suffix in SIGNATURE_SUFFIXES if signed else ():
        sig = path.with_name(path.name + suffix)
        if sig.is_file():
            signature = sig.read_bytes()
            break
    return data, signature, shown


def parse_statements(data: bytes, shown: str) -> list[dict]:
    """The Statements in a record file: one JSON value (a Statement, an envelope or a
    list of them) or JSON Lines of them."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProvenanceError(f"{shown}: not UTF-8 text") from None
    if text.lstrip()[:1] == "<":  # a login or error page served with 200
        raise ProvenanceError(f"{shown}: an HTML or XML page, not a provenance record")
    if text.lstrip().startswith("-----BEGIN "):  # RECORD.sig or .asc given for RECORD
        raise ProvenanceError(
            f"{shown}: a signature or key, not a provenance record (give the record: its "
            ".sig or .asc beside it is found)"
        )
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
            raise ProvenanceError(f"{shown}: names {printable(name)} twice, with two sha256s")
        subjects[name] = sha
    return subjects


def _builder(statement: dict) -> str:
    try:
        return printable(str(statement["predicate"]["runDetails"]["builder"]["id"]))
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
    if key is not None:
        from .provenance_signatures import key_kind

        key_kind(key)  # a key that cannot be read stops here, before any record is fetched
    with tempfile.TemporaryDirectory(prefix="nw-provenance-") as tmp:
        for source in sources:
            data, signature, shown = _read_source(
                source, Path(tmp), timeout=timeout, allow_insecure=allow_insecure,
                signed=key is not None,
            )  # fmt: skip
            signed_by = None
            if key is not None:
                if signature is None:
                    raise ProvenanceError(
                        f"--provenance {shown}: no signature beside it (.sig or .asc) to check "
                        "against --provenance-key; nothing uploaded"
                    )
                from .provenance_signatures import verify_signature  # gpg/ssh-keygen: only here

                signed_by = verify_signature(data, signature, key, shown)
            for number, statement in enumerate(parse_statements(data, shown), 1):
                where = f"{shown}#{number}" if number > 1 else shown
                subjects = _subjects(statement, where)
                records.append(Record(shown, number, subjects, _builder(statement), signed_by))
    return records
