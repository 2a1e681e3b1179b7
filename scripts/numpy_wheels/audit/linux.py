"""Linux wheels (manylinux, musllinux): each need resolved as glibc or musl does
(DT_RPATH up the loading chain, DT_RUNPATH, $ORIGIN, sonames already loaded, the
policy's system libraries), the policy and its symbol versions read from
auditwheel's installed policy data."""

from __future__ import annotations

import functools
import posixpath
import re
from typing import Any

from . import policy
from .chains import Found, Node, bundled_elsewhere, in_wheel, roots, simulate
from .report import Binary, WheelReport


@functools.cache
def _linux_policies(libc_name: str, arch: str, musl_policy: str | None):
    from auditwheel.architecture import Architecture
    from auditwheel.libc import Libc
    from auditwheel.policy import WheelPolicies

    libc = Libc.MUSL if libc_name == "musl" else Libc.GLIBC
    return WheelPolicies(libc=libc, arch=Architecture(arch), musl_policy=musl_policy)


def _linux_policy(platform: str):
    """The auditwheel policy for a platform tag, or None for a plain ``linux_*`` tag."""
    match = re.match(r"^(manylinux|musllinux)(?:_(\d+)_(\d+)|(\d+))?_(.+)$", platform)
    if platform.startswith("linux_") or not match:
        return None
    kind, major, minor, _legacy, arch = match.groups()
    musl_policy = f"musllinux_{major}_{minor}" if kind == "musllinux" else None
    try:
        policies = _linux_policies("musl" if musl_policy else "glibc", arch, musl_policy)
        return policies.get_policy_by_name(platform)
    except (ValueError, LookupError):
        return None


def _short(policy_name: str) -> str:
    """manylinux_2_17_x86_64 -> manylinux_2_17 (the arch is already in the tag)."""
    return re.sub(policy.LINUX_ARCH_SUFFIX, "", policy_name)


def _is_interpreter(library: str) -> bool:
    return library.startswith(("ld-linux", "ld-musl-")) or library in ("ld64.so.1", "ld64.so.2")


def check_linux(report: WheelReport, binaries, members, platforms, _texts) -> None:
    arch = re.sub(r"^(manylinux_\d+_\d+|manylinux\d+|musllinux_\d+_\d+|linux)_", "", platforms[0])
    tag_policy = None
    for platform in platforms:
        if not platform.startswith("linux_"):
            found = _linux_policy(platform)
            if found is None:
                report.fail(f"{report.name}: unknown platform tag {platform}")
            elif tag_policy is None or found.priority > tag_policy.priority:
                tag_policy = found  # the strictest tag claimed: every other one follows from it
    if tag_policy is None and all(p.startswith("linux_") for p in platforms):
        report.fail(
            f"{report.name}: platform tag {platforms[0]} is not portable "
            "(run auditwheel repair to get a manylinux tag)"
        )
    musl = platforms[0].startswith("musllinux")
    shown = _short(tag_policy.name) if tag_policy else "any manylinux policy"
    whitelist = tag_policy.whitelist if tag_policy else frozenset()
    files = {b.installed: b for b in binaries}
    for binary in binaries:
        if binary.archs[0] != arch:
            report.fail(f"{binary.path}: built for {binary.archs[0]}, the tag says {arch}")

    def search_list(node: Node) -> list[tuple[str, str, Node]]:
        """(entry, which tag of whom, owner) in the order the loader tries them."""
        own = node.binary
        entries = []
        if musl:  # musl: each object's RUNPATH (else RPATH), up the chain
            for n in node.chain():
                tag = "DT_RUNPATH" if n.binary.runpaths else "DT_RPATH"
                entries += [(e, tag, n) for e in n.binary.runpaths or n.binary.rpaths]
            return entries
        if not own.runpaths:  # glibc: DT_RPATH up the chain, unless the object has RUNPATH
            for n in node.chain():
                if not n.binary.runpaths:  # an object's RUNPATH disables its own RPATH
                    entries += [(e, "DT_RPATH", n) for e in n.binary.rpaths]
        return entries + [(e, "DT_RUNPATH", node) for e in own.runpaths]

    def resolve(node: Node, library: str, _kind: str, loaded) -> Found:
        if _is_interpreter(library):
            return Found("loader", "the dynamic loader itself")
        if musl and library.startswith(policy.MUSL_RESERVED):
            return Found("system", "musl: part of libc itself")
        if library in loaded:
            return Found(loaded[library].binary.path, f"already loaded as {library}")
        searched = []
        if "/" not in library:
            for entry, tag, owner in search_list(node):
                directory = _expand_origin(entry, owner.binary.installed)
                searched.append(f"{tag} {entry} of {owner.binary.path}")
                found = in_wheel(directory, library, files) if directory is not None else None
                if found is not None:
                    return Found(found.path, f"{tag} {entry} of {owner.binary.path}", found)
        if library in whitelist:
            return Found("policy", f"system library allowed by {shown}")
        elsewhere = bundled_elsewhere(members, library)
        if elsewhere:
            tried = "; ".join(searched) or "no DT_RPATH/DT_RUNPATH in the chain"
            reason = (
                f"needs {library}: bundled as {elsewhere} but no search path reaches it ({tried})"
            )
        else:
            reason = f"needs {library}: not bundled, not allowed by {shown}"
        return Found(None, "not found", severity="fail", reason=reason)

    def names_of(binary: Binary) -> set[str]:
        base = posixpath.basename(binary.path)
        # glibc matches a loaded object by its DT_SONAME too; musl only by file name
        return {base} if musl or not binary.soname else {base, binary.soname}

    simulate(report, binaries, roots(binaries, lambda n: n), resolve, names_of)
    if tag_policy is not None:
        for binary in binaries:
            _check_symbol_versions(report, binary, tag_policy, shown)


def _expand_origin(entry: str, owner_path: str) -> str | None:
    """The wheel-relative directory a search entry names, or None when it is outside."""
    rest = re.sub(r"^\$(?:ORIGIN|\{ORIGIN\})(?=/|$)", "", entry)
    if rest == entry or "$" in rest:
        return None  # an absolute path, or $LIB/$PLATFORM: not inside the wheel
    return posixpath.normpath(posixpath.join(posixpath.dirname(owner_path), rest.lstrip("/")))


def _check_symbol_versions(report: WheelReport, binary: Binary, tag_policy, shown: str) -> None:
    allowed = tag_policy.symbol_versions
    for library, versions in sorted(binary.symbol_versions.items()):
        if _is_interpreter(library) or binary.resolved.get(library) not in ("policy", None):
            continue  # a bundled library brings its own symbol versions
        too_new = []
        for version in versions:
            prefix, _, number = version.partition("_")
            if prefix in allowed and number not in allowed[prefix]:
                too_new.append(version)
        if too_new:
            report.fail(
                f"{binary.path} uses {', '.join(sorted(too_new, key=_natural))} from {library}: "
                f"too recent for {shown}"
            )


def _natural(text: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]
