"""The CI definitions, read against each service's semantics: none of the services
is reachable from here, so every rule is checked in the files themselves.

Each CI file is read into the jobs it runs (one per matrix cell): the job's
environment, the `make` command lines of its steps, its test suite, and whether
it uploads to staging.  GitHub's expressions are evaluated for real (a small
evaluator of GitHub's expression language below) in the contexts of a push, a
pull request, a schedule and manual runs; Travis's deploy condition is run by
bash as Travis runs it (`if [[ condition ]]`).  The `make` lines then run: with
`make -n`, and, for the stage step, for real through scripts/stage.sh
(`DRY_RUN=1` for the org/token rule; the real anaconda-client for "is it found").

What only a service can show (its runners' images, its YAML parser's corners,
its artifact store) is left to the comments beside the rules in the CI files.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SETTINGS_MK, clean_env
from github_expressions import GitHubExpression, github_if, github_render, github_str
from numpy_wheels import set_commit
from staging_server import make_wheel

CHECK_JSONSCHEMA = str(Path(sys.executable).parent / "check-jsonschema")
CI_FILES = {
    "Azure": "azure-pipelines.yml",
    "GitHub": ".github/workflows/wheels.yml",
    "Travis": ".travis.yml",
    "AppVeyor": "appveyor.yml",
}
# Every YAML file a service reads (the Azure templates too).
CI_YAML = [*CI_FILES.values(), "azure/posix.yml", "azure/windows.yml"]
# What a CI job may call: the build (release or nightly) and the upload.
CI_TARGETS = {"wheels", "nightly", "stage"}
# A `make` call at a command position: line start, after ; && || then else do,
# with optional VAR=value assignments before it.
MAKE_CALL = re.compile(
    r"(?:^|;|&&|\|\||\bthen\b|\belse\b|\bdo\b)\s*((?:\w+=\S*\s+)*make\s+[^;&|\n]*)", re.M
)
STAGING_ORG, NIGHTLY_ORG = "multibuild-wheels-staging", "scientific-python-nightly-wheels"
STAGING, NIGHTLY = "NUMPY_STAGING_UPLOAD_TOKEN", "NUMPY_NIGHTLY_UPLOAD_TOKEN"
# A PATH like a fresh runner's: the toolkit's venv is not on it.
RUNNER_PATH = "/usr/local/bin:/usr/bin:/bin"

Cell = tuple[str, str, str, str, str]  # OS, PLAT, Python, ENV_VARS_PATH, DOCKER_IMAGE


@dataclass
class Job:
    service: str
    name: str
    os: str
    env: dict[str, str]
    commands: list[str] = field(default_factory=list)  # make calls of every step
    scripts: list[str] = field(default_factory=list)  # shell of every step, in order
    stages: bool = False  # this job's wheels are uploaded to staging

    @property
    def cell(self) -> Cell:
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


def target_of(call: str) -> str:
    return call.split("make", 1)[1].split()[0]


@dataclass(frozen=True)
class GitHubEvent:
    """What starts a workflow run: the event, the ref, and a manual run's input."""

    name: str
    event: str
    ref: str
    commit: str | None = None  # the workflow_dispatch input

    def context(self, matrix: dict | None = None, secrets: dict | None = None) -> dict:
        runner_os = (matrix or {}).get("buildplat", {}).get("os", "Linux")
        return {
            "github": {"event_name": self.event, "ref": self.ref, "workflow": "Wheels"},
            "inputs": {"commit": self.commit} if self.event == "workflow_dispatch" else {},
            "matrix": matrix or {},
            "runner": {"os": runner_os},
            "secrets": secrets or {},
        }

    def runner_env(self) -> dict[str, str]:
        """The variables the runner itself sets in every step."""
        return {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": self.event, "GITHUB_REF": self.ref}


GITHUB_EVENTS = {
    e.name: e
    for e in [
        GitHubEvent("push to main", "push", "refs/heads/main"),
        GitHubEvent("pull request", "pull_request", "refs/pull/7/merge"),
        GitHubEvent("schedule", "schedule", "refs/heads/main"),
        GitHubEvent("manual, BUILD_COMMIT", "workflow_dispatch", "refs/heads/main", ""),
        GitHubEvent("manual, a tag", "workflow_dispatch", "refs/heads/main", "v2.5.0"),
        GitHubEvent("manual, a hash", "workflow_dispatch", "refs/heads/main", "3f2a9c1d"),
        GitHubEvent(
            "manual, a branch", "workflow_dispatch", "refs/heads/main", "maintenance/2.4.x"
        ),
        GitHubEvent("manual run of another branch", "workflow_dispatch", "refs/heads/topic", ""),
        GitHubEvent("manual, hostile input", "workflow_dispatch", "refs/heads/main", "x$(id)`id`"),
        GitHubEvent("manual run of a tag", "workflow_dispatch", "refs/tags/v2.5.0", ""),
    ]
}
PUSH = GITHUB_EVENTS["push to main"]


# ---------------------------------------------------------------------- readers


def _azure_substitute(value, params: dict):
    """``${{ parameters.x }}`` replaced from ``params`` (a whole-value reference keeps its type)."""
    if not isinstance(value, str):
        return value
    whole = re.fullmatch(r"\$\{\{\s*parameters\.(\w+)\s*\}\}", value)
    if whole:
        return params[whole.group(1)]
    return re.sub(r"\$\{\{\s*parameters\.(\w+)\s*\}\}", lambda m: str(params[m.group(1)]), value)


def _azure_defaults(path: str) -> dict:
    return {p["name"]: p.get("default") for p in load(path)["parameters"]}


def azure_job_parameters(call: dict, root_params: dict) -> dict:
    """The parameters azure/posix.yml's job sees for one job of azure-pipelines.yml."""
    params = {k: _azure_substitute(v, root_params) for k, v in call["parameters"].items()}
    if call["template"] == "azure/windows.yml":
        windows = {**_azure_defaults("azure/windows.yml"), **params}
        (inner,) = load("azure/windows.yml")["jobs"]
        params = {k: _azure_substitute(v, windows) for k, v in inner["parameters"].items()}
    return {**_azure_defaults("azure/posix.yml"), **params}


def _azure_scripts(steps: list) -> list[str]:
    """The bash of the steps, conditional insertions (``${{ if }}``) included."""
    scripts = []
    for step in steps:
        if isinstance(step, list):  # ${{ parameters.setupSteps }}, already substituted
            scripts += _azure_scripts(step)
            continue
        if "bash" in step:
            scripts.append(step["bash"])
        for key, inserted in step.items():
            if key.startswith("${{"):
                scripts += _azure_scripts(inserted)
    return scripts


def azure_jobs() -> list[Job]:
    root = load("azure-pipelines.yml")
    root_params = {p["name"]: p.get("default") for p in root.get("parameters", [])}
    (posix_job,) = load("azure/posix.yml")["jobs"]
    jobs = []
    for call in root["jobs"]:
        params = azure_job_parameters(call, root_params)
        steps = [_azure_substitute(step, params) for step in posix_job["steps"]]
        scripts = _azure_scripts(steps)
        commands = [c for s in scripts for c in make_calls(s)]
        if call["template"] == "azure/windows.yml":
            os_name = "Windows"
        else:
            os_name = "macOS" if params["vmImage"].startswith("macOS") else "Linux"
        job_vars = {
            k: str(_azure_substitute(v, params))
            for k, v in posix_job["variables"].items()
            if not k.startswith("${{")
        }
        for python in params["pythons"]:
            env = {k: str(v) for k, v in root["variables"].items()}
            env.update(job_vars)
            env.update({k: str(v) for k, v in params["variables"].items()})
            env["MB_PYTHON_VERSION"] = python
            name = f"{params['name']} py{python}"
            stages = "stage" in map(target_of, commands)
            jobs.append(Job("Azure", name, os_name, env, commands, scripts, stages))
    return jobs


def github_workflow() -> dict:
    return load(".github/workflows/wheels.yml")


def github_cells() -> list[dict]:
    """The build job's matrix, one dict per cell."""
    matrix = github_workflow()["jobs"]["build"]["strategy"]["matrix"]
    return [
        {"python": py, "buildplat": plat} for py in matrix["python"] for plat in matrix["buildplat"]
    ]


def github_steps(job: str, event: GitHubEvent, matrix: dict | None = None, secrets=None):
    """(rendered env, run script) of each run step of ``job`` that runs on ``event``."""
    wf = github_workflow()
    context = event.context(matrix, secrets)
    env = {k: github_render(v, context) for k, v in wf["env"].items()}
    env.update({k: github_render(v, context) for k, v in wf["jobs"][job].get("env", {}).items()})
    env.update(event.runner_env())
    ran = []
    for step in wf["jobs"][job]["steps"]:
        if "run" in step and github_if(step.get("if"), context):
            step_env = {k: github_render(v, context) for k, v in step.get("env", {}).items()}
            ran.append(({**env, **step_env}, step["run"]))
    return ran


def github_jobs() -> list[Job]:
    wf = github_workflow()
    build, stage = wf["jobs"]["build"], wf["jobs"]["stage"]
    stage_runs_make_stage = any(
        "stage" in map(target_of, make_calls(s.get("run", ""))) for s in stage["steps"]
    )
    (download,) = [
        s for s in stage["steps"] if s.get("uses", "").startswith("actions/download-artifact@")
    ]
    jobs = []
    for matrix in github_cells():
        context = PUSH.context(matrix)
        env = {k: str(v) for k, v in wf["env"].items()}
        env.update({k: github_render(v, context) for k, v in build["env"].items()})
        scripts = [step["run"] for step in build["steps"] if "run" in step]
        commands = [c for s in scripts for c in make_calls(s)]
        (upload,) = [
            s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")
        ]
        artifact = github_render(upload["with"]["name"], context)
        stages = stage_runs_make_stage and fnmatch.fnmatchcase(
            artifact, download["with"]["pattern"]
        )
        plat = matrix["buildplat"]
        name = f"{plat['os']} {plat['plat']} py{matrix['python']}"
        jobs.append(Job("GitHub", name, plat["os"], env, commands, scripts, stages))
    return jobs


def _assignments(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def travis_deploy_allowed(condition: str, env: dict[str, str]) -> bool:
    """Travis's deploy condition, run the way Travis runs it: ``if [[ condition ]]``."""
    script = f"if [[ {condition} ]]; then echo yes; else echo no; fi"
    result = subprocess.run(
        ["bash", "-c", script], env={"PATH": RUNNER_PATH, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip() == "yes"


TRAVIS_PUSH = {"TRAVIS_EVENT_TYPE": "push", "TRAVIS_BRANCH": "main", "TRAVIS_PULL_REQUEST": "false"}


def travis_jobs() -> list[Job]:
    travis = load(".travis.yml")
    scripts = list(travis["script"])
    commands = [call for script in scripts for call in make_calls(script)]
    deploys = [
        d for d in travis.get("deploy", []) if "stage" in map(target_of, make_calls(d["script"]))
    ]
    commands += [call for deploy in deploys for call in make_calls(deploy["script"])]
    jobs = []
    for include in travis["jobs"]["include"]:
        env = _assignments(travis["env"]["global"])
        env.update(_assignments(include["env"]))
        stages = any(
            travis_deploy_allowed(d[True]["condition"], {**env, **TRAVIS_PUSH})
            for d in deploys  # YAML 1.1 reads the key `on` as a boolean
        )
        name = f"{include['arch']} py{env['MB_PYTHON_VERSION']}"
        jobs.append(Job("Travis", name, "Linux", env, commands, scripts, stages))
    return jobs


def appveyor_commands(sections=("install", "build_script", "deploy_script")) -> list[str]:
    """The bash of the given sections (lines ``bash -c "..."``)."""
    appveyor = load("appveyor.yml")
    scripts = []
    for section in sections:
        for line in appveyor.get(section) or []:
            inner = re.fullmatch(r'bash -c "(.*)"', line)
            if inner:
                scripts.append(inner.group(1))
    return scripts


def appveyor_jobs() -> list[Job]:
    appveyor = load("appveyor.yml")
    scripts = appveyor_commands()
    commands = [c for s in scripts for c in make_calls(s)]
    stages = "stage" in map(target_of, commands) or isinstance(appveyor.get("deploy"), list)
    jobs = []
    for entry in appveyor["environment"]["matrix"]:
        env = {k: str(v) for k, v in appveyor["environment"]["global"].items()}
        env.update({k: str(v) for k, v in entry.items()})
        name = f"{env['PLAT']} py{env['MB_PYTHON_VERSION']}"
        jobs.append(Job("AppVeyor", name, "Windows", env, commands, scripts, stages))
    return jobs


READERS = {
    "Azure": azure_jobs,
    "GitHub": github_jobs,
    "Travis": travis_jobs,
    "AppVeyor": appveyor_jobs,
}


def all_jobs() -> list[Job]:
    return [job for reader in READERS.values() for job in reader()]


def readme_matrix() -> tuple[dict[str, dict[Cell, str]], dict[Cell, str]]:
    """The README's build matrix: ({service: {cell: suite}}, {cell: who stages it})."""
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
    suites: dict[str, dict[Cell, str]] = {service: {} for service in CI_FILES}
    stagers: dict[Cell, str] = {}
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
                if values[service]:
                    suites[service][cell] = values[service]
            stagers[cell] = values["Staged by"]
    return suites, stagers


# ------------------------------------------------------------ schemas and templates

SCHEMA_ARGS = {
    "Azure": ["--builtin-schema", "vendor.azure-pipelines", "--regex-variant", "python"],
    "GitHub": ["--builtin-schema", "vendor.github-workflows"],
    "Travis": ["--builtin-schema", "vendor.travis"],
    "AppVeyor": ["--schemafile", str(ROOT / "tests" / "schemas" / "appveyor.json")],
}


def as_azure_reads_it(node):
    """Azure's YAML has no typed scalars: `true` and `360` are the strings the schema wants."""
    if isinstance(node, dict):
        return {k: as_azure_reads_it(v) for k, v in node.items()}
    if isinstance(node, list):
        return [as_azure_reads_it(v) for v in node]
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, int | float):
        return str(node)
    return node


def check_schema(service: str, path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    if service == "Azure":
        json_copy = tmp_path / (path.name + ".json")
        json_copy.write_text(json.dumps(as_azure_reads_it(yaml.safe_load(path.read_text()))))
        path = json_copy
    return subprocess.run(
        [CHECK_JSONSCHEMA, *SCHEMA_ARGS[service], str(path)],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
    )


@pytest.mark.parametrize("service", sorted(CI_FILES))
def test_ci_file_validates_against_the_service_schema(service, tmp_path):
    result = check_schema(service, ROOT / CI_FILES[service], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok -- validation done"


def test_schema_validation_catches_a_bad_file(tmp_path):
    # GIVEN a workflow whose job has no runs-on, and our pipeline with a misspelt key
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  build:\n    steps:\n      - run: make wheels\n")
    azure = tmp_path / "bad-azure.yml"
    text = (ROOT / "azure-pipelines.yml").read_text()
    azure.write_text(text.replace("    always: true\n", "    always: true\n    alwayz: true\n"))
    # THEN the validators refuse them (the schema checks above are not vacuous)
    for service, path in (("GitHub", bad), ("Azure", azure)):
        result = check_schema(service, path, tmp_path)
        assert result.returncode == 1, service
        assert "Schema validation errors were encountered" in result.stdout


def test_azure_schedule_always_is_a_boolean():
    (schedule,) = load("azure-pipelines.yml")["schedules"]
    assert schedule["always"] is True  # `true`, as Azure documents it, not the string "true"


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


# ------------------------------------------------------------------- the matrix


def expected_readme_rows() -> list[str]:
    """The README's matrix rows as the CI files define them (to paste when they change)."""
    jobs = all_jobs()
    rows: dict[tuple, dict] = {}
    for job in jobs:
        os_name, plat, python, env_vars, image = job.cell
        row = rows.setdefault((os_name, plat, env_vars, image), {"pythons": [], "stager": set()})
        row.setdefault(job.service, job.env["TEST_LABEL"])
        if python not in row["pythons"]:
            row["pythons"].append(python)
        if job.stages:
            row["stager"].add(job.service)
    lines = []
    for (os_name, plat, env_vars, image), row in rows.items():
        blas = "LP64" if env_vars == "env_vars32.sh" else "ILP64"
        services = " | ".join(row.get(s, "") for s in CI_FILES)
        pythons = ", ".join(sorted(row["pythons"], key=lambda v: tuple(map(int, v.split(".")))))
        stager = ", ".join(sorted(row["stager"]))
        cells = [os_name, plat, pythons, blas, env_vars, image, services, stager]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def test_readme_matrix_is_the_ci_files_matrix():
    # Every service runs exactly the README's cells, with the suite it names there,
    # and the README's "Staged by" is the service whose files upload that cell.
    suites, stagers = readme_matrix()
    expected = "\n".join(expected_readme_rows())
    for service, reader in READERS.items():
        jobs = reader()
        cells = [job.cell for job in jobs]
        assert len(cells) == len(set(cells)), f"{service} runs a cell twice"
        found = {job.cell: job.env["TEST_LABEL"] for job in jobs}
        assert found == suites[service], f"{service}; the README rows should read:\n{expected}"
    stage_found: dict[Cell, list[str]] = {}
    for job in all_jobs():
        if job.stages:
            stage_found.setdefault(job.cell, []).append(job.service)
    assert {cell: ", ".join(s) for cell, s in stage_found.items()} == stagers, expected


def test_each_cell_is_staged_by_exactly_one_service():
    # Two stagers would race (--skip-existing: the first to finish decides the bytes).
    cells: dict[Cell, list[str]] = {}
    for job in all_jobs():
        cells.setdefault(job.cell, [])
        if job.stages:
            cells[job.cell].append(job.service)
    assert {cell: len(services) for cell, services in cells.items()} == dict.fromkeys(cells, 1), (
        cells
    )
    _, stagers = readme_matrix()
    assert set(stagers.values()) <= set(CI_FILES)


def test_readme_matrix_covers_every_supported_python_on_every_platform():
    # NumPy 2.4: Requires-Python >= 3.11; 3.11 .. 3.14 on every platform row.
    pythons_by_plat: dict[tuple[str, str], set[str]] = {}
    for cells in readme_matrix()[0].values():
        for os_name, plat, python, _, _ in cells:
            pythons_by_plat.setdefault((os_name, plat), set()).add(python)
    assert len(pythons_by_plat) == 8
    for plat, pythons in pythons_by_plat.items():
        assert pythons == {"3.11", "3.12", "3.13", "3.14"}, plat


def test_macos_arm64_is_built_where_the_hardware_is_arm64():
    # An arm64 wheel cross-built on an Intel agent cannot be tested there.
    arm = [job for job in all_jobs() if job.os == "macOS" and job.env["PLAT"] == "arm64"]
    assert arm and {job.service for job in arm} == {"GitHub"}
    runners = {
        c["buildplat"]["runner"] for c in github_cells() if c["buildplat"]["plat"] == "arm64"
    }
    assert runners == {"macos-15"}  # GitHub's macos-15 runners are Apple silicon
    intel = {c["buildplat"]["runner"] for c in github_cells() if c["buildplat"]["os"] == "macOS"}
    assert intel - runners == {"macos-15-intel"}


def test_linux_jobs_build_in_the_manylinux_2_28_image_of_their_arch():
    for job in all_jobs():
        if job.os == "Linux":
            plat = job.env["PLAT"]
            assert job.env["DOCKER_IMAGE"] == f"quay.io/pypa/manylinux_2_28_{plat}", job.name
            assert job.env["MB_ML_VER"] == "_2_28", f"{job.service} {job.name}"
        else:
            assert job.env.get("DOCKER_IMAGE", "") == "", f"{job.service} {job.name}"


def test_every_job_builds_a_release_and_a_nightly_with_a_chosen_suite():
    for job in all_jobs():
        targets = set(map(target_of, job.commands))
        assert {"wheels", "nightly"} <= targets, f"{job.service} {job.name}: {targets}"
        assert job.env.get("TEST_LABEL") in ("full", "fast"), f"{job.service} {job.name}"


SUITE_LINE = re.compile(r"^\s*-?\s*(?:TEST_LABEL\s*[:=]|testLabel:)\s*(?P<value>.*)$")


def suite_choices_without_a_reason(text: str) -> list[str]:
    """Lines that choose a suite with no comment beside or right above them."""
    lines = text.splitlines()
    missing = []
    for number, line in enumerate(lines):
        match = SUITE_LINE.match(line)
        if not match or "${{" in match["value"]:  # a template passing its parameter on
            continue
        above = lines[number - 1].strip() if number else ""
        if "#" not in match["value"] and not above.startswith("#"):
            missing.append(line.strip())
    return missing


def test_each_suite_choice_says_why():
    # Slow cells (emulated, or a service's time limit) run the fast suite; the
    # reason is written next to the choice, in the file that makes it.
    for path in CI_YAML:
        assert suite_choices_without_a_reason((ROOT / path).read_text()) == [], path
    assert suite_choices_without_a_reason("env:\n  TEST_LABEL: fast\n") == ["TEST_LABEL: fast"]
    assert suite_choices_without_a_reason("  # 50 minutes\n  - TEST_LABEL=fast\n") == []
    # ... and the choices are the ones the reasons give
    for job in all_jobs():
        slow = job.service in ("Travis", "AppVeyor") or (
            job.service == "Azure" and job.env["PLAT"] == "aarch64"
        )
        assert job.env["TEST_LABEL"] == ("fast" if slow else "full"), f"{job.service} {job.name}"


# ---------------------------------------------------------------- release source


def test_ci_builds_releases_from_git():
    # At release time the sdist reaches the index after the wheels, so SOURCE=auto
    # (sdist for a vX.Y.Z tag) would fail every job; a developer box keeps auto.
    for job in all_jobs():
        assert job.env.get("SOURCE") == "git", f"{job.service} {job.name}"
    assert re.search(r"^SOURCE \?= auto$", SETTINGS_MK.read_text(), re.M)


# ------------------------------------------------- GitHub: what each event runs


def run_with_make_shown(script: str, env: dict[str, str], tmp_path: Path) -> list[list[str]]:
    """Run a step's script in bash with `make` printing its words: [[word, ...], ...]."""
    shim = 'make() { printf "%s\\037" "$@"; printf "\\n"; }\n'
    result = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", shim + script],
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return [line.split("\x1f")[:-1] for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("push to main", ["wheels", "BUILD_COMMIT=v2.4.6"]),
        ("pull request", ["wheels", "BUILD_COMMIT=v2.4.6"]),
        ("schedule", ["nightly"]),
        ("manual, BUILD_COMMIT", ["wheels", "BUILD_COMMIT=v2.4.6"]),
        ("manual, a tag", ["wheels", "BUILD_COMMIT=v2.5.0"]),
        ("manual, a branch", ["wheels", "BUILD_COMMIT=maintenance/2.4.x"]),
        ("manual, hostile input", ["wheels", "BUILD_COMMIT=x$(id)`id`"]),  # data, not code
    ],
)
def test_github_build_step_of_each_event(event, expected, tmp_path):
    # The workflow_dispatch input and the schedule branch, evaluated for real.
    (cell,) = [
        c for c in github_cells() if c["buildplat"]["plat"] == "x86_64" and c["python"] == "3.12"
    ][:1]
    calls = []
    for env, script in github_steps("build", GITHUB_EVENTS[event], cell):
        calls += run_with_make_shown(script, env, tmp_path)
    assert calls == [expected]


def test_no_run_script_interpolates_what_a_user_typed():
    # `${{ inputs.x }}` in a script is pasted into the shell before it runs: an
    # input (or a branch name, a PR title) goes through the environment instead.
    for job in github_workflow()["jobs"].values():
        for step in job["steps"]:
            assert not re.search(r"\$\{\{[^}]*\b(inputs|github\.event)\.", step.get("run", "")), (
                step
            )


def test_github_expression_evaluator():
    ctx = GITHUB_EVENTS["schedule"].context({"buildplat": {"os": "Windows"}})
    ev = lambda text: GitHubExpression(text, ctx).value()  # noqa: E731
    assert ev("github.event_name == 'SCHEDULE'") is True  # strings ignore case
    assert ev("github.event_name == 'schedule' && 'a' || 'b'") == "a"
    assert ev("github.event_name == 'push' && 'a' || 'b'") == "b"
    assert ev("inputs.commit") is None and github_str(ev("inputs.commit")) == ""
    assert ev("startsWith(github.ref, 'refs/heads/')") is True
    assert ev("!(runner.os == 'Windows')") is False
    assert ev("matrix['buildplat'].os") == "Windows"
    assert ev("format('{0}-{1}', 'a', 1)") == "a-1"
    assert ev("1 == '1'") is True and ev("null == 0") is True and ev("'' == false") is True
    with pytest.raises(ValueError):
        GitHubExpression("github.ref ==", ctx).value()


def test_concurrency_group_includes_the_event():
    # A push or a manual run never cancels a pending nightly of the same branch.
    concurrency = github_workflow()["concurrency"]
    groups = {
        name: github_render(concurrency["group"], event.context())
        for name, event in GITHUB_EVENTS.items()
        if event.ref == "refs/heads/main"
    }
    assert len({groups["push to main"], groups["schedule"], groups["manual, BUILD_COMMIT"]}) == 3
    assert "schedule" in groups["schedule"]
    for name, event in GITHUB_EVENTS.items():
        cancel = github_render(concurrency["cancel-in-progress"], event.context())
        assert cancel == ("true" if event.event == "pull_request" else "false"), name


# ------------------------------------------------------------------------ uploads


def github_stage_runs(event: GitHubEvent) -> bool:
    return github_if(github_workflow()["jobs"]["stage"].get("if"), event.context())


def test_uploads_come_only_from_main_or_a_tag_never_a_pull_request():
    # GitHub: the stage job's condition, evaluated in every context
    runs = {name: github_stage_runs(event) for name, event in GITHUB_EVENTS.items()}
    assert runs == {
        name: event.event != "pull_request" and event.ref in ("refs/heads/main", "refs/tags/v2.5.0")
        for name, event in GITHUB_EVENTS.items()
    }
    assert not runs["pull request"] and not runs["manual run of another branch"]
    # Travis: the deploy condition, run by bash as Travis runs it
    travis = load(".travis.yml")
    (deploy,) = travis["deploy"]
    assert deploy[True].get("all_branches") is True  # the condition alone decides
    cases = [
        ({"TRAVIS_BRANCH": "main", "TRAVIS_PULL_REQUEST": "false", "TRAVIS_TAG": ""}, True),
        ({"TRAVIS_BRANCH": "v2.5.0", "TRAVIS_PULL_REQUEST": "false", "TRAVIS_TAG": "v2.5.0"}, True),
        ({"TRAVIS_BRANCH": "topic", "TRAVIS_PULL_REQUEST": "false", "TRAVIS_TAG": ""}, False),
        ({"TRAVIS_BRANCH": "main", "TRAVIS_PULL_REQUEST": "12", "TRAVIS_TAG": ""}, False),
        ({"TRAVIS_BRANCH": "main", "TRAVIS_PULL_REQUEST": "12"}, False),
    ]
    for env, allowed in cases:
        assert travis_deploy_allowed(deploy[True]["condition"], env) is allowed, env
    # Azure and AppVeyor upload nothing (no stage step, no deploy, no upload secret)
    for job in all_jobs():
        if job.service in ("Azure", "AppVeyor"):
            assert not job.stages, f"{job.service} {job.name}"
    appveyor = load("appveyor.yml")
    assert appveyor["deploy"] in (False, "off") and "deploy_script" not in appveyor
    for path in ("azure-pipelines.yml", "azure/posix.yml", "azure/windows.yml", "appveyor.yml"):
        assert "UPLOAD_TOKEN" not in (ROOT / path).read_text(), path


def stage_calls() -> list[tuple[str, str]]:
    """(where, command) of every `make stage` of every CI file."""
    found = []
    for job in all_jobs():
        found += [(f"{job.service} {job.name}", c) for c in job.commands if target_of(c) == "stage"]
    for step in github_workflow()["jobs"]["stage"]["steps"]:
        found += [("GitHub stage", c) for c in make_calls(step.get("run", ""))]
    return found


def test_ci_files_leave_org_and_token_to_the_stage_script():
    # One rule in one place: no CI file picks the org, the nightly flag or the token.
    calls = stage_calls()
    assert {where.split()[0] for where, _ in calls} == {"GitHub", "Travis"}
    for where, call in calls:
        assert not re.search(r"ANACONDA_|NIGHTLY|TOKEN", call), f"{where}: {call}"
    for path in CI_YAML:
        assert "ANACONDA_TOKEN" not in (ROOT / path).read_text(), path
    step = [s for s in github_workflow()["jobs"]["stage"]["steps"] if "run" in s][-1]
    assert step["env"][STAGING] == f"${{{{ secrets.{STAGING} }}}}"
    assert step["env"][NIGHTLY] == f"${{{{ secrets.{NIGHTLY} }}}}"


def write_wheels(dest: Path, *projects: str) -> None:
    """Wheels as `make wheels` leaves them: the files and manifest.sha256 listing them."""
    dest.mkdir(parents=True)
    lines = []
    for project in projects:
        wheel = Path(make_wheel(dest, project, "1.0"))
        lines.append(f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}  {wheel.name}\n")
    (dest / "manifest.sha256").write_text("".join(lines))


@pytest.fixture
def workdir(tmp_path) -> Path:
    """Where a stager's steps run: the toolkit (linked, with its venv), and the wheels
    as the service leaves them (GitHub: one downloaded artifact per cell; Travis: the
    job's own wheelhouse)."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("Makefile", "pyproject.toml", "scripts", ".venv"):
        (work / name).symlink_to(ROOT / name)
    write_wheels(work / "artifacts" / "wheels-Linux-x86_64-py3.12", "tinyproj")
    write_wheels(work / "artifacts" / "wheels-macOS-arm64-py3.12", "otherproj")
    return work


def run_steps(steps: list[tuple[dict, str]], extra: dict, work: Path, tmp_path: Path):
    """Run each step's script with bash as the service would, stopping at a failure."""
    out, err, status = "", "", 0
    for env, script in steps:
        full = clean_env(tmp_path, **env, **extra)
        full["PATH"] = RUNNER_PATH
        proc = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", script],
            cwd=work,
            env=full,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out, err, status = out + proc.stdout, err + proc.stderr, proc.returncode
        if status:
            break
    return subprocess.CompletedProcess(["steps"], status, out, err)


SECRETS = {STAGING: "stg-7c1e-secret", NIGHTLY: "ngt-92ab-secret"}

ORG_CASES = [  # (service, context, secrets given, org, the variable its token comes from)
    ("GitHub", "push to main", SECRETS, STAGING_ORG, STAGING),
    ("GitHub", "schedule", SECRETS, NIGHTLY_ORG, NIGHTLY),
    ("GitHub", "manual, BUILD_COMMIT", SECRETS, STAGING_ORG, STAGING),
    ("GitHub", "manual, a tag", SECRETS, STAGING_ORG, STAGING),
    ("GitHub", "manual, a hash", SECRETS, STAGING_ORG, STAGING),
    ("GitHub", "manual, a branch", SECRETS, NIGHTLY_ORG, NIGHTLY),
    ("GitHub", "manual run of a tag", SECRETS, STAGING_ORG, STAGING),
    ("GitHub", "schedule", {STAGING: SECRETS[STAGING]}, NIGHTLY_ORG, NIGHTLY),
    ("Travis", "push", SECRETS, STAGING_ORG, STAGING),
    ("Travis", "cron", SECRETS, NIGHTLY_ORG, NIGHTLY),
    ("Travis", "cron", {STAGING: SECRETS[STAGING]}, NIGHTLY_ORG, NIGHTLY),
]


def stager_steps(service: str, context: str, secrets: dict, work: Path) -> list[tuple[dict, str]]:
    """(environment, script) of the stager's steps that run in ``context`` (after the build)."""
    if service == "GitHub":
        event = GITHUB_EVENTS[context]
        if not github_stage_runs(event):
            return []
        return github_steps("stage", event, secrets=secrets)
    # Travis: the deploy runs in the job that built, on the wheelhouse it left
    (work / "artifacts" / "wheels-Linux-x86_64-py3.12").rename(work / "wheelhouse")
    travis = load(".travis.yml")
    job = next(j for j in travis_jobs() if j.stages)
    ci = {"TRAVIS_EVENT_TYPE": context, "TRAVIS_BRANCH": "main", "TRAVIS_PULL_REQUEST": "false"}
    env = {**job.env, **ci, **secrets}  # repository settings reach every step
    return [
        (env, deploy["script"])
        for deploy in travis["deploy"]
        if travis_deploy_allowed(deploy[True]["condition"], env)
    ]


@pytest.mark.parametrize(("service", "context", "secrets", "org", "token_var"), ORG_CASES)
def test_org_and_token_follow_one_rule(
    service, context, secrets, org, token_var, workdir, tmp_path
):
    # GIVEN the stager's steps in the environment its service gives them
    steps = stager_steps(service, context, secrets, workdir)
    assert "stage" in [target_of(c) for _, script in steps for c in make_calls(script)]
    # WHEN they run (make stage as a dry run: the decision is printed, nothing is sent)
    proc = run_steps(
        steps, {"DRY_RUN": "1", "STAGE_PROJECT": "tinyproj,otherproj"}, workdir, tmp_path
    )
    out = proc.stdout + proc.stderr
    # THEN the org and the token's variable are the rule's, never the other org's secret
    assert proc.returncode == 0, out
    shown = [line for line in proc.stdout.splitlines() if " anaconda " in f"{line} "]
    assert shown and all(f" -u {org} " in ln and "********" in ln for ln in shown), out
    if token_var in secrets:
        assert f"stage: to {org}, with the token of {token_var}" in proc.stdout.splitlines(), out
    else:  # the org's own secret is missing: skip, never fall back to the other's
        # (a dry run still prints the commands, the token masked)
        assert f"stage: to {org}" in proc.stdout.splitlines(), out
        assert f"{token_var}: none is set); a real run would skip the upload" in proc.stderr, out
    assert not any(value in out for value in SECRETS.values())
    # ... the wheels of every cell, the ones their manifests list
    staged = (workdir / "wheelhouse" / "manifest.sha256").read_text().split()[1::2]
    expected = ["tinyproj-1.0-py3-none-any.whl"]
    if service == "GitHub":
        expected.append("otherproj-1.0-py3-none-any.whl")
    assert sorted(staged) == sorted(expected)
    assert sorted(Path(ln.split()[-1]).name for ln in shown) == sorted(staged)  # one a file


def test_stage_step_finds_the_real_anaconda_client(workdir, tmp_path):
    # GIVEN the stager's steps, on a runner whose PATH lacks the toolkit's venv,
    # with the real anaconda-client that `make setup` installs there, and
    # anaconda.org out of reach (a closed local port as the proxy)
    assert shutil.which("anaconda", path=RUNNER_PATH) is None
    unreachable = "http://127.0.0.1:9"
    proxies = {"HTTPS_PROXY": unreachable, "https_proxy": unreachable, "NO_PROXY": ""}
    for service, context in (("GitHub", "push to main"), ("Travis", "push")):
        for leftover in ("artifacts", "wheelhouse"):
            shutil.rmtree(workdir / leftover, ignore_errors=True)
        write_wheels(workdir / "artifacts" / "wheels-Linux-x86_64-py3.12", "tinyproj")
        steps = stager_steps(service, context, SECRETS, workdir)
        # WHEN they run for real
        proc = run_steps(steps, {**proxies, "STAGE_PROJECT": "tinyproj"}, workdir, tmp_path)
        out = proc.stdout + proc.stderr
        # THEN `anaconda` was found and ran (its own error: the API is unreachable),
        # and its failure fails the step
        assert "not on PATH" not in out, out
        assert "Using Anaconda API" in out, out
        assert proc.returncode != 0, out
        # anaconda-client's retry hint repeats its argv: the token must not be in it.
        assert not any(value in out for value in SECRETS.values()), out


def test_every_cells_provenance_record_is_kept_and_merged(workdir, tmp_path):
    from test_stage_provenance import write_record

    # GIVEN each cell's artifact holding the record its build wrote beside the wheels
    for cell in (workdir / "artifacts").iterdir():
        write_record(cell, sorted(cell.glob("*.whl")))
    # WHEN the GitHub stager's steps run (make stage as a dry run)
    steps = stager_steps("GitHub", "push to main", SECRETS, workdir)
    env = {"DRY_RUN": "1", "STAGE_PROJECT": "tinyproj,otherproj"}
    proc = run_steps(steps, env, workdir, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # THEN both cells' records were collected and merged into the staged record
    (record,) = (workdir / "wheelhouse" / "provenance").glob("*.intoto.jsonl")
    assert len(record.read_text().splitlines()) == 2
    assert f"-t file -p tinyproj-provenance -v 1.0 {record.relative_to(workdir)}" in proc.stdout
    # ... which an artifact keeps, as each cell's artifact keeps the record of its build
    stage = github_workflow()["jobs"]["stage"]["steps"]
    (kept,) = [s for s in stage if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert kept["with"]["path"].rstrip("/") == "wheelhouse/provenance"
    assert "cancelled()" in kept["if"]  # kept when the upload itself failed
    (staging,) = [s for s in stage if "stage" in map(target_of, make_calls(s.get("run", "")))]
    assert staging["env"]["STAGE_SIGNING_KEY"] == "${{ secrets.STAGE_SIGNING_KEY }}"
    (built,) = [s for s in github_workflow()["jobs"]["build"]["steps"]
                if s.get("uses", "").startswith("actions/upload-artifact@")]  # fmt: skip
    assert "wheelhouse/build-provenance.intoto.json" in built["with"]["path"].split()
    # Azure keeps the whole wheelhouse; AppVeyor names the record
    (job,) = load("azure/posix.yml")["jobs"]
    steps = [s for s in job["steps"] if isinstance(s, dict)]
    (publish,) = [s for s in steps if s.get("task", "").startswith("PublishPipelineArtifact")]
    assert publish["inputs"]["targetPath"] == "wheelhouse"
    paths = [a["path"] for a in load("appveyor.yml")["artifacts"]]
    assert "wheelhouse\\build-provenance.intoto.json" in paths


# ----------------------------------------------------------------------- artifacts


def test_artifact_names_are_unique_per_cell_and_attempt():
    # Azure: kept even after a failure, so a re-run needs its own name
    (job,) = load("azure/posix.yml")["jobs"]
    steps = [s for s in job["steps"] if isinstance(s, dict)]
    (publish,) = [s for s in steps if s.get("task", "").startswith("PublishPipelineArtifact")]
    name = publish["inputs"]["artifact"]
    for part in ("$(System.PhaseName)", "$(System.JobName)", "$(System.JobAttempt)"):
        assert part in name
    # GitHub: one name per matrix cell; a re-run of a cell replaces its own
    (upload,) = [
        s
        for s in github_workflow()["jobs"]["build"]["steps"]
        if s.get("uses", "").startswith("actions/upload-artifact@")
    ]
    names = [github_render(upload["with"]["name"], PUSH.context(cell)) for cell in github_cells()]
    assert len(set(names)) == len(names) == len(github_cells())
    assert upload["with"]["overwrite"] is True


# ------------------------------------------------------------------- action versions

# The current major of each actions/* action this workflow uses (checked 2026-11:
# checkout v7 and setup-python v7 since mid-2026, upload-artifact v7 and
# download-artifact v8 since March 2026).
CURRENT_ACTIONS = {
    "actions/checkout": 7,
    "actions/setup-python": 7,
    "actions/upload-artifact": 7,
    "actions/download-artifact": 8,
}


def test_actions_are_at_their_current_major():
    uses = [
        step["uses"]
        for job in github_workflow()["jobs"].values()
        for step in job["steps"]
        if "uses" in step
    ]
    assert uses
    for use in uses:
        action, _, ref = use.partition("@")
        assert re.fullmatch(r"v\d+", ref), f"{use}: pin a major tag"
        if action.startswith("actions/"):
            assert action in CURRENT_ACTIONS, f"{use}: look up its current major"
            assert int(ref[1:]) == CURRENT_ACTIONS[action], use


# -------------------------------------------------------------------- AppVeyor


def test_appveyor_runs_its_build_phase_and_no_test_phase():
    appveyor = load("appveyor.yml")
    # `build: false`/`off` would turn off the phase that runs build_script
    assert appveyor.get("build", "on") not in (False, "off")
    assert appveyor["test"] is False
    builds = [target_of(c) for s in appveyor_commands(("build_script",)) for c in make_calls(s)]
    assert builds == ["nightly", "wheels"]


# ----------------------------------------------------- shells and tools on the images


def windows_jobs_prepare_msvc_link(job: Job) -> bool:
    """The job's scripts remove Git's /usr/bin/link.exe before the first `make wheels`."""
    for script in job.scripts:
        if "rm -f /usr/bin/link.exe" in script:
            return True
        if "wheels" in map(target_of, make_calls(script)):
            return False
    return False


def test_windows_jobs_put_msvc_link_ahead_of_git_link():
    windows = [job for job in all_jobs() if job.os == "Windows"]
    assert {job.service for job in windows} == {"Azure", "GitHub", "AppVeyor"}
    for job in windows:
        assert windows_jobs_prepare_msvc_link(job), f"{job.service} {job.name}"
    # GitHub: the step that does it runs on Windows runners only
    (step,) = [
        s for s in github_workflow()["jobs"]["build"]["steps"] if "link.exe" in s.get("run", "")
    ]
    for cell in github_cells():
        assert github_if(step["if"], PUSH.context(cell)) == (cell["buildplat"]["os"] == "Windows")


@pytest.mark.parametrize(
    ("probe", "line"),
    [
        ("pipefail", "false | true"),
        ("errexit", "false; echo went on"),
        ("nounset", "echo $${NW_X}"),
    ],
)
def test_make_recipes_stop_on_errors_even_on_make_3_81(probe, line, tmp_path):
    # macOS's /usr/bin/make (GNU make 3.81) ignores .SHELLFLAGS.  Emulated with this
    # make: no `oneshell` in .FEATURES (what 3.81 reports) and .SHELLFLAGS plain -c.
    mk = tmp_path / "probe.mk"
    mk.write_text(f"probe:\n\t{line}\n")
    base = ["make", "-s", "-f", str(ROOT / "Makefile"), "-f", str(mk), "probe"]

    def run(*overrides: str) -> int:
        env = clean_env(tmp_path)
        return subprocess.run(
            [*base, *overrides], cwd=tmp_path, env=env, capture_output=True
        ).returncode

    assert run() == 2  # this make, with .SHELLFLAGS
    assert run(".FEATURES=", ".SHELLFLAGS=-c") == 2  # make 3.81's view
    # ... and the probe tells: without the 3.81 branch the same recipe passes
    assert run(".SHELLFLAGS=-c") == 0


# Shell that runs on macOS, where /bin/bash is 3.2.
MACOS_SHELL = [
    "config.sh",
    "env_vars.sh",
    "env_vars32.sh",
    "multibuild/common_utils.sh",
    "multibuild/configure_build.sh",
    "multibuild/osx_utils.sh",
    "multibuild/travis_steps.sh",
    "multibuild/travis_osx_steps.sh",
    "scripts/setup.sh",
    "scripts/stage.sh",
]
BASH4_ONLY = {
    r"\b(mapfile|readarray)\b": "mapfile/readarray (bash 4.0)",
    r"\b(declare|local|typeset)\s+-[a-zA-Z]*[Ang]": "declare -A/-n/-g (bash 4.0-4.3)",
    r"\$\{[#!]?\w+(\[[^]]*\])?(,,?|\^\^?)": "case conversion ${x,,} ${x^^} (bash 4.0)",
    r"\$\{\w+(\[[^]]*\])?@[QEPAaUuLK]\}": "${x@Q} transformations (bash 4.4)",
    r"\bcoproc\b": "coproc (bash 4.0)",
    r"\bshopt\s+-s\s+(globstar|lastpipe|autocd|direxpand|checkjobs)": "shopt of bash 4",
    r"\bwait\s+-n\b": "wait -n (bash 4.3)",
    r"\|&|&>>": "|& and &>> (bash 4.0)",
    r";;&|;&\s*$": "case fall-through ;& ;;& (bash 4.0)",
    r"\[\[?\s+-v\s": "-v VAR test (bash 4.2)",
    r"\$\{\w+\[-\d+\]\}": "negative array index (bash 4.3)",
    r"\$\{?(BASHPID|EPOCHSECONDS|EPOCHREALTIME)\b(?!:-)": "BASHPID... with no fallback (4+)",
    r"\{\w+\}[<>]": "{fd}> descriptor allocation (bash 4.1)",
    r"%\([^)]*\)T": "printf %(...)T (bash 4.2)",
}


def bash4_uses(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        found += [
            f"{number}: {what}" for pattern, what in BASH4_ONLY.items() if re.search(pattern, code)
        ]
    return found


def test_shell_run_on_macos_avoids_bash4_features():
    # No bash 3.2 can be had here (no registry ships one), so this reads the
    # code for the bash-4-only features instead; the scripts' behaviour is
    # tested elsewhere under this machine's bash 5.
    for path in MACOS_SHELL:
        assert bash4_uses((ROOT / path).read_text()) == [], path
    sample = 'mapfile -t w < <(ls)\nlocal -A seen\necho "${x,,}"\ncmd |& tee log\n[[ -v X ]]\n'
    assert len(bash4_uses(sample)) == 5


# --------------------------------------------------------------- variable names


def makefile_settings() -> set[str]:
    return set(re.findall(r"^([A-Z][A-Z0-9_]*) \?=", SETTINGS_MK.read_text(), re.M))


def names_the_toolkit_reads() -> set[str]:
    """Environment variables the Makefile, scripts/ and the shell library read."""
    names = makefile_settings()
    for path in [*sorted((ROOT / "scripts").rglob("*.py")), ROOT / "scripts" / "wheel-uploader"]:
        text = path.read_text()
        names |= set(
            re.findall(r"""(?:environ|env)(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""", text)
        )
        names |= set(re.findall(r"""getenv\(\s*["']([A-Z][A-Z0-9_]*)["']""", text))
    shell = [*(ROOT / "scripts").glob("*.sh"), *(ROOT / "multibuild").glob("*.sh")]
    shell += [ROOT / "config.sh", ROOT / "env_vars.sh", ROOT / "env_vars32.sh"]
    for path in shell:
        text = path.read_text()
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
        # and what a function's "Depends on:" comment lists (read through ${!name})
        for block in re.findall(r"Depends on:(.*(?:\n#   .*)*)", text):
            names |= set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", block))
    return names


VAR_NAME = r"[A-Z][A-Z0-9_]*"


def names_set_by(doc) -> set[str]:
    """Variable names a CI file sets: its UPPER_CASE keys (env maps, variables,
    AppVeyor's matrix), Travis's NAME=value items, the NAME=value words of make calls."""
    names: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            names.update(key for key in map(str, node) if re.fullmatch(VAR_NAME, key))
            node = list(node.values())
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str):
            names.update(re.findall(rf"^({VAR_NAME})=", node))
            for call in make_calls(node):
                names.update(re.findall(rf"(?:^|\s)({VAR_NAME})=", call))

    walk(doc)
    return names


def unknown_ci_variables(text: str) -> set[str]:
    """Names a CI file sets that neither the toolkit nor the file itself reads."""
    doc = yaml.safe_load(text)
    used_here = set(
        re.findall(r"\$\{?([A-Z][A-Z0-9_]*)|%([A-Z][A-Z0-9_]*)%|\$\(([A-Z][A-Z0-9_]*)\)", text)
    )
    used_here = {name for group in used_here for name in group if name}
    return names_set_by(doc) - names_the_toolkit_reads() - used_here


def test_every_variable_a_ci_file_sets_is_read_by_someone():
    # `make -n wheels BULD_COMMIT=v1` exits 0: make accepts any variable.  So the
    # names are checked against what the Makefile, scripts/ and multibuild/ read.
    for path in CI_YAML:
        assert unknown_ci_variables((ROOT / path).read_text()) == set(), path
    # ... and a misspelt name is caught, in an env map and on a make line
    workflow = (ROOT / ".github/workflows/wheels.yml").read_text()
    assert unknown_ci_variables(workflow.replace("  BUILD_COMMIT: v2", "  BULD_COMMIT: v2")) == {
        "BULD_COMMIT"
    }
    assert unknown_ci_variables(
        workflow.replace("make nightly", "make nightly TEST_LABLE=full")
    ) == {"TEST_LABLE"}
    travis = (ROOT / ".travis.yml").read_text()
    assert unknown_ci_variables(travis.replace("- SOURCE=git", "- SOURCES=git")) == {"SOURCES"}


# ------------------------------------------------------------------ make dry runs


def run_dry(command: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run a CI command line in bash, with `make` as `make -n -C ROOT` (no side effects)."""
    script = f'make() {{ command make -n -C "{ROOT}" "$@"; }}\n{command}\n'
    full_env = clean_env(tmp_path, **env)
    return subprocess.run(
        ["bash", "-c", script], env=full_env, capture_output=True, text=True, timeout=120
    )


def all_job_commands() -> list[tuple[str, dict[str, str], str]]:
    seen = {}
    for job in all_jobs():
        for command in job.commands:
            seen.setdefault((command, tuple(sorted(job.env.items()))), f"{job.service} {job.name}")
    for env, script in github_steps("stage", PUSH):
        for command in make_calls(script):
            seen.setdefault((command, tuple(sorted(env.items()))), "GitHub stage")
    return [(name, dict(env), command) for (command, env), name in seen.items()]


def test_every_make_call_names_a_ci_target():
    for name, _, command in all_job_commands():
        assert target_of(command) in CI_TARGETS, f"{name}: {command}"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_every_make_call_of_every_job_dry_runs(tmp_path):
    # GIVEN each job's environment and each `make` line of its steps
    failures = []
    for name, env, command in all_job_commands():
        # WHEN the line runs with make -n
        result = run_dry(command, env, tmp_path)
        # THEN make knows the target and plans its recipe
        planned = any(s in result.stdout for s in ("scripts/", "numpy_wheels", "numpy-wheels"))
        if result.returncode != 0 or not planned:
            failures.append(f"{name}: {command}: {result.stderr.strip()[-300:]}")
    assert failures == []


def test_dry_run_catches_an_unknown_target(tmp_path):
    result = run_dry("make wheel", {"PLAT": "x86_64"}, tmp_path)
    # (the .DEFAULT recipe runs under -n too, so a dry run fails as a real one does)
    assert result.returncode == 2
    assert "make: no target 'wheel'; did you mean make wheels?" in result.stderr


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


def test_no_ci_file_prints_a_token():
    for path in CI_YAML:
        text = (ROOT / path).read_text(encoding="utf-8")
        assert not re.search(r"(echo|printf|set -x).*TOKEN", text), path


def build_commits() -> dict[str, str]:
    found = {}
    for target in set_commit.TARGETS:
        text = (ROOT / target.path).read_text(encoding="utf-8")
        _, found[target.path] = set_commit.rewrite(text, target, "probe")
    return found


def test_build_commit_is_the_same_everywhere():
    commits = build_commits()
    assert set(commits) == {*CI_FILES.values(), str(SETTINGS_MK.relative_to(ROOT))}
    assert len(set(commits.values())) == 1, commits
    # ... and every reader sees it as the job's BUILD_COMMIT
    (commit,) = set(commits.values())
    for reader in READERS.values():
        assert {job.env["BUILD_COMMIT"] for job in reader()} == {commit}


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
        check = check_schema(service, checkout / path, tmp_path)
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
    with pytest.raises(set_commit.ConfigurationError) as err:
        set_commit.main(["--root", str(checkout), "--", bad])
    assert str(err.value).startswith(f"COMMIT {bad!r} is not a git tag, branch or hash")
    assert snapshot(checkout) == before


def test_set_commit_checks_every_file_before_writing_any(checkout):
    # GIVEN appveyor.yml with a second BUILD_COMMIT definition
    appveyor = checkout / "appveyor.yml"
    appveyor.write_text(appveyor.read_text() + "# note\n    BUILD_COMMIT: main\n")
    before = snapshot(checkout)
    # WHEN set-commit runs, THEN it names the file and the lines, and writes nothing
    with pytest.raises(set_commit.FatalError) as err:
        set_commit.main(["v9.9.9", "--root", str(checkout)])
    assert str(err.value).startswith("appveyor.yml: expected one BUILD_COMMIT definition, found 2")
    assert snapshot(checkout) == before


def test_set_commit_reports_a_missing_file(checkout):
    (checkout / ".travis.yml").unlink()
    with pytest.raises(set_commit.FatalError) as err:
        set_commit.main(["v9.9.9", "--root", str(checkout)])
    assert str(err.value) == f".travis.yml: file not found under {checkout}"


def test_set_commit_keeps_a_hash_a_string_in_yaml_and_is_idempotent(checkout, capsys):
    # A hash of digits only would load as a number if written bare.
    assert set_commit.main(["1234567", "--root", str(checkout)]) == 0
    assert load_from(checkout, "azure-pipelines.yml")["variables"]["BUILD_COMMIT"] == "1234567"
    assert load_from(checkout, "appveyor.yml")["environment"]["global"]["BUILD_COMMIT"] == "1234567"
    assert load_from(checkout, ".github/workflows/wheels.yml")["env"]["BUILD_COMMIT"] == "1234567"
    assert "- BUILD_COMMIT=1234567\n" in (checkout / ".travis.yml").read_text()
    assert "BUILD_COMMIT ?= 1234567\n" in (checkout / SETTINGS_MK.relative_to(ROOT)).read_text()
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
