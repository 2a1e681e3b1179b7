"""travis_linux_steps.sh and the wrap scripts: the exact docker argv (stub engine),
the native fallback without one, and their bad-input errors."""

from __future__ import annotations

import os
import textwrap

import pytest
from conftest import ROOT, VENV_BIN

HOST = os.uname().machine
STUB = """\
#!/bin/bash
# records each call: one argument a line, then a separator
printf '%s\\n' "$@" '--end--' >> "$HOME/docker-calls"
case "$1" in
    info) exit "${STUB_INFO_STATUS:-0}" ;;
    pull)
        n=$(cat "$HOME/pulls" 2>/dev/null || echo 0); echo $((n + 1)) > "$HOME/pulls"
        [ "$n" -ge "${STUB_PULL_FAILS:-0}" ] ;;
esac
"""


@pytest.fixture
def work(tmp_path):
    """A wheels-repo root with multibuild linked in and a stub `docker` first on PATH."""
    work = tmp_path / "wheels repo"
    work.mkdir()
    os.symlink(ROOT / "multibuild", work / "multibuild")
    bindir = tmp_path / "stubs"
    bindir.mkdir()
    (bindir / "docker").write_text(STUB)
    (bindir / "docker").chmod(0o755)
    return work


def run(bash, work, body: str, **env: str):
    path = f"{work.parent / 'stubs'}:{VENV_BIN}:/usr/bin:/bin"
    script = f"source multibuild/common_utils.sh; source multibuild/travis_steps.sh\n{body}"
    return bash(script, cwd=work, env={"PATH": path, "NW_RETRY_DELAY": "0", **env})


def calls(work) -> list[list[str]]:
    log = work.parent / "home" / "docker-calls"
    if not log.exists():
        return []
    out, cur = [], []
    for line in log.read_text().splitlines():
        if line == "--end--":
            out.append(cur)
            cur = []
        else:
            cur.append(line)
    return out


BUILD_ENV = {
    "MB_PYTHON_VERSION": "3.11",
    "BUILD_COMMIT": "v2.4.6",
    "CONFIG_PATH": "config.sh",
    "ENV_VARS_PATH": "env_vars.sh",
    "WHEEL_SDIR": "wheelhouse",
    "BUILD_DEPENDS": "cython meson",
    "REPO_DIR": "numpy",
}


def expected_run(work, image, cmds, plat, *, ml_ver="2014", libc="manylinux", extra=()):
    env = [
        f"BUILD_COMMANDS={cmds}",
        "PYTHON_VERSION=3.11",
        "MB_PYTHON_VERSION=3.11",
        "UNICODE_WIDTH=32",
        "BUILD_COMMIT=v2.4.6",
        "CONFIG_PATH=config.sh",
        "ENV_VARS_PATH=env_vars.sh",
        "WHEEL_SDIR=wheelhouse",
        "MANYLINUX_URL=",
        "BUILD_DEPENDS=cython meson",
        "USE_CCACHE=",
        "REPO_DIR=numpy",
        f"PLAT={plat}",
        f"MB_ML_VER={ml_ver}",
        f"MB_ML_LIBC={libc}",
        *extra,
    ]
    argv = ["run", "--rm"]
    for pair in env:
        argv += ["-e", pair]
    home = work.parent / "home"
    argv += ["-v", f"{work}:/io", "-v", f"{home}:/parent-home", image]
    return [*argv, "/io/multibuild/docker_build_wrap.sh"]


# ------------------------------------------------------------------ build in the container


def test_build_wheel_runs_manylinux_container(bash, work):
    r = run(bash, work, "build_wheel numpy x86_64", **BUILD_ENV)
    assert r.returncode == 0, r.stderr
    image = "quay.io/pypa/manylinux2014_x86_64"
    assert calls(work) == [
        ["info"],
        ["pull", image],
        expected_run(work, image, "build_wheel numpy", "x86_64"),
    ]


def test_build_multilinux_forwards_nw_settings_and_image_template(bash, work):
    env = {
        **BUILD_ENV,
        "MB_ML_VER": "_2_28",
        "DOCKER_IMAGE": "quay.io/pypa/manylinux_2_28_$plat",
        "NW_DEFER_REPAIR": "1",
        "NW_REPAIR_LIBRARY_PATH": "/opt/lib:/opt/lib64",
        "AUDITWHEEL_PLAT": "manylinux_2_28_aarch64",
    }
    r = run(bash, work, "build_multilinux aarch64 'build_wheel numpy && echo \"a b\"'", **env)
    assert r.returncode == 0, r.stderr
    image = "quay.io/pypa/manylinux_2_28_aarch64"
    extra = (
        "NW_DEFER_REPAIR=1",
        "NW_REPAIR_LIBRARY_PATH=/opt/lib:/opt/lib64",
        "AUDITWHEEL_PLAT=manylinux_2_28_aarch64",
    )
    assert calls(work)[1:] == [
        ["pull", image],
        expected_run(
            work, image, 'build_wheel numpy && echo "a b"', "aarch64", ml_ver="_2_28", extra=extra
        ),
    ]


def test_build_wheel_quotes_repo_dir_and_musllinux_image(bash, work):
    env = {**BUILD_ENV, "REPO_DIR": "", "MB_ML_LIBC": "musllinux"}
    r = run(bash, work, "build_wheel 'my proj' x86_64", **env)
    assert r.returncode == 0, r.stderr
    run_argv = calls(work)[-1]
    assert "BUILD_COMMANDS=build_wheel my\\ proj" in run_argv
    assert "REPO_DIR=my proj" in run_argv
    assert "quay.io/pypa/musllinux_1_2_x86_64" in run_argv
    assert "MB_ML_LIBC=musllinux" in run_argv


def test_build_index_wheel_command(bash, work):
    r = run(bash, work, "build_index_wheel 'numpy==2.4.6' aarch64", **BUILD_ENV)
    assert r.returncode == 0, r.stderr
    assert "BUILD_COMMANDS=build_index_wheel numpy==2.4.6" in calls(work)[-1]


def test_pull_is_retried(bash, work):
    r = run(bash, work, "build_multilinux x86_64 'build_wheel numpy'", STUB_PULL_FAILS="2")
    assert r.returncode == 0, r.stderr
    assert [c[0] for c in calls(work)] == ["info", "pull", "pull", "pull", "run"]


def test_pull_gives_up_after_five(bash, work):
    r = run(bash, work, "build_multilinux x86_64 'build_wheel numpy'", STUB_PULL_FAILS="9")
    assert r.returncode == 1
    assert r.stderr == "Retry failed [5]: docker pull quay.io/pypa/manylinux2014_x86_64\n"
    assert [c[0] for c in calls(work)].count("run") == 0


def test_engine_probe_is_cached(bash, work):
    r = run(bash, work, "build_multilinux x86_64 true; install_run x86_64")
    assert r.returncode == 0, r.stderr
    assert [c[0] for c in calls(work)].count("info") == 1


# ------------------------------------------------------------------ test container


@pytest.mark.parametrize(
    ("plat", "env", "image"),
    [
        ("x86_64", {}, "multibuild/focal_x86_64"),
        ("aarch64", {}, "multibuild/focal_arm64v8"),
        ("i686", {}, "matthewbrett/trusty:32"),
        ("x86_64", {"MB_ML_LIBC": "musllinux"}, "multibuild/alpine3.20_x86_64"),
        ("s390x", {"DOCKER_TEST_IMAGE": "multibuild/xenial_{PLAT}"}, "multibuild/xenial_s390x"),
    ],
)
def test_install_run_test_container(bash, work, plat, env, image):
    env = {"MB_PYTHON_VERSION": "3.11", "TEST_DEPENDS": "pytest\nhypothesis", **env}
    r = run(bash, work, f"install_run {plat}", **env)
    assert r.returncode == 0, r.stderr
    libc = env.get("MB_ML_LIBC", "")
    test_env = [
        "PYTHON_VERSION=3.11",
        "MB_PYTHON_VERSION=3.11",
        "UNICODE_WIDTH=32",
        "CONFIG_PATH=",
        "WHEEL_SDIR=wheelhouse",
        "MANYLINUX_URL=",
        f"MB_ML_LIBC={libc}",
        "TEST_DEPENDS=pytest\nhypothesis",
    ]
    argv = ["run", "--rm"]
    for pair in test_env:
        argv += ["-e", *pair.split("\n", 1)] if "\n" in pair else ["-e", pair]
    argv += ["-v", f"{work}:/io", image, "/io/multibuild/docker_test_wrap.sh"]
    # the stub log splits the multi-line TEST_DEPENDS value over two lines
    assert calls(work)[1:] == [["pull", image], argv]


# ------------------------------------------------------------------ bad PLAT, native fallback


@pytest.mark.parametrize("fn", ["build_multilinux {} true", "install_run {}"])
def test_unknown_plat_with_engine(bash, work, fn):
    r = run(bash, work, fn.format("sparc64"))
    name = fn.split()[0]
    assert r.returncode == 1
    expected = (
        f"{name}: unknown PLAT 'sparc64' (expected one of: x86_64 i686 aarch64 ppc64le s390x)"
    )
    assert r.stderr == expected + "\n"


@pytest.mark.parametrize("plat", ["aarch64", "i686" if HOST == "x86_64" else "x86_64"])
@pytest.mark.parametrize("fn", ["build_multilinux {} true", "install_run {}"])
def test_foreign_plat_needs_engine(bash, work, fn, plat):
    # GIVEN `docker info` fails (no engine)
    r = run(bash, work, fn.format(plat), STUB_INFO_STATUS="1")
    name = fn.split()[0]
    assert r.returncode == 1
    assert r.stderr == f"{name}: PLAT={plat} needs a container engine (host is {HOST})\n"
    assert [c[0] for c in calls(work)] == ["info"]


def test_no_container_forces_native(bash, work):
    r = run(bash, work, "build_multilinux sparc64 true", NW_NO_CONTAINER="1")
    assert r.returncode == 1
    assert calls(work) == []


def test_multibuild_outside_io_mount(bash, tmp_path, work):
    r = bash(
        f"source {ROOT}/multibuild/travis_steps.sh\nbuild_multilinux x86_64 true",
        cwd=work,
        env={"PATH": f"{work.parent / 'stubs'}:{VENV_BIN}:/usr/bin:/bin"},
    )
    assert r.returncode == 1
    assert r.stderr == (
        f"build_multilinux: multibuild directory '{ROOT}/multibuild' is not under {work}"
        " (mounted as /io)\n"
    )


# ------------------------------------------------------------------ wrap scripts, natively


def native(bash, work, body: str, **env: str):
    return run(bash, work, body, NW_NO_CONTAINER="1", **env)


def test_build_wrap_sourcing_order_and_command_string(bash, work):
    (work / "env_vars.sh").write_text('FROM_ENV_VARS=yes\nCFLAGS="-O1"\n')
    (work / "config.sh").write_text(
        textwrap.dedent("""\
        show() { printf '%s|' "$@"; echo; }
        echo "config sees: $FROM_ENV_VARS $CFLAGS $BUILD_PREFIX $PWD"
        """)
    )
    r = native(bash, work, f'build_multilinux {HOST} \'show "a b" c && echo "$PLAT $MB_ML_VER."\'')
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"config sees: yes -O1 /usr/local {work}\na b|c|\n{HOST} 2014.\n"


def test_build_wrap_missing_config(bash, work):
    r = native(bash, work, f"build_multilinux {HOST} true", CONFIG_PATH="nope.sh")
    assert r.returncode == 1
    assert r.stderr == "docker_build_wrap.sh: config file 'nope.sh' not found\n"


def test_build_wrap_failing_command_fails(bash, work):
    (work / "config.sh").write_text("boom() { echo step1; false; echo not-reached; }\n")
    r = native(bash, work, f"build_multilinux {HOST} boom; echo after")
    assert (r.returncode, r.stdout) == (1, "step1\n")


def test_test_wrap_missing_config_and_run_tests(bash, work):
    r = native(bash, work, f"install_run {HOST}", CONFIG_PATH="nope.sh")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == "docker_test_wrap.sh: config file 'nope.sh' not found"
    (work / "config.sh").write_text("pre_build() { :; }\n")
    r = native(bash, work, f"install_run {HOST}")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == "install_run: run_tests is not defined in config.sh"
    assert not [p for p in work.parent.iterdir() if p.name.startswith("nw-test-venv")]


def test_test_wrap_no_supported_wheels(bash, work):
    (work / "config.sh").write_text("run_tests() { echo never; }\n")
    r = native(bash, work, f"install_run {HOST}")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == f"ERROR: no supported wheels found in {work}/wheelhouse"


def test_before_install_makes_venv(bash, work):
    r = native(
        bash,
        work,
        'before_install >/dev/null; echo "$PYTHON_EXE|$PIP_CMD|$VIRTUAL_ENV"',
        NW_VENV_PACKAGES="",
    )
    assert r.returncode == 0, r.stderr
    py = f"{work}/venv/bin/python"
    assert r.stdout == f"{py}|{py} -m pip|{work}/venv\n"


@pytest.mark.parametrize("absolute", [False, True])
def test_travis_steps_makes_the_wheelhouse(bash, work, tmp_path, absolute):
    # GIVEN WHEEL_SDIR relative to the root, or an absolute path elsewhere
    wheel_sdir = str(tmp_path / "elsewhere" / "wh") if absolute else "out/wh"
    # WHEN travis_steps.sh is sourced
    r = run(bash, work, "echo sourced", WHEEL_SDIR=wheel_sdir)
    # THEN that directory exists, and nothing else was made in the root
    assert (r.returncode, r.stdout) == (0, "sourced\n"), r.stderr
    assert (work / wheel_sdir).is_dir()
    expected = ["multibuild"] if absolute else ["multibuild", "out"]
    assert sorted(p.name for p in work.iterdir()) == expected
