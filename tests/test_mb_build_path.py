"""The short path from `make wheels` to pip (README: Layout): `build_wheel` is
defined once and handed to the build environment on the Linux host, where a
config.sh `build_wheel` still wins; `install_run` likewise, to the test
environment on every host; compat.sh stays off the build path; NumPy's
config.sh runs its hooks without the toolkit in the build interpreter; one venv
maker (_nw_make_venv) for `make setup`, the build venv and the library's venvs;
the shell finds the toolkit's Python one way (scripts/toolkit_python.sh)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN, clean_env
from test_mb_windows import write_pure_wheel

MB = ROOT / "multibuild"
HOST = os.uname().machine
DEFINITION = r"^(?:function\s+)?{name}\s*(?:\(\))?\s*[{{(]"


def definitions(name: str) -> list[str]:
    """The files (relative to ROOT) that define shell function NAME."""
    pattern = re.compile(DEFINITION.format(name=re.escape(name)), re.MULTILINE)
    files = [*sorted(MB.glob("*.sh")), ROOT / "config.sh"]
    return [str(f.relative_to(ROOT)) for f in files if pattern.search(f.read_text())]


def compat_names() -> set[str]:
    text = (MB / "compat.sh").read_text()
    return set(re.findall(r"^function\s+(\w+)", text, re.MULTILINE))


# ------------------------------------------------------------------ one definition each


@pytest.mark.parametrize("name", ["build_wheel", "build_index_wheel", "install_run"])
def test_build_entry_points_are_defined_once(name):
    # THEN only common_utils.sh defines them: not the host steps, not NumPy's config.sh
    assert definitions(name) == ["multibuild/common_utils.sh"]


def test_compat_holds_the_legacy_api():
    # THEN Python 2 / PyPy / python.org installers / bdist_wheel live in compat.sh only
    legacy = {"install_pypy", "fill_pypy_ver", "install_macpython", "install_mac_cpython",
              "get_macpython_environment", "fill_pyver", "bdist_wheel_cmd",
              "build_bdist_wheel", "make_workon_venv"}  # fmt: skip
    assert legacy <= compat_names()
    for name in legacy:
        assert definitions(name) == ["multibuild/compat.sh"], name


# Where the library still calls into compat.sh: multibuild's own macOS CI recipe
# (before_install installs python.org Python; the python.org SDK picks the
# default PLAT and MB_PYTHON_OSX_VER) and a PyPy PYTHON_VERSION in the image.
COMPAT_CALLERS = {
    "travis_osx_steps.sh": {"install_macpython", "macpython_sdk_for_version"},
    "configure_build.sh": {"macpython_arch_for_version"},
    "docker_build_wrap.sh": {"install_pypy"},
}


@pytest.mark.parametrize(
    "path", [*sorted(p.name for p in MB.glob("*.sh") if p.name != "compat.sh"), "../config.sh"]
)
def test_compat_is_off_the_build_path(path):
    # GIVEN a file of the library (or NumPy's hooks), comments left out
    code = "\n".join(
        line.split(" #")[0]
        for line in (MB / path).read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    # THEN it calls nothing from compat.sh beyond the known multibuild-recipe uses
    called = {name for name in compat_names() if re.search(rf"\b{name}\b", code)}
    assert called == COMPAT_CALLERS.get(path, set())


# ------------------------------------------------------------------ the hops, run


@pytest.fixture
def work(tmp_path):
    work = tmp_path / "wheels repo"
    (work / "proj").mkdir(parents=True)
    os.symlink(MB, work / "multibuild")
    return work


def run(bash, work, body: str, **env: str):
    return bash(body, cwd=work, env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", **env})


HOOKS = """\
pre_build() { echo "pre_build in $PWD"; }
pip_wheel_cmd() { echo "pip_wheel_cmd in $PWD -> $1"; }
"""


def test_linux_host_build_wheel_reaches_the_config_hooks(bash, work):
    # GIVEN a config.sh with the two build hooks, and no container engine
    (work / "config.sh").write_text(HOOKS)
    # WHEN the host's build_wheel runs (the library's: config.sh is not sourced here)
    r = run(
        bash,
        work,
        "source multibuild/common_utils.sh; source multibuild/travis_steps.sh\n"
        "shopt -s extdebug; declare -F build_wheel | cut -d' ' -f3\n"
        f"build_wheel proj {HOST}",
        NW_DEFER_REPAIR="1",
    )
    # THEN it ran itself in the build environment, which ran the hooks in order
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "multibuild/common_utils.sh"
    assert lines[1] == "build_multilinux: natively (DOCKER_IMAGE is empty)"
    assert lines[-2:] == [
        f"pre_build in {work}",
        f"pip_wheel_cmd in {work}/proj -> {work}/wheelhouse",
    ]


def test_config_build_wheel_still_wins_in_the_build_environment(bash, work):
    # GIVEN a config.sh written for multibuild that replaces build_wheel
    (work / "config.sh").write_text(HOOKS + 'build_wheel() { echo "project build_wheel $*"; }\n')
    # WHEN the host's build_wheel runs
    r = run(
        bash,
        work,
        "source multibuild/common_utils.sh; source multibuild/travis_steps.sh\n"
        f"build_wheel proj {HOST}",
    )
    # THEN the project's one ran there, with the repo dir, and not the library's hooks
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "project build_wheel proj"
    assert "pre_build" not in r.stdout


def test_build_wheel_in_the_build_environment_wraps_once(bash, work):
    # GIVEN the build environment (as on macOS and Windows) and a wrap_wheel_builder
    # override that says each time it runs
    r = run(
        bash,
        work,
        "source multibuild/common_utils.sh\n"
        + HOOKS
        + 'wrap_wheel_builder() { echo "wrap: $1 $2"; "$@"; }\n'
        + "build_wheel proj",
        NW_DEFER_REPAIR="1",
    )
    # THEN one wrap around build_wheel_cmd, which ran the hooks in the source dir
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "wrap: build_wheel_cmd pip_wheel_cmd",
        f"pre_build in {work}",
        f"pip_wheel_cmd in {work}/proj -> {work}/wheelhouse",
    ]


def test_host_build_wheel_without_repo_dir(bash, work):
    r = run(bash, work, "source multibuild/travis_steps.sh\nbuild_wheel", REPO_DIR="")
    assert (r.returncode, r.stderr) == (
        1,
        "build_wheel: repo_dir not defined (pass it or set REPO_DIR)\n",
    )


# ------------------------------------------------------------------ NumPy's config.sh


STUB_PY = """#!/bin/bash
echo "toolkit python: $*" >> "$HOME/calls"
echo /prepared/by/the/toolkit
"""
STUB_PIP = """#!/bin/bash
echo "pip $*" >> "$HOME/calls"
"""


@pytest.fixture
def numpy_tree(tmp_path):
    """A NumPy-shaped source (pyproject build requires, LICENSE.txt) and pip/toolkit stubs."""
    src = tmp_path / "numpy"
    src.mkdir()
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["meson-python>=0.18", "Cython>=3.0.6"]\n'
    )
    (src / "LICENSE.txt").write_text("Copyright (c) 2005, NumPy Developers.\n")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in [("toolkit-python", STUB_PY), ("pip", STUB_PIP), ("ninja", "#!/bin/sh\n")]:
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    return src, stubs


def numpy_config(bash, tmp_path, numpy_tree, body: str, **env: str):
    src, stubs = numpy_tree
    script = f"source multibuild/common_utils.sh\nsource config.sh\n{body}"
    r = bash(
        script,
        env={
            "PATH": f"{stubs}:{VENV_BIN}:/usr/bin:/bin",
            "REPO_DIR": str(src),
            "NW_ROOT": str(ROOT),
            "PYTHON_EXE": str(VENV_BIN / "python"),
            "PIP_CMD": str(stubs / "pip"),
            "NW_PYTHON": str(stubs / "toolkit-python"),
            **env,
        },
    )
    calls = tmp_path / "home" / "calls"
    return r, calls.read_text().splitlines() if calls.exists() else []


def test_pre_build_with_host_prepared_openblas(bash, tmp_path, numpy_tree):
    # GIVEN OpenBLAS prepared on the host (as numpy-wheels build does before a container)
    r, calls = numpy_config(
        bash, tmp_path, numpy_tree, 'pre_build\necho "$PKG_CONFIG_PATH|$NW_REPAIR_LIBRARY_PATH"',
        NW_OPENBLAS_DIR="/host/openblas",
    )  # fmt: skip
    # THEN only NumPy's own build requirements go into the build interpreter:
    # the toolkit's Python never ran and the toolkit was never pip-installed
    assert r.returncode == 0, r.stderr
    assert calls == ["pip install meson-python>=0.18 Cython>=3.0.6"]
    assert r.stdout.splitlines()[-1] == "/host/openblas/lib/pkgconfig|/host/openblas/lib"
    assert "also bundles the following software" in (numpy_tree[0] / "LICENSE.txt").read_text()


def test_openblas_prepared_by_the_toolkit_python_otherwise(bash, tmp_path, numpy_tree):
    # GIVEN no NW_OPENBLAS_DIR (multibuild's own flow on a host with `make setup` done)
    r, calls = numpy_config(bash, tmp_path, numpy_tree, "numpy_openblas_dir")
    # THEN the toolkit's Python (NW_PYTHON) prepared it with openblas_support.py
    assert (r.returncode, r.stdout) == (0, "/prepared/by/the/toolkit\n"), r.stderr
    assert calls == [f"toolkit python: {ROOT}/scripts/openblas_support.py"]


def test_pip_wheel_cmd_is_numpys(bash, tmp_path, numpy_tree):
    r, calls = numpy_config(
        bash, tmp_path, numpy_tree, "pip_wheel_cmd /wh", NW_OPENBLAS_INTERFACE="lp64",
        NW_BUILD_DIR="/b",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert calls == [
        "pip wheel --no-deps --no-build-isolation -w /wh -Cbuild-dir=/b "
        "-Csetup-args=-Dblas=scipy-openblas -Csetup-args=-Dlapack=scipy-openblas "
        "-Csetup-args=-Duse-ilp64=false -Csetup-args=-Dallow-noblas=false ."
    ]


# ------------------------------------------------------------------ the toolkit's Python


@pytest.fixture
def toolkit(tmp_path):
    """A toolkit checkout with scripts/toolkit_python.sh and no .venv yet."""
    root = tmp_path / "toolkit root"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "toolkit_python.sh", root / "scripts")
    return root


def lookup(bash, toolkit, path="/usr/bin:/bin", **env):
    script = f'source "{toolkit}/scripts/toolkit_python.sh"; nw_toolkit_python'
    return bash(script, env={"PATH": path, **env})


def fake_python(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("layout", ["bin", "Scripts"])
def test_toolkit_python_order(bash, toolkit, layout):
    venv_python = fake_python(toolkit / ".venv" / layout / "python")
    given = fake_python(toolkit.parent / "nw python")
    # NW_PYTHON first, when it runs
    assert lookup(bash, toolkit, NW_PYTHON=str(given)).stdout == f"{given}\n"
    # then the venv of `make setup` (a NW_PYTHON that does not run is passed over)
    for nw_python in ("", "/no/such/python"):
        assert lookup(bash, toolkit, NW_PYTHON=nw_python).stdout == f"{venv_python}\n"


def test_toolkit_python_honours_venv(bash, toolkit, tmp_path):
    # GIVEN make setup VENV=elsewhere (absolute) and VENV=tools (under the root)
    elsewhere = fake_python(tmp_path / "elsewhere" / "bin" / "python")
    under = fake_python(toolkit / "tools" / "bin" / "python")
    fake_python(toolkit / ".venv" / "bin" / "python")
    assert lookup(bash, toolkit, VENV=str(elsewhere.parent.parent)).stdout == f"{elsewhere}\n"
    assert lookup(bash, toolkit, VENV="tools").stdout == f"{under}\n"


def test_makes_own_commands_use_the_one_lookup(tmp_path):
    # GIVEN a PYTHON that cannot run and NW_PYTHON naming the toolkit's
    tool = tmp_path / "toolkit-python"
    tool.symlink_to(sys.executable)
    env = clean_env(tmp_path, NW_PYTHON=str(tool), PYTHON=str(tmp_path / "none"))
    plan = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "version"], env=env,
                          capture_output=True, text=True)  # fmt: skip
    # THEN make version runs the toolkit's Python (toolkit_python.sh's pick)
    assert plan.returncode == 0 and f" {tool} -c " in plan.stdout, plan.stderr


def test_toolkit_python_by_name_then_python3(bash, toolkit, tmp_path):
    bindir = tmp_path / "bin"
    fake_python(bindir / "python3")
    fake_python(bindir / "mypython")
    assert lookup(bash, toolkit, f"{bindir}:/bin", NW_PYTHON="mypython").stdout == "mypython\n"
    assert lookup(bash, toolkit, f"{bindir}:/bin").stdout == "python3\n"


def test_toolkit_python_none(bash, toolkit, tmp_path):
    # GIVEN no NW_PYTHON, no venv, and a PATH with bash and dirname but no python3
    empty = tmp_path / "no-python"
    empty.mkdir()
    for tool in ("bash", "dirname"):
        (empty / tool).symlink_to(shutil.which(tool))
    r = bash(
        f'source "{toolkit}/scripts/toolkit_python.sh"; nw_toolkit_python; echo "s=$?"',
        env={"PATH": str(empty)},
    )
    assert r.stdout == "s=1\n"
    assert r.stderr == (
        f"no toolkit Python: NW_PYTHON=(unset), no {toolkit}/.venv (make setup), no python3\n"
    )


def test_shell_callers_use_the_one_lookup():
    # THEN every shell caller sources it, and none keeps its own .venv path
    for caller in ("config.sh", "scripts/wheel-uploader", "scripts/stage.sh"):
        text = (ROOT / caller).read_text()
        assert "toolkit_python.sh" in text, caller
        assert ".venv/bin/python" not in text, caller


# ------------------------------------------------------------------ OpenBLAS on the host


HOST_PY = textwrap.dedent("""\
    #!/bin/bash
    echo "openblas_support.py args: $*" >&2
    echo "/cache/openblas-$NW_OPENBLAS_INTERFACE-$PLAT"
""")


@pytest.mark.parametrize(("env_vars", "interface"), [("env_vars.sh", "ilp64"),
                                                     ("env_vars32.sh", "lp64")])  # fmt: skip
def test_host_openblas_follows_env_vars(tmp_path, env_vars, interface):
    from numpy_wheels.build import runner

    python = fake_python(tmp_path / "python")
    python.write_text(HOST_PY)
    env = {"PATH": "/usr/bin:/bin", "NW_PYTHON": str(python), "PLAT": "i686",
           "ENV_VARS_PATH": env_vars}  # fmt: skip
    assert runner.host_openblas(env) == f"/cache/openblas-{interface}-i686"


def test_host_openblas_failure_is_one_line(tmp_path):
    from numpy_wheels.build import runner
    from numpy_wheels.errors import FatalError

    python = fake_python(tmp_path / "python")
    python.write_text(
        "#!/bin/sh\necho 'openblas_support.py: error: no OpenBLAS for sparc' >&2\nexit 2\n"
    )
    env = {"PATH": "/usr/bin:/bin", "NW_PYTHON": str(python), "PLAT": "sparc"}
    with pytest.raises(FatalError) as err:
        runner.host_openblas(env)
    assert str(err.value) == (
        "cannot prepare OpenBLAS (scripts/openblas_support.py): "
        "openblas_support.py: error: no OpenBLAS for sparc"
    )


# ------------------------------------------------------------------ in the image: stdlib only

NUMPY_TOOLS = ["-m", "numpy_wheels.build.numpy_tools"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # what it checks first: the installed numpy, or threadpoolctl to ask it
        (["scripts/openblas_support.py", "--check-version"], "(cannot import numpy|threadpoolctl)"),
        ([*NUMPY_TOOLS, "check-license", "nosuchdist"], "nosuchdist is not installed"),
        ([*NUMPY_TOOLS, "build-requires", "tests"], "cannot read tests/pyproject.toml"),
    ],
)
def test_hook_scripts_run_on_the_stdlib_alone(argv, message):
    # GIVEN an interpreter with nothing but the standard library (-S: no
    # site-packages), as NumPy's build and test interpreters are to the toolkit,
    # and the mounted source on PYTHONPATH, as config.sh runs them
    proc = subprocess.run(
        [sys.executable, "-S", *argv],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "scripts")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # THEN the hooks' scripts start and fail only on what they check
    assert proc.returncode != 0
    assert re.search(message, proc.stderr), proc.stderr
    assert "ModuleNotFoundError" not in proc.stderr


# ------------------------------------------------------------------ install_run on every host

# What `uname` prints on each host travis_steps.sh tells apart (Linux: the real one).
UNAME = {"macos": "Darwin", "windows": "MINGW64_NT-10.0"}
TESTS = """\
run_tests() {
    "$PYTHON_EXE" -c 'import nwpure; print("answer", nwpure.ANSWER)'
    echo "python $PYTHON_EXE"
}
"""


@pytest.fixture(scope="module")
def base_python(tmp_path_factory) -> str:
    """A throwaway interpreter to make test venvs from: a wheel installed into it
    by mistake goes nowhere else."""
    base = tmp_path_factory.mktemp("base") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base)], check=True)
    return str(base / "bin" / "python")


def on_host(bash, work, host: str, body: str, **env: str):
    """Run BODY after travis_steps.sh in WORK as HOST's bash (a stub `uname`)."""
    path = f"{VENV_BIN}:/usr/bin:/bin"
    if host in UNAME:
        stubs = work.parent / "stubs"
        stubs.mkdir(exist_ok=True)
        uname = f'#!/bin/bash\nif [ "$1" = -m ]; then echo x86_64; else echo {UNAME[host]}; fi\n'
        (stubs / "uname").write_text(uname)
        (stubs / "uname").chmod(0o755)
        path = f"{stubs}:{path}"
    plat = HOST if host == "linux" else "x86_64"
    script = f"source multibuild/common_utils.sh; source multibuild/travis_steps.sh\n{body}"
    return bash(script, cwd=work, env={"PATH": path, "PLAT": plat, "PIP_NO_INDEX": "1", **env})


@pytest.mark.parametrize("host", ["linux", "macos", "windows"])
def test_install_run_tests_in_a_fresh_venv_on_every_host(bash, work, tmp_path, base_python,
                                                         host):  # fmt: skip
    # GIVEN a wheelhouse with a pure wheel and a config.sh with run_tests
    write_pure_wheel(work / "wheelhouse")
    (work / "config.sh").write_text(TESTS)
    # WHEN the host's install_run runs (no container engine)
    r = on_host(bash, work, host, "install_run", PYTHON_EXE=base_python)
    # THEN the wheel went into a venv made fresh from PYTHON_EXE, which ran
    # run_tests and is gone afterwards; PYTHON_EXE itself got nothing
    assert r.returncode == 0, r.stderr
    assert "answer 42" in r.stdout.splitlines()
    (python_line,) = [line for line in r.stdout.splitlines() if line.startswith("python ")]
    venv = Path(python_line.split()[1]).parents[1]
    assert venv.parent.parent == tmp_path and venv.parent.name.startswith("nw-test-venv.")
    assert f"install_run: creating {venv} with {base_python}" in r.stderr.splitlines()
    assert not venv.exists()
    assert not list(work.glob("tmp_for_test*"))
    assert subprocess.run([base_python, "-c", "import nwpure"], capture_output=True).returncode


@pytest.mark.parametrize("host", ["linux", "macos", "windows"])
def test_config_install_run_still_wins(bash, work, base_python, host):
    # GIVEN a config.sh written for multibuild that replaces install_run
    (work / "config.sh").write_text(
        TESTS + 'install_run() { echo "project install_run $* with $PYTHON_EXE"; }\n'
    )
    # WHEN the host's install_run runs
    r = on_host(bash, work, host, "install_run", PYTHON_EXE=base_python)
    assert r.returncode == 0, r.stderr
    last = r.stdout.splitlines()[-1]
    if host == "linux":
        # THEN on Linux, where config.sh is not sourced on the host, the project's
        # one runs in the test environment (with its fresh venv), as in multibuild
        assert last.startswith("project install_run  with ") and "nw-test-venv." in last
    else:
        # THEN on macOS and Windows config.sh is sourced after the library on the
        # host, so the project's one runs right there
        assert last == f"project install_run  with {base_python}"
        assert "creating" not in r.stderr


# ------------------------------------------------------------------ one venv maker


def make_venv_sh(bash, *args: str, **env: str):
    quoted = " ".join(f"'{a}'" for a in args)
    return bash(f"source multibuild/common_utils.sh; _nw_make_venv {quoted}", env=env)


def test_venv_maker_makes_keeps_and_remakes(bash, tmp_path, base_python):
    venv = tmp_path / "v"
    python = f"{venv}/bin/python"
    # WHEN it runs for a new directory THEN the venv is made from PYTHON
    r = make_venv_sh(bash, "t", base_python, str(venv))
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{python}\n", f"t: creating {venv} with "
                                                  f"{base_python}\n")  # fmt: skip
    (venv / "kept").write_text("")
    # WHEN again, same interpreter and stamp THEN kept, silently
    r = make_venv_sh(bash, "t", base_python, str(venv))
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{python}\n", "")
    assert (venv / "kept").exists()
    # WHEN for another stamp THEN made anew, and the stamp recorded
    r = make_venv_sh(bash, "t", base_python, str(venv), "deps as of 2025-01-01")
    assert r.stderr == (f"t: making {venv} anew with {base_python} (it was made for '', "
                        "not 'deps as of 2025-01-01')\n")  # fmt: skip
    assert not (venv / "kept").exists()
    assert (venv / "nw-venv-stamp.txt").read_text() == "deps as of 2025-01-01\n"
    r = make_venv_sh(bash, "t", base_python, str(venv), "deps as of 2025-01-01")
    assert (r.returncode, r.stderr) == (0, "")
    # WHEN its interpreter no longer runs (or is another) THEN made anew
    (venv / "bin" / "python").unlink()
    r = make_venv_sh(bash, "t", base_python, str(venv), "deps as of 2025-01-01")
    assert (
        r.stderr == f"t: making {venv} anew with {base_python} (it runs on another interpreter)\n"
    )
    assert subprocess.run([python, "-c", "pass"]).returncode == 0


def test_venv_maker_keeps_a_venv_it_did_not_make(bash, tmp_path, base_python):
    # GIVEN a venv made by `python -m venv` (an older `make setup`'s .venv)
    venv = tmp_path / ".venv"
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], check=True)
    # THEN it is kept: same interpreter, no stamp
    r = make_venv_sh(bash, "setup", base_python, str(venv))
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{venv}/bin/python\n", "")


def test_venv_maker_leaves_what_is_not_a_venv(bash, tmp_path, base_python):
    # GIVEN a directory holding something else
    target = tmp_path / "mine"
    target.mkdir()
    (target / "precious").write_text("keep me")
    r = make_venv_sh(bash, "t", base_python, str(target))
    # THEN one line, and it is untouched
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f"t: {target} is not a virtualenv (no pyvenv.cfg); remove it or choose "
                        "another directory\n")  # fmt: skip
    assert [p.name for p in target.iterdir()] == ["precious"]


def test_venv_maker_without_the_interpreter(bash, tmp_path):
    r = make_venv_sh(bash, "setup", "python3.99", str(tmp_path / "v"))
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "setup: Python interpreter 'python3.99' not found (set PYTHON=...)\n"
    assert not (tmp_path / "v").exists()


def test_venv_maker_leaves_no_half_made_venv(bash, tmp_path, base_python):
    # GIVEN an interpreter whose venv module fails half-way (as without ensurepip)
    broken = tmp_path / "broken-python"
    broken.write_text('#!/bin/sh\nmkdir -p "$3/bin"; touch "$3/pyvenv.cfg"\n'
                      'echo "Error: ensurepip is not available" >&2; exit 1\n')  # fmt: skip
    broken.chmod(0o755)
    r = make_venv_sh(bash, "t", str(broken), str(tmp_path / "v"))
    # THEN its error, then ours, and nothing left to take for a venv
    assert r.returncode == 1
    assert r.stderr.splitlines()[-2:] == [
        "Error: ensurepip is not available",
        f"t: could not make a venv in {tmp_path / 'v'} with {broken}",
    ]
    assert not (tmp_path / "v").exists()


def test_venv_maker_upgrades_packages_in_a_venv_it_makes(bash, tmp_path, base_python):
    wheels = tmp_path / "wheels"
    write_pure_wheel(wheels)
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    r = make_venv_sh(bash, "t", base_python, str(tmp_path / "v"), "", "nwpure", **offline)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([r.stdout.strip(), "-c", "import nwpure"]).returncode == 0
    # a package it cannot install: no venv left behind
    r = make_venv_sh(bash, "t", base_python, str(tmp_path / "w"), "", "no-such-pkg", **offline)
    assert r.returncode == 1
    assert (
        r.stderr.splitlines()[-1]
        == f"t: could not make a venv in {tmp_path / 'w'} with {base_python}"
    )
    assert not (tmp_path / "w").exists()


def test_build_venv_is_the_same_maker(tmp_path, base_python, monkeypatch):
    from numpy_wheels.build.venv import make_venv
    from numpy_wheels.errors import ConfigurationError

    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip is upgraded to what it is
    venv = tmp_path / "venv-build"
    make_venv(base_python, venv, "2025-01-01")
    assert (venv / "nw-venv-stamp.txt").read_text() == "deps as of 2025-01-01\n"
    (venv / "kept").write_text("")
    make_venv(base_python, venv, "2025-01-01")
    assert (venv / "kept").exists()
    make_venv(base_python, venv, "")  # requirements of another date: made anew
    assert not (venv / "kept").exists()
    with pytest.raises(ConfigurationError, match=r"'python3.99' not found \(set PYTHON=...\)"):
        make_venv("python3.99", venv)


# The code that makes venvs (tests and benchmarks make their own).
CODE = [*MB.glob("*.sh"), ROOT / "config.sh", ROOT / "Makefile",
        *(ROOT / "scripts").rglob("*.sh"), ROOT / "scripts" / "wheel-uploader",
        *(ROOT / "scripts").rglob("*.py")]  # fmt: skip


def test_one_venv_maker():
    makers = {
        f"{path.relative_to(ROOT)}:{n}"
        for path in CODE
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"-m venv\b|\"-m\", \"venv\"|\bimport venv\b|EnvBuilder", line)
        and not line.lstrip().startswith("#")
    }
    # THEN `-m venv` runs in one place, and setup.sh and the build venv call it
    assert len(makers) == 1 and makers.pop().startswith("multibuild/common_utils.sh:")
    assert "_nw_make_venv setup " in (ROOT / "scripts" / "setup.sh").read_text()
    assert "_nw_make_venv" in (ROOT / "scripts/numpy_wheels/build/venv.py").read_text()


def test_one_toolkit_python_lookup():
    # THEN no shell file but toolkit_python.sh looks for the toolkit's venv itself
    shell = [p for p in CODE if p.suffix != ".py" and p.name != "toolkit_python.sh"]
    for path in shell:
        text = path.read_text()
        assert not re.search(r"\.venv/(bin|Scripts)/python", text), path
