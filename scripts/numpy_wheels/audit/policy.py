"""The audit's fixed tables: limits, exit codes, binary-format constants, and the
platform tables of ``data/check_wheel_policy.json`` (package data).

The limits are module attributes read at call time, so a test can lower them.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from typing import Any

from numpy_wheels.errors import ConfigurationError

POLICY_RESOURCE = "data/check_wheel_policy.json"  # inside the numpy_wheels package
SIGNATURE_FILES = ("RECORD", "RECORD.jws", "RECORD.p7s")
STRONG_HASHES = {"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b"}

# Exit codes (also in --help).
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3

# Bounds that keep a hostile wheel from exhausting time or memory.
MAX_MEMBERS = 200_000
MAX_TOTAL_SIZE = 32 * 2**30  # declared uncompressed bytes of all members
MAX_TEXT = 2**20  # Python/LICENSE files read for their content
MAX_VERNEED = 4096  # ELF version-need entries (libraries + versions) per binary
READ_CHUNK = 2**20

ELF_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_386": "i686",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "armv7l",
    "EM_S390": "s390x",
    "EM_RISCV": "riscv64",
    "EM_LOONGARCH": "loongarch64",
}
MACHO_CPUS = {
    0x01000007: "x86_64",
    0x0100000C: "arm64",
    0x00000007: "i386",
    0x00000012: "ppc",
    0x01000012: "ppc64",
    0x0200000C: "arm64_32",
}
MACHO_LOADS = {  # load command id -> kind
    0x0C: "load",  # LC_LOAD_DYLIB
    0x80000018: "weak",  # LC_LOAD_WEAK_DYLIB
    0x8000001F: "reexport",  # LC_REEXPORT_DYLIB
    0x20: "lazy",  # LC_LAZY_LOAD_DYLIB
    0x80000023: "upward",  # LC_LOAD_UPWARD_DYLIB
}
LC_ID_DYLIB, LC_RPATH, LC_BUILD_VERSION, LC_VERSION_MIN_MACOSX = 0x0D, 0x8000001C, 0x32, 0x24
MACHO_MAGICS = {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe"}
FAT_MAGICS = {b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"}
# Every arm64 Mac runs macOS 11 or later: arm64 code may require 11.0 whatever the
# tag says (packaging installs macosx_10_9_universal2 on an arm64 macOS 11).
ARM64_MACOS_FLOOR = (11, 0, 0)
LINUX_ARCH_SUFFIX = r"_(x86_64|i686|aarch64|armv7l|ppc64le|ppc64|s390x|riscv64|loongarch64)$"
# "OpenBLAS 0.3.30", "OpenBLAS 0.3.31.188.0", "OpenBLAS 0.3.31.dev"
OPENBLAS_VERSION_RE = re.compile(rb"OpenBLAS (\d+\.\d+\.\d+(?:\.[0-9A-Za-z]+)*)")
# x86-64 "movabs r64, imm64": compilers build the short config string from 8-byte immediates.
MOVABS_RE = re.compile(rb"[\x48\x49][\xb8-\xbf](.{8})", re.DOTALL)
# The ILP64 build suffixes every BLAS/LAPACK symbol with 64_ (dgemm_64_, scipy_dgemm_64_).
ILP64_SYMBOL, LP64_SYMBOL = b"dgemm_64_\0", b"dgemm_\0"
# A hash or version suffix added by repair tools: libfoo-1a2b3c4d.so.1, msvcp140-<32 hex>.dll
LIB_STEM_RE = re.compile(r"^(.+?)(?:-[0-9a-f]{8,32})*(?:\.so(?:\.[\d.]+)?|\.dylib|\.dll|\.pyd)$")
# Python extension modules: Python loads them itself, so each starts a loading chain.
EXTENSION_RE = re.compile(
    r"\.(cpython-|pypy|abi3\.|cp3\d+t?-win|graalpy)|\.pyd$|^(?!lib)[^.]+\.so$"
)
MUSL_RESERVED = ("libc.", "libpthread.", "librt.", "libm.", "libdl.", "libutil.", "libxnet.")
BITS32 = re.compile(r"(i686|win32|armv7l|i386|_x86)$")


@functools.cache
def tables() -> dict[str, Any]:
    """The platform tables shipped as package data (installed or in a checkout)."""
    resource = importlib.resources.files("numpy_wheels").joinpath(POLICY_RESOURCE)
    try:
        return json.loads(resource.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {resource}: {exc}") from None
