"""Running a step: the shell library called in a fresh bash with the build's
environment, its output shown and kept in build/logs/, a failure told in one
error with the log lines that explain it; the record of each step's outcome."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError, FatalError
from ..files import atomic_write
from ..log import is_quiet, log
from .deps import dated_env, git_commit_time, source_time
from .paths import BUILD, LOGS, MESON_DIR, ROOT, SDIST_CACHE, SOURCE_MARKER, STEP_RECORD, TAIL_LINES

if TYPE_CHECKING:
    from .settings import Settings


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
                if not is_quiet():  # -q/NW_QUIET: step output in build/logs/ only
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
    if settings.project == "numpy" and not env.get("NW_OPENBLAS_DIR"):
        env["NW_OPENBLAS_DIR"] = host_openblas(env)
    if settings.docker_image and env.get("NW_OPENBLAS_DIR"):
        env["NW_MOUNT_DIRS"] += os.pathsep + env["NW_OPENBLAS_DIR"]
    return ["bash", "-c", script], reproducible_env(settings, dated_env(settings, env))


def host_openblas(env: dict[str, str]) -> str:
    """The OpenBLAS config.sh builds NumPy with (NW_OPENBLAS_DIR), prepared here by the
    toolkit's Python for PLAT and the interface $ENV_VARS_PATH sets: the toolkit does
    not run in a container's image, nor go into NumPy's build interpreter."""
    script = 'if [ -r "$ENV_VARS_PATH" ]; then source "$ENV_VARS_PATH" >&2; fi\n'
    script += 'exec "$NW_PYTHON" scripts/openblas_support.py'
    env_vars = Path(env.get("ENV_VARS_PATH") or "env_vars.sh")
    env = {**env, "ENV_VARS_PATH": str(env_vars if env_vars.is_absolute() else ROOT / env_vars)}
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True)  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        why = (proc.stderr.strip().splitlines() or ["printed nothing"])[-1]
        raise FatalError(f"cannot prepare OpenBLAS (scripts/openblas_support.py): {why}")
    return lines[-1]


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


def shell_path(settings: Settings, path: Path) -> str:
    """``path`` as the shell library gets it: relative to ROOT (its cwd), or,
    for a container, absolute (mounted at the same path)."""
    if settings.docker_image:
        return str(path)
    return os.path.relpath(path, ROOT)


def meson_build_dir(repo_dir: Path) -> Path:
    """The meson build directory: inside the source, kept from build to build (ccache
    and ninja reuse it), at the same place relative to the source in every checkout,
    since the compiler sees the sources by relative paths (``../../numpy/...``) and
    some stay in the binaries (``__FILE__``); meson resolves symlinks, so it cannot
    be reached through NW_BUILD_ROOT."""
    return repo_dir / MESON_DIR
