"""PEP 740 publish attestations staged beside the wheels (``FILE.publish.attestation``,
the name pypa's publish action writes).

An attestation object is JSON: ``version`` 1, ``verification_material`` (the
Sigstore certificate and transparency log entries) and ``envelope``, whose
``statement`` is base64 of an in-toto Statement v1 naming the distribution by file
name and sha256.  The uploader fetches the ones the staging listing shows beside
their files (:func:`listed`, :func:`gather`; nothing is fetched for a file without
one), checks that each names its file's sha256 (:func:`check`), and hands it to
twine: twine 7 attaches only the attestation files given on its command line, and
only with ``--attestations`` (:func:`twine_inputs`).  The Sigstore signature itself
is verified by the index (PyPI) on upload; this machine has no trust root for it.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..errors import FatalError, HTTPStatusError
from ..files import file_hash, printable
from ..log import log
from ..net import download

SUFFIX = ".publish.attestation"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# The two attestation types PyPI takes; another is refused by the index mid-release.
PREDICATE_TYPES = (
    "https://docs.pypi.org/attestations/publish/v1",
    "https://slsa.dev/provenance/v1",
)
MAX_BYTES = 2**20  # a real one is a few KiB
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class AttestationError(FatalError):
    """An attestation that does not name its file's bytes."""


def path_for(dist: Path) -> Path:
    """Where the attestation of ``dist`` sits: beside it."""
    return dist.with_name(dist.name + SUFFIX)


def url_for(dist_url: str) -> str:
    """The staged attestation of the file at ``dist_url`` (hash fragment dropped)."""
    parts = urlsplit(dist_url)
    return urlunsplit(parts._replace(path=parts.path + SUFFIX, fragment=""))


def statement(path: Path) -> dict:
    """The in-toto Statement inside an attestation file, or AttestationError."""
    shown = path.name
    try:
        if path.stat().st_size > MAX_BYTES:
            raise AttestationError(f"{shown}: larger than {MAX_BYTES} bytes")
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise AttestationError(f"{shown}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise AttestationError(f"{shown}: not JSON") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise AttestationError(f"{shown}: not a PEP 740 attestation object (version 1)")
    envelope = data.get("envelope")
    if not isinstance(envelope, dict) or not isinstance(data.get("verification_material"), dict):
        raise AttestationError(f"{shown}: no envelope or verification_material")
    try:
        inner = json.loads(base64.b64decode(envelope.get("statement", ""), validate=True))
    except (ValueError, TypeError):
        raise AttestationError(f"{shown}: its envelope's statement is not base64 JSON") from None
    if not isinstance(inner, dict) or inner.get("_type") != STATEMENT_TYPE:
        raise AttestationError(f"{shown}: its statement is not an in-toto Statement v1")
    if inner.get("predicateType") not in PREDICATE_TYPES:
        shown_type = printable(str(inner.get("predicateType")), 80)
        raise AttestationError(
            f"{shown}: predicateType {shown_type!r} is not one PyPI takes "
            f"({', '.join(PREDICATE_TYPES)})"
        )
    if not envelope.get("signature"):
        raise AttestationError(f"{shown}: its envelope has no signature")
    return inner


def check(path: Path, dist_name: str, sha256: str) -> None:
    """Raise unless the attestation at ``path`` names ``dist_name`` with ``sha256``."""
    subjects = statement(path).get("subject")
    named = []
    for item in subjects if isinstance(subjects, list) else []:
        if isinstance(item, dict) and item.get("name") == dist_name:
            digest = item.get("digest") if isinstance(item.get("digest"), dict) else {}
            named.append(str(digest.get("sha256", "")))
    if sha256 in named:
        return
    if named:
        theirs = printable(named[0], 80)
        raise AttestationError(
            f"{path.name} names {dist_name} with sha256 {theirs}, the file's is {sha256}; "
            "nothing uploaded"
        )
    raise AttestationError(f"{path.name} does not name {dist_name}; nothing uploaded")


def fetch(
    dist_url: str, dist: Path, *, timeout: float = 30.0, retries: int = 3,
    allow_insecure: bool = False, exact: bool = False,
) -> Path | None:  # fmt: skip
    """Download the attestation staged beside ``dist_url`` (``exact``: at ``dist_url``
    itself, the URL a listing gave) next to ``dist``; None when the staging location
    has none (404).  A copy already there is fetched again: it is small, and an older
    one may be of another build."""
    dest = path_for(dist)
    dest.unlink(missing_ok=True)
    try:
        return download(
            dist_url if exact else url_for(dist_url), dest, timeout=timeout, retries=retries,
            progress=False, resume=False, allow_insecure=allow_insecure,
        )  # fmt: skip
    except HTTPStatusError as exc:
        if exc.status == 404:
            return None
        raise


def twine_inputs(dist: Path) -> list[str]:
    """twine's arguments for uploading ``dist``: ``--attestations``, the file and its
    attestation when one sits beside it, else the file alone (twine refuses
    ``--attestations`` for a file without one)."""
    found = path_for(dist)
    return ["--attestations", str(dist), str(found)] if found.is_file() else [str(dist)]


def listed(files) -> dict[str, str]:
    """Dist name -> attestation URL, of the ``FILE.publish.attestation`` files a staging
    listing shows (RemoteFile-like: name, url)."""
    return {f.name[: -len(SUFFIX)]: f.url for f in files if f.name.endswith(SUFFIX)}


def gather(entries, staged: dict[str, str] | None = None, *, timeout: float = 30.0,
           retries: int = 3, allow_insecure: bool = False) -> int:  # fmt: skip
    """Each entry's attestation, checked against the entry's sha256 (entries are
    wheel-uploader's summary rows): a staged one (``staged``: :func:`listed`) is
    downloaded beside its file, a local file's is found beside it.  Raises
    AttestationError for the first that does not name its file; returns the count."""
    staged = staged or {}
    found = 0
    for entry in entries:
        got = None
        if entry.name in staged:
            got = fetch(staged[entry.name], entry.path, timeout=timeout, retries=retries,
                        allow_insecure=allow_insecure, exact=True)  # fmt: skip
        elif entry.remote is None and path_for(entry.path).is_file():
            got = path_for(entry.path)
        elif entry.remote is not None:
            path_for(entry.path).unlink(missing_ok=True)  # not staged (any more): none
        if got is not None:
            check(got, entry.name, entry.sha256 or file_hash(entry.path))
            found += 1
    if found:
        log(f"{found} PEP 740 attestations checked; each goes to the index with its file")
    return found
