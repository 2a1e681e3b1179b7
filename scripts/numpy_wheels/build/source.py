"""`make source`: the source of BUILD_COMMIT in REPO_DIR, from the index's sdist
or from git, without ever losing a source of yours.

Nothing of yours is lost: a directory this toolkit did not make (no marker) is
never replaced, forced or cleaned; a new source is built beside the old one and
swapped in only when complete; an unchanged source is left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..archive import safe_extract
from ..errors import ConfigurationError, FatalError
from ..files import (
    atomic_write,
    check_name,
    error_reason,
    file_hash,
    file_lock,
    printable,
    sanitize_url,
)
from ..index import index_url, project_page
from ..log import log
from ..net import download
from .paths import MESON_DIR, RELEASE_TAG, SDIST_CACHE, SOURCE_MARKER

if TYPE_CHECKING:
    from .settings import Settings


def step_source(settings: Settings) -> str:
    """Put the source of BUILD_COMMIT into REPO_DIR; returns a one-line description.

    Nothing of yours is lost: a directory this toolkit did not make (no marker)
    is never replaced, forced or cleaned; a new source is built beside the old
    one and swapped in only when complete; an unchanged source is left alone.
    """
    repo = settings.repo_dir
    kind = source_kind(settings)
    if kind == "local":
        if not repo.is_dir():
            raise ConfigurationError(f"REPO_DIR {repo} does not exist (SOURCE=local)")
        return f"local directory {repo}"
    if not settings.build_commit:
        raise ConfigurationError("BUILD_COMMIT is empty: make source BUILD_COMMIT=<ref>")
    if kind == "sdist":
        return fetch_sdist(settings)
    return fetch_git(settings)


def source_kind(settings: Settings) -> str:
    """What SOURCE=auto means here: git, sdist or local (others as given)."""
    repo, kind = settings.repo_dir, settings.source
    if kind != "auto":
        return kind
    if repo.is_dir() and not _marker(repo) and any(repo.iterdir()):
        # Somebody else's source: a plain tree is built as it is, a git
        # checkout (a submodule, say) when it is clean and at BUILD_COMMIT.
        return "git" if (repo / ".git").exists() else "local"
    return "sdist" if RELEASE_TAG.match(settings.build_commit) else "git"


def fetch_sdist(settings: Settings) -> str:
    match = RELEASE_TAG.match(settings.build_commit)
    if not match:
        raise ConfigurationError(
            f"BUILD_COMMIT={settings.build_commit!r} is not a release tag; SOURCE=sdist "
            "needs vX.Y.Z[rcN]"
        )
    repo = settings.repo_dir
    _refuse_foreign(repo)
    url = index_url()
    pkg = _index_sdist(settings.project, match.group(1), url)
    name = check_name(pkg.filename, f"the index {sanitize_url(url)}")
    sha256 = pkg.digests.get("sha256")
    if not sha256:
        raise FatalError(f"the index publishes no sha256 for {name}; refusing to use it")
    described = f"sdist {name} (sha256 {sha256})"
    uploaded = pkg.upload_time.isoformat() if pkg.upload_time else ""
    marker = _marker(repo)
    edited = _edits(repo, marker)
    same = marker.get("kind") == "sdist" and marker.get("sha256") == sha256 and "files" in marker
    if same and _complete(marker) and not edited:
        log(f"{repo} already holds {name}, unedited: nothing to do")
        return described
    keep = _keep_name(repo) if edited else None
    archive = SDIST_CACHE / name
    SDIST_CACHE.mkdir(parents=True, exist_ok=True)
    with file_lock(SDIST_CACHE, f"the sdist cache {SDIST_CACHE}"):
        if not archive.exists() or file_hash(archive) != sha256:
            log(f"downloading {name}")
            download(pkg.url, archive, sha256=sha256)

    def unpack(tree: Path) -> None:
        safe_extract(archive, tree, strip_prefix=name[: -len(".tar.gz")])
        _mark(tree, kind="sdist", file=name, sha256=sha256, uploaded=uploaded,
              state="complete", files=_fingerprint(tree))  # fmt: skip

    _build_beside(repo, unpack, keep=keep)
    if keep is not None:
        _say_edited(repo, edited, f"kept as {keep}; {repo} is a fresh copy of {name}")
    return described


def _index_sdist(project: str, version: str, url: str | None = None):
    """The index's entry (pypi-simple DistributionPackage) for PROJECT-VERSION.tar.gz."""
    url = url or index_url()
    packages = project_page(project, url).packages
    for pkg in packages:
        sdist = pkg.package_type == "sdist" and pkg.filename.endswith(".tar.gz")
        if sdist and pkg.version == version:
            return pkg
    raise FatalError(f"{project} {version} has no sdist on the index ({sanitize_url(url)})")


def _refuse_foreign(repo: Path) -> None:
    """Only a REPO_DIR this toolkit made (or an empty one) may be replaced."""
    if repo.exists() and not (repo / SOURCE_MARKER).exists() and any(repo.iterdir()):
        raise ConfigurationError(
            f"REPO_DIR {repo} holds a source this toolkit did not put there; "
            "remove it, choose another REPO_DIR, or build it as it is with SOURCE=local"
        )


def _marker(repo: Path) -> dict:
    """The marker of a REPO_DIR this toolkit made ({} if none, or unreadable)."""
    try:
        facts = json.loads((repo / SOURCE_MARKER).read_text())
    except (OSError, ValueError):
        return {"kind": "unknown"} if (repo / SOURCE_MARKER).exists() else {}
    return facts if isinstance(facts, dict) else {"kind": "unknown"}


def _complete(marker: dict) -> bool:
    return marker.get("state", "complete") == "complete"  # markers before "state": complete


def _mark(repo: Path, **facts: object) -> None:
    with atomic_write(repo / SOURCE_MARKER) as out:
        json.dump(facts, out)


def _fingerprint(tree: Path) -> dict[str, list[int]]:
    """Size and mtime of every file under ``tree`` (the marker and caches left out)."""
    found = {}
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if rel == SOURCE_MARKER or rel.startswith(f"{MESON_DIR}/") or "__pycache__" in path.parts:
            continue
        if not path.is_file():
            continue
        info = path.stat()
        found[rel] = [info.st_size, info.st_mtime_ns]
    return found


def _edited_files(repo: Path, marker: dict) -> list[str]:
    """Files changed, removed or added since the tree was unpacked."""
    then, now = marker.get("files") or {}, _fingerprint(repo)
    return sorted(n for n in then.keys() | now.keys() if then.get(n) != now.get(n))


def _edits(repo: Path, marker: dict) -> list[str]:
    """What was edited in a complete source of ours since it was made."""
    if not marker or not _complete(marker):
        return []
    if marker.get("kind") == "sdist":  # a marker from before fingerprints: unknown
        return _edited_files(repo, marker) if "files" in marker else []
    return _dirty(repo, SOURCE_MARKER) if (repo / ".git").exists() else []


def _keep_name(repo: Path) -> Path:
    """Where an edited source of ours is kept when a new one takes its place."""
    return repo.with_name(f"{repo.name}.edited-{time.strftime('%Y%m%d-%H%M%S')}")


def _say_edited(repo: Path, edited: list[str], fate: str) -> None:
    names = ", ".join(printable(n, 80) for n in edited[:5])
    more = f" and {len(edited) - 5} more" if len(edited) > 5 else ""
    log(f"numpy-wheels: warning: {repo} (made by make source) was edited: {names}{more}; {fate}")


def _build_beside(repo: Path, fill, keep: Path | None = None) -> None:
    """Make a new REPO_DIR with ``fill(tree)`` in a sibling directory, then swap it in
    (the old one is removed, or renamed to ``keep``).

    A failure or an interruption leaves the old REPO_DIR as it was.
    """
    repo.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=repo.parent, prefix=f".{repo.name}.", suffix=".new"))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp made it private; a checkout is not
        if repo.exists() and keep is not None:
            os.replace(repo, keep)
            os.replace(tmp, repo)
        elif repo.exists():
            old = Path(tempfile.mkdtemp(dir=repo.parent, prefix=f".{repo.name}.", suffix=".old"))
            os.replace(repo, old / repo.name)
            os.replace(tmp, repo)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, repo)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True, text=True)


def _git_reason(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    return error_reason(ValueError(lines[-1])) if lines else "git failed"


def _remote_commit(repo: Path, ref: str, url: str) -> str | None:
    """The commit ``ref`` names on ``origin``, asked with ls-remote (seconds, no
    history); None when no branch or tag has that name (it may be a hash)."""
    if re.fullmatch(r"[0-9a-f]{40}", ref):
        return ref
    proc = _git("ls-remote", "origin", ref, cwd=repo, check=False)
    if proc.returncode:
        raise FatalError(f"cannot fetch from {sanitize_url(url)}: {_git_reason(proc)}")
    refs = {}
    for line in proc.stdout.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    for name in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if name in refs:
            return refs[name]
    return None


def _dirty(repo: Path, *exclude: str) -> list[str]:
    """Uncommitted changes and untracked files in a checkout (``git status`` paths);
    our meson build directory is not one."""
    spec = ["--", ".", *(f":(exclude){e}" for e in (*exclude, MESON_DIR))]
    proc = _git("status", "--porcelain", "--untracked-files=all", *spec, cwd=repo)
    return [line[3:] for line in proc.stdout.splitlines() if line.strip()]


def fetch_git(settings: Settings) -> str:
    """Shallow fetch of BUILD_COMMIT, submodules recursively, into a checkout of ours."""
    repo, ref, url = settings.repo_dir, settings.build_commit, settings.repo_url
    marker = _marker(repo)
    if (repo / ".git").exists() and not marker:
        return _use_your_checkout(repo, ref)
    _refuse_foreign(repo)
    if (repo / ".git").exists():
        return _update_our_checkout(repo, ref, url, marker)

    def clone(tree: Path) -> None:
        # Marked before the first fetch: a failure leaves a directory known to be ours.
        _mark(tree, kind="git", url=sanitize_url(url), ref=ref, state="incomplete")
        _git("init", "-q", cwd=tree)
        _git("remote", "add", "origin", url, cwd=tree)
        commit = _fetch_ref(tree, ref, url)
        _checkout(tree, ref, commit)
        _mark(tree, kind="git", url=sanitize_url(url), ref=ref, commit=commit, state="complete")

    edited = _edits(repo, marker)  # our sdist tree, say, that a nightly replaces
    keep = _keep_name(repo) if edited else None
    _build_beside(repo, clone, keep=keep)
    if keep is not None:
        _say_edited(repo, edited, f"kept as {keep}; {repo} is a fresh checkout of {ref}")
    commit = _marker(repo)["commit"]
    return f"git {sanitize_url(url)} {ref} ({commit})"


def _use_your_checkout(repo: Path, ref: str) -> str:
    """Your checkout is built only when it is clean and at BUILD_COMMIT: never forced,
    cleaned or fetched into."""
    origin = _git("remote", "get-url", "origin", cwd=repo, check=False).stdout.strip()
    where = sanitize_url(origin) if origin else "(no origin)"
    dirty = _dirty(repo)
    if dirty:
        names = ", ".join(printable(n, 80) for n in dirty[:3])
        more = f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""
        raise ConfigurationError(
            f"REPO_DIR {repo} is your git checkout and has uncommitted changes ({names}{more}) "
            "that a checkout of BUILD_COMMIT would lose: commit or stash them, "
            "or build the tree as it is with SOURCE=local"
        )
    head = _git("rev-parse", "HEAD", cwd=repo, check=False).stdout.strip()
    local = _git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", cwd=repo, check=False)
    want = local.stdout.strip() if local.returncode == 0 else None
    if want is None and origin:
        want = _remote_commit(repo, ref, origin)
    if want is None:
        raise FatalError(f"unknown ref {ref!r} in {repo} or its origin {where}")
    if head != want:
        raise ConfigurationError(
            f"REPO_DIR {repo} is your git checkout at {head[:12] or 'no commit'}, not "
            f"BUILD_COMMIT={ref} ({want[:12]}); make source never switches it: "
            f"run `git -C {repo} checkout {ref}` yourself, or build it as it is with SOURCE=local"
        )
    sub = _git(
        "-c", "protocol.file.allow=always", "submodule", "update", "--init", "--recursive",
        cwd=repo, check=False,
    )  # fmt: skip
    if sub.returncode:
        raise FatalError(f"submodules of {repo} failed to update: {_git_reason(sub)}")
    return f"git checkout {repo} at {ref} ({head}), yours, used as it is"


def _update_our_checkout(repo: Path, ref: str, url: str, marker: dict) -> str:
    """Our own checkout: nothing done when it is at the commit and unedited; else
    fetched (old tree untouched if that fails), then checked out and cleaned."""
    _git("remote", "remove", "origin", cwd=repo, check=False)
    _git("remote", "add", "origin", url, cwd=repo)
    described = f"git {sanitize_url(url)} {ref}"
    want = _remote_commit(repo, ref, url)
    dirty = _dirty(repo, SOURCE_MARKER) if _complete(marker) else ["(an interrupted update)"]
    if want and want == marker.get("commit") and not dirty:
        log(f"{repo} is already at {ref} ({want}), unedited: nothing to do")
        return f"{described} ({want})"
    commit = _fetch_ref(repo, ref, url)
    if commit == marker.get("commit") and not dirty:
        return f"{described} ({commit})"
    if dirty and _complete(marker):
        # Kept where git keeps such things; the stash survives the checkout below.
        ident = ["-c", "user.name=make source", "-c", "user.email=make-source@localhost"]
        stash = ["stash", "push", "-q", "--include-untracked", "-m", f"edits before {ref}"]
        _git(*ident, *stash, "--", ".", f":(exclude){SOURCE_MARKER}", cwd=repo)
        _say_edited(repo, dirty, f"kept in its git stash (git -C {repo} stash show -p); "
                    f"checking out {ref} ({commit[:12]})")  # fmt: skip
    _mark(repo, **{**marker, "state": "incomplete"})
    _checkout(repo, ref, commit)
    _mark(repo, kind="git", url=sanitize_url(url), ref=ref, commit=commit, state="complete")
    return f"{described} ({commit})"


def _fetch_ref(repo: Path, ref: str, url: str) -> str:
    """Fetch ``ref`` shallowly; the commit it names."""
    fetched = _git("fetch", "-q", "--depth", "1", "origin", "--", ref, cwd=repo, check=False)
    if fetched.returncode == 0:
        return _git("rev-parse", "FETCH_HEAD", cwd=repo).stdout.strip()
    # Why did it fail?  ls-remote answers in seconds (never a full-history fetch).
    if _remote_commit(repo, ref, url) is not None:
        raise FatalError(f"cannot fetch {ref!r} from {sanitize_url(url)}: {_git_reason(fetched)}")
    if not re.fullmatch(r"[0-9a-f]{7,39}", ref):
        raise FatalError(f"unknown ref {ref!r} in {sanitize_url(url)}")
    # An abbreviated hash names no ref: fetch the branches' commits (no trees) to find it.
    _git("fetch", "-q", "--filter=tree:0", "origin", cwd=repo, check=False)
    found = _git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", cwd=repo, check=False)
    if found.returncode:
        raise FatalError(f"unknown ref {ref!r} in {sanitize_url(url)}")
    commit = found.stdout.strip()
    _git("fetch", "-q", "--depth", "1", "origin", commit, cwd=repo, check=False)
    return commit


def _checkout(repo: Path, ref: str, commit: str) -> None:
    """Check ``commit`` out in a checkout of ours (forced, cleaned), submodules too."""
    _git("checkout", "-q", "--force", commit, cwd=repo)
    _git("clean", "-fxdq", "-e", SOURCE_MARKER, cwd=repo)
    sub = _git(
        "-c", "protocol.file.allow=always", "submodule", "update", "--init", "--recursive",
        "--force", "--depth", "1", cwd=repo, check=False,
    )  # fmt: skip
    if sub.returncode:
        raise FatalError(f"submodules of {ref} failed to update: {_git_reason(sub)}")
