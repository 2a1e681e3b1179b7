"""The audit on the world's wheels: official NumPy wheels of four releases and SciPy's
of one, every platform each published, one CPython each (about 50 wheels).

The first run asks the package index's simple API which files each release has,
keeps that answer (name, URL, sha256) in ``~/.cache/numpy-wheels/corpus/corpus.json``
and downloads every wheel there through ``numpy_wheels.net.download`` with its published
sha256.  Later runs need no network: each cached wheel is used only after its
sha256 matches the stored one again.  ``NW_CORPUS_DIR`` moves the cache.

    python tests/test_audit_corpus.py     # fetch (if needed) and print the corpus
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from numpy_wheels.errors import DownloadError  # noqa: E402
from numpy_wheels.files import atomic_write, error_reason, file_hash  # noqa: E402
from numpy_wheels.net import download  # noqa: E402

# (project, version, CPython): the latest patch of 1.26, 2.0, 2.3 and 2.4, and a
# recent SciPy; each CPython chosen so that every platform of its release exists.
CORPUS_RELEASES = (
    ("numpy", "1.26.4", "cp312"),
    ("numpy", "2.0.2", "cp312"),
    ("numpy", "2.3.5", "cp312"),
    ("numpy", "2.4.6", "cp313"),
    ("scipy", "1.18.1", "cp313"),
)
# What each release published for its CPython (the index's answer, pinned here so
# that a selection bug or a changed index shows as a failure, not a smaller corpus).
_MAC_2X = ["macosx_11_0_arm64", "macosx_14_0_arm64", "macosx_14_0_x86_64"]
_LINUX_2_28 = [
    "manylinux_2_27_aarch64.manylinux_2_28_aarch64",
    "manylinux_2_27_x86_64.manylinux_2_28_x86_64",
    "musllinux_1_2_aarch64",
    "musllinux_1_2_x86_64",
]
EXPECTED_PLATFORMS = {
    ("numpy", "1.26.4"): [
        "macosx_10_9_x86_64", "macosx_11_0_arm64",
        "manylinux_2_17_aarch64.manylinux2014_aarch64",
        "manylinux_2_17_x86_64.manylinux2014_x86_64",
        "musllinux_1_1_aarch64", "musllinux_1_1_x86_64", "win32", "win_amd64",
    ],
    ("numpy", "2.0.2"): [
        "macosx_10_9_x86_64", *_MAC_2X,
        "manylinux_2_17_aarch64.manylinux2014_aarch64",
        "manylinux_2_17_x86_64.manylinux2014_x86_64",
        "musllinux_1_1_x86_64", "musllinux_1_2_aarch64", "win32", "win_amd64",
    ],
    ("numpy", "2.3.5"): ["macosx_10_13_x86_64", *_MAC_2X, *_LINUX_2_28,
                         "win32", "win_amd64", "win_arm64"],
    ("numpy", "2.4.6"): ["macosx_10_13_x86_64", *_MAC_2X, *_LINUX_2_28,
                         "win32", "win_amd64", "win_arm64"],
    ("scipy", "1.18.1"): ["macosx_10_15_x86_64", "macosx_12_0_arm64", "macosx_14_0_arm64",
                          "macosx_14_0_x86_64", *_LINUX_2_28, "win_amd64", "win_arm64"],
}  # fmt: skip


def corpus_dir() -> Path:
    default = Path.home() / ".cache" / "numpy-wheels" / "corpus"
    return Path(os.environ.get("NW_CORPUS_DIR") or default)


def _ask_index(projects, keep) -> list[dict[str, str]]:
    """Every wheel of ``projects`` the index lists that ``keep(filename, version,
    pythons)`` selects: name, URL and the sha256 it publishes."""
    from packaging.utils import parse_wheel_filename
    from pypi_simple import PyPISimple

    found = []
    endpoint = os.environ.get("PIP_INDEX_URL")
    with PyPISimple(**({"endpoint": endpoint} if endpoint else {})) as client:
        for project in sorted(projects):
            page = client.get_project_page(project, timeout=60)
            for package in page.packages:
                if package.package_type != "wheel" or not package.filename.endswith(".whl"):
                    continue
                _name, version, _build, tags = parse_wheel_filename(package.filename)
                pythons = {t.interpreter for t in tags if t.abi == t.interpreter}
                if keep(package.filename, str(version), pythons):
                    if "sha256" not in package.digests:
                        raise DownloadError(f"{package.filename}: the index gives no sha256")
                    found.append(
                        {
                            "filename": package.filename,
                            "url": package.url,
                            "sha256": package.digests["sha256"],
                        }
                    )
    return sorted(found, key=lambda w: w["filename"])


def cached_wheels(manifest_name: str, projects, keep, selection, verbose=False) -> list[Path]:
    """Wheels fetched on first use into corpus_dir() and listed in ``manifest_name``
    with their sha256; each file re-verified by it.  The index is asked again only
    when ``selection`` (what ``keep`` selects, as JSON) differs from the stored one."""
    root = corpus_dir()
    manifest = root / manifest_name
    wanted = json.loads(json.dumps(selection))
    stored = json.loads(manifest.read_text()) if manifest.exists() else {}
    if stored.get("selection") == wanted:
        entries = stored["wheels"]
    else:
        entries = _ask_index(projects, keep)
        root.mkdir(parents=True, exist_ok=True)
        with atomic_write(manifest) as out:
            json.dump({"selection": wanted, "wheels": entries}, out, indent=1)
    paths = []
    for entry in entries:
        path = root / entry["filename"]
        if path.exists() and file_hash(path) != entry["sha256"]:
            path.unlink()  # a damaged or replaced copy is fetched again
        if not path.exists():
            if verbose:
                print(f"fetching {entry['filename']}", flush=True)
            download(entry["url"], path, sha256=entry["sha256"])
        paths.append(path)
    return paths


def corpus_wheels(verbose: bool = False) -> list[Path]:
    """The corpus, fetched on first use, each file re-verified by its stored sha256."""

    def keep(_filename, version, pythons):
        return any((version, py) in wanted for py in pythons)

    wanted = {(v, py) for _p, v, py in CORPUS_RELEASES}
    projects = {p for p, _v, _py in CORPUS_RELEASES}
    return cached_wheels("corpus.json", projects, keep, CORPUS_RELEASES, verbose)


def fetch_failure(exc: Exception) -> None:
    """The index unreachable on a first run: say what is missing, no traceback."""
    pytest.fail(
        f"the audit corpus could not be fetched ({error_reason(exc)}); it needs the "
        f"package index once, then lives in {corpus_dir()}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def corpus() -> list[Path]:
    try:
        return corpus_wheels()
    except Exception as exc:
        fetch_failure(exc)


@pytest.fixture(scope="session")
def corpus_reports(corpus):
    from numpy_wheels.audit import check_wheels

    return dict(zip(corpus, check_wheels(corpus), strict=True))


def _release(wheel: Path) -> tuple[str, str, str]:
    project, version, _python, _abi, platform = wheel.name[: -len(".whl")].split("-")
    return project, version, platform


def test_corpus_holds_every_platform_of_each_release(corpus):
    found: dict[tuple[str, str], list[str]] = {}
    for wheel in corpus:
        project, version, platform = _release(wheel)
        found.setdefault((project, version), []).append(platform)
    assert {k: sorted(v) for k, v in found.items()} == {
        k: sorted(v) for k, v in EXPECTED_PLATFORMS.items()
    }
    pythons = {(p, v): py for p, v, py in CORPUS_RELEASES}
    for wheel in corpus:
        project, version, _platform = _release(wheel)
        assert f"-{pythons[project, version]}-{pythons[project, version]}-" in wheel.name


# A warning on an official wheel is one of these policy observations, nothing else.
POLICY_WARNINGS = re.compile(
    r"^\S+ (delay-)?imports (MSVCP140|VCRUNTIME140_1|CONCRT140)\.dll: not bundled; part of "
    r"the Visual C\+\+ runtime, common but not guaranteed on Windows( \(loading chain: .*\))?$"
    r"|^\S+: bundled but not declared in \S+/LICENSE\.txt$"
)


def test_every_official_wheel_passes(corpus, corpus_reports, capsys):
    verdicts = collections.Counter()
    for wheel, report in corpus_reports.items():
        # THEN no official wheel FAILs, and every warning is a known policy observation
        assert (wheel.name, report.failures) == (wheel.name, [])
        assert [w for w in report.warnings if not POLICY_WARNINGS.match(w)] == []
        assert report.binaries, wheel.name  # every corpus wheel is a platform wheel
        verdicts["PASS with warnings" if report.warnings else "PASS"] += 1
    with capsys.disabled():
        print(
            f"\naudit corpus: {len(corpus)} official wheels checked: "
            f"{verdicts['PASS']} PASS, {verdicts['PASS with warnings']} PASS with warnings, 0 FAIL"
        )
    assert len(corpus) == sum(len(v) for v in EXPECTED_PLATFORMS.values())


def test_the_corpus_report_validates_against_the_published_schema(corpus_reports):
    # the --json document of the whole corpus, as check_wheel.py prints it
    from numpy_wheels.audit.report import json_document
    from test_audit_schema import problems

    for strict in (False, True):
        document = json.loads(json.dumps(json_document(list(corpus_reports.values()), strict)))
        assert document["ok"] is not strict  # strict: the warnings fail some wheels
        assert problems(document) == []


def _report(corpus_reports, name: str):
    return next(r for w, r in corpus_reports.items() if w.name == name)


def _binary(report, suffix: str):
    return next(b for b in report.binaries if b.path.endswith(suffix))


def test_the_wheels_the_old_audit_failed(corpus_reports):
    # numpy 1.26.4: libgfortran is found through the DT_RPATH of the extension module
    # that loaded OpenBLAS (glibc searches the RPATH of every object up the chain).
    linux = _report(corpus_reports, "numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64"
                    ".manylinux2014_x86_64.whl")  # fmt: skip
    openblas = _binary(linux, "libopenblas64_p-r0-0cf96a72.3.23.dev.so")
    gfortran = "libgfortran-040039e1.so.5.0.0"
    assert openblas.rpaths == openblas.runpaths == []
    assert openblas.resolved[gfortran] == f"numpy.libs/{gfortran}"
    assert re.fullmatch(
        r"DT_RPATH \$ORIGIN/\.\./\.\./numpy\.libs of numpy/\S+\.cpython-312-x86_64-linux-gnu\.so",
        openblas.via[gfortran],
    )
    assert linux.openblas["interfaces"] == {openblas.path: "ILP64"}
    # musl: libstdc++ finds libgcc_s through its loader's RPATH, as musl's loader does
    musl = _report(corpus_reports, "numpy-2.4.6-cp313-cp313-musllinux_1_2_x86_64.whl")
    stdcxx = _binary(musl, "libstdc++-5d72f927.so.6.0.33")
    assert stdcxx.resolved["libgcc_s-0cd532bd.so.1"] == "numpy.libs/libgcc_s-0cd532bd.so.1"
    assert stdcxx.resolved["libc.musl-x86_64.so.1"] == "system"
    # win32 imports MSVCP140.dll unbundled: a warning, not a blocked release
    win32 = _report(corpus_reports, "numpy-2.4.6-cp313-cp313-win32.whl")
    assert win32.failures == []
    assert any("imports MSVCP140.dll: not bundled" in w for w in win32.warnings)
    # delvewheel's patch in numpy/__init__.py adds numpy.libs; the DLLs are found there
    amd64 = _report(corpus_reports, "numpy-2.4.6-cp313-cp313-win_amd64.whl")
    assert amd64.dll_directories == ["numpy.libs"]
    multiarray = _binary(amd64, "_multiarray_umath.cp313-win_amd64.pyd")
    blas = next(n for n, _ in multiarray.needed if "openblas" in n)
    assert multiarray.via[blas] == "os.add_dll_directory in numpy/__init__.py"
    # SciPy's macosx_12_0 wheel: binaries need 12.3, the tag names macOS 12 (any 12.x)
    mac = _report(corpus_reports, "scipy-1.18.1-cp313-cp313-macosx_12_0_arm64.whl")
    assert (12, 3, 0) in {b.min_macos["arm64"] for b in mac.binaries}
    assert mac.failures == []


# ---------------------------------------------------------------- agreement with auditwheel


def _auditwheel_show(wheel: Path) -> dict:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("auditwheel")), "show", "--json", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _classify(report) -> dict[str, str]:
    """Each needed library: bundled, system or missing, as check_wheel resolved it."""
    kinds = {}
    for binary in report.binaries:
        for library, _kind in binary.needed:
            where = binary.resolved.get(library)
            kind = "missing" if where is None else "bundled" if "/" in where else "system"
            if kinds.get(library, "bundled") != "missing":
                kinds[library] = kind
    return kinds


def _agree(wheel: Path, report, shown: dict) -> None:
    from numpy_wheels.audit.linux import _linux_policy

    ours = _classify(report)
    tag_policy = _linux_policy(wheel.name[: -len(".whl")].split("-")[-1].split(".")[0])
    external = set(shown["external_libs"])
    # the libraries auditwheel says are needed and neither bundled nor allowed
    assert {lib for lib, kind in ours.items() if kind == "missing"} == external, wheel.name
    # every library auditwheel saw a versioned need for, classified the same way
    for library in shown["versioned_symbols"]:
        theirs = (
            "missing" if library in external
            else "system" if library in tag_policy.whitelist
            else "bundled"
        )  # fmt: skip
        assert (library, ours.get(library)) == (library, theirs), wheel.name
    # and the version needs themselves, read by our bounded parser
    needs: dict[str, set[str]] = collections.defaultdict(set)
    for binary in report.binaries:
        for library, versions in binary.symbol_versions.items():
            if not library.startswith("ld-linux") and library not in ("ld64.so.1", "ld64.so.2"):
                needs[library].update(versions)
    assert {k: sorted(v) for k, v in needs.items()} == shown["versioned_symbols"], wheel.name


def test_agrees_with_auditwheel_on_linux_corpus(corpus, corpus_reports):
    from concurrent.futures import ThreadPoolExecutor

    linux = [w for w in corpus if "linux" in w.name]
    assert len(linux) == 20
    with ThreadPoolExecutor(2) as pool:
        shown = dict(zip(linux, pool.map(_auditwheel_show, linux), strict=True))
    for wheel in linux:
        _agree(wheel, corpus_reports[wheel], shown[wheel])


def test_agrees_with_auditwheel_on_a_broken_copy(corpus, tmp_path):
    # GIVEN numpy 1.26.4 without its bundled libgfortran (needed only by OpenBLAS)
    from numpy_wheels.audit import check_wheel
    from test_check_wheel import edit_wheel

    src = next(w for w in corpus if w.name.startswith("numpy-1.26.4") and "manylinux" in w.name
               and "x86_64" in w.name)  # fmt: skip

    def drop(members):
        (name,) = [m for m in members if "libgfortran" in m]
        del members[name]

    bad = edit_wheel(src, tmp_path, edit=drop)
    report = check_wheel(bad)
    shown = _auditwheel_show(bad)
    # THEN both call it missing (auditwheel: external, not found on this host)
    assert shown["external_libs"] == {"libgfortran-040039e1.so.5.0.0": None}
    _agree(bad, report, shown)
    assert report.failures == [
        "numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so needs libgfortran-040039e1.so.5.0.0: "
        "not bundled, not allowed by manylinux_2_17 (loading chain: "
        "numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so <- "
        "numpy/linalg/lapack_lite.cpython-312-x86_64-linux-gnu.so)"
    ]


if __name__ == "__main__":
    for wheel in corpus_wheels(verbose=True):
        print(wheel)
