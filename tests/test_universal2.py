"""PLAT=universal2: `fuse_macos_intel_arm64` (multibuild/osx_utils.sh) merges official
NumPy macOS wheels of one release, x86_64 and arm64, with the real delocate-merge,
and the audit judges the result.

delocate is pure Python; what it runs is Debian's LLVM ports (package `llvm`,
installed when missing): llvm-lipo fuses, but words a file that is not Mach-O
differently from cctools' lipo, which delocate-merge matches to copy such a file
instead, so a wrapper gives it cctools' line.  codesign has no Linux tool: a no-op
(signatures are not judged here).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN
from numpy_wheels.audit import check_wheel
from test_audit_corpus import corpus_dir
from test_check_wheel import edit_wheel
from test_mb_osx import _newest_llvm

# The multibuild flow's pair (x86_64 at MACOSX_DEPLOYMENT_TARGET, arm64 at 11.0,
# both bundling OpenBLAS) and the Accelerate pair, both from the audit corpus.
PAIRS = {
    "openblas": ("10.13", "numpy-2.4.6-cp313-cp313-macosx_10_13_x86_64.whl",
                 "numpy-2.4.6-cp313-cp313-macosx_11_0_arm64.whl",
                 "numpy-2.4.6-cp313-cp313-macosx_10_13_universal2.whl"),
    "accelerate": ("14.0", "numpy-2.4.6-cp313-cp313-macosx_14_0_x86_64.whl",
                   "numpy-2.4.6-cp313-cp313-macosx_14_0_arm64.whl",
                   "numpy-2.4.6-cp313-cp313-macosx_14_0_universal2.whl"),
}  # fmt: skip
MULTIARRAY = "numpy/_core/_multiarray_umath.cpython-313-darwin.so"

# cctools' message for an input that is not Mach-O, which delocate's fuse matches
LIPO_WRAPPER = """#!/bin/bash
err=$({lipo} "$@" 2>&1 >/dev/null) && exit 0
not_macho="The file was not recognized as a valid object file"
if [[ $err =~ \\'(.*)\\':\\ $not_macho ]]; then
    echo "fatal error: lipo: can't figure out the architecture type of: ${{BASH_REMATCH[1]}}" >&2
else
    echo "$err" >&2
fi
exit 1
"""


@pytest.fixture(scope="session")
def merge_tools(tmp_path_factory, tools_bin) -> Path:
    """A PATH directory with the real delocate-merge and the lipo/codesign it runs."""
    if _newest_llvm("lipo") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "llvm"], capture_output=True)
    lipo = _newest_llvm("lipo")
    assert lipo is not None, "llvm-lipo not found and `apt-get install llvm` did not provide it"
    shim = tmp_path_factory.mktemp("merge-tools")
    (shim / "lipo").write_text(LIPO_WRAPPER.format(lipo=lipo))
    (shim / "codesign").write_text("#!/bin/sh\nexit 0\n")
    for name in ("lipo", "codesign"):
        (shim / name).chmod(0o755)
    (shim / "delocate-merge").symlink_to(tools_bin / "delocate-merge")
    return shim


def corpus_wheel(name: str) -> Path:
    path = corpus_dir() / name
    if not path.exists():  # fetched (and sha256-checked) with the whole corpus
        from test_audit_corpus import corpus_wheels

        corpus_wheels()
    return path


def fuse(bash, wheelhouse: Path, tools: Path, target: str):
    return bash(
        f"source {ROOT}/multibuild/osx_utils.sh\nfuse_macos_intel_arm64",
        env={"PATH": f"{tools}:{VENV_BIN}:/usr/bin:/bin", "WHEEL_SDIR": str(wheelhouse),
             "MACOSX_DEPLOYMENT_TARGET": target},
    )  # fmt: skip


@pytest.fixture(scope="module")
def merged(tmp_path_factory, merge_tools) -> dict[str, tuple[Path, Path, Path]]:
    """Each pair merged once by fuse_macos_intel_arm64: (universal2, x86_64, arm64)."""
    from conftest import run_bash

    out = {}
    for key, (target, x86, arm, universal) in PAIRS.items():
        tmp = tmp_path_factory.mktemp(f"u2-{key}")
        wheelhouse = tmp / "wheelhouse"
        wheelhouse.mkdir()
        for name in (x86, arm):
            shutil.copy(corpus_wheel(name), wheelhouse / name)
        r = fuse(functools.partial(run_bash, tmp_path=tmp), wheelhouse, merge_tools, target)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        # THEN the x86_64 wheel gave way to the universal2 one; the arm64 one stays
        assert sorted(p.name for p in wheelhouse.iterdir()) == sorted([arm, universal])
        out[key] = (wheelhouse / universal, corpus_wheel(x86), corpus_wheel(arm))
    return out


def _members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_merged_official_wheels_pass_the_audit(merged, pair, tmp_path):
    universal, x86, arm = merged[pair]
    # WHEN the universal2 wheel is audited as NumPy (OpenBLAS and licence checks on)
    report = check_wheel(universal)
    # THEN it passes: RECORD rewritten, tags agree, every loading chain resolves in
    # both slices, arm64 code needing macOS 11.0 is fine under a 10.13 tag
    assert report.failures == [], report.failures
    assert report.tags == [universal.name.split("-", 2)[2].removesuffix(".whl")]
    assert report.platform == "macos"
    # every native file of the x86_64 wheel is there, now with both slices
    single = check_wheel(x86)
    assert single.failures == []
    assert sorted(b.path for b in report.binaries) == sorted(b.path for b in single.binaries)
    assert {tuple(sorted(b.archs)) for b in report.binaries} == {("arm64", "x86_64")}
    if pair == "openblas":
        assert report.openblas["variant"] == "ILP64"
        assert report.openblas["versions"] == check_wheel(arm).openblas["versions"]
    # the x86_64 slice of an extension is the x86_64 wheel's file, byte for byte
    fat = tmp_path / "fat.so"
    fat.write_bytes(_members(universal)[MULTIARRAY])
    thin = tmp_path / "thin.so"
    lipo = _newest_llvm("lipo")
    subprocess.run([lipo, "-thin", "x86_64", fat, "-output", thin], check=True)
    assert thin.read_bytes() == _members(x86)[MULTIARRAY]


def test_audit_fails_a_merged_wheel_with_a_thin_or_too_new_binary(merged, tmp_path):
    from macholib.MachO import MachO
    from numpy_wheels.audit import policy

    universal, x86, _arm = merged["openblas"]
    fft = "numpy/fft/_pocketfft_umath.cpython-313-darwin.so"
    thin_x86 = _members(x86)[fft]

    def break_it(members):
        # one extension left x86_64-only; another's arm64 slice needing macOS 12.0
        members[fft] = thin_x86
        path = tmp_path / "m.so"
        path.write_bytes(members[MULTIARRAY])
        macho = MachO(str(path))
        for header in macho.headers:
            if policy.MACHO_CPUS.get(header.header.cputype) == "arm64":
                for load, command, _data in header.commands:
                    if load.cmd == policy.LC_BUILD_VERSION:
                        command.minos = 12 << 16
        with open(path, "r+b") as fobj:
            macho.write(fobj)
        members[MULTIARRAY] = path.read_bytes()

    report = check_wheel(edit_wheel(universal, tmp_path, edit=break_it))
    tag = "macosx_10_13_universal2"
    assert report.failures == [
        f"{MULTIARRAY}: arm64 code requires macOS 12.0, the tag {tag} promises 10.13",
        f"{fft}: contains x86_64, the tag {tag} needs arm64",
    ]


def test_delocate_merge_failure_stops_the_fuse(bash, tmp_path, merge_tools):
    # GIVEN an x86_64 wheel that is not a zip at all beside its arm64 twin
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    target, x86, arm, _universal = PAIRS["openblas"]
    (wheelhouse / x86).write_bytes(b"not a wheel")
    shutil.copy(corpus_wheel(arm), wheelhouse / arm)
    r = fuse(bash, wheelhouse, merge_tools, target)
    # THEN one line names the wheel, the status is 1 and the wheelhouse is untouched
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == f"fuse_macos_intel_arm64: delocate-merge failed for {x86}"
    assert sorted(p.name for p in wheelhouse.iterdir()) == sorted([x86, arm])


def test_an_old_official_universal2_wheel_with_a_library_per_arch(tmp_path):
    # GIVEN NumPy 1.21.6's universal2 wheel (fused by the old delocate-fuse): its
    # x86_64 code links libgfortran.3, its arm64 code libgfortran.5, each thin
    from conftest import CACHE, cached_download

    wheel = cached_download("numpy==1.21.6", CACHE / "numpy-universal2", "--python-version",
                            "3.10", "--platform", "macosx_10_9_universal2")  # fmt: skip
    report = check_wheel(wheel)
    # THEN it passes: each library has the archs whose code links it; that delocate-fuse
    # left WHEEL tagged as the arm64 wheel it started from is a warning (platform only)
    assert report.failures == []
    assert report.warnings[0] == (
        "numpy-1.21.6.dist-info/WHEEL: tags cp310-cp310-macosx_11_0_arm64 do not match "
        "the filename's cp310-cp310-macosx_10_9_universal2"
    )
    archs = {b.path.rsplit("/", 1)[1]: sorted(b.archs) for b in report.binaries}
    assert archs["libgfortran.3.dylib"] == ["x86_64"]
    assert archs["libgfortran.5.dylib"] == ["arm64"]

    # WHEN the arm64 libgfortran is swapped for the x86_64 one under its name
    def swap(members):
        members["numpy/.dylibs/libgfortran.5.dylib"] = members["numpy/.dylibs/libgfortran.3.dylib"]

    swapped = check_wheel(edit_wheel(wheel, tmp_path, edit=swap))
    # THEN the arm64 code that links it has nothing to load
    assert (
        "numpy/.dylibs/libgfortran.5.dylib: contains x86_64, the tag macosx_10_9_universal2 "
        "needs arm64"
    ) in swapped.failures
