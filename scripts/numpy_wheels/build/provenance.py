"""The provenance record of a build: an in-toto Statement v1 with a SLSA
Provenance v1 predicate, written by `make wheels` next to build-report.json as
$WHEEL_SDIR/build-provenance.intoto.json.

    subject               each wheel of the run: name and sha256
    buildDefinition       this toolkit's build type; the settings that chose the
                          build (BUILD_COMMIT, PLAT, MB_ML_VER, Python, the env
                          vars and config files); what it was made from, with
                          digests (source commit or sdist sha256, the OpenBLAS
                          wheel or archive) and the build requirements as installed,
                          each with the sha256 of the wheel the index serves for it
    runDetails            the builder (the CI run's URL on CI), the toolkit's
                          commit, the repair tools, start and finish times

    provenance.py WHEELHOUSE/build-provenance.intoto.json   print the subjects
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packaging.tags import parse_tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from .. import index, options
from ..errors import FatalError
from ..files import atomic_write, file_hash, sanitize_url, without_userinfo
from ..log import add_version_option, logger, plural, run_main
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


# Run by the build Python (any version with importlib.metadata): each distribution
# once, as the first on sys.path shadows the others, with its WHEEL file's tags.
_DISTRIBUTIONS = """
import importlib.metadata as m, json, re
seen = {}
for d in m.distributions():
    name = d.metadata["Name"]
    if not name:
        continue
    fields = [line.partition(":") for line in (d.read_text("WHEEL") or "").splitlines()]
    seen.setdefault(re.sub(r"[-_.]+", "-", name).lower(), {
        "name": name, "version": d.version,
        "tags": [v.strip() for k, _, v in fields if k == "Tag"],
        "build": "".join(v.strip() for k, _, v in fields if k == "Build"),
        "direct": d.read_text("direct_url.json") is not None,
    })
print(json.dumps(list(seen.values())))
"""
LOOKUP_TIMEOUT = 20  # seconds per request; the whole page is bounded by net.http_session
LOOKUP_THREADS = 8
SHA256 = re.compile(r"[0-9a-f]{64}")
PLAIN_URL = re.compile(r"https?://[!-~]+", re.IGNORECASE)


def installed(python: Path) -> list[dict]:
    """The build environment's distributions as installed: each a purl and, where the
    index (index.index_url) serves that exact wheel, the file's name and sha256."""
    if not python.exists():
        return []
    proc = subprocess.run([str(python), "-c", _DISTRIBUTIONS], capture_output=True, text=True)
    try:
        dists = json.loads(proc.stdout) if proc.returncode == 0 else []
    except ValueError:
        return []
    dists.sort(key=lambda d: canonicalize_name(d["name"]))
    files = index_wheels(dists, index.index_url())
    described = []
    for dist in dists:
        project = canonicalize_name(dist["name"])
        entry = {"name": dist["name"], "uri": f"pkg:pypi/{project}@{dist['version']}"}
        found = files.get(project)
        if found:
            entry["uri"] += f"?file_name={quote(found.filename)}"
            entry["digest"] = {"sha256": found.digests["sha256"]}
            location = without_userinfo(found.url)
            if PLAIN_URL.fullmatch(location):  # the server chose it: http(s), printable
                entry["downloadLocation"] = location
        described.append(entry)
    return described


def index_wheels(dists: list[dict], url: str) -> dict[str, Any]:
    """{project: the index's DistributionPackage that is exactly the installed wheel}:
    one page per project, read concurrently.  Dists installed from a URL or path, or
    with no WHEEL tags, are not looked up; an unreadable index is one warning."""
    wanted = [d for d in dists if d["tags"] and not d["direct"]]

    def lookup(dist: dict) -> Any:
        try:
            page = index.project_page(dist["name"], url, timeout=LOOKUP_TIMEOUT)
        except index.NotOnIndexError:
            return None
        return same_wheel(dist, page.packages)

    found, answered, failure = {}, 0, ""
    with ThreadPoolExecutor(max_workers=LOOKUP_THREADS) as pool:
        futures = {pool.submit(lookup, d): d for d in wanted}
        for future in as_completed(futures):
            if future.cancelled():
                continue
            try:
                package = future.result()
            except FatalError as exc:
                failure = failure or str(exc)
                if not answered:  # not one answer yet: the index is down, ask no more
                    for pending in futures:
                        pending.cancel()
                continue
            answered += 1
            if package is not None:
                found[canonicalize_name(futures[future]["name"])] = package
    if failure:
        missed, of = len(wanted) - answered, plural(len(wanted), "build requirement")
        logger.warning(f"provenance: warning: {missed} of {of} not looked up, no digest: {failure}")
    return found


def same_wheel(dist: dict, packages: list[Any]) -> Any:
    """The package whose file name has the installed name, version, build tag and
    exactly its set of tags, with a sha256; None when there is none."""
    try:
        version = Version(dist["version"])
        tags = frozenset().union(*map(parse_tag, dist["tags"]))
    except (InvalidVersion, ValueError):
        return None
    want = (canonicalize_name(dist["name"]), version, dist["build"], tags)
    for package in packages:
        try:
            name, got, build, file_tags = parse_wheel_filename(package.filename)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if (name, got, "".join(map(str, build)), file_tags) == want and SHA256.fullmatch(
            package.digests.get("sha256", "")
        ):
            return package
    return None


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
