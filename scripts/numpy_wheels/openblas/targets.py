"""The platform OpenBLAS is prepared for, and the options of one preparation."""

from __future__ import annotations

import platform
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from numpy_wheels import options
from numpy_wheels.errors import ConfigurationError

INTERFACES = ("ilp64", "lp64")
SOURCES = ("wheel", "legacy")
OS_NAMES = ("linux", "macos", "windows")
LIBCS = ("manylinux", "musllinux")
# manylinux spellings of PEP 513/571/599 and the glibc version each stands for
LEGACY_MANYLINUX = {"1": (2, 5), "2010": (2, 12), "2014": (2, 17)}
ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "i386": "i686", "x86": "i686", "win32": "i686"}
ARCH_ALIASES |= {"aarch64_be": "aarch64", "arm64": "arm64", "aarch64": "aarch64"}


@dataclass(frozen=True)
class OpenBLASTarget:
    """The platform OpenBLAS is prepared for (not necessarily the host)."""

    os: str  # linux | macos | windows
    arch: str  # x86_64 i686 aarch64 ppc64le s390x (linux); x86_64 arm64 (macos); ...
    libc: str | None = None  # manylinux | musllinux (linux only)
    libc_tag: str | None = None  # "manylinux2014", "manylinux_2_28", "musllinux_1_2"
    libc_max: tuple[int, int] | None = None  # newest libc the build may require
    macos_max: tuple[int, int] | None = None  # deployment target, from a full tag

    @property
    def bits(self) -> int:
        return 32 if self.arch == "i686" else 64

    @property
    def key(self) -> str:
        """Short name: manylinux_x86_64, musllinux_aarch64, macosx_arm64, win_amd64, win32."""
        if self.os == "linux":
            return f"{self.libc}_{self.arch}"
        if self.os == "macos":
            return f"macosx_{self.arch}"
        return {"x86_64": "win_amd64", "i686": "win32"}.get(self.arch, f"win_{self.arch}")

    def describe(self) -> str:
        if self.libc_tag:
            return f"{self.libc_tag}_{self.arch}"
        if self.macos_max:
            return f"macosx_{self.macos_max[0]}_{self.macos_max[1]}_{self.arch}"
        return self.key


def host_os() -> str:
    system = platform.system()
    return {"Linux": "linux", "Darwin": "macos", "Windows": "windows"}.get(system, system.lower())


def host_arch() -> str:
    machine = platform.machine().lower()
    arch = ARCH_ALIASES.get(machine, machine)
    if arch == "x86_64" and sys.maxsize < 2**32:
        arch = "i686"  # a 32-bit interpreter in a 64-bit container
    if arch == "aarch64" and host_os() == "macos":
        arch = "arm64"
    return arch


def libc_from_ml_ver(libc: str, ml_ver: str) -> tuple[str, tuple[int, int] | None]:
    """``MB_ML_VER`` (``2014``, ``_2_28``, ``_1_2``) -> (tag prefix, libc bound)."""
    ml_ver = ml_ver.strip()
    if libc == "manylinux" and ml_ver in LEGACY_MANYLINUX:
        return f"manylinux{ml_ver}", LEGACY_MANYLINUX[ml_ver]
    match = re.fullmatch(r"_?(\d+)_(\d+)", ml_ver)
    if not match:
        allowed = "1, 2010, 2014, _2_24, _2_28" if libc == "manylinux" else "_1_1, _1_2"
        raise ConfigurationError(f"MB_ML_VER={ml_ver!r} is not a {libc} version ({allowed})")
    bound = (int(match[1]), int(match[2]))
    return f"{libc}_{bound[0]}_{bound[1]}", bound


def parse_wheel_tag(tag: str) -> OpenBLASTarget | None:
    """A full wheel platform tag -> OpenBLASTarget, or None if it is not one."""
    match = re.fullmatch(r"(manylinux|musllinux)_(\d+)_(\d+)_(\w+)", tag)
    if match:
        libc, bound = match[1], (int(match[2]), int(match[3]))
        return OpenBLASTarget("linux", match[4], libc, f"{libc}_{match[2]}_{match[3]}", bound)
    match = re.fullmatch(r"manylinux(1|2010|2014)_(\w+)", tag)
    if match:
        bound = LEGACY_MANYLINUX[match[1]]
        return OpenBLASTarget("linux", match[2], "manylinux", f"manylinux{match[1]}", bound)
    # an OpenBLASTarget.key: no bound
    match = re.fullmatch(r"(manylinux|musllinux)_([a-z]\w*)", tag)
    if match:
        return OpenBLASTarget("linux", match[2], match[1])
    match = re.fullmatch(r"linux_(\w+)", tag)
    if match:
        return OpenBLASTarget("linux", match[1], "manylinux")
    match = re.fullmatch(r"macosx_([a-z]\w*)", tag)
    if match:
        return OpenBLASTarget("macos", match[1])
    match = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", tag)
    if match:
        return OpenBLASTarget("macos", match[3], macos_max=(int(match[1]), int(match[2])))
    if tag in ("win_amd64", "win32", "win_arm64"):
        return OpenBLASTarget("windows", {"win_amd64": "x86_64", "win32": "i686"}.get(tag, "arm64"))
    return None


def parse_target(
    plat: str | None,
    os_name: str | None,
    ml_ver: str | None,
    libc: str | None,
    platforms: dict[str, list[str]],
) -> OpenBLASTarget:
    """Resolve PLAT (arch or full tag), --os, MB_ML_VER and MB_ML_LIBC into an OpenBLASTarget."""
    plat = (plat or "").strip()
    libc = (libc or "").strip() or options.default("MB_ML_LIBC")
    if libc not in LIBCS:
        raise ConfigurationError(f"MB_ML_LIBC={libc!r} is not one of {', '.join(LIBCS)}")
    target = parse_wheel_tag(plat) if plat else None
    if target is not None:
        if os_name and os_name != target.os:
            raise ConfigurationError(f"PLAT={plat} is a {target.os} platform, not {os_name}")
    else:
        os_name = os_name or host_os()
        if os_name not in OS_NAMES:
            raise ConfigurationError(f"unsupported OS {os_name!r} (expected linux, macos, windows)")
        arch = plat or host_arch()
        if arch in ("universal2", "intel"):
            # As numpy's get_plat(): a universal2 build runs once per architecture.
            if host_os() != "macos":
                raise ConfigurationError(
                    f"PLAT={arch} has no OpenBLAS of its own; set PLAT=x86_64 or PLAT=arm64"
                )
            arch = host_arch()
        arch = ARCH_ALIASES.get(arch.lower(), arch.lower())
        if os_name == "macos" and arch == "aarch64":
            arch = "arm64"
        target = OpenBLASTarget(os_name, arch)
        if os_name == "linux":
            tag, bound = (None, None)
            if ml_ver:
                tag, bound = libc_from_ml_ver(libc, ml_ver)
            target = replace(target, libc=libc, libc_tag=tag, libc_max=bound)
    if target.arch not in platforms.get(target.os, []):
        known = ", ".join(platforms.get(target.os, []))
        raise ConfigurationError(
            f"unsupported platform {plat or target.arch!r} for {target.os} (known: {known})"
        )
    return target


def all_targets(platforms: dict[str, list[str]]) -> list[OpenBLASTarget]:
    """Every platform `--test all` covers."""
    targets = []
    for libc in LIBCS:
        targets += [OpenBLASTarget("linux", arch, libc) for arch in platforms["linux"]]
    targets += [OpenBLASTarget("macos", arch) for arch in platforms["macos"]]
    targets += [OpenBLASTarget("windows", arch) for arch in platforms["windows"]]
    return targets


# ------------------------------------------------------------------------ options


@dataclass(frozen=True)
class Options:
    """Everything one preparation needs, resolved once from flags and environment."""

    target: OpenBLASTarget
    interface: str  # ilp64 | lp64
    source: str  # wheel | legacy
    version: str
    cache: Path
    index_url: str | None
    legacy_url: str
    legacy_table: str | None
    timeout: float
    retries: int


def resolve_interface(flag: str | None, env: str | None, target: OpenBLASTarget) -> str:
    value = (flag or env or "").strip().lower()
    if value and value not in INTERFACES:
        raise ConfigurationError(f"NW_OPENBLAS_INTERFACE={value!r} is not ilp64 or lp64")
    value = value or ("ilp64" if target.bits == 64 else "lp64")
    if value == "ilp64" and target.bits == 32:
        raise ConfigurationError(
            f"ILP64 OpenBLAS does not exist for 32-bit {target.describe()}; use lp64"
        )
    return value
