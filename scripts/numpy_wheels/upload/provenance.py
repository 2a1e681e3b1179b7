"""What vouches for each staged file: the gate between download and upload.

``wheel-uploader --provenance PATH_OR_URL`` (repeatable) reads the records
(:mod:`.provenance_records`; signatures checked by :mod:`.provenance_signatures`
with ``--provenance-key``); :func:`vouch` then maps every downloaded file to the
record that names it with the same sha256, before anything is uploaded: a
different sha256, or a file no record names, stops the run; subjects that were not
staged are listed.  ``--dry-run`` previews that decision (:func:`preview`, the same
:func:`judge`) on the sha256s the staging page publishes, downloading no wheel; the
real run judges the downloaded bytes again.  ``python -m
numpy_wheels.upload.provenance stage`` (`make stage`) merges a run's build records
into the one file it stages.

The staging org's own hashes are not enough: whoever holds its token controls
them too. A record is only as good as where it came from (the CI artifact or a
signature by a key the release manager holds).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigurationError, FatalError
from ..files import atomic_write, file_hash, printable, sanitize_url
from ..log import ci_error, log
from .provenance_records import ProvenanceError, Record, load, parse_statements

# ---------------------------------------------------------------------- vouching


@dataclass
class Vouched:
    """The outcome of :func:`judge`: file name -> record; subjects nobody staged; files
    a real run refuses (name -> why); files a record names whose digest is not known
    yet (``--dry-run`` without a published sha256: the check needs the download)."""

    by_file: dict[str, Record] = field(default_factory=dict)
    missing: list[tuple[str, Record]] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    unchecked: dict[str, Record] = field(default_factory=dict)


def judge(
    records: list[Record], files: dict[str, str | None], *, seen: str = "downloaded",
    then: str = "nothing uploaded",
) -> Vouched:  # fmt: skip
    """Map each file (name -> its sha256, ``seen`` saying where that came from; None when
    not known) to the first record that names it with that sha256.  A file named with
    another sha256, named by two records with two sha256s, or named by no record is
    refused (why, ending in ``then``).  Subjects not among ``files`` are listed."""
    if not records:
        raise ConfigurationError("--provenance: no record given")
    result = Vouched()
    for name, sha in files.items():
        named = [(r, r.subjects[name]) for r in records if name in r.subjects]
        differ = next(((r, theirs) for r, theirs in named if theirs != named[0][1]), None)
        if differ is not None:  # two builds of one file name: which one is this?
            result.refused[name] = (
                f"{name}: {named[0][0].label} says sha256 {named[0][1]}, {differ[0].label} "
                f"says {differ[1]}; the records disagree, {then}"
            )
        elif not named:
            result.refused[name] = (
                f"{name}: no provenance record names it{_spelt(name, records, then)}"
            )
        elif sha is None:
            result.unchecked[name] = named[0][0]
        elif named[0][1] == sha:
            result.by_file[name] = named[0][0]
        else:
            record, theirs = named[0]
            result.refused[name] = (
                f"{name}: sha256 {sha} {seen}, but {record.label} says {theirs}; "
                f"not the file that was built, {then}"
            )
    seen_names: set[str] = set()
    for record in records:
        for name in record.subjects:
            if name not in files and name not in seen_names:
                seen_names.add(name)
                result.missing.append((name, record))
    return result


def vouch(records: list[Record], files: dict[str, str]) -> Vouched:
    """:func:`judge` of downloaded files (name -> sha256), raising on the first refused."""
    result = judge(records, files)
    if result.refused:
        raise ProvenanceError(next(iter(result.refused.values())))
    return result


def _spelt(name: str, records: list[Record], then: str) -> str:
    """The rest of the error for a file no record names: a subject naming the same
    distribution spelt otherwise (case, normalization), or what was read."""
    from packaging.version import InvalidVersion, Version

    from .select import identity

    def same(other: str) -> tuple | None:  # 1.0 and 1.0.0 are one version (PEP 440)
        found = identity(other)
        try:
            return found and (found[0], Version(found[1]), found[2])
        except InvalidVersion:
            return None

    wanted = same(name)
    for record in records:
        for subject in record.subjects:
            if wanted is not None and same(subject) == wanted:
                return (f"; {record.label} names {printable(subject)}, spelt otherwise (a record "
                        f"must name the file exactly), {then}")  # fmt: skip
    sources = ", ".join(sorted({r.source for r in records}))
    return f" (read {len(records)} statements from {sources}); {then}"


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
    served = [s for s in opts.provenance if urlsplit(s).scheme in ("http", "https")]
    if served and opts.provenance_key is None:  # staging's token may write there too
        print(
            f"wheel-uploader: warning: {sanitize_url(served[0])}: an unsigned record on a server "
            "is no better than whoever can write there (a staging token too); give "
            "--provenance-key, or the CI artifact's file",
            file=sys.stderr,
        )
    log(f"{len(records)} provenance statements from {len(opts.provenance)} records")
    return records


def gate(entries, records: list[Record] | None) -> Vouched | None:
    """Before any upload: every entry (name, sha256) vouched for, else ProvenanceError.
    The entries are wheel-uploader's summary rows."""
    if records is None:
        return None
    return vouch(records, {e.name: e.sha256 or file_hash(e.path) for e in entries})


def preview(entries, records: list[Record] | None) -> Vouched | None:
    """``--dry-run``: what :func:`gate` will decide, judged on the sha256 the staging
    page publishes (no wheel downloaded; a page without one leaves the file unchecked)
    or, for ``--files``, on the local file; each entry a real run refuses gets why."""
    if records is None:
        return None
    local = all(e.remote is None for e in entries)
    files = {e.name: file_hash(e.path) if local else e.remote.sha256 for e in entries}
    seen = "read from the file" if local else "published by staging"
    result = judge(records, files, seen=seen, then="a real run refuses it and uploads nothing")
    for e in entries:
        if e.name in result.refused:
            e.verified, e.error = "refused", result.refused[e.name]
    return result


def summary_lines(vouched: Vouched | None) -> list[str]:
    """What the summary says of the records: who vouched for each file, and what was
    named but not staged."""
    if vouched is None:
        return []
    lines = [f"{name}: vouched for by {r.describe()}" for name, r in vouched.by_file.items()]
    lines += [
        f"{name}: named by {r.label}, but staging publishes no sha256 for it: the check "
        "needs the download (a real run makes it)"
        for name, r in vouched.unchecked.items()
    ]
    # a record's subject names are its author's text: shown with control characters spelt out
    lines += [f"{printable(n)}: named by {r.label} but not staged" for n, r in vouched.missing]
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
        statements = parse_statements(path.read_bytes(), str(path))
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
