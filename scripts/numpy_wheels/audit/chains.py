"""Loading chains: each extension module loaded as its platform's loader would, breadth
first, every needed library resolved by a platform rule (``resolve``) and what it
loads followed in turn.  Shared by :mod:`.linux`, :mod:`.macos` and :mod:`.windows`."""

from __future__ import annotations

import collections
import posixpath
from dataclasses import dataclass

from . import policy
from .report import Binary, WheelReport


@dataclass
class Found:
    """How a loader resolves one needed library in one loading chain."""

    where: str | None  # member path, "system", "policy", "python", ...; None: not found
    via: str  # the rule or search entry that found it, or what was searched
    binary: Binary | None = None  # the bundled binary it loads, which loads its own needs
    severity: str | None = None  # None (fine), "warn" or "fail"
    reason: str = ""  # the finding's text when severity is set


@dataclass
class Node:
    binary: Binary
    loader: Node | None

    def chain(self):
        node: Node | None = self
        while node is not None:
            yield node
            node = node.loader

    def describe(self) -> str:
        return " <- ".join(n.binary.path for n in self.chain())


def simulate(report: WheelReport, binaries: list[Binary], roots, resolve, names_of) -> None:
    """Load each root as its loader would, breadth first as glibc/musl/dyld/Windows do,
    recording on every binary how each need was met and reporting what is not
    (once per binary and library, with the first chain that breaks)."""
    reported: set[tuple[str, str]] = set()
    for root, demote in roots:
        start = Node(root, None)
        loaded: dict[str, Node] = dict.fromkeys(names_of(root), start)
        queue, visited = collections.deque([start]), {id(root)}
        while queue:
            node = queue.popleft()
            for library, kind in node.binary.needed:
                found = resolve(node, library, kind, loaded)
                if node.binary.resolved.get(library) is None:
                    node.binary.resolved[library] = found.where
                    node.binary.via[library] = found.via
                if found.severity and (node.binary.path, library) not in reported:
                    reported.add((node.binary.path, library))
                    message = f"{node.binary.path} {found.reason}"
                    if node.loader is not None:
                        message += f" (loading chain: {node.describe()})"
                    if found.severity == "fail" and not demote:
                        report.fail(message)
                    else:
                        if demote and found.severity == "fail":
                            message += f"; {root.path} is loaded by no module of the wheel"
                        report.warn(message)
                child = found.binary
                if child is not None and id(child) not in visited:
                    visited.add(id(child))
                    new = Node(child, node)
                    for alias in names_of(child) | {library}:
                        loaded.setdefault(alias, new)
                    queue.append(new)


def roots(binaries: list[Binary], key) -> list[tuple[Binary, bool]]:
    """Binaries a loading chain starts from, and whether their findings are demoted.

    Extension modules are loaded by Python itself; a library no binary of the wheel
    needs is loaded by no chain, so its own findings are warnings only.
    """
    wanted = {key(lib) for b in binaries for lib, _ in b.needed}
    found = []
    for binary in binaries:
        base = posixpath.basename(binary.path)
        extension = bool(policy.EXTENSION_RE.search(base)) and not posixpath.dirname(
            binary.path
        ).endswith((".libs", ".dylibs"))
        needed = key(base) in wanted or (binary.soname and key(binary.soname) in wanted)
        if extension or not needed:
            found.append((binary, not extension))
    return found


def in_wheel(directory: str | None, library: str, files: dict[str, Binary]) -> Binary | None:
    if directory is None or directory.startswith("../") or directory == "..":
        return None  # outside the install root
    return files.get(posixpath.normpath(posixpath.join(directory, library)))


def bundled_elsewhere(members, library: str) -> str | None:
    base = posixpath.basename(library).lower()
    return next((m for m in sorted(members) if posixpath.basename(m).lower() == base), None)
