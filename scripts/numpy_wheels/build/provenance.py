"""The provenance record of a build: an in-toto Statement v1 with a SLSA
Provenance v1 predicate, written by `make wheels` next to build-report.json as
$WHEEL_SDIR/build-provenance.intoto.json.

    subject               each wheel of the run: name and sha256
    buildDefinition       this toolkit's build type; the settings that chose the
                          build (BUILD_COMMIT, PLAT, MB_ML_VER, Python, the env
                          vars and config files); what it was made from, with
                          digests (source commit or sdist sha256, the OpenBLAS
                          wheel or archive) and the build requirements as installed
    runDetails            the builder (the CI run's URL on CI), the toolkit's
                          commit, the repair tools, start and finish times

    provenance.py WHEELHOUSE/build-provenance.intoto.json   print the subjects
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

from packaging.utils import parse_sdist_filename, parse_wheel_filename

from .. import options
from ..errors import FatalError
from ..files import atomic_write, file_hash, sanitize_url
from ..log import add_version_option, run_main
from .paths import ROOT

FILENAME = "build-provenance.intoto.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# What a build of this type means is written down in the README section.
BUILD_TYPE = "https://github.com/MacPython/numpy-wheels/blob/main/README.md#reproducible-wheels-and-provenance"
LOCAL_BUILDER = "urn:numpy-wheels:builder:local"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ci_run() -> tuple[str, str] | None:
    """(builder id, invocation id) from the CI's own variables: the run's URL, and
    that URL with the attempt; None off CI."""
    env = os.environ
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "").rstrip("/")
        run = f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
        return run, f"{run}/attempts/{env.get('GITHUB_RUN_ATTEMPT', '1')}"
    if env.get("TF_BUILD", "").lower() == "true" and env.get("BUILD_BUILDID"):
        collection = env.get("SYSTEM_COLLECTIONURI", "").rstrip("/")
        project = quote(env.get("SYSTEM_TEAMPROJECT", ""))
        run = f"{collection}/{project}/_build/results?buildId={env['BUILD_BUILDID']}"
        job = env.get("SYSTEM_JOBID", "")
        return run, f"{run}&view=logs&j={job}&attempt={env.get('SYSTEM_JOBATTEMPT', '1')}"
    if env.get("TRAVIS") == "true" and env.get("TRAVIS_BUILD_WEB_URL"):
        return env["TRAVIS_BUILD_WEB_URL"], env.get("TRAVIS_JOB_WEB_URL", "")
    if env.get("APPVEYOR", "").lower() == "true" and env.get("APPVEYOR_BUILD_ID"):
        base = env.get("APPVEYOR_URL", "").rstrip("/")
        slug = f"{env.get('APPVEYOR_ACCOUNT_NAME', '')}/{env.get('APPVEYOR_PROJECT_SLUG', '')}"
        run = f"{base}/project/{slug}/builds/{env['APPVEYOR_BUILD_ID']}"
        return run, f"{run}/job/{env.get('APPVEYOR_JOB_ID', '')}"
    return None


def _file_param(setting: str) -> dict[str, str]:
    """A settings file (ENV_VARS_PATH, CONFIG_PATH): its path as given and its sha256."""
    given = options.value(setting)
    path = Path(given) if os.path.isabs(given) else ROOT / given
    found = {"path": given}
    if path.is_file():
        found["sha256"] = file_hash(path)
    return found


def source_dependency(marker: dict, repo_dir: Path, repo_url: str) -> dict:
    """The source as a ResourceDescriptor: commit, sdist sha256, or a local tree."""
    if marker.get("kind") == "git":
        url = sanitize_url(repo_url)
        if "://" not in url:  # a repository on this machine (a path)
            url = Path(url).resolve().as_uri()
        return {
            "name": "source",
            "uri": f"git+{url}@{marker.get('ref', '')}",
            "digest": {"gitCommit": marker["commit"]},
        }
    if marker.get("kind") == "sdist":
        name = marker["file"]
        project, version = parse_sdist_filename(name)
        return {
            "name": name,
            "uri": f"pkg:pypi/{project}@{version}?file_name={name}",
            "digest": {"sha256": marker["sha256"]},
        }
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True
    )
    described = {"name": "source", "uri": repo_dir.resolve().as_uri()}
    if (repo_dir / ".git").exists() and head.returncode == 0:
        described["digest"] = {"gitCommit": head.stdout.strip()}
    # A working tree may hold changes no digest here covers.
    described["annotations"] = {"kind": "local directory"}
    return described


def openblas_dependency(prepared: Path) -> dict | None:
    """The OpenBLAS wheel or archive a prepared tree came from (openblas_support.py's
    cache: prepared/NAME/.nw-openblas.json names the file in downloads/)."""
    try:
        meta = json.loads((prepared / ".nw-openblas.json").read_text())
    except (OSError, ValueError):
        return None
    name = meta.get("file", "")
    archive = prepared.parent.parent / "downloads" / name
    if not name or not archive.is_file():
        return None
    described = {"name": name, "digest": {"sha256": file_hash(archive)}}
    if name.endswith(".whl"):
        project, version = parse_wheel_filename(name)[:2]
        described["uri"] = f"pkg:pypi/{project}@{version}?file_name={name}"
    return described


def openblas_prepared() -> Path | None:
    """The OpenBLAS tree the build used: openblas_support.py for PLAT, with the
    interface ENV_VARS_PATH chooses (what config.sh's pre_build asked for)."""
    script = 'source "$1" > /dev/null 2>&1 || true; exec "$2" "$3"'
    env_vars = options.value("ENV_VARS_PATH")
    helper = str(ROOT / "scripts" / "openblas_support.py")
    proc = subprocess.run(
        ["bash", "-c", script, "_", env_vars, sys.executable, helper],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    found = Path(proc.stdout.strip()) if proc.returncode == 0 else None
    return found if found and found.is_dir() else None


def installed(python: Path) -> list[dict]:
    """The build environment's distributions as installed (pip's own listing)."""
    if not python.exists():
        return []
    proc = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    try:
        dists = json.loads(proc.stdout) if proc.returncode == 0 else []
    except ValueError:
        return []
    return [
        {"name": d["name"], "uri": f"pkg:pypi/{d['name'].lower()}@{d['version']}"}
        for d in sorted(dists, key=lambda d: d["name"].lower())
    ]


def _toolkit_version() -> dict[str, str]:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    version = {"numpy-wheels": metadata.version("numpy-wheels-toolkit")}
    if proc.returncode == 0:
        version["numpy-wheels-commit"] = proc.stdout.strip()
    return version


def _tool(dist: str) -> dict | None:
    try:
        return {"name": dist, "uri": f"pkg:pypi/{dist}@{metadata.version(dist)}"}
    except metadata.PackageNotFoundError:
        return None


def statement(
    report: dict,
    *,
    marker: dict,
    repo_dir: Path,
    repo_url: str,
    build_python: Path,
    openblas: Path | None,
    source_date_epoch: int | None,
    started: datetime,
    finished: datetime,
    byproducts: list[Path] = (),
) -> dict:
    """The Statement for the wheels of ``report`` (steps.write_report's dictionary)."""
    env = os.environ
    dependencies = [source_dependency(marker, repo_dir, repo_url)]
    blas = openblas_dependency(openblas) if openblas else None
    dependencies += [blas] if blas else []
    dependencies += installed(build_python)
    run = ci_run()
    subjects = [{"name": w["name"], "digest": {"sha256": w["sha256"]}} for w in report["wheels"]]
    builder = {
        "id": run[0] if run else LOCAL_BUILDER,
        "version": _toolkit_version(),
        "builderDependencies": [t for t in map(_tool, ("auditwheel", "patchelf")) if t],
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "BUILD_COMMIT": report.get("build_commit", ""),  # none for a local tree
                    "SOURCE": marker.get("kind", "local"),
                    "PLAT": report["platform"],
                    "MB_ML_VER": env.get("MB_ML_VER", ""),
                    "MB_ML_LIBC": options.value("MB_ML_LIBC", env),
                    "DOCKER_IMAGE": env.get("DOCKER_IMAGE", ""),
                    "python": report["python"],
                    "ENV_VARS_PATH": _file_param("ENV_VARS_PATH"),
                    "CONFIG_PATH": _file_param("CONFIG_PATH"),
                    "DEPS_AS_OF": options.value("DEPS_AS_OF", env),
                },
                "internalParameters": {
                    "SOURCE_DATE_EPOCH": source_date_epoch,
                    "deps_as_of": report.get("deps_as_of"),
                    "USE_CCACHE": env.get("USE_CCACHE", ""),
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": builder,
                "metadata": {
                    "invocationId": (run[1] if run and run[1] else uuid.uuid4().urn),
                    "startedOn": rfc3339(started),
                    "finishedOn": rfc3339(finished),
                },
                "byproducts": [
                    {"name": p.name, "digest": {"sha256": file_hash(p)}}
                    for p in byproducts
                    if p.is_file()
                ],
            },
        },
    }


def write(wheel_sdir: Path, record: dict) -> Path | None:
    """Write ``record`` as WHEEL_SDIR/build-provenance.intoto.json; a run without a
    wheel has no subject, and an older record would pair with the new report."""
    path = wheel_sdir / FILENAME
    if not record["subject"]:
        path.unlink(missing_ok=True)
        return None
    with atomic_write(path) as out:
        json.dump(record, out, indent=2)
        out.write("\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="provenance.py", description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help=f"a {FILENAME}")
    add_version_option(parser)
    args = parser.parse_args(argv)
    try:
        record = json.loads(args.record.read_text())
    except OSError as exc:
        raise FatalError(f"cannot read {args.record}: {exc.strerror}") from None
    except ValueError as exc:
        raise FatalError(f"{args.record} is not JSON: {exc}") from None
    if record.get("_type") != STATEMENT_TYPE or record.get("predicateType") != PREDICATE_TYPE:
        raise FatalError(f"{args.record} is not an in-toto Statement v1 with SLSA Provenance v1")
    for subject in record.get("subject", []):
        print(f"{subject['digest']['sha256']}  {subject['name']}")
    return 0


if __name__ == "__main__":
    run_main(main, "provenance.py")
