"""What the audit finds: one :class:`Binary` per native file, one :class:`WheelReport`
per wheel, and their text and JSON forms (``check_wheel --json`` v2, described by
``schemas/check-wheel.schema.json``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numpy_wheels.log import colour

# <name>.data/platlib/x and .../purelib/x install as site-packages/x (pycurl's DLLs);
# the other schemes (scripts, data, headers) land outside it.
_SITE_SCHEME = re.compile(r"^[^/]+\.data/(?:platlib|purelib)/(?=.)")


def installed_path(member: str) -> str:
    """A member's path relative to site-packages once installed."""
    return _SITE_SCHEME.sub("", member, count=1)


JSON_VERSION = 2


@dataclass
class Binary:
    """What one native file in the wheel needs and claims."""

    path: str  # member name in the wheel (normalised)
    format: str  # "elf", "macho" or "pe"
    archs: list[str]
    needed: list[tuple[str, str]] = field(default_factory=list)  # (library, kind)
    rpaths: list[str] = field(default_factory=list)  # DT_RPATH / LC_RPATH
    runpaths: list[str] = field(default_factory=list)  # DT_RUNPATH
    soname: str | None = None  # DT_SONAME / LC_ID_DYLIB
    min_macos: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # arch -> version
    macos_platform_errors: list[str] = field(default_factory=list)
    symbol_versions: dict[str, list[str]] = field(default_factory=dict)  # library -> versions
    machine: int | None = None
    openblas_version: str | None = None
    interface: str | None = None  # OpenBLAS only: "ILP64" / "LP64"
    resolved: dict[str, str | None] = field(default_factory=dict)  # library -> where found
    via: dict[str, str] = field(default_factory=dict)  # library -> the rule that found it
    slice_needs: dict[str, set[str]] = field(default_factory=dict)  # Mach-O: arch -> libraries

    @property
    def installed(self) -> str:
        """Where the member lands, relative to site-packages (the loaders search there)."""
        return installed_path(self.path)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "archs": self.archs,
            "needed": [
                {
                    "name": name,
                    "kind": kind,
                    "resolved": self.resolved.get(name),
                    "via": self.via.get(name, "not reached from any loading chain"),
                }
                for name, kind in self.needed
            ],
        }
        if self.format == "elf":
            data.update(rpath=self.rpaths, runpath=self.runpaths, soname=self.soname)
            data["symbol_versions"] = self.symbol_versions
        elif self.format == "macho":
            data.update(
                rpath=self.rpaths,
                install_name=self.soname,
                min_macos={a: version_text(v) for a, v in self.min_macos.items()},
            )
        if self.openblas_version:
            data["openblas_version"] = self.openblas_version
        if self.interface:
            data["interface"] = self.interface
        return data


@dataclass
class WheelReport:
    """The audit of one wheel: ``ok`` is True only if ``failures`` is empty."""

    path: Path
    name: str
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unreadable: bool = False  # the input could not be opened at all (no such file, ...)
    project: str | None = None
    version: str | None = None
    tags: list[str] = field(default_factory=list)
    platform: str | None = None
    binaries: list[Binary] = field(default_factory=list)
    openblas: dict[str, Any] = field(default_factory=dict)
    numpy_checks: bool = False
    dll_directories: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def passed(self, strict: bool = False) -> bool:
        """The verdict: no failure, and under ``strict`` no warning either."""
        return self.ok and not (strict and self.warnings)

    def fail(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def to_json(self, strict: bool = False) -> dict[str, Any]:
        return {
            "wheel": self.name,
            "path": str(self.path),
            "ok": self.passed(strict),
            "verdict": verdict(self, strict),
            "failures": self.failures,
            "warnings": self.warnings,
            "project": self.project,
            "version": self.version,
            "tags": self.tags,
            "platform": self.platform,
            "numpy_checks": self.numpy_checks,
            "openblas": self.openblas,
            "dll_directories": self.dll_directories,
            "binaries": [b.to_json() for b in self.binaries],
        }


class Stop(Exception):
    """Raised inside the audit when no further check makes sense."""


def version_text(version: tuple[int, int, int]) -> str:
    major, minor, patch = version
    return f"{major}.{minor}" + (f".{patch}" if patch else "")


def verdict(report: WheelReport, strict: bool) -> str:
    if report.unreadable:
        return "ERROR"
    return "PASS" if report.passed(strict) else "FAIL"


def format_text(reports: list[WheelReport], strict: bool = False) -> str:
    """``PASS name`` / ``FAIL name`` per wheel, then one line per finding (coloured
    for stdout when it is a terminal and NO_COLOR is unset)."""
    lines = []
    for report in reports:
        word = verdict(report, strict)
        lines.append(f"{colour(word)} {report.name}")
        lines += [f"  {failure}" for failure in report.failures]
        lines += [f"  {colour('WARN', text='warning:')} {warning}" for warning in report.warnings]
    return "\n".join(lines)


def json_document(reports: list[WheelReport], strict: bool = False) -> dict[str, Any]:
    """The ``--json`` document."""
    return {
        "version": JSON_VERSION,
        "strict": strict,
        "ok": all(r.passed(strict) for r in reports),
        "wheels": [r.to_json(strict) for r in reports],
    }
