"""NumPy specifics: at most one OpenBLAS, its version and integer interface read
from the library itself (32-bit targets need LP64), and bundled software declared
in LICENSE.txt (a warning, never a failure)."""

from __future__ import annotations

import fnmatch
import posixpath
import re

from . import policy
from .report import WheelReport


def openblas_version(data) -> str | None:
    match = policy.OPENBLAS_VERSION_RE.search(data)
    if match:
        return match.group(1).decode()
    # x86-64 code may hold the string as movabs immediates ("OpenBLAS", " 0.3.31.", ...).
    for start in (m.start() for m in re.finditer(rb"[\x48\x49][\xb8-\xbf]OpenBLAS", data)):
        window = data[start : start + 160]
        text = b"".join(m.group(1) for m in policy.MOVABS_RE.finditer(window))
        match = policy.OPENBLAS_VERSION_RE.match(text)
        if match:
            return match.group(1).decode().rstrip(".")
    return None


def openblas_interface(data) -> str | None:
    """ILP64 or LP64, read from the names of the library's BLAS symbols."""
    if data.find(policy.ILP64_SYMBOL) >= 0:
        return "ILP64"
    return "LP64" if data.find(policy.LP64_SYMBOL) >= 0 else None


def check_numpy(
    report: WheelReport, binaries, platforms, expect_openblas, expect_interface
) -> None:
    openblas = [b for b in binaries if "openblas" in posixpath.basename(b.path).lower()]
    report.openblas = {
        "files": [b.path for b in openblas],
        "versions": {b.path: b.openblas_version for b in openblas},
        "interfaces": {b.path: b.interface for b in openblas},
    }
    if len(openblas) > 1:
        report.fail(
            f"{report.name}: bundles {len(openblas)} OpenBLAS libraries "
            f"({', '.join(b.path for b in openblas)}); at most one is allowed"
        )
    bits32 = any(policy.BITS32.search(p) for p in platforms)
    for binary in openblas:
        if binary.interface is None:
            report.fail(f"{binary.path}: cannot tell the OpenBLAS integer interface (no dgemm)")
            continue
        report.openblas["variant"] = binary.interface
        if bits32 and binary.interface == "ILP64":
            report.fail(
                f"{binary.path}: ILP64 OpenBLAS, but a {platforms[0]} wheel is 32-bit "
                "and must bundle the LP64 build"
            )
        elif expect_interface and binary.interface != expect_interface.upper():
            report.fail(
                f"{binary.path}: {binary.interface} OpenBLAS, but the build used "
                f"{expect_interface.upper()} (NW_OPENBLAS_INTERFACE={expect_interface.lower()})"
            )
    if (expect_openblas or expect_interface) and not openblas:
        uses = "Accelerate" if _links_accelerate(binaries) else "no bundled BLAS"
        wanted = f"OpenBLAS {expect_openblas}" if expect_openblas else "a bundled OpenBLAS"
        report.fail(f"{report.name}: no bundled OpenBLAS (found {uses}), expected {wanted}")
    if expect_openblas:
        for binary in openblas:
            found = binary.openblas_version
            if found is None:
                report.fail(f"{binary.path}: cannot read the OpenBLAS version from the library")
            elif found != expect_openblas and not found.startswith(expect_openblas + "."):
                report.fail(f"{binary.path}: OpenBLAS {found}, expected {expect_openblas}")


def _links_accelerate(binaries) -> bool:
    return any("Accelerate.framework" in lib for b in binaries for lib, _ in b.needed)


def _bundled_libraries(binaries) -> list[str]:
    """Native files that are shared libraries rather than Python extension modules."""
    found = []
    for binary in binaries:
        base = posixpath.basename(binary.path)
        parent = posixpath.basename(posixpath.dirname(binary.path))
        libs_dir = parent.endswith((".libs", ".dylibs"))
        if policy.EXTENSION_RE.search(base) and not libs_dir:
            continue  # an extension module, Python 2's untagged lapack_lite.so included
        shared = re.search(r"\.(so(\.[\d.]+)?|dylib|dll)$", base)
        if libs_dir or shared:
            found.append(binary.path)
    return found


def check_license(report: WheelReport, binaries, texts, dist_info) -> None:
    """Bundled software should be named in LICENSE.txt: a policy warning, never a FAIL."""
    bundled = _bundled_libraries(binaries)
    exempt = tuple(policy.tables()["license_exempt_prefixes"])
    bundled = [b for b in bundled if not posixpath.basename(b).lower().startswith(exempt)]
    if not bundled:
        return
    licenses = {
        k: v
        for k, v in texts.items()
        if k.startswith(f"{dist_info}/") and posixpath.basename(k) == "LICENSE.txt"
    }
    if not licenses:
        report.warn(f"{dist_info}/LICENSE.txt: missing, but the wheel bundles {bundled[0]}")
        return
    license_name, raw = sorted(licenses.items(), key=lambda kv: len(kv[0]))[0]
    text = raw.decode("utf-8", "replace")
    patterns = [
        p.strip().replace("\\", "/")
        for line in re.findall(r"^Files:\s*(.+)$", text, re.MULTILINE)
        for p in line.split(",")
    ]
    for member in bundled:
        if not _declared(member, patterns, text):
            report.warn(f"{member}: bundled but not declared in {license_name}")


def _declared(member: str, patterns: list[str], text: str) -> bool:
    directory, base = posixpath.split(member)
    for pattern in patterns:
        pat_dir, pat_base = posixpath.split(pattern)
        # Older notices name the files where the build put them ("extra-dll/libopenb*.dll",
        # ".libs/libgfortran*.so" for numpy.libs): a named library is declared wherever
        # it now lies; a bare "*" only for its own directory (".dylibs/*", numpy/.dylibs).
        if pat_base.strip("*") == "":
            if directory == pat_dir or directory.endswith(f"/{pat_dir}"):
                return True
            continue
        # "libscipy_openblas*.so" also declares the .dylib/.dll of the same library
        if fnmatch.fnmatchcase(base, pat_base) or base.startswith(pat_base.split("*", 1)[0]):
            return True
    if patterns:
        return False
    match = policy.LIB_STEM_RE.match(base)
    stem = re.sub(r"^lib", "", match.group(1) if match else base).rstrip("_0123456789.")
    return stem.lower() in text.lower()
