"""The steps after the source: build, repair, check and test-wheel, each run as
``run_step`` (folded, timed, recorded).

Wheels move forward through directories so that a failed or interrupted run
never leaves a wheel where a later step would take it for good:

    build/raw/       unrepaired wheels          (make build)
    build/repaired/  repaired wheels            (make repair, audited by make check,
                     which records each sha256 it passed in build/checked.json)
    $WHEEL_SDIR/     repaired, audited, tested  (make test-wheel promotes them, only
                     if check passed on that very file, and lists them in
                     $WHEEL_SDIR/manifest.sha256: what `make stage` uploads)
    $WHEEL_SDIR/failed/   wheels whose tests failed (an interrupted test run moves nothing)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import parse_wheel_filename

from .. import options
from ..errors import ConfigurationError, FatalError
from ..files import atomic_write, file_hash, file_lock
from ..log import log
from ..log import step as fold
from .buildroot import build_root, canonical
from .deps import deps_date, explain_pip
from .paths import BUILD_VENV, CCACHE_BEFORE, CHECKED, MANIFEST, RAW, REPAIRED, ROOT, _abs
from .report import _ccache_mark, _tools_file
from .runner import (
    INFRA_STATUS,
    StepFailed,
    StepResult,
    _record,
    library_call,
    run_logged,
    shell_path,
)
from .source import step_source
from .venv import make_venv, venv_env
from .wheel_tags import check_installable

if TYPE_CHECKING:
    from .settings import Settings


def _need_config(settings: Settings) -> None:
    config = options.value("CONFIG_PATH")
    if not _abs(config).is_file():
        raise ConfigurationError(f"config file {config!r} not found (CONFIG_PATH)")
    if not settings.repo_dir.is_dir():
        raise ConfigurationError(
            f"REPO_DIR {settings.repo_dir} does not exist; run `make source` first"
        )


def step_build(settings: Settings) -> str:
    _need_config(settings)
    for stale in (RAW, REPAIRED):
        shutil.rmtree(stale, ignore_errors=True)
    CCACHE_BEFORE.unlink(missing_ok=True)  # an earlier build's counters are not this one's
    for step in ("build", "repair"):
        _tools_file(step).unlink(missing_ok=True)
    CHECKED.unlink(missing_ok=True)
    RAW.mkdir(parents=True)
    build_root()  # a root we may not use is refused before any work
    if not settings.docker_image:  # the container brings its own interpreter
        make_venv(settings.python, BUILD_VENV, deps_date(settings).pip_value)
    use_ccache = os.environ.get("USE_CCACHE", "")
    if use_ccache == "1" and not shutil.which("ccache"):
        raise ConfigurationError("USE_CCACHE=1 but ccache is not installed")
    _ccache_mark()
    cmd, env = library_call(
        settings,
        'build_wheel "$REPO_DIR" "$PLAT"',
        {
            "NW_DEFER_REPAIR": "1",
            "WHEEL_SDIR": shell_path(settings, RAW),
            "NW_TOOLS_FILE": str(_tools_file("build")),
        },
    )
    if use_ccache == "0":
        env["CCACHE_DISABLE"] = "1"  # meson would otherwise use ccache whenever present
    # The venv and OpenBLAS seen through NW_BUILD_ROOT: the same paths from any checkout.
    with canonical(env, None if settings.docker_image else BUILD_VENV) as env:
        python = env.get("PYTHON_EXE", settings.python)  # in a container: the host's, for X.Y
        run_logged("build", cmd, env, explain=explain_pip(settings, python))
    wheels = _wheels(RAW)
    if not wheels:
        raise FatalError(f"the build produced no wheel in {RAW}")
    return ", ".join(w.name for w in wheels)


def step_repair(settings: Settings) -> str:
    _need_config(settings)
    if not _wheels(RAW):
        raise FatalError(f"no wheel in {RAW} to repair; run `make build` first")
    shutil.rmtree(REPAIRED, ignore_errors=True)
    _tools_file("repair").unlink(missing_ok=True)
    CHECKED.unlink(missing_ok=True)
    REPAIRED.mkdir(parents=True)
    raw, repaired = shell_path(settings, RAW), shell_path(settings, REPAIRED)
    hooked = (
        'if [ -n "$(is_function pre_repair)" ]; then pre_repair; fi; '
        f"repair_wheelhouse {shlex.quote(raw)} {shlex.quote(repaired)}"
    )
    # On Linux the build environment is the manylinux container (or this host);
    # on macOS and Windows the host shell already sourced config.sh.
    linux = sys.platform.startswith("linux")
    call = f'build_multilinux "$PLAT" {shlex.quote(hooked)}' if linux else hooked
    cmd, env = library_call(settings, call, {"NW_TOOLS_FILE": str(_tools_file("repair"))})
    if not settings.docker_image:
        env = venv_env(BUILD_VENV, env)
    try:
        run_logged("repair", cmd, env)
    except BaseException:
        shutil.rmtree(REPAIRED, ignore_errors=True)
        raise
    wheels = _wheels(REPAIRED)
    if len(wheels) != len(_wheels(RAW)):
        shutil.rmtree(REPAIRED, ignore_errors=True)
        raise FatalError(f"repair produced {len(wheels)} wheels from {len(_wheels(RAW))}")
    return ", ".join(w.name for w in wheels)


def _build_openblas(settings: Settings) -> tuple[str, str]:
    """(version, interface) of the OpenBLAS the build used: NW_OPENBLAS_INTERFACE after
    $ENV_VARS_PATH is sourced as the build sources it, then openblas_support.py's version
    for that interface.  Either unknown is an error: the check must not guess."""
    env_vars = options.value("ENV_VARS_PATH")
    script = 'source "$1" >/dev/null && printf %s "${NW_OPENBLAS_INTERFACE:-}"'
    proc = subprocess.run(["bash", "-c", script, "-", env_vars], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PLAT=settings.plat))  # fmt: skip
    interface = proc.stdout.strip().lower()
    if proc.returncode or interface not in ("ilp64", "lp64"):
        why = (proc.stderr.strip().splitlines() or [f"NW_OPENBLAS_INTERFACE={interface!r}"])[-1]
        raise FatalError(
            f"cannot tell the OpenBLAS interface the build used from {env_vars}: {why}"
        )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "openblas_support.py"), "--print-version"],
        capture_output=True, text=True,
        env=dict(os.environ, NW_OPENBLAS_INTERFACE=interface, PLAT=settings.plat),
    )  # fmt: skip
    version = proc.stdout.strip()
    if proc.returncode or not version:
        why = (proc.stderr.strip().splitlines() or ["printed nothing"])[-1]
        raise FatalError(
            f"cannot tell which OpenBLAS the build used (openblas_support.py --print-version: "
            f"{why}); `make check` needs it for --expect-openblas"
        )
    return version, interface


def step_check(settings: Settings) -> str:
    wheels = _wheels(REPAIRED)
    if not wheels:
        raise FatalError(f"no wheel in {REPAIRED} to check; run `make repair` first")
    # Our own builds are audited strictly: a warning fails them too.
    cmd = [sys.executable, "-m", "numpy_wheels.audit", "--strict"]
    numpy = all(parse_wheel_filename(w.name)[0] == "numpy" for w in wheels)
    if numpy and settings.project == "numpy":
        version, interface = _build_openblas(settings)
        cmd += ["--expect-openblas", version, "--expect-interface", interface]
    CHECKED.unlink(missing_ok=True)
    hashes = {w.name: file_hash(w) for w in wheels}  # before: what check_wheel.py reads
    run_logged("check", [*cmd, *map(str, wheels)], dict(os.environ))
    with atomic_write(CHECKED) as out:
        json.dump(hashes, out, indent=1)
    return f"{len(wheels)} wheel(s) passed"


def step_test_wheel(settings: Settings) -> str:
    _need_config(settings)
    wheels = _wheels(REPAIRED)
    if not wheels:
        raise FatalError(f"no wheel in {REPAIRED} to test; run `make repair` first")
    unchecked = _unchecked(wheels)
    if unchecked:
        raise FatalError(
            f"{', '.join(unchecked)}: not passed by make check as it is now (new or changed "
            "since); run `make check` first"
        )
    python = shutil.which(settings.python)
    if python is None:
        raise ConfigurationError(f"Python interpreter {settings.python!r} not found (PYTHON)")
    if not settings.docker_image:  # in a container the test image's Python decides
        check_installable(wheels, python)  # a mismatch did not fail any test: not failed/
    # install_run makes the clean venv itself, from this interpreter.
    cmd, env = library_call(
        settings,
        'install_run "$PLAT"',
        {
            "WHEEL_SDIR": shell_path(settings, REPAIRED),
            "PYTHON_EXE": python,
            "PIP_CMD": f"{python} -m pip",
        },
    )
    wheelhouse = settings.wheel_sdir
    wheelhouse.mkdir(parents=True, exist_ok=True)
    with file_lock(wheelhouse, f"the wheelhouse {wheelhouse}"):
        (wheelhouse / MANIFEST).unlink(missing_ok=True)
        try:
            run_logged("test-wheel", cmd, env, explain=explain_pip(settings, python))
        except KeyboardInterrupt:
            log(f"interrupted: the wheel(s) stay in {REPAIRED}; nothing promoted")
            raise
        except StepFailed as exc:
            if settings.docker_image and exc.code == INFRA_STATUS:
                raise FatalError(
                    f"the test container did not start; the wheel(s) stay in {REPAIRED}, "
                    f"untested\n{exc}"
                ) from None
            _move_failed(wheelhouse, wheels)
            raise
        except FatalError:
            _move_failed(wheelhouse, wheels)
            raise
        for wheel in wheels:
            (wheelhouse / "failed" / wheel.name).unlink(missing_ok=True)
            _move_into(wheel, wheelhouse)
        _write_manifest(wheelhouse, [wheelhouse / w.name for w in wheels])
    return ", ".join(w.name for w in wheels)


def _move_failed(wheelhouse: Path, wheels: list[Path]) -> None:
    """Wheels whose tests failed go to failed/; an older copy of the same name that
    passed must not be staged in their place, and this run staged nothing."""
    for wheel in wheels:
        (wheelhouse / wheel.name).unlink(missing_ok=True)
        _move_into(wheel, wheelhouse / "failed")
    _write_manifest(wheelhouse, [])
    log(f"the wheel(s) that failed their tests are in {wheelhouse / 'failed'}")


def _unchecked(wheels: list[Path]) -> list[str]:
    """The wheels make check did not pass as they are now (by sha256)."""
    try:
        passed = json.loads(CHECKED.read_text())
    except (OSError, ValueError):
        passed = {}
    return [w.name for w in wheels if passed.get(w.name) != file_hash(w)]


def _write_manifest(wheelhouse: Path, wheels: list[Path]) -> None:
    """WHEEL_SDIR/manifest.sha256 (sha256sum format): exactly the wheels of this run."""
    with atomic_write(wheelhouse / MANIFEST) as out:
        out.writelines(f"{file_hash(w)}  {w.name}\n" for w in wheels)


def _move_into(path: Path, directory: Path) -> None:
    """Move ``path`` into ``directory`` whole or not at all, across filesystems too."""
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f".{path.name}.part"
    shutil.copyfile(path, part)
    os.replace(part, directory / path.name)
    path.unlink()


def _wheels(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.whl")) if directory.is_dir() else []


STEPS = {
    "source": step_source,
    "build": step_build,
    "repair": step_repair,
    "check": step_check,
    "test-wheel": step_test_wheel,
}


def run_step(name: str, settings: Settings) -> StepResult:
    start = time.monotonic()
    try:
        with fold(f"{name} ({settings.repo_dir.name})"):  # a CI fold, or ==> on a terminal
            try:
                detail = STEPS[name](settings)
            except subprocess.CalledProcessError as exc:  # venv creation and the like
                cmd = shlex.join(map(str, exc.cmd))
                raise FatalError(f"step '{name}': {cmd} failed") from None
    except (FatalError, KeyboardInterrupt) as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        _record(StepResult(name, round(time.monotonic() - start, 2), status, str(exc)[:200]))
        raise
    result = StepResult(name, round(time.monotonic() - start, 2), "passed", detail)
    _record(result)
    log(f"{name}: done in {result.seconds:.1f} s — {detail}")
    return result
