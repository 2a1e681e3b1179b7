"""The CI definitions: valid for their service, the README's matrix, make targets that exist.

Each CI file is read into the jobs it runs (one per matrix cell): the job's
environment and the `make` command lines of its steps.  Those lines are then run
by bash in that environment with `make` replaced by `make -n`, so a typo in a
target or a variable fails here and not on the service.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import set_commit
import yaml
from conftest import ROOT, clean_env

CHECK_JSONSCHEMA = str(Path(sys.executable).parent / "check-jsonschema")
CI_FILES = {
    "Azure": "azure-pipelines.yml",
    "GitHub": ".github/workflows/wheels.yml",
    "Travis": ".travis.yml",
    "AppVeyor": "appveyor.yml",
}
# What a CI job may call: the build (release or nightly) and the upload.
CI_TARGETS = {"wheels", "nightly", "stage"}
# A `make` call at a command position: line start, after ; && || then else do,
# with optional VAR=value assignments before it.
MAKE_CALL = re.compile(
    r"(?:^|;|&&|\|\||\bthen\b|\belse\b|\bdo\b)\s*((?:\w+=\S*\s+)*make\s+[^;&|\n]*)", re.M
)


@dataclass
class Job:
    service: str
    name: str
    os: str
    env: dict[str, str]
    commands: list[str] = field(default_factory=list)

    @property
    def cell(self) -> tuple[str, str, str, str, str]:
        env = self.env
        return (
            self.os,
            env.get("PLAT", ""),
            env.get("MB_PYTHON_VERSION", ""),
            env.get("ENV_VARS_PATH", "env_vars.sh"),
            env.get("DOCKER_IMAGE", ""),
        )


def load(path: str | Path):
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def make_calls(script: str) -> list[str]:
    return [m.group(1).strip() for m in MAKE_CALL.finditer(script)]


# ---------------------------------------------------------------------- readers


def azure_jobs() -> list[Job]:
    root = load("azure-pipelines.yml")
    root_params = {p["name"]: p.get("default") for p in root.get("parameters", [])}
    posix = load("azure/posix.yml")
    windows = load("azure/windows.yml")
    (posix_job,) = posix["jobs"]
    (windows_call,) = windows["jobs"]
    assert windows_call["template"] == "posix.yml"
    static_vars = {k: str(v) for k, v in posix_job["variables"].items() if not k.startswith("${{")}
    commands = _azure_make_calls(posix_job["steps"])
    windows_commands = _azure_make_calls(windows_call["parameters"]["setupSteps"]) + commands
    jobs = []
    for call in root["jobs"]:
        params = call["parameters"]
        pythons = params["pythons"]
        if pythons == "${{ parameters.pythons }}":
            pythons = root_params["pythons"]
        if call["template"] == "azure/windows.yml":
            os_name, job_commands = "Windows", windows_commands
        else:
            assert call["template"] == "azure/posix.yml"
            os_name = "macOS" if params["vmImage"].startswith("macOS") else "Linux"
            job_commands = commands
        for python in pythons:
            env = {k: str(v) for k, v in root["variables"].items()}
            env.update(static_vars)
            env.update({k: str(v) for k, v in params.get("variables", {}).items()})
            env["MB_PYTHON_VERSION"] = python
            jobs.append(Job("Azure", f"{params['name']} py{python}", os_name, env, job_commands))
    return jobs


def _azure_make_calls(steps: list) -> list[str]:
    """The make calls of the bash steps, conditional insertions (``${{ if }}``) included."""
    calls = []
    for step in steps:
        if isinstance(step, str):  # ${{ parameters.setupSteps }}: read from its caller
            continue
        if "bash" in step:
            calls += make_calls(step["bash"])
        for key, inserted in step.items():
            if key.startswith("${{"):
                calls += _azure_make_calls(inserted)
    return calls


def _github_eval(value: str, context: dict[str, str]) -> str:
    """Substitute ``${{ a.b.c }}`` names from ``context``; other expressions become ''."""

    def one(match: re.Match[str]) -> str:
        return context.get(match.group(1).strip(), "")

    return re.sub(r"\$\{\{(.*?)\}\}", one, str(value), flags=re.S)


def github_jobs() -> list[Job]:
    wf = load(".github/workflows/wheels.yml")
    build = wf["jobs"]["build"]
    matrix = build["strategy"]["matrix"]
    jobs = []
    for python in matrix["python"]:
        for plat in matrix["buildplat"]:
            context = {"matrix.python": python}
            context.update({f"matrix.buildplat.{k}": str(v) for k, v in plat.items()})
            env = {k: str(v) for k, v in wf["env"].items()}
            env.update({k: _github_eval(v, context) for k, v in build["env"].items()})
            commands = []
            for step in build["steps"]:
                if "run" in step:
                    step_env = {k: _github_eval(v, context) for k, v in step.get("env", {}).items()}
                    commands += [_with_env(step_env, call) for call in make_calls(step["run"])]
            name = f"{plat['os']} {plat['plat']} py{python}"
            jobs.append(Job("GitHub", name, plat["os"], env, commands))
    return jobs


def _with_env(step_env: dict[str, str], command: str) -> str:
    """``command`` preceded by the step's environment as shell assignments."""
    assignments = " ".join(f"{k}={_shell_quote(v)}" for k, v in step_env.items())
    return f"{assignments} {command}".strip()


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def github_stage_commands() -> tuple[dict[str, str], list[str]]:
    wf = load(".github/workflows/wheels.yml")
    env = {k: str(v) for k, v in wf["env"].items()}
    commands = []
    for step in wf["jobs"]["stage"]["steps"]:
        if "run" in step:
            step_env = {k: _github_eval(v, {}) for k, v in step.get("env", {}).items()}
            commands += [_with_env(step_env, call) for call in make_calls(step["run"])]
    return env, commands


def _assignments(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def travis_jobs() -> list[Job]:
    travis = load(".travis.yml")
    commands = [call for script in travis["script"] for call in make_calls(script)]
    commands += [call for deploy in travis["deploy"] for call in make_calls(deploy["script"])]
    jobs = []
    for include in travis["jobs"]["include"]:
        env = _assignments(travis["env"]["global"])
        env.update(_assignments(include["env"]))
        name = f"{include['arch']} py{env['MB_PYTHON_VERSION']}"
        jobs.append(Job("Travis", name, "Linux", env, commands))
    return jobs


def appveyor_jobs() -> list[Job]:
    appveyor = load("appveyor.yml")
    commands = []
    for section in ("install", "build_script", "deploy_script"):
        for line in appveyor.get(section, []):
            inner = re.fullmatch(r'bash -c "(.*)"', line)
            if inner:
                commands += make_calls(inner.group(1))
    jobs = []
    for entry in appveyor["environment"]["matrix"]:
        env = {k: str(v) for k, v in appveyor["environment"]["global"].items()}
        env.update({k: str(v) for k, v in entry.items()})
        name = f"{env['PLAT']} py{env['MB_PYTHON_VERSION']}"
        jobs.append(Job("AppVeyor", name, "Windows", env, commands))
    return jobs


READERS = {
    "Azure": azure_jobs,
    "GitHub": github_jobs,
    "Travis": travis_jobs,
    "AppVeyor": appveyor_jobs,
}


def readme_matrix() -> dict[str, set[tuple[str, str, str, str, str]]]:
    """The README's build matrix: the cells each service must run."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## CI and releases", 1)[1].split("### Build matrix", 1)[1]
    lines = section.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.split("|")[1:-1]])
    header = rows[0]
    cells: dict[str, set] = {service: set() for service in CI_FILES}
    for row in rows[2:]:
        values = dict(zip(header, row, strict=True))
        blas = "LP64" if values["ENV_VARS_PATH"] == "env_vars32.sh" else "ILP64"
        assert values["OpenBLAS"] == blas, f"README row {row}: OpenBLAS should be {blas}"
        for python in values["Python"].split(", "):
            cell = (
                values["OS"],
                values["PLAT"],
                python,
                values["ENV_VARS_PATH"],
                values["DOCKER_IMAGE"],
            )
            for service in CI_FILES:
                if values[service] == "✔":
                    cells[service].add(cell)
    return cells


# ------------------------------------------------------------------------ tests

SCHEMA_ARGS = {
    "Azure": ["--builtin-schema", "vendor.azure-pipelines", "--regex-variant", "python"],
    "GitHub": ["--builtin-schema", "vendor.github-workflows"],
    "Travis": ["--builtin-schema", "vendor.travis"],
    "AppVeyor": ["--schemafile", str(ROOT / "tests" / "schemas" / "appveyor.json")],
}


@pytest.mark.parametrize("service", sorted(CI_FILES))
def test_ci_file_validates_against_the_service_schema(service, tmp_path):
    # GIVEN the service's schema (vendored in check-jsonschema or in tests/schemas)
    # WHEN the CI file is validated
    result = subprocess.run(
        [CHECK_JSONSCHEMA, *SCHEMA_ARGS[service], str(ROOT / CI_FILES[service])],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
    )
    # THEN it passes
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok -- validation done"


def test_schema_validation_catches_a_bad_file(tmp_path):
    # GIVEN a workflow whose job has no runs-on
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  build:\n    steps:\n      - run: make wheels\n")
    result = subprocess.run(
        [CHECK_JSONSCHEMA, *SCHEMA_ARGS["GitHub"], str(bad)],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
    )
    # THEN the validator refuses it (the schema check above is not vacuous)
    assert result.returncode == 1
    assert "Schema validation errors were encountered" in result.stdout


def template_parameters(path: str) -> tuple[dict[str, dict], set[str]]:
    """(declared parameters by name, names the template references)."""
    text = (ROOT / path).read_text(encoding="utf-8")
    declared = {p["name"]: p for p in yaml.safe_load(text)["parameters"]}
    used = set(re.findall(r"\bparameters\.(\w+)", text))
    return declared, used


@pytest.mark.parametrize("template", ["azure/posix.yml", "azure/windows.yml"])
def test_azure_template_references_only_declared_parameters(template):
    declared, used = template_parameters(template)
    assert used - set(declared) == set(), f"{template} uses undeclared parameters"
    assert set(declared) - used == set(), f"{template} declares unused parameters"


def template_calls() -> list[tuple[str, str, dict]]:
    """(caller, template path, parameters) for every template call."""
    root = load("azure-pipelines.yml")
    calls = [("azure-pipelines.yml", job["template"], job["parameters"]) for job in root["jobs"]]
    for job in load("azure/windows.yml")["jobs"]:
        calls.append(("azure/windows.yml", "azure/" + job["template"], job["parameters"]))
    return calls


def test_azure_template_calls_pass_declared_and_required_parameters():
    for caller, template, params in template_calls():
        declared, _ = template_parameters(template)
        required = {name for name, p in declared.items() if "default" not in p}
        assert set(params) - set(declared) == set(), f"{caller} -> {template}: unknown"
        assert required - set(params) == set(), f"{caller} -> {template}: missing"


@pytest.mark.parametrize("service", sorted(CI_FILES))
def test_ci_matrix_is_the_readme_matrix(service):
    jobs = READERS[service]()
    cells = [job.cell for job in jobs]
    assert len(cells) == len(set(cells)), f"{service} runs a cell twice"
    assert set(cells) == readme_matrix()[service]


def test_readme_matrix_covers_every_supported_python_on_every_platform():
    # NumPy 2.4: Requires-Python >= 3.11; 3.11 .. 3.14 on every platform row.
    pythons_by_plat: dict[tuple[str, str], set[str]] = {}
    for cells in readme_matrix().values():
        for os_name, plat, python, _, _ in cells:
            pythons_by_plat.setdefault((os_name, plat), set()).add(python)
    assert len(pythons_by_plat) == 8
    for plat, pythons in pythons_by_plat.items():
        assert pythons == {"3.11", "3.12", "3.13", "3.14"}, plat


def test_linux_jobs_build_in_the_manylinux_2_28_image_of_their_arch():
    for service, reader in READERS.items():
        for job in reader():
            if job.os == "Linux":
                plat = job.env["PLAT"]
                assert job.env["DOCKER_IMAGE"] == f"quay.io/pypa/manylinux_2_28_{plat}", job.name
                assert job.env["MB_ML_VER"] == "_2_28", f"{service} {job.name}"
            else:
                assert job.env.get("DOCKER_IMAGE", "") == "", f"{service} {job.name}"


def build_commits() -> dict[str, str]:
    found = {}
    for target in set_commit.TARGETS:
        text = (ROOT / target.path).read_text(encoding="utf-8")
        _, found[target.path] = set_commit.rewrite(text, target, "probe")
    return found


def test_build_commit_is_the_same_everywhere():
    commits = build_commits()
    assert set(commits) == {*CI_FILES.values(), "Makefile"}
    assert len(set(commits.values())) == 1, commits
    # ... and every reader sees it as the job's BUILD_COMMIT
    (commit,) = set(commits.values())
    for reader in READERS.values():
        assert {job.env["BUILD_COMMIT"] for job in reader()} == {commit}


def test_every_job_builds_with_the_full_test_label_and_stages():
    for service, reader in READERS.items():
        for job in reader():
            targets = [call.split("make", 1)[1].split()[0] for call in job.commands if call]
            assert job.env.get("TEST_LABEL") == "full", f"{service} {job.name}"
            assert {"wheels", "nightly"} <= set(targets), f"{service} {job.name}: {targets}"
            if service != "GitHub":  # GitHub stages once, in its own job
                assert "stage" in targets, f"{service} {job.name}: {targets}"
    _, stage_commands = github_stage_commands()
    assert [c.split("make", 1)[1].split()[0] for c in stage_commands] == ["stage"]


def run_dry(command: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run a CI command line in bash, with `make` as `make -n -C ROOT` (no side effects)."""
    script = f'make() {{ command make -n -C "{ROOT}" "$@"; }}\n{command}\n'
    full_env = clean_env(tmp_path, **env)
    return subprocess.run(
        ["bash", "-c", script], env=full_env, capture_output=True, text=True, timeout=120
    )


def all_job_commands() -> list[tuple[str, dict[str, str], str]]:
    seen = {}
    for service, reader in READERS.items():
        for job in reader():
            for command in job.commands:
                seen.setdefault((command, tuple(sorted(job.env.items()))), f"{service} {job.name}")
    env, commands = github_stage_commands()
    for command in commands:
        seen.setdefault((command, tuple(sorted(env.items()))), "GitHub stage")
    return [(name, dict(env), command) for (command, env), name in seen.items()]


def test_every_make_call_names_a_ci_target():
    for name, _, command in all_job_commands():
        target = command.split("make", 1)[1].split()[0]
        assert target in CI_TARGETS, f"{name}: {command}"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_every_make_call_of_every_job_dry_runs(tmp_path):
    # GIVEN each job's environment and each `make` line of its steps
    failures = []
    for name, env, command in all_job_commands():
        # WHEN the line runs with make -n
        result = run_dry(command, env, tmp_path)
        # THEN make knows the target and the variables, and plans its recipe
        if result.returncode != 0 or "scripts/" not in result.stdout:
            failures.append(f"{name}: {command}: {result.stderr.strip()[-300:]}")
    assert failures == []


def test_dry_run_catches_an_unknown_target(tmp_path):
    result = run_dry("make wheel", {"PLAT": "x86_64"}, tmp_path)
    assert result.returncode == 2
    assert "No rule to make target 'wheel'" in result.stderr


def test_make_call_extraction():
    script = (
        "command -v make > /dev/null || choco install make --no-progress -y\n"
        'if [ x$A = xTrue ]; then make nightly; else TOKEN="$B" make stage X=1; fi\n'
        'make wheels BUILD_COMMIT="${C:-$D}"\n'
    )
    assert make_calls(script) == [
        "make nightly",
        'TOKEN="$B" make stage X=1',
        'make wheels BUILD_COMMIT="${C:-$D}"',
    ]


# ------------------------------------------------------------------- set-commit

COPIED = [
    "Makefile",
    "pyproject.toml",
    "README.md",
    "scripts",
    "azure",
    ".github",
    *CI_FILES.values(),
]


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the files `make set-commit` reads and writes."""
    copy = tmp_path / "checkout"
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / name)
    return copy


def make_in(copy: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`make -C COPY args` with ROOT's venv, never re-running its setup."""
    venv = ROOT / ".venv"
    cmd = ["make", "-C", str(copy), f"VENV={venv}", "-o", f"{venv}/.installed", *args]
    return subprocess.run(cmd, env=clean_env(tmp_path), capture_output=True, text=True, timeout=120)


def snapshot(tree: Path) -> dict[str, list[str]]:
    return {
        str(p.relative_to(tree)): p.read_bytes().decode("utf-8").splitlines(keepends=True)
        for p in sorted(tree.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_set_commit_changes_build_commit_everywhere_and_nothing_else(checkout, tmp_path):
    # GIVEN a checkout whose files all name the same release commit
    before = snapshot(checkout)
    (old,) = set(build_commits().values())
    # WHEN the release manager sets a new commit
    result = make_in(checkout, "set-commit", "COMMIT=v9.9.9", tmp_path=tmp_path)
    # THEN each target file changed in its one BUILD_COMMIT line, and no other file changed
    assert result.returncode == 0, result.stderr
    after = snapshot(checkout)
    assert set(after) == set(before)
    targets = {target.path for target in set_commit.TARGETS}
    for name in sorted(before):
        if name not in targets:
            assert after[name] == before[name], f"{name} changed"
            continue
        assert len(after[name]) == len(before[name]), name
        changed = [(a, b) for a, b in zip(before[name], after[name], strict=True) if a != b]
        assert len(changed) == 1, f"{name}: {changed}"
        (old_line, new_line) = changed[0]
        assert "BUILD_COMMIT" in old_line
        assert old_line.replace(old, "v9.9.9") == new_line
    reported = [line for line in result.stdout.splitlines() if ": BUILD_COMMIT " in line]
    assert sorted(reported) == sorted(f"{path}: BUILD_COMMIT {old} -> v9.9.9" for path in targets)
    # ... and the CI files still validate
    for service, path in CI_FILES.items():
        check = subprocess.run(
            [CHECK_JSONSCHEMA, *SCHEMA_ARGS[service], str(checkout / path)],
            capture_output=True,
            text=True,
            env=clean_env(tmp_path),
        )
        assert check.returncode == 0, check.stdout


def test_set_commit_without_commit_names_the_variable_and_the_call(checkout, tmp_path):
    before = snapshot(checkout)
    result = make_in(checkout, "set-commit", tmp_path=tmp_path)
    assert result.returncode == 2
    assert (
        "set-commit: error: COMMIT is empty; call it as: make set-commit COMMIT=vX.Y.Z "
        "(a tag, branch or hash)"
    ) in result.stderr.splitlines()
    assert snapshot(checkout) == before


@pytest.mark.parametrize("bad", ["v1 2", "-v1", "a..b", "v1/", "x.lock", 'v1"', "v1;rm"])
def test_set_commit_refuses_what_is_not_a_ref(bad, checkout, capsys):
    before = snapshot(checkout)
    with pytest.raises(set_commit.nwlib.ConfigurationError) as err:
        set_commit.main(["--root", str(checkout), "--", bad])
    assert str(err.value).startswith(f"COMMIT {bad!r} is not a git tag, branch or hash")
    assert snapshot(checkout) == before


def test_set_commit_checks_every_file_before_writing_any(checkout):
    # GIVEN appveyor.yml with a second BUILD_COMMIT definition
    appveyor = checkout / "appveyor.yml"
    appveyor.write_text(appveyor.read_text() + "# note\n    BUILD_COMMIT: main\n")
    before = snapshot(checkout)
    # WHEN set-commit runs, THEN it names the file and the lines, and writes nothing
    with pytest.raises(set_commit.nwlib.FatalError) as err:
        set_commit.main(["v9.9.9", "--root", str(checkout)])
    assert str(err.value).startswith("appveyor.yml: expected one BUILD_COMMIT definition, found 2")
    assert snapshot(checkout) == before


def test_set_commit_reports_a_missing_file(checkout):
    (checkout / ".travis.yml").unlink()
    with pytest.raises(set_commit.nwlib.FatalError) as err:
        set_commit.main(["v9.9.9", "--root", str(checkout)])
    assert str(err.value) == f".travis.yml: file not found under {checkout}"


def test_set_commit_keeps_a_hash_a_string_in_yaml_and_is_idempotent(checkout, capsys):
    # A hash of digits only would load as a number if written bare.
    assert set_commit.main(["1234567", "--root", str(checkout)]) == 0
    assert load_from(checkout, "azure-pipelines.yml")["variables"]["BUILD_COMMIT"] == "1234567"
    assert load_from(checkout, "appveyor.yml")["environment"]["global"]["BUILD_COMMIT"] == "1234567"
    assert load_from(checkout, ".github/workflows/wheels.yml")["env"]["BUILD_COMMIT"] == "1234567"
    assert "- BUILD_COMMIT=1234567\n" in (checkout / ".travis.yml").read_text()
    assert "BUILD_COMMIT ?= 1234567\n" in (checkout / "Makefile").read_text()
    capsys.readouterr()
    # a second run changes nothing and says so
    before = snapshot(checkout)
    assert set_commit.main(["1234567", "--root", str(checkout)]) == 0
    assert snapshot(checkout) == before
    assert "azure-pipelines.yml: BUILD_COMMIT unchanged" in capsys.readouterr().out.splitlines()


def test_set_commit_keeps_crlf_line_endings_and_file_modes(checkout):
    travis = checkout / ".travis.yml"
    travis.write_bytes(travis.read_bytes().replace(b"\n", b"\r\n"))
    travis.chmod(0o640)
    set_commit.main(["v9.9.9", "--root", str(checkout)])
    data = travis.read_bytes()
    assert b"- BUILD_COMMIT=v9.9.9\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")
    assert travis.stat().st_mode & 0o777 == 0o640


def load_from(tree: Path, path: str):
    return yaml.safe_load((tree / path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------- staging

STAGING, NIGHTLY = "NUMPY_STAGING_UPLOAD_TOKEN", "NUMPY_NIGHTLY_UPLOAD_TOKEN"


def stage_steps() -> list[tuple[str, str, str]]:
    """(where, token secret, make call) of every staging upload of every CI file."""
    found = []
    for step in load("azure/posix.yml")["jobs"][0]["steps"]:
        if isinstance(step, dict) and "make stage" in step.get("bash", ""):
            # an explicit mapping: Azure never puts secret variables into a step's env
            secret = re.fullmatch(r"\$\((\w+)\)", step["env"]["ANACONDA_TOKEN"]).group(1)
            schedule = "eq(variables['Build.Reason'], 'Schedule')" in step["condition"]
            found.append((f"Azure schedule={schedule}", secret, step["bash"]))
    for deploy in load(".travis.yml")["deploy"]:
        secret = re.search(r'ANACONDA_TOKEN="\$\{(\w+):-\}"', deploy["script"]).group(1)
        on = deploy[True]  # YAML 1.1 reads the key `on` as a boolean
        cron = on["condition"] == "$TRAVIS_EVENT_TYPE = cron"
        found.append((f"Travis schedule={cron}", secret, deploy["script"]))
    (line,) = load("appveyor.yml")["deploy_script"]
    scheduled, other = re.fullmatch(r'bash -c "if .*?; then (.*); else (.*); fi"', line).groups()
    for schedule, call in ((True, scheduled), (False, other)):
        secret = re.match(r"ANACONDA_TOKEN=\$(\w+) ", call).group(1)
        found.append((f"AppVeyor schedule={schedule}", secret, call))
    return found


def test_each_upload_takes_the_token_of_its_org():
    steps = stage_steps()
    assert len(steps) == 6
    for where, secret, call in steps:
        nightly = where.endswith("schedule=True")
        assert secret == (NIGHTLY if nightly else STAGING), where
        assert ("NIGHTLY=1" in call) == nightly, where
    # GitHub: one upload job, token and org chosen by the same event test
    env = load(".github/workflows/wheels.yml")["jobs"]["stage"]["steps"][-1]["env"]
    schedule = "github.event_name == 'schedule'"
    assert env["ANACONDA_TOKEN"].startswith(f"${{{{ {schedule} && secrets.{NIGHTLY}")
    assert env["ANACONDA_TOKEN"].rstrip("} ").endswith(f"|| secrets.{STAGING}")
    assert env["NIGHTLY"] == f"${{{{ {schedule} && '1' || '0' }}}}"


def test_no_ci_file_prints_a_token():
    for path in [*CI_FILES.values(), "azure/posix.yml", "azure/windows.yml"]:
        text = (ROOT / path).read_text(encoding="utf-8")
        assert not re.search(r"(echo|printf|set -x).*TOKEN", text), path
