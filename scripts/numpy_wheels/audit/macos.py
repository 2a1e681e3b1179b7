"""macOS wheels: archs and minimum macOS against the tag, and each need resolved as
dyld does (@loader_path, @rpath over the chain's LC_RPATHs, system libraries;
@executable_path is Python's directory, outside the wheel)."""

from __future__ import annotations

import posixpath
import re

from . import policy
from .chains import Found, Node, in_wheel, roots, simulate
from .report import Binary, WheelReport, version_text


def check_macos(report: WheelReport, binaries, members, platforms, _texts) -> None:
    tables = policy.tables()
    system = tuple(tables["macos_system_prefixes"])
    linked = _linked_archs(binaries)
    for platform in platforms:
        match = re.match(r"^macosx_(\d+)_(\d+)_(.+)$", platform)
        if not match or match.group(3) not in tables["macos_tag_archs"]:
            report.fail(f"{report.name}: unknown platform tag {platform}")
            continue
        tag_version = (int(match.group(1)), int(match.group(2)), 0)
        required = set(tables["macos_tag_archs"][match.group(3)])
        for binary in binaries:
            missing = required - set(binary.archs)
            if id(binary) in linked:  # a library: only the archs whose code links it
                missing &= linked[id(binary)]
            if missing:
                report.fail(
                    f"{binary.path}: contains {'+'.join(binary.archs)}, "
                    f"the tag {platform} needs {'+'.join(sorted(missing))}"
                )
            for arch, version in sorted(binary.min_macos.items()):
                promised = _promised(arch, tag_version)
                # From macOS 11 on, tags carry the major version only (packaging's
                # mac_platforms): a macosx_12_0 wheel is the one for every macOS 12.x.
                depth = 1 if promised[0] >= 11 else 2
                if arch in required and version[:depth] > promised[:depth]:
                    report.fail(
                        f"{binary.path}: {arch} code requires macOS {version_text(version)}, "
                        f"the tag {platform} promises {version_text(tag_version)}"
                    )
    for binary in binaries:
        for problem in binary.macos_platform_errors:
            report.fail(f"{binary.path}: {problem}")
    files = {b.installed: b for b in binaries}

    def expand(entry: str, owner: Binary) -> str | None:
        if entry.startswith("@loader_path"):
            rest = entry[len("@loader_path") :].lstrip("/")
            return posixpath.normpath(posixpath.join(posixpath.dirname(owner.installed), rest))
        return None  # @executable_path (python's directory) or absolute: outside the wheel

    def resolve(node: Node, library: str, kind: str, loaded) -> Found:
        if library in loaded:
            return Found(loaded[library].binary.path, f"install name already loaded: {library}")
        if library.startswith(system):
            return Found("system", "macOS system library")
        searched = []
        if library.startswith("@loader_path/"):
            found = in_wheel(expand(library, node.binary), "", files)
            if found is not None:
                return Found(found.path, f"@loader_path of {node.binary.path}", found)
        elif library.startswith("@rpath/"):
            tail = library[len("@rpath/") :]
            for owner in node.chain():
                for entry in owner.binary.rpaths:
                    searched.append(f"{entry} of {owner.binary.path}")
                    if entry.startswith(system):
                        return Found("system", f"LC_RPATH {entry} of {owner.binary.path}")
                    found = in_wheel(expand(entry, owner.binary), tail, files)
                    if found is not None:
                        return Found(found.path, f"LC_RPATH {entry} of {owner.binary.path}", found)
        how = "weakly links" if kind == "weak" else "needs"
        if library.startswith("@rpath/"):
            reason = (
                f"does not resolve inside the wheel (LC_RPATH: {'; '.join(searched) or 'none'})"
            )
        elif library.startswith("@executable_path/"):
            reason = "resolves in the Python executable's directory, outside the wheel"
        elif library.startswith("@loader_path/"):
            reason = "does not resolve inside the wheel"
        else:
            reason = "not bundled and not a system library"
        archs = sorted(a for a, needs in node.binary.slice_needs.items() if library in needs)
        if 0 < len(archs) < len(node.binary.slice_needs):  # one slice of a fat binary
            reason += f" (needed by its {'+'.join(archs)} code only)"
        return Found(None, "not found", severity="warn" if kind == "weak" else "fail",
                      reason=f"{how} {library}: {reason}")  # fmt: skip

    def names_of(binary: Binary) -> set[str]:
        return {binary.soname} if binary.soname else set()

    simulate(report, binaries, roots(binaries, posixpath.basename), resolve, names_of)


def _linked_archs(binaries: list[Binary]) -> dict[int, set[str]]:
    """For each bundled library some binary links, the archs whose slices link it.

    A universal2 wheel may bundle a library per arch (NumPy 1.21's x86_64 code links
    libgfortran.3, its arm64 code libgfortran.5): a library needs only those archs.
    Modules Python loads, and files nothing links, need every arch of the tag.
    """
    linked: dict[str, set[str]] = {}
    for binary in binaries:
        for arch, libraries in binary.slice_needs.items():
            for library in libraries:
                linked.setdefault(posixpath.basename(library), set()).add(arch)
    starts = {id(b) for b, _demoted in roots(binaries, posixpath.basename)}
    found = {}
    for binary in binaries:
        names = {posixpath.basename(binary.path), posixpath.basename(binary.soname or "")}
        archs = set().union(*(linked.get(n, set()) for n in names))
        if id(binary) not in starts and archs:
            found[id(binary)] = archs
    return found


def _promised(arch: str, tag_version: tuple[int, int, int]) -> tuple[int, int, int]:
    """The oldest macOS an ``arch`` slice runs on under a tag of ``tag_version``."""
    return max(tag_version, policy.ARM64_MACOS_FLOOR) if arch == "arm64" else tag_version
