"""wheel-uploader: find staged wheels, download and verify them, upload each exactly once.

    wheel-uploader [-u URL] [-w DIR] [-t TYPE]... [-c] [-n] [-s] [-r REPO | --repository-url URL]
                   [-v] PROJECT VERSION
    wheel-uploader --files [--repository-url URL | -r REPO] [-s] [--dry-run] FILE...

The first form is MacPython/terryfy's ``wheel-uploader``: read the staging
location, download every ``PROJECT-VERSION-*.whl`` that passes the type filter,
audit the wheels and upload them with twine.  The second form uploads local
files only (`make stage` uses it).  Both end in :func:`finish`:
audit -> hashes file -> upload -> summary.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigurationError, FatalError, NothingToDoError
from ..files import file_hash, file_lock, sanitize_url, unusable_dir
from ..log import add_verbosity_options, add_version_option, ci_error, log, plural, set_verbosity
from . import attestations, provenance
from .download import download_all
from .select import check_project, identity, normalize_version, select_files
from .sources import SOURCE_KINDS, list_source, page_session
from .summary import FAILED, NOT_RUN, Entry, print_summary
from .verify import audit, verify_dist

PROG = "wheel-uploader"
DEFAULT_STAGING = "https://pypi.anaconda.org/multibuild-wheels-staging/simple/{project}/"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Download staged wheels, verify them and upload them with twine, "
        "each file exactly once.",
        epilog="Credentials come from twine's usual places (TWINE_USERNAME, TWINE_PASSWORD, "
        ".pypirc, keyring). Exit status: 0 all files ended well, 1 a failure, 2 bad "
        "input, 3 nothing matched.",
    )
    parser.add_argument("args", nargs="*", metavar="PROJECT VERSION | FILE")
    parser.add_argument(
        "-u",
        "--wheel-url-dir",
        dest="url",
        help="staging location: the project's anaconda.org files page or API URL, simple "
        "index page or directory listing "
        f"(default: {DEFAULT_STAGING.format(project='PROJECT')})",
    )
    parser.add_argument(
        "--source-kind", choices=SOURCE_KINDS, default="auto", help="override the detected kind"
    )
    parser.add_argument("-w", "--wheel-dir", default=".", help="wheelhouse (default: cwd)")
    parser.add_argument(
        "-t",
        "--wheel-type",
        action="append",
        dest="types",
        help="platform filter: all, macosx, win, manylinux, musllinux, linux or any tag "
        "substring; repeatable (default: all)",
    )
    parser.add_argument("-c", "--clobber", action="store_true", help="re-download present files")
    parser.add_argument(
        "-n", "--no-twine", action="store_true", help="download and verify only, no upload"
    )
    parser.add_argument("-s", "--sign", action="store_true", help="GPG-sign (twine --sign)")
    parser.add_argument("-i", "--identity", help="GPG identity for -s and --sign-hashes")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-r", "--repository", help=".pypirc repository name (default: pypi)")
    where.add_argument("--repository-url", help="upload URL of the target index")
    parser.add_argument(
        "--index-url", help="simple index of the target (default: derived from its upload URL)"
    )
    parser.add_argument("--config-file", help="the .pypirc to use (default: ~/.pypirc)")
    parser.add_argument("--sdist", action="store_true", help="also take PROJECT-VERSION.tar.gz")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="download nothing, upload nothing: read the target index and say, per file, "
        "whether it would be uploaded or is already there (with --provenance: which record "
        "vouches for it, by the sha256 staging publishes, or why a real run refuses it)",
    )
    parser.add_argument("-j", "--jobs", type=int, default=4, help="parallel downloads (4)")
    parser.add_argument("--no-check", action="store_true", help="skip the check_wheel.py audit")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="an audit warning stops a wheel too (default: FAIL only)",
    )
    parser.add_argument("--hashes", metavar="FILE", help="write MD5/SHA256 lines for the notes")
    parser.add_argument("--sign-hashes", action="store_true", help="GPG-sign the --hashes file")
    parser.add_argument("--allow-insecure", action="store_true", help="accept http:// staging URLs")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per read (30)")
    parser.add_argument("--retries", type=int, default=5, help="attempts per file (5)")
    parser.add_argument(
        "--files", action="store_true", help="upload the local FILEs given (no staging lookup)"
    )
    provenance.add_arguments(parser)
    add_verbosity_options(parser)
    add_version_option(parser)
    return parser


def _check_scheme(url: str, allow_insecure: bool) -> None:
    scheme = urlsplit(url).scheme
    if scheme == "http" and not allow_insecure:
        raise ConfigurationError(
            f"refusing insecure {sanitize_url(url)} (use --allow-insecure to accept http://)"
        )
    if scheme not in ("http", "https"):
        raise ConfigurationError(f"unsupported URL {sanitize_url(url)!r}")


# ------------------------------------------------------------------- the two forms


def staged_entries(opts: argparse.Namespace) -> list[Entry]:
    """PROJECT VERSION: the staging location's files of that release (``--dry-run``:
    with a line each saying whether it would be downloaded)."""
    project, version = opts.args
    check_project(project)
    normalize_version(version)
    types = opts.types or ["all"]
    if opts.jobs < 1:
        raise ConfigurationError(f"-j must be at least 1, not {opts.jobs}")
    url = opts.url or DEFAULT_STAGING.format(project=project)
    _check_scheme(url, opts.allow_insecure)
    session = page_session(opts.retries, opts.allow_insecure)
    try:
        listed, kind = list_source(session, url, opts.source_kind, opts.timeout, project)
    finally:
        session.close()
    where = sanitize_url(url)
    chosen = select_files(listed, project, version, types, opts.sdist, where)
    if not chosen:
        looked = f"{project}-{version}-*.whl" + (f" or {project}-{version}.tar.gz" * opts.sdist)
        raise NothingToDoError(
            f"no files match {looked} (type {', '.join(types)}) at {where} "
            f"({len(listed)} files listed, read as {kind})"
        )
    for rf in chosen:
        _check_scheme(rf.url, opts.allow_insecure)
    wheelhouse = Path(opts.wheel_dir).expanduser()
    entries = [Entry(rf.name, wheelhouse / rf.name, rf) for rf in chosen]
    opts.staged_attestations = attestations.listed(listed)  # PEP 740, beside the files
    log(f"{plural(len(entries), 'file')} of {project} {version} at {where} ({kind})")
    if opts.dry_run:
        for e in entries:
            e.download = "present" if e.path.exists() else "would download"
            print(f"{e.download}: {sanitize_url(e.remote.url)} -> {e.path}")
    return entries


def _wheelhouse(opts: argparse.Namespace, create: bool = True) -> Path:
    """The wheelhouse, made if missing; ``create=False`` only checks, before any
    request, that it is or can be made a directory we can write to."""
    wheelhouse = Path(opts.wheel_dir).expanduser()
    try:
        problem = None if create else unusable_dir(wheelhouse)
        if create:
            wheelhouse.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = exc.strerror
    if problem:
        raise ConfigurationError(f"-w {wheelhouse}: cannot create the wheelhouse: {problem}")
    return wheelhouse


def local_entries(opts: argparse.Namespace) -> list[Entry]:
    """--files FILE...: the local files, verified (unless --dry-run)."""
    entries = []
    for arg in opts.args:
        path = Path(arg).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"{arg}: {'not a regular file' if path.exists() else 'no such file'}"
            )
        if identity(path.name) is None:
            raise ConfigurationError(f"{arg}: not a wheel or sdist file name")
        entries.append(Entry(path.name, path, download="local"))
    if not entries:
        raise NothingToDoError("--files given but no FILE to upload")
    if not opts.dry_run:
        for e in entries:
            verify_dist(e.path)
            e.sha256, e.verified = file_hash(e.path), "ok"
    return entries


# ------------------------------------------------------------------ the shared tail


def _ready(entries: list[Entry]) -> bool:
    return all(e.ok for e in entries)


def _write_hashes(entries: list[Entry], opts: argparse.Namespace) -> None:
    from .signing import gpg_sign, write_hashes

    hashes = Path(opts.hashes).expanduser()
    try:
        write_hashes(hashes, [e.path for e in entries])
    except OSError as exc:
        raise FatalError(f"--hashes {hashes}: cannot write: {exc.strerror}") from None
    if opts.sign_hashes:
        gpg_sign(hashes, opts.identity)


def _upload(entries: list[Entry], opts: argparse.Namespace) -> None:
    from .publish import UploadError, upload_exactly_once  # twine's side: only when uploading
    from .target import resolve_target

    target = resolve_target(repository=opts.repository, repository_url=opts.repository_url,
                            index_url=opts.index_url, config_file=opts.config_file)  # fmt: skip
    by_path = {e.path: e for e in entries}
    known = {e.path: e.sha256 or (e.remote.sha256 if e.remote else None) for e in entries}
    for e in entries:
        e.upload = "pending"
    try:
        for path, status in upload_exactly_once(
            by_path, target, hashes=known, sign=opts.sign, identity=opts.identity,
            dry_run=opts.dry_run, verbose=opts.verbose, timeout=opts.timeout,
        ):  # fmt: skip
            by_path[path].upload = status
    except UploadError as exc:
        by_path[exc.path].upload, by_path[exc.path].error = FAILED, str(exc)
    finally:
        for e in entries:
            if e.upload == "pending":
                e.upload = NOT_RUN


def finish(entries: list[Entry], opts: argparse.Namespace, records=None) -> int:
    """The shared tail of both forms: audit -> hashes file -> upload -> summary.

    Each step runs only when every file came through the ones before it; a step
    that stops a file records why on its entry.
    """
    warnings: list[str] = []
    vouched = None  # before any upload: every file vouched for by a --provenance record
    try:
        if opts.dry_run:  # the gate's decision, on the digests known without a download
            vouched = provenance.preview(entries, records)
        elif _ready(entries):
            vouched = provenance.gate(entries, records)
            attestations.gather(entries, getattr(opts, "staged_attestations", None),
                                timeout=opts.timeout, retries=opts.retries,
                                allow_insecure=opts.allow_insecure)  # fmt: skip
        if not opts.dry_run:
            if _ready(entries) and not opts.no_check:
                warnings = audit(entries, opts.strict)
            if _ready(entries) and opts.hashes:
                _write_hashes(entries, opts)
        if _ready(entries) and not opts.no_twine:
            _upload(entries, opts)
    finally:
        print_summary(entries, uploading=not opts.no_twine, dry_run=opts.dry_run)
        for line in provenance.summary_lines(vouched):
            print(f"provenance: {line}")
        for line in warnings:
            print(f"audit warning: {line}")
    log(f"{plural(len(entries), 'file')} in {time.monotonic() - opts.started:.1f} s")
    for e in entries:
        if e.error:
            print(f"{PROG}: error: {e.error}", file=sys.stderr)
            ci_error(e.error, PROG)
    return 0 if _ready(entries) else 1


def run(opts: argparse.Namespace) -> int:
    if not opts.timeout > 0:  # requests would raise ValueError deep inside
        raise ConfigurationError(f"--timeout must be more than 0 seconds, not {opts.timeout}")
    if opts.retries < 1:
        raise ConfigurationError(f"--retries must be at least 1, not {opts.retries}")
    records = provenance.records_for(opts)  # signatures checked before any download
    if opts.files:
        return finish(local_entries(opts), opts, records)
    if not opts.dry_run:
        _wheelhouse(opts, create=False)  # a -w naming a file fails before any request
    entries = staged_entries(opts)
    if opts.dry_run:
        return finish(entries, opts, records)
    wheelhouse = _wheelhouse(opts)
    with file_lock(wheelhouse, f"wheelhouse {wheelhouse}"):
        download_all(entries, jobs=opts.jobs, clobber=opts.clobber, timeout=opts.timeout,
                     retries=opts.retries, allow_insecure=opts.allow_insecure)  # fmt: skip
        return finish(entries, opts, records)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]) and run; expected errors -> one line + code."""
    parser = build_parser()
    opts = parser.parse_args(argv)
    if not opts.files and len(opts.args) != 2:
        parser.error("expected PROJECT VERSION (or --files FILE...)")
    if opts.sign_hashes and not opts.hashes:
        parser.error("--sign-hashes needs --hashes FILE")
    set_verbosity(opts.verbose, opts.quiet)
    opts.started = time.monotonic()
    try:
        return run(opts)
    except FatalError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        ci_error(str(exc), PROG)
        return exc.return_code
    except KeyboardInterrupt:  # the console script has no run_main around it
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
