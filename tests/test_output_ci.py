"""Output a release engineer can act on (issues 14.5/14.6, 13.3): -q/-v on every
script through log.py, coloured verdicts on a terminal only, CI annotations and a
GitHub job summary for check_wheel and the uploader, and one of each mechanism."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT, VENV_BIN, clean_env, run_pty
from numpy_wheels.files import human_size
from staging_server import make_wheel

CHECK = [sys.executable, str(ROOT / "scripts" / "check_wheel.py")]
OPENBLAS = [sys.executable, str(ROOT / "scripts" / "openblas_support.py")]
UPLOADER = [sys.executable, str(ROOT / "scripts" / "wheel_uploader.py")]
GREEN, RED, YELLOW, RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[0m"


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*map(str, args)], env=clean_env(tmp_path, **env), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture
def good(tmp_path) -> Path:
    return make_wheel(tmp_path / "in", "tinyproj", "1.0")


@pytest.fixture
def bad(tmp_path) -> Path:
    path = tmp_path / "in" / "broken-1.0-py3-none-any.whl"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not a zip")
    return path


def ci_repo(tmp_path: Path) -> Path:
    """A checkout with every file set-commit rewrites (copied from the toolkit's)."""
    from numpy_wheels.set_commit import TARGETS

    for target in TARGETS:
        dest = tmp_path / "repo" / target.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((ROOT / target.path).read_bytes())
    return tmp_path / "repo"


# ----------------------------------------------------------------- -q and -v


@pytest.mark.parametrize("flag", ["-q", "-v", "--quiet", "--verbose"])
def test_check_wheel_takes_quiet_and_verbose(tmp_path, good, flag):
    proc = run([*CHECK, flag, good], tmp_path)
    assert (proc.returncode, proc.stdout) == (0, f"PASS {good.name}\n"), proc.stderr
    said = f"{good.name}: 0 native files audited for any\n" if "v" in flag else ""
    assert proc.stderr == said


def test_openblas_support_takes_quiet_and_verbose(tmp_path):
    for flag in ("-q", "-v"):
        proc = run([*OPENBLAS, flag, "--plat", "sparc"], tmp_path)
        # the flag is accepted; the bad PLAT is the one error, quiet or not
        assert proc.returncode == 2 and "unrecognized arguments" not in proc.stderr
        assert "sparc" in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr


@pytest.mark.parametrize(
    ("args", "env", "debug"),
    [(["-v"], {}, True), ([], {"NW_VERBOSE": "1"}, True), (["-q"], {}, False),
     (["-v", "-q"], {}, False), ([], {"NW_QUIET": "1", "NW_VERBOSE": "1"}, False), ([], {}, False)],
)  # fmt: skip
def test_set_commit_verbosity_from_flags_and_environment(tmp_path, args, env, debug):
    repo = ci_repo(tmp_path)
    proc = run([VENV_BIN / "numpy-wheels", "set-commit", *args, "--root", repo, "v2.4.7"],
               tmp_path, **env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "appveyor.yml: BUILD_COMMIT " in proc.stdout  # results stay, quiet or not
    said = f"setting BUILD_COMMIT=v2.4.7 under {repo}\n"
    assert proc.stderr == (said if debug else "")


# ------------------------------------------------------------------- colour


def test_check_wheel_verdicts_are_coloured_on_a_terminal_only(tmp_path, good):
    env = clean_env(tmp_path)
    del env["NO_COLOR"]
    shown = run_pty([*CHECK, str(good)], env)
    assert f"{GREEN}PASS{RESET} {good.name}" in shown
    assert "\x1b" not in run([*CHECK, good], tmp_path, NO_COLOR="").stdout  # a pipe: plain
    assert "\x1b" not in run_pty([*CHECK, str(good)], {**env, "NO_COLOR": "1"})
    assert "\x1b" not in run_pty([*CHECK, str(good)], {**env, "CI": "true"})  # as bars are


def test_check_wheel_fail_and_warning_colours(tmp_path, bad, monkeypatch):
    from numpy_wheels.audit.report import WheelReport, format_text

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setattr(sys, "stdout", Terminal())
    failed = WheelReport(bad, bad.name, failures=["RECORD: hash mismatch"])
    warned = WheelReport(bad, "w-1.0-py3-none-any.whl", warnings=["MSVCP140.dll not bundled"])
    text = format_text([failed, warned])
    assert f"{RED}FAIL{RESET} {bad.name}" in text
    assert f"{GREEN}PASS{RESET} w-1.0-py3-none-any.whl" in text
    assert f"  {YELLOW}warning:{RESET} MSVCP140.dll not bundled" in text
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b" not in format_text([failed, warned])


def test_uploader_counts_are_coloured_on_a_terminal(tmp_path, good):
    env = clean_env(tmp_path)
    del env["NO_COLOR"]
    shown = run_pty([*UPLOADER, "--files", "--no-twine", str(good)], env)
    assert f"{GREEN}1 of 1 file ended well{RESET}: " in shown
    plain = run([*UPLOADER, "--files", "--no-twine", good], tmp_path)
    assert plain.stdout.splitlines()[-1].startswith("1 of 1 file ended well: ")
    assert "\x1b" not in plain.stdout


# ------------------------------------------------------- CI annotations, summary


def test_check_wheel_failure_is_a_github_annotation_and_a_summary_row(tmp_path, good, bad):
    summary = tmp_path / "summary.md"
    proc = run([*CHECK, good, bad], tmp_path, GITHUB_ACTIONS="true",
               GITHUB_STEP_SUMMARY=str(summary))  # fmt: skip
    assert proc.returncode == 1
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::")]
    assert errors == [f"::error title=check_wheel.py::FAIL {bad.name}: not a valid zip archive "
                      "(File is not a zip file)"]  # fmt: skip
    text = summary.read_text()
    assert "| wheel | verdict | failures | warnings |" in text
    assert f"| `{good.name}` | PASS | 0 | 0 |" in text
    assert f"| `{bad.name}` | FAIL | 1 | 0 |" in text


def test_check_wheel_failure_on_azure_and_with_json(tmp_path, bad):
    proc = run([*CHECK, bad], tmp_path, TF_BUILD="True")
    assert proc.returncode == 1
    assert f"##vso[task.logissue type=error]FAIL {bad.name}: not a valid zip" in proc.stdout
    # --json: stdout stays one JSON document; the annotation goes to stderr
    proc = run([*CHECK, "--json", bad], tmp_path, GITHUB_ACTIONS="true")
    assert json.loads(proc.stdout)["ok"] is False
    assert proc.stderr.startswith(f"::error title=check_wheel.py::FAIL {bad.name}")
    # off CI: no annotation, no summary file written
    proc = run([*CHECK, bad], tmp_path)
    assert "::error" not in proc.stdout + proc.stderr and "##vso" not in proc.stdout


def test_uploader_writes_the_job_summary(tmp_path, good, bad):
    summary = tmp_path / "summary.md"
    proc = run([*UPLOADER, "--files", "--no-twine", good], tmp_path, GITHUB_ACTIONS="true",
               GITHUB_STEP_SUMMARY=str(summary))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = summary.read_text()
    assert "| file | download | verified | upload |" in text
    assert f"| `{good.name}` | local | ok | - |" in text
    assert "1 of 1 file ended well: " in text
    # a failure: its annotation, and its row says why it stopped
    proc = run([*UPLOADER, "--files", good, bad], tmp_path, GITHUB_ACTIONS="true",
               GITHUB_STEP_SUMMARY=str(summary))  # fmt: skip
    assert proc.returncode != 0
    assert "::error title=wheel-uploader::" in proc.stdout


def test_an_unwritable_job_summary_is_a_warning_not_a_failure(tmp_path, good):
    proc = run([*CHECK, good], tmp_path, GITHUB_STEP_SUMMARY=str(tmp_path / "no" / "dir.md"))
    assert proc.returncode == 0
    assert proc.stderr.startswith("GITHUB_STEP_SUMMARY ") and "cannot append" in proc.stderr


def test_markdown_cells_cannot_break_the_table():
    from numpy_wheels.log import markdown_table

    assert markdown_table(("a", "b"), [("x|y", "1\n2")]) == [
        "| a | b |", "|---|---|", "| x\\|y | 1 2 |"]  # fmt: skip


# ------------------------------------------------------------------ one of each


def _classes() -> Counter[str]:
    names: Counter[str] = Counter()
    for path in (ROOT / "scripts" / "numpy_wheels").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names.update(node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef))
    return names


def test_no_two_classes_share_a_name():
    assert [name for name, n in _classes().items() if n > 1] == []


def test_one_human_size():
    defs = [path.name for path in (ROOT / "scripts" / "numpy_wheels").rglob("*.py")
            if "def human_size(" in path.read_text(encoding="utf-8")]  # fmt: skip
    assert defs == ["files.py"]
    sizes = (0, 512, 6 * 2**10, int(17.24 * 2**20), 3 * 2**30, 5 * 2**40)
    assert [human_size(n) for n in sizes] == [
        "0 B", "512 B", "6.0 KiB", "17.2 MiB", "3.0 GiB", "5120.0 GiB"]  # fmt: skip


def test_uploader_says_one_file_not_one_files(tmp_path, good):
    from staging_server import StagingServer

    with StagingServer([good], package="tinyproj") as staging:
        proc = run([*UPLOADER, "-u", staging.simple_url, "--allow-insecure", "--dry-run", "-w",
                    tmp_path / "wh", "tinyproj", "1.0"], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 file of tinyproj 1.0 at " in proc.stderr and "1 files" not in proc.stderr
