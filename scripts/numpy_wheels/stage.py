"""`make stage`'s decisions; scripts/stage.sh orchestrates the steps around them.

    python -m numpy_wheels.stage plan         settings checked, the manifest's wheels
    python -m numpy_wheels.stage anaconda [--provenance FILE]... WHEEL...
    python -m numpy_wheels.stage error MESSAGE   (one error line, a CI annotation)

``plan`` runs first, before anything else: a bad setting (``DRY_RUN=yes``), an
unreadable ``ANACONDA_TOKEN_FILE``, a wheel changed since ``make test-wheel`` or
of another project than the target takes stops the stage there.  ``anaconda``
chooses the org and its token by one rule and runs ``anaconda upload`` once per
file, the token in anaconda-client's environment only (never argv, never output).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigurationError, FatalError
from .files import file_hash
from .log import ci_error, is_quiet, log, logger, run_main
from .progress import plain_output

STAGING_ORG = "multibuild-wheels-staging"
NIGHTLY_ORG = "scientific-python-nightly-wheels"
# every secret the toolkit shows is masked this way (files.sanitize_url: ********@host)
MASK = "********"
# booleans of `make stage`, as NIGHTLY is for the build (build.settings.CHOICES)
BOOLEANS = ("DRY_RUN", "STAGE_FORCE", "STAGE_STRICT")
_RELEASE = re.compile(r"v?\d+(\.\d+)+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?|[0-9a-f]{7,40}")


def validate(env: Mapping[str, str]) -> None:
    """Refuse a bad setting in one line naming the valid values, by the build's rule."""
    from .build.settings import CHOICES, validate_settings

    valid = CHOICES["NIGHTLY"]
    for name in BOOLEANS:
        value = env.get(name, "")
        if value and value not in valid:
            raise ConfigurationError(f"{name}={value!r} is not one of: {', '.join(valid)}")
    validate_settings(dict(env), "stage")


def scheduled(env: Mapping[str, str]) -> bool:
    """A nightly run: NIGHTLY=1, or the CI service's own schedule flag."""
    return (
        env.get("NIGHTLY") == "1"
        or env.get("BUILD_REASON") == "Schedule"
        or env.get("GITHUB_EVENT_NAME") == "schedule"
        or env.get("TRAVIS_EVENT_TYPE") == "cron"
        or env.get("APPVEYOR_SCHEDULED_BUILD") == "True"
    )


def org(env: Mapping[str, str]) -> str:
    """The anaconda.org org: ANACONDA_ORG, else nightly for a schedule or a branch,
    else staging (a release tag or a commit hash).  The one place the org is chosen."""
    if env.get("ANACONDA_ORG"):
        return env["ANACONDA_ORG"]
    commit = env.get("BUILD_COMMIT", "")
    if scheduled(env) or (commit and not _RELEASE.fullmatch(commit)):
        return NIGHTLY_ORG
    return STAGING_ORG


def token(env: Mapping[str, str], org_: str) -> tuple[str, str | None, str]:
    """(the setting the token comes from, the token or None, why there is none).

    ANACONDA_TOKEN, else ANACONDA_TOKEN_FILE, else the org's own CI secret (one
    org's secret never stands in for the other's).  A token file the user named
    but that cannot be read, or is empty, is a ConfigurationError; a missing token
    or an unexpanded CI secret (Azure's literal ``$(...)`` on fork PRs) is None.
    """
    secret = {STAGING_ORG: "NUMPY_STAGING_UPLOAD_TOKEN", NIGHTLY_ORG: "NUMPY_NIGHTLY_UPLOAD_TOKEN"}
    if env.get("ANACONDA_TOKEN"):
        name, value = "ANACONDA_TOKEN", env["ANACONDA_TOKEN"].strip()
    elif env.get("ANACONDA_TOKEN_FILE"):
        path = env["ANACONDA_TOKEN_FILE"]
        name = f"ANACONDA_TOKEN_FILE={path}"
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not a text file"
            raise ConfigurationError(f"{name} cannot be read: {why}") from None
        if not value:
            raise ConfigurationError(f"{name} is empty; it must hold the anaconda.org token")
    elif env.get(secret.get(org_, "")):
        name = secret[org_]
        value = env[name].strip()
    else:
        names = ", ".join(["ANACONDA_TOKEN", "ANACONDA_TOKEN_FILE", *secret.get(org_, "").split()])
        return "", None, f"no anaconda.org token ({names}: none is set)"
    if "$(" in value:
        return name, None, f"{name} is an unexpanded CI secret ($(...))"
    return name, value, ""


def projects(env: Mapping[str, str]) -> list[str]:
    """The projects every wheel must be of (normalised): STAGE_PROJECT (spaces or
    commas), else numpy for NumPy's own orgs, else none (no check)."""
    if env.get("STAGE_PROJECT"):
        names = env["STAGE_PROJECT"].replace(",", " ").split()
    elif not env.get("STAGE_REPOSITORY_URL") and org(env) in (STAGING_ORG, NIGHTLY_ORG):
        names = ["numpy"]
    else:
        names = []
    return [_project(n) for n in names]


def _project(name: str) -> str:
    return re.sub(r"[-.]+", "_", name).lower()


def manifest_wheels(wheel_dir: Path) -> list[Path]:
    """The wheels manifest.sha256 (and other jobs' manifest-NAME.sha256) list, each
    checked against its sha256; each wheel once."""
    manifests = [wheel_dir / "manifest.sha256", *sorted(wheel_dir.glob("manifest-*.sha256"))]
    manifests = [m for m in manifests if m.is_file()]
    if not manifests:
        if any(wheel_dir.glob("*.whl")):
            raise FatalError(
                f"no manifest.sha256 in {wheel_dir}/: make stage uploads only the wheels "
                "make test-wheel (make wheels) produced; run it first"
            )
        raise FatalError(f"no wheels in {wheel_dir}/ to stage (set WHEEL_SDIR?)")
    wheels: list[Path] = []
    for manifest in manifests:
        for line in manifest.read_text(encoding="utf-8", errors="replace").splitlines():
            sum_, _, name = line.partition(" ")
            name = name.strip().removeprefix("*")
            if not name or "/" in name or name.startswith(".") or not name.isprintable():
                raise FatalError(f"{manifest}: unexpected line; nothing uploaded")
            path = wheel_dir / name
            if not path.is_file():
                raise FatalError(f"{path} is in {manifest} but missing; nothing uploaded")
            got = file_hash(path)
            if got != sum_:
                raise FatalError(
                    f"{path} changed since make test-wheel listed it (sha256 {got}, not "
                    f"{sum_}); nothing uploaded"
                )
            if path not in wheels:  # listed by two jobs (a pure wheel): once
                wheels.append(path)
    if not wheels:
        raise FatalError(
            f"{wheel_dir}/manifest.sha256 lists no wheels (the last run produced none); "
            "nothing to stage"
        )
    return wheels


def plan(env: Mapping[str, str]) -> list[Path]:
    """Everything checked before any step runs; the wheels to stage."""
    validate(env)
    if not env.get("STAGE_REPOSITORY_URL"):
        token(env, org(env))  # an unreadable token file stops here, not after the audit
    wheels = manifest_wheels(Path(env.get("WHEEL_SDIR") or "wheelhouse"))
    expected = projects(env)
    where = "the index" if env.get("STAGE_REPOSITORY_URL") else org(env)
    for wheel in wheels if expected else []:
        project = _project(wheel.name.split("-", 1)[0])
        if project not in expected:
            raise FatalError(
                f"{wheel.name} is a {project} wheel, but {where} takes {','.join(expected)} "
                f"only (set STAGE_PROJECT={project} to stage it there); nothing uploaded"
            )
    for wheel in wheels:
        log(f"stage: {wheel} (sha256 as listed)", verbose_only=True)
    return wheels


def anaconda_commands(env: Mapping[str, str], wheels: list[Path],
                      provenance: list[Path]) -> list[tuple[Path, list[str]]]:  # fmt: skip
    """(file, its `anaconda upload` argv), the wheels first, then each provenance file
    as a generic file of PROJECT-provenance (anaconda.org keeps one type per package)."""
    mode = "--force" if env.get("STAGE_FORCE") == "1" else "--skip-existing"
    base = ["anaconda", "upload", mode, "-u", org(env)]
    cmds = [(w, [*base, str(w)]) for w in wheels]
    if provenance:
        name, version = wheels[0].name.split("-")[:2]
        package = re.sub(r"[_.]", "-", name.lower()) + "-provenance"
        files = [*base, "-t", "file", "-p", package, "-v", version]
        cmds += [(p, [*files, str(p)]) for p in provenance]
    return cmds


def _anaconda_env(value: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BINSTAR_API_TOKEN"}  # it would win
    env["ANACONDA_API_TOKEN"] = value
    return env


def _run_anaconda(argv: list[str], secret: str, shown: bool) -> tuple[int, str]:
    """Run one anaconda-client command: its status and output (the token masked).
    ``shown``: its output, tqdm's bar included, reaches stderr as it comes; otherwise
    the bar is off (TQDM_DISABLE) and the output only kept."""
    env = _anaconda_env(secret)
    if not shown:
        env["TQDM_DISABLE"] = "1"
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    kept, pending = [], b""
    for chunk in iter(lambda: proc.stdout.read1(65536), b""):
        pending += chunk
        end = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1  # whole lines and bar frames
        kept.append(_masked(pending[:end], secret))
        pending = pending[end:]
        if shown:
            sys.stderr.write(kept[-1])
            sys.stderr.flush()
    kept.append(_masked(pending, secret))
    if shown:
        sys.stderr.write(kept[-1])
    return proc.wait(), "".join(kept)


def _masked(data: bytes, secret: str) -> str:
    text = data.decode("utf-8", "replace")
    return text.replace(secret, MASK) if secret else text


def anaconda(env: Mapping[str, str], wheels: list[Path], provenance: list[Path]) -> int:
    """Upload with anaconda-client, one file a command; the end counts as wheel-uploader
    prints them.  No token: a warning and nothing uploaded (exit 0)."""
    from .upload.summary import FAILED, NOT_RUN, PRESENT, UPLOADED, Entry, print_summary

    org_ = org(env)
    source, value, missing = token(env, org_)
    dry = env.get("DRY_RUN") == "1"
    if not is_quiet():  # the decision, as the first line of the upload
        print(f"stage: to {org_}" + (f", with the token of {source}" if value else ""), flush=True)
    if value is None:
        logger.warning(f"stage: warning: {missing}; "
                       f"{'a real run would skip' if dry else 'skipping'} the upload")  # fmt: skip
        if not dry:
            return 0
    secret = value or ""
    cmds = anaconda_commands(env, wheels, provenance)
    if dry:
        for _, cmd in cmds:
            print(f"+ ANACONDA_API_TOKEN={MASK} {shlex.join(cmd)}", flush=True)
        return 0
    exe = shutil.which("anaconda")
    if exe is None:
        raise FatalError("anaconda-client ('anaconda') is not on PATH; install it: "
                         "pip install anaconda-client")  # fmt: skip
    entries = [Entry(path.name, path, upload=NOT_RUN, sha256=file_hash(path)) for path, _ in cmds]
    shown = not (is_quiet() or plain_output())  # its own bar, where ours would be drawn
    for entry, (_, cmd) in zip(entries, cmds, strict=True):
        print(f"+ ANACONDA_API_TOKEN={MASK} {shlex.join(cmd)}", flush=True)
        status, output = _run_anaconda([exe, *cmd[1:]], secret, shown)
        if not shown and (status or logger.isEnabledFor(logging.DEBUG)):  # on failure, -v
            sys.stderr.write(output)
        if status:
            entry.upload = FAILED
            entry.error = (f"anaconda upload to {org_} failed (exit {status}) "
                           f"for {entry.name}; its message is above")  # fmt: skip
            break
        # --skip-existing's line (--force says "already exists. Removing." and uploads)
        entry.upload = PRESENT if "already exists. Skipping upload" in output else UPLOADED
        log(f"stage: {entry.name}: {entry.upload}", verbose_only=True)
    print_summary(entries)
    failed = next((e for e in entries if e.error), None)
    if failed:
        raise FatalError(failed.error)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "plan" and not rest:
        for wheel in plan(os.environ):
            print(wheel)
        return 0
    if command == "anaconda":
        provenance = []
        while rest[:1] == ["--provenance"] and len(rest) > 1:
            provenance.append(Path(rest[1]))
            rest = rest[2:]
        return anaconda(os.environ, [Path(w) for w in rest], provenance)
    if command == "error" and len(rest) == 1:
        logger.error(f"stage: error: {rest[0]}")
        ci_error(rest[0], "stage")
        return 1
    raise ConfigurationError("usage: python -m numpy_wheels.stage plan | anaconda "
                             "[--provenance FILE]... WHEEL... | error MESSAGE")  # fmt: skip


if __name__ == "__main__":
    run_main(main, "stage")
