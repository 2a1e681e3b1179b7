"""The numpy-wheels command: one options model with make (the same table, the same
values, a documented order), its commands dispatched to the package's parts, and the
Makefile going through it."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, SETTINGS_MK, VENV_BIN, clean_env, make
from staging_server import make_wheel

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def numpy_wheels(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The console script, in a clean environment (make exports the same way)."""
    return subprocess.run(
        [str(VENV_BIN / "numpy-wheels"), *args],
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def settings_lines(stdout: str, header: str) -> list[str]:
    """The settings table printed after ``header``, a line per setting."""
    part = stdout.split(header, 1)[1].split("\n", 1)[1]
    return [line.rstrip() for line in part.splitlines() if re.match(r"  [A-Z_]+ ", line)]


def test_help_and_make_help_list_the_same_settings_and_values(tmp_path):
    # GIVEN the same overrides: one on the command line, one in the environment, a secret
    env = {"VENV": str(VENV_BIN.parent), "PYTHON": sys.executable}  # as make() sets them
    env |= {"MB_ML_VER": "_2_28", "ANACONDA_TOKEN": "s3cr3t"}
    made = make("help", "PLAT=aarch64", tmp_path=tmp_path, env=env)
    ours = numpy_wheels("PLAT=aarch64", "--help", tmp_path=tmp_path, **env)
    assert made.returncode == 0 and ours.returncode == 0, ours.stderr
    # THEN both list every setting of the one table, with the same value and meaning
    from_make = settings_lines(made.stdout, "Settings, as this make sees them")
    from_cli = settings_lines(ours.stdout, "Settings, as this command sees them")
    assert from_cli == from_make
    declared = re.findall(r"^([A-Z_]+) \?=", SETTINGS_MK.read_text(), re.M)
    assert [line.split()[0] for line in from_cli] == declared
    assert re.search(r"^  PLAT +aarch64 ", ours.stdout, re.M)
    assert re.search(r"^  MB_ML_VER +_2_28 ", ours.stdout, re.M)
    assert re.search(r"^  ANACONDA_TOKEN +\(set\) ", ours.stdout, re.M)
    assert "s3cr3t" not in ours.stdout
    # and the order they are resolved in is written down
    assert "the command line (NAME=value), then the environment, then the Makefile's" in (
        ours.stdout
    )


def test_command_line_beats_environment_beats_default(tmp_path):
    def plat(*args: str, **env: str) -> str:
        proc = numpy_wheels(*args, "--help", tmp_path=tmp_path, **env)
        return re.search(r"^  PLAT +(\S+)", proc.stdout, re.M)[1]

    assert plat() == platform.machine()  # $(shell uname -m), as make evaluates it
    assert plat(PLAT="i686") == "i686"
    assert plat("PLAT=s390x", PLAT="i686") == "s390x"


def test_settings_reach_the_steps_in_that_order(tmp_path):
    env = {"NW_WORK_DIR": str(tmp_path / "work"), "NW_QUIET": "1", "SOURCE": "local"}
    missing = tmp_path / "missing"
    # GIVEN a bad PLAT in the environment and a good one on the command line
    proc = numpy_wheels(f"PLAT={platform.machine()}", "source", f"REPO_DIR={missing}",
                        tmp_path=tmp_path, PLAT="sparc", **env)  # fmt: skip
    # THEN the step sees the command line's and goes on (to the missing source)
    assert (proc.returncode, proc.stderr) == (
        2, f"numpy-wheels: error: REPO_DIR {missing} does not exist (SOURCE=local)\n"
    )  # fmt: skip
    # and the other way round the command line's bad value is refused first
    proc = numpy_wheels("source", "PLAT=sparc", tmp_path=tmp_path, PLAT=platform.machine(), **env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("numpy-wheels: error: PLAT='sparc' is not one of: ")


def test_unknown_setting_names_the_nearest_one(tmp_path):
    proc = numpy_wheels("PLT=aarch64", "build", tmp_path=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "numpy-wheels: error: unknown setting PLT; did you mean PLAT? "
        "(numpy-wheels --help lists them)\n"
    )


def test_a_secret_on_the_command_line_is_refused_without_echoing_it(tmp_path):
    proc = numpy_wheels("stage", "ANACONDA_TOKEN=s3cr3t", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "s3cr3t" not in proc.stdout + proc.stderr
    assert "set it in the environment or ANACONDA_TOKEN_FILE" in proc.stderr


def test_unknown_command_names_the_nearest_one(tmp_path):
    proc = numpy_wheels("whels", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "numpy-wheels: error: no command 'whels'; did you mean numpy-wheels wheels? (one of: "
    )


def test_version_and_help_without_a_command(tmp_path):
    proc = numpy_wheels("--version", tmp_path=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, f"numpy-wheels (numpy-wheels-toolkit) {VERSION}\n")
    bare = numpy_wheels(tmp_path=tmp_path)
    assert bare.returncode == 2 and bare.stderr.startswith("usage: numpy-wheels ")
    helped = numpy_wheels("--help", tmp_path=tmp_path)
    for command in ("source", "build", "repair", "check", "test", "stage", "upload",
                    "openblas", "set-commit"):  # fmt: skip
        assert re.search(rf"^  {command} +\S", helped.stdout, re.M), command
    assert "Exit status: 0 done, 1 " in helped.stdout


@pytest.mark.parametrize(
    ("command", "prog"),
    [("build", "numpy-wheels"), ("upload", "wheel-uploader"),
     ("openblas", "openblas_support.py"), ("set-commit", "set-commit")],
)  # fmt: skip
def test_each_command_reaches_its_own_tool(command, prog, tmp_path):
    proc = numpy_wheels(command, "--version", tmp_path=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, f"{prog} (numpy-wheels-toolkit) {VERSION}\n")


def test_check_without_wheels_audits_the_repaired_ones(tmp_path):
    work = tmp_path / "work"
    proc = numpy_wheels("check", tmp_path=tmp_path, NW_WORK_DIR=str(work), NW_QUIET="1")
    assert proc.returncode == 1
    assert f"numpy-wheels: error: no wheel in {work / 'repaired'} to check" in proc.stderr


def test_check_audits_the_wheels_given_as_check_wheel_does(tmp_path):
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    bad = make_wheel(tmp_path / "bad", "demo-pkg", "1.0")
    with open(bad, "ab") as out:  # a truncated archive: the audit fails it
        out.truncate(bad.stat().st_size - 40)
    for path in (wheel, bad):
        ours = numpy_wheels("check", str(path), tmp_path=tmp_path)
        script = subprocess.run(
            [str(VENV_BIN / "python"), str(ROOT / "scripts" / "check_wheel.py"), str(path)],
            env=clean_env(tmp_path), capture_output=True, text=True,
        )  # fmt: skip
        assert (ours.returncode, ours.stdout) == (script.returncode, script.stdout)
    assert numpy_wheels("check", str(wheel), tmp_path=tmp_path).returncode == 0
    assert numpy_wheels("check", str(bad), tmp_path=tmp_path).returncode != 0


def test_stage_runs_stage_sh_with_the_toolkit_first_on_path(tmp_path):
    # GIVEN a wheelhouse no test-wheel step has filled (no manifest)
    (tmp_path / "wheelhouse").mkdir()
    proc = numpy_wheels("stage", tmp_path=tmp_path, WHEEL_SDIR=str(tmp_path / "wheelhouse"),
                        DRY_RUN="1")  # fmt: skip
    # THEN stage.sh itself refuses, in its own words
    assert proc.returncode != 0
    assert proc.stderr.startswith("stage: error:"), proc.stderr
    assert f"no wheels in {tmp_path / 'wheelhouse'}/ to stage" in proc.stderr


def test_stage_never_runs_on_an_argument(tmp_path):
    # GIVEN a wheelhouse with a manifest, so that a run would upload
    wheelhouse = tmp_path / "wheelhouse"
    wheel = make_wheel(wheelhouse, "numpy", "9.9.9")
    (wheelhouse / "manifest.sha256").write_text(f"{'0' * 64}  {wheel.name}\n")
    env = {"WHEEL_SDIR": str(wheelhouse), "DRY_RUN": "1"}
    helped = numpy_wheels("stage", "--help", tmp_path=tmp_path, **env)
    assert helped.returncode == 0 and helped.stderr == ""
    assert helped.stdout.startswith(
        "usage: numpy-wheels [NAME=value ...] stage [-q | -v] [--version]\n"
    )
    assert "manifest.sha256" in helped.stdout and "Exit status" in helped.stdout
    typo = numpy_wheels("stage", "--dry-run", tmp_path=tmp_path, **env)
    assert (typo.returncode, typo.stdout) == (2, "")
    assert typo.stderr.startswith("stage.sh: error: unknown argument --dry-run\nusage: stage.sh")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_the_makefile_goes_through_numpy_wheels(tmp_path):
    venv = VENV_BIN.parent
    for target, call in [("wheels", "wheels"), ("nightly", "wheels --nightly"),
                         ("source", "source"), ("build", "build"), ("repair", "repair"),
                         ("check", "check"), ("test-wheel", "test"), ("stage", "stage"),
                         ("openblas", "openblas"),
                         ("set-commit", "set-commit -- \"v9\"")]:  # fmt: skip
        proc = subprocess.run(
            ["make", "-n", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed",
             target, "COMMIT=v9"],
            env=clean_env(tmp_path), capture_output=True, text=True,
        )  # fmt: skip
        assert f"{venv}/bin/numpy-wheels {call}\n" in proc.stdout, (target, proc.stdout)


def test_numpy_tools_runs_on_the_standard_library_alone(tmp_path):
    # GIVEN a source tree, and an interpreter without site-packages (-S), as config.sh's
    # build and test Pythons may be (a manylinux image's, say)
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["meson-python>=0.15", "Cython>=3.0"]\n'
    )
    cmd = [sys.executable, "-S", "-m", "numpy_wheels.build.numpy_tools"]
    env = clean_env(tmp_path, PYTHONPATH=str(ROOT / "scripts"))  # as config.sh runs it
    proc = subprocess.run([*cmd, "build-requires", str(tmp_path)], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "meson-python>=0.15\nCython>=3.0\n"), proc.stderr
    proc = subprocess.run([*cmd, "check-license", "no-such-dist"], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr == "numpy_tools.py: error: no-such-dist is not installed\n"


def test_secrets_are_the_ones_make_help_hides(tmp_path):
    from numpy_wheels import options

    # GIVEN a table whose help hides a new kind of secret
    table = tmp_path / "settings.mk"
    table.write_text(
        "override SECRET_SETTINGS := %TOKEN %SIGNING_KEY\n"
        "# a key\nSIGNING_KEY ?=\n# its file\nSIGNING_KEY_FILE ?=\n# an org\nORG ?= x\n"
    )
    known = options.table(table)
    assert [s.name for s in known if s.secret] == ["SIGNING_KEY"]
    # THEN its value is never printed nor taken from a command line
    env = {"SIGNING_KEY": "-----BEGIN KEY-----"}
    assert options.help_lines(known, env)[0].split()[:2] == ["SIGNING_KEY", "(set)"]
    with pytest.raises(options.ConfigurationError, match=r"or SIGNING_KEY_FILE$"):
        options.split_assignments(["SIGNING_KEY=k", "stage"], known)


def test_the_table_lives_in_the_package_and_the_makefile_includes_it():
    from numpy_wheels import options

    # GIVEN the Makefile: it declares no setting of its own, it includes the table
    makefile = (ROOT / "Makefile").read_text()
    assert re.findall(r"^[A-Z_]+ *\?=", makefile, re.M) == []
    assert "\ninclude $(SETTINGS_MK)\n" in makefile
    # THEN the package reads that same file (importlib.resources, not the checkout)
    assert options.SETTINGS_MK.read_text() == SETTINGS_MK.read_text()
    names = [s.name for s in options.table()]
    assert names == re.findall(r"^([A-Z_]+) \?=", SETTINGS_MK.read_text(), re.M)
    assert {"PLAT", "MB_PYTHON_VERSION", "ANACONDA_TOKEN", "NW_QUIET"} <= set(names)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_no_command_line_unhides_a_secret(tmp_path):
    env = {"VENV": str(VENV_BIN.parent), "PYTHON": sys.executable, "ANACONDA_TOKEN": "s3cr3t"}
    made = make("help", "SECRET_SETTINGS=", tmp_path=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    assert re.search(r"^  ANACONDA_TOKEN +\(set\) ", made.stdout, re.M)
    assert "s3cr3t" not in made.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_help_masks_url_credentials_and_shows_values_as_given(tmp_path):
    # GIVEN a staging URL with a password, a wheelhouse named with awk's & and \1,
    # and a PYTHON that does not exist (help must not need the build interpreter)
    env = {"VENV": str(VENV_BIN.parent), "STAGE_REPOSITORY_URL": "https://u:pw0rd@127.0.0.1:9/"}
    env |= {"PYTHON": str(tmp_path / "no-such-python")}
    made = make("help", "WHEEL_SDIR=a&b\\1", tmp_path=tmp_path, env=env)
    ours = numpy_wheels("WHEEL_SDIR=a&b\\1", "--help", tmp_path=tmp_path, **env)
    assert made.returncode == 0 and ours.returncode == 0, made.stderr + ours.stderr
    for out in (made.stdout, ours.stdout):
        # THEN the password is masked and the value is shown exactly as given
        assert "pw0rd" not in out
        assert re.search(r"^  STAGE_REPOSITORY_URL +https://\*+@127\.0\.0\.1:9/ ", out, re.M)
        assert re.search(r"^  WHEEL_SDIR +a&b\\1 ", out, re.M)
    assert re.search(r"^  stage +Upload the wheels of a&b\\1/manifest\.sha256 ", made.stdout, re.M)
    version = make("version", tmp_path=tmp_path, env=env)
    assert version.returncode == 0 and "\nnumpy-wheels-toolkit " in version.stdout


def test_make_rebuild_check_goes_through_numpy_wheels(tmp_path):
    # GIVEN no first build in the wheelhouse
    plan = make("-n", "rebuild-check", tmp_path=tmp_path)
    assert plan.returncode == 0 and "numpy-wheels rebuild-check" in plan.stdout
    proc = numpy_wheels(f"WHEEL_SDIR={tmp_path / 'none'}", "rebuild-check", tmp_path=tmp_path)
    # THEN the command says what is missing, under its own name
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        f"rebuild-check: error: no {tmp_path / 'none'}/build-report.json; run `make wheels` first"
    )


def test_verbosity_before_the_command_is_the_commands(tmp_path):
    # GIVEN -q before the command: the command runs quietly (check: its verdict only)
    proc = numpy_wheels("-q", "check", str(tmp_path / "none.whl"), tmp_path=tmp_path)
    assert proc.returncode == 3 and proc.stderr == "", proc.stderr
    assert numpy_wheels("-q", tmp_path=tmp_path).stderr.endswith("no command after -q\n")


def test_every_documented_setting_is_in_the_table(tmp_path):
    from numpy_wheels import options

    # GIVEN the settings the README's tables name (`NAME` in the first column)
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", readme, re.M))
    documented |= set(re.findall(r"^\| `[A-Z_]+`, `([A-Z][A-Z0-9_]+)`", readme, re.M))
    # THEN the table has each one, so help lists it and numpy-wheels takes it
    names = {s.name for s in options.table()}
    assert documented and documented - names == set()
    given, rest = options.split_assignments(["NW_WORK_DIR=/tmp/x", "STAGE_STRICT=1", "build"],
                                            options.table())  # fmt: skip
    assert given == {"NW_WORK_DIR": "/tmp/x", "STAGE_STRICT": "1"} and rest == ["build"]


def test_steps_take_their_defaults_from_the_table(tmp_path):
    from numpy_wheels import options
    from numpy_wheels.build.paths import ROOT as TOOLKIT
    from numpy_wheels.build.settings import Settings

    # GIVEN no setting in the environment, or one set blank
    with pytest.MonkeyPatch.context() as mp:
        for setting in options.table():
            mp.delenv(setting.name, raising=False)
        mp.setenv("REPO_URL", " ")
        mp.setenv("PYTHON", sys.executable)  # an interpreter that is surely there
        settings = Settings.from_env()
    # THEN each value is the table's default, as make help shows it
    made = make("help", f"PYTHON={sys.executable}", tmp_path=tmp_path,
                env={"VENV": str(VENV_BIN.parent)})  # fmt: skip
    shown = dict(re.findall(r"^  ([A-Z_]+) +(\S+)", made.stdout.split("Settings,", 1)[1], re.M))
    assert settings.repo_dir == TOOLKIT / shown["REPO_DIR"]
    assert settings.repo_url == shown["REPO_URL"] == options.default("REPO_URL")
    assert settings.build_commit == shown["BUILD_COMMIT"]
    assert settings.source == shown["SOURCE"]
    assert settings.plat == shown["PLAT"] == platform.machine()
    assert settings.wheel_sdir == TOOLKIT / shown["WHEEL_SDIR"]
    # and nightly builds the table's NIGHTLY_BUILD_COMMIT from git
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("NIGHTLY_BUILD_COMMIT", raising=False)
        mp.setenv("PYTHON", sys.executable)
        nightly = Settings.from_env(nightly=True)
    assert (nightly.build_commit, nightly.source) == (shown["NIGHTLY_BUILD_COMMIT"], "git")


def test_an_empty_build_commit_is_refused_not_defaulted(tmp_path):
    # GIVEN BUILD_COMMIT set empty on the command line (make help shows it (empty))
    env = {"NW_WORK_DIR": str(tmp_path / "work"), "NW_QUIET": "1"}
    proc = numpy_wheels("source", "BUILD_COMMIT=", "SOURCE=git", f"REPO_DIR={tmp_path / 'src'}",
                        tmp_path=tmp_path, **env)  # fmt: skip
    # THEN the step refuses it before any fetch, rather than building the default
    assert proc.returncode == 2
    assert "BUILD_COMMIT is empty: make source BUILD_COMMIT=<ref>" in proc.stderr
    assert not (tmp_path / "src").exists()
