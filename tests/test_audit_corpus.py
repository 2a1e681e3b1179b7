"""The audit on the world's wheels: official NumPy wheels of four releases and SciPy's
of one, every platform each published, one CPython each (about 50 wheels).

The first run asks the package index's simple API which files each release has,
keeps that answer (name, URL, sha256) in ``~/.cache/numpy-wheels/corpus/corpus.json``
and downloads every wheel there through ``nwlib.download`` with its published
sha256.  Later runs need no network: each cached wheel is used only after its
sha256 matches the stored one again.  ``NW_CORPUS_DIR`` moves the cache.

    python tests/test_audit_corpus.py     # fetch (if needed) and print the corpus
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import nwlib  # noqa: E402

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


def _ask_index() -> list[dict[str, str]]:
    """Every corpus wheel the index lists: name, URL and the sha256 it publishes."""
    from packaging.utils import parse_wheel_filename
    from pypi_simple import PyPISimple

    found = []
    endpoint = os.environ.get("PIP_INDEX_URL")
    with PyPISimple(**({"endpoint": endpoint} if endpoint else {})) as client:
        for project in sorted({p for p, _v, _py in CORPUS_RELEASES}):
            page = client.get_project_page(project, timeout=60)
            wanted = {(v, py) for p, v, py in CORPUS_RELEASES if p == project}
            for package in page.packages:
                if package.package_type != "wheel" or not package.filename.endswith(".whl"):
                    continue
                _name, version, _build, tags = parse_wheel_filename(package.filename)
                pythons = {t.interpreter for t in tags if t.abi == t.interpreter}
                if any((str(version), py) in wanted for py in pythons):
                    if "sha256" not in package.digests:
                        raise nwlib.DownloadError(f"{package.filename}: the index gives no sha256")
                    found.append(
                        {
                            "filename": package.filename,
                            "url": package.url,
                            "sha256": package.digests["sha256"],
                        }
                    )
    return sorted(found, key=lambda w: w["filename"])


def corpus_wheels(verbose: bool = False) -> list[Path]:
    """The corpus, fetched on first use, each file re-verified by its stored sha256."""
    root = corpus_dir()
    manifest = root / "corpus.json"
    if manifest.exists():
        entries = json.loads(manifest.read_text())["wheels"]
    else:
        entries = _ask_index()
        root.mkdir(parents=True, exist_ok=True)
        with nwlib.atomic_write(manifest) as out:
            json.dump({"releases": CORPUS_RELEASES, "wheels": entries}, out, indent=1)
    paths = []
    for entry in entries:
        path = root / entry["filename"]
        if path.exists() and nwlib.file_hash(path) != entry["sha256"]:
            path.unlink()  # a damaged or replaced copy is fetched again
        if not path.exists():
            if verbose:
                print(f"fetching {entry['filename']}", flush=True)
            nwlib.download(entry["url"], path, sha256=entry["sha256"])
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def corpus() -> list[Path]:
    return corpus_wheels()


if __name__ == "__main__":
    for wheel in corpus_wheels(verbose=True):
        print(wheel)
