"""The settings of a run: make's variables, read once from the environment and
checked before any download or build; the banner that shows them."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import options
from ..errors import ConfigurationError
from ..files import sanitize_url, unusable_dir
from ..log import log
from ..set_commit import check_commit
from .deps import _grace, _parse_moment, given_epoch
from .paths import BUILD, _abs
from .source import source_kind


@dataclass
class Settings:
    """Make's variables, read once from the environment (Makefile exports them)."""

    repo_dir: Path
    repo_url: str
    build_commit: str
    source: str
    plat: str
    wheel_sdir: Path
    python: str
    project: str
    # the manylinux image the Linux steps run in; empty: natively
    docker_image: str = ""
    # X.Y the build is for (MB_PYTHON_VERSION, default the version of PYTHON)
    python_version: str = ""

    @classmethod
    def from_env(cls, nightly: bool = False) -> Settings:
        """A setting unset (or empty, but for the refs) takes its default from the table."""
        nightly = nightly or os.environ.get("BUILD_REASON") == "Schedule"
        # an empty ref given (BUILD_COMMIT=) is refused by the source step, as make sees it
        name = "NIGHTLY_BUILD_COMMIT" if nightly else "BUILD_COMMIT"
        commit = os.environ.get(name, options.default(name))
        source = "git" if nightly else options.value("SOURCE")
        if source not in CHOICES["SOURCE"]:
            raise ConfigurationError(f"SOURCE={source!r} is not one of auto, git, sdist, local")
        image = options.value("DOCKER_IMAGE") if sys.platform.startswith("linux") else ""
        python, version = select_python(
            options.value("PYTHON"), options.value("MB_PYTHON_VERSION"), container=bool(image)
        )
        return cls(
            repo_dir=_abs(options.value("REPO_DIR")),
            repo_url=options.value("REPO_URL"),
            build_commit=commit,
            source=source,
            plat=options.value("PLAT"),
            wheel_sdir=_abs(options.value("WHEEL_SDIR")),
            python=python,
            project=os.environ.get("NW_PROJECT", "numpy"),
            docker_image=image,
            python_version=version,
        )


def _python_version(python: str) -> str | None:
    """X.Y of the interpreter ``python`` (a command or path), None if it does not run."""
    exe = shutil.which(python)
    if exe is None:
        return None
    code = 'import sys; print("%d.%d" % sys.version_info[:2])'
    proc = subprocess.run([exe, "-c", code], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def select_python(python: str, wanted: str, container: bool) -> tuple[str, str]:
    """The interpreter and X.Y to build for.

    In a container the image's interpreter for MB_PYTHON_VERSION is used (default:
    PYTHON's X.Y).  Natively MB_PYTHON_VERSION picks PYTHON when its version
    matches, else pythonX.Y from PATH, else stops with one line.
    """
    found = _python_version(python)
    if container:
        if not wanted and found is None:
            raise ConfigurationError(f"Python interpreter {python!r} not found (set PYTHON=...)")
        return python, wanted or str(found)
    if not wanted:
        if not found:
            raise ConfigurationError(
                f"PYTHON={python!r} is not a Python interpreter that runs here "
                f"({'not found' if shutil.which(python) is None else 'it does not run'}); "
                "set PYTHON=python3.X or a path to one, or MB_PYTHON_VERSION=X.Y"
            )
        return python, found
    if not re.fullmatch(r"\d+\.\d+", wanted):
        raise ConfigurationError(f"MB_PYTHON_VERSION={wanted!r} is not X.Y (e.g. 3.12)")
    if found == wanted:
        return python, wanted
    if _python_version(f"python{wanted}") == wanted:
        return f"python{wanted}", wanted
    raise ConfigurationError(
        f"MB_PYTHON_VERSION={wanted} but PYTHON={python} is {found or 'not found'} and there is "
        f"no python{wanted} on PATH; install it or set PYTHON=/path/to/python{wanted}"
    )


# ------------------------------------------------------------- settings, banner


# Enumerated settings: their valid values, checked before any download or build
# (empty: the default, as make and the shell library take it).
CHOICES = {
    "SOURCE": ("auto", "git", "sdist", "local"),
    "MB_ML_LIBC": ("manylinux", "musllinux"),
    "DOCKER_PULL": ("always", "missing", "never"),
    "CONTAINER_ENGINE": ("docker", "podman"),
    "USE_CCACHE": ("0", "1"),
    "NIGHTLY": ("0", "1"),
}
PLATS = {
    "linux": ("x86_64", "i686", "aarch64", "ppc64le", "s390x"),  # NW_LINUX_PLATS
    "darwin": ("x86_64", "arm64", "universal2", "intel"),
    "win32": ("x86_64", "AMD64", "i686", "x86", "win32", "win_amd64", "ARM64", "arm64"),
}


def ml_vers(libc: str, arch: str) -> list[str]:
    """The MB_ML_VER values for ``arch`` as multibuild spells them (``{libc}{MB_ML_VER}``
    is auditwheel's --plat): each policy auditwheel knows for the arch, by name
    (``_2_28``) and legacy alias (``1``, ``2010``, ``2014``), read from its own tables."""
    table = resources.files("auditwheel.policy") / f"{libc}-policy.json"
    values = []
    for policy in json.loads(table.read_text()):
        if arch in policy["symbol_versions"]:
            names = [policy["name"], *policy["aliases"]]
            values += [n.removeprefix(libc) for n in names if n.startswith(libc)]
    # the legacy aliases first (1, 2010, 2014), then _2_5, _2_12, ... by glibc/musl version
    return sorted(values, key=lambda v: (v[0] == "_", [int(n) for n in v.strip("_").split("_")]))


def validate_settings(env: os._Environ[str] | dict[str, str], step: str = "wheels") -> None:
    """Refuse a bad setting in one line naming the valid values, before ``step`` (a
    step of cli.STEPS or "wheels") downloads or builds anything."""
    for name, valid in CHOICES.items():
        value = env.get(name, "")
        if value and value not in valid:
            raise ConfigurationError(f"{name}={value!r} is not one of: {', '.join(valid)}")
    host = "win32" if sys.platform.startswith(("win", "cygwin", "msys")) else sys.platform
    plat, plats = env.get("PLAT", ""), PLATS.get(host)
    if plat and plats and plat not in plats:
        raise ConfigurationError(f"PLAT={plat!r} is not one of: {', '.join(plats)} (on {host})")
    _check_ml_ver(env, plat or platform.machine())
    version = env.get("MB_PYTHON_VERSION", "")
    if version and not re.fullmatch(r"\d+\.\d+", version):
        raise ConfigurationError(f"MB_PYTHON_VERSION={version!r} is not X.Y (e.g. 3.12)")
    for name in ("BUILD_COMMIT", "NIGHTLY_BUILD_COMMIT"):
        if env.get(name):  # an empty one: the source step says how to call it
            check_commit(env[name], name)
    label = env.get("TEST_LABEL", "")
    if label and not re.fullmatch(r"[\w ()]+", label):
        raise ConfigurationError(
            f"TEST_LABEL={label!r} is not one of: fast, full, or a pytest marker expression"
        )
    deps = env.get("DEPS_AS_OF", "").strip()
    if deps not in ("", "source", "now"):
        _parse_moment(deps, "DEPS_AS_OF")  # names the setting and the accepted forms
    _grace()
    given_epoch()
    repo = _abs(options.value("REPO_DIR", env))
    for name, what in FILES if step in NATIVE_STEPS else ():  # the steps that source them
        path = options.value(name, env)
        if step == "wheels" and repo in _abs(path).parents:
            continue  # in the source the source step is about to fetch
        if not _abs(path).is_file():
            raise ConfigurationError(f"{name}={path!r}: no such file ({what})")
    for name, steps in DIRS:
        value = options.value(name, env) if step in steps else ""
        problem = value and unusable_dir(_abs(value))
        if problem:
            raise ConfigurationError(f"{name}={value!r}: {problem}")
    native = sys.platform.startswith("linux") and not options.value("DOCKER_IMAGE", env)
    if native and step in NATIVE_STEPS:
        _check_native(env, plat)


# The steps that build or test on this host (source fetches, check audits files).
NATIVE_STEPS = ("build", "repair", "test-wheel", "wheels")
# Directories a step writes to: (setting, steps).
DIRS = [("REPO_DIR", ("source", *NATIVE_STEPS)), ("WHEEL_SDIR", ("test-wheel", "wheels")),
        ("NW_WORK_DIR", ("source", *NATIVE_STEPS))]  # fmt: skip
# Files the shell library sources: (setting, what it is).
FILES = [
    ("CONFIG_PATH", "the project's build_wheel/run_tests hooks"),
    ("ENV_VARS_PATH", "the build's environment variables"),
]


def _check_ml_ver(env: os._Environ[str] | dict[str, str], arch: str) -> None:
    """MB_ML_VER: a policy auditwheel knows for the arch, spelled as multibuild took it."""
    libc = options.value("MB_ML_LIBC", env)
    ml_ver = env.get("MB_ML_VER", "")
    valid = ml_vers(libc, arch)
    if not ml_ver or ml_ver in valid or not sys.platform.startswith("linux"):
        return  # (macOS and Windows do not read it)
    hint = ""
    bare = re.fullmatch(r"(?:manylinux|musllinux)?_?(\d+(?:_\d+)?)", ml_ver)
    if bare and f"_{bare[1]}" in valid:
        hint = f"; did you mean MB_ML_VER=_{bare[1]}?"
    elif bare and bare[1] in valid:
        hint = f"; did you mean MB_ML_VER={bare[1]}?"
    raise ConfigurationError(
        f"MB_ML_VER={ml_ver!r} is not one of: {', '.join(valid)} for {libc} on {arch} "
        f"(auditwheel's policies){hint}"
    )


def _check_native(env: os._Environ[str] | dict[str, str], plat: str) -> None:
    """Natively (no DOCKER_IMAGE) the shell library builds only for this host: its
    arch (travis_linux_steps.sh: _nw_check_plat) and its libc."""
    host = platform.machine()
    if plat and plat != host:
        raise ConfigurationError(
            f"PLAT={plat!r} is not buildable natively on this {host} host (valid: {host}); "
            f"set DOCKER_IMAGE to a manylinux image for {plat} to build in a container"
        )
    glibc = platform.libc_ver()[0] == "glibc"
    if options.value("MB_ML_LIBC", env) == "musllinux" and glibc:
        raise ConfigurationError(
            "MB_ML_LIBC='musllinux' is not buildable natively on this glibc host "
            "(valid: manylinux); set DOCKER_IMAGE to a musllinux image to build in a container"
        )


def asked_source(settings: Settings) -> str:
    """The source this run asks for, in words (the banner's; the report's when the
    source step did not fetch it)."""
    kind = source_kind(settings)
    return {
        "local": f"local directory {settings.repo_dir}",
        "sdist": f"sdist of {settings.project} {settings.build_commit} from the index",
    }.get(kind, f"git {sanitize_url(settings.repo_url)} {settings.build_commit}")


def banner_lines(settings: Settings) -> list[tuple[str, str]]:
    """What this run will do, as (label, value) pairs: read from Settings and make's
    variables, before any work (no network, no build)."""
    env = os.environ
    image = settings.docker_image
    engine = options.value("CONTAINER_ENGINE")
    where = f"container {image} ({engine})" if image else f"native ({platform.machine()} host)"
    source = asked_source(settings)
    libc = options.value("MB_ML_LIBC")
    ml_ver = env.get("MB_ML_VER", "")
    policy = f"{libc}{ml_ver}" if ml_ver else f"{libc}: the best the build allows"
    python = f"{settings.python} (Python {settings.python_version or '?'})"
    interface = env.get("NW_OPENBLAS_INTERFACE") or (
        "lp64" if "32" in Path(options.value("ENV_VARS_PATH")).name else "ilp64"
    )
    deps = options.value("DEPS_AS_OF")
    if deps == "source":
        deps = f"source (its date + {options.value('DEPS_GRACE_DAYS')} days)"
    lines = [
        ("build", where),
        ("source", source),
        ("project", settings.project),
        ("PLAT", f"{settings.plat} ({sys.platform})"),
        ("Python", python),
    ]
    if sys.platform.startswith("linux"):
        lines.append(("policy", policy))
    if settings.project == "numpy":
        lines.append(("OpenBLAS", f"scipy-openblas, {interface} (pre_build)"))
    lines += [
        ("deps as of", deps),
        ("test label", options.value("TEST_LABEL")),
        ("source dir", str(settings.repo_dir)),
        ("work dir", str(BUILD)),
        ("wheelhouse", str(settings.wheel_sdir)),
    ]
    return lines


def print_banner(settings: Settings, what: str) -> None:
    """The settings this run uses, first, as cibuildwheel prints its options."""
    print(f"numpy-wheels {what}:")
    for label, shown in banner_lines(settings):
        print(f"  {label:<11} {shown}")
    print(flush=True)


def announce_environment(settings: Settings) -> None:
    """Say where the steps run; a DOCKER_IMAGE with no engine answering stops here."""
    if not settings.docker_image:
        log(f"native build with {settings.python} (Python {settings.python_version}); "
            "set DOCKER_IMAGE to build in a container")  # fmt: skip
        return
    engine = options.value("CONTAINER_ENGINE")
    if engine not in ("docker", "podman"):
        raise ConfigurationError(f"CONTAINER_ENGINE={engine} is not one of: docker podman")
    # podman's client reads CONTAINER_HOST where docker's reads DOCKER_HOST
    host_var = "CONTAINER_HOST" if engine == "podman" else "DOCKER_HOST"
    host = f"{host_var}={os.environ.get(host_var) or 'its default socket'}"
    try:
        probe = subprocess.run([engine, "info"], capture_output=True, timeout=120).returncode
    except (OSError, subprocess.TimeoutExpired):
        probe = 1
    if probe:
        raise ConfigurationError(
            f"DOCKER_IMAGE={settings.docker_image} but no container engine ({engine}) answers "
            f"at {host}; unset DOCKER_IMAGE to build natively"
        )
    log(f"container build in {settings.docker_image} (Python {settings.python_version}, "
        f"{engine} at {host})")  # fmt: skip
