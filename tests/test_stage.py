"""`make stage` (scripts/stage.sh): the audit gate, anaconda-client's exact argv
(through a stub `anaconda` on PATH: anaconda.org is unreachable here), the
organisation and token rules, and twine uploads to a real pypiserver."""

from __future__ import annotations

import functools
import hashlib
import re
import shlex
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, clean_env, make
from staging_server import make_wheel

TOKEN = "tok-3f9a-secret"
MASK = "********"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(wheelhouse: Path) -> None:
    """The manifest.sha256 `make test-wheel` leaves: every wheel in the directory."""
    lines = [f"{sha256(w)}  {w.name}\n" for w in sorted(wheelhouse.glob("*.whl"))]
    (wheelhouse / "manifest.sha256").write_text("".join(lines))


@pytest.fixture
def wheelhouse(tmp_path, official_numpy_wheels) -> Path:
    """A real NumPy wheel and a small one, as `make wheels` leaves them."""
    dest = tmp_path / "wheelhouse"
    dest.mkdir()
    shutil.copy(official_numpy_wheels["manylinux_x86_64"], dest)
    make_wheel(dest, "tinyproj", "1.0")
    write_manifest(dest)
    return dest


@pytest.fixture
def stub_anaconda(tmp_path) -> tuple[Path, Path]:
    """An `anaconda` executable that appends its argv (one call a line, shell-quoted)
    to a log and the token it was given in its environment (anaconda-client reads
    ANACONDA_API_TOKEN) to LOG.env.  It answers as anaconda-client does: a file named
    in STUB_STAGED is skipped with its "already exists" line, one in STUB_FAIL fails."""
    bindir, log = tmp_path / "stubbin", tmp_path / "anaconda-argv.txt"
    bindir.mkdir()
    stub = bindir / "anaconda"
    stub.write_text(
        "#!/bin/bash\n"
        f'printf "%q " "$@" >> "{log}"; echo >> "{log}"\n'
        f'printf "%s\\n" "${{ANACONDA_API_TOKEN:-}}" >> "{log}.env"\n'
        "file=${!#}; file=${file##*/}\n"
        'case " ${STUB_FAIL:-} " in *" $file "*) echo "[ERROR] 500 refused" >&2; exit 1 ;; esac\n'
        'case " ${STUB_STAGED:-} " in *" $file "*)\n'
        '  echo "Distribution already exists. Skipping upload."; exit 0 ;; esac\n'
        'echo "Upload complete"\n'
    )
    stub.chmod(0o755)
    return bindir, log


def calls(stub: tuple[Path, Path]) -> list[list[str]]:
    """Each `anaconda` call's argv, in order."""
    if not stub[1].exists():
        return []
    return [shlex.split(line) for line in stub[1].read_text().splitlines()]


def stage(tmp_path: Path, wheelhouse: Path, stub: tuple[Path, Path] | None = None,
          args: tuple[str, ...] | list[str] = (), **env: str):  # fmt: skip
    """Run scripts/stage.sh as the make recipe does, in a clean CI-like environment."""
    env = {"STAGE_PROJECT": "numpy,tinyproj", **env}  # the fixture's two projects
    full = clean_env(tmp_path, WHEEL_SDIR=str(wheelhouse), NW_PYTHON=".venv/bin/python", **env)
    if stub is not None:
        full["PATH"] = f"{stub[0]}:{full['PATH']}"
    return subprocess.run(
        ["bash", "scripts/stage.sh", *args], cwd=ROOT, env=full, capture_output=True, text=True
    )


def wheels(wheelhouse: Path) -> list[str]:
    return [str(p) for p in sorted(wheelhouse.glob("*.whl"))]


@pytest.mark.parametrize(
    ("env", "org"),
    [
        ({"BUILD_COMMIT": "v2.4.6"}, "multibuild-wheels-staging"),
        ({"BUILD_COMMIT": "2.5.0rc1"}, "multibuild-wheels-staging"),
        ({"BUILD_COMMIT": "3f2a9c1d"}, "multibuild-wheels-staging"),
        ({"BUILD_COMMIT": "main"}, "scientific-python-nightly-wheels"),
        ({"BUILD_COMMIT": "maintenance/2.4.x"}, "scientific-python-nightly-wheels"),
        (
            {"BUILD_COMMIT": "v2.4.6", "BUILD_REASON": "Schedule"},
            "scientific-python-nightly-wheels",
        ),
        ({"BUILD_COMMIT": "v2.4.6", "NIGHTLY": "1"}, "scientific-python-nightly-wheels"),
        ({"BUILD_COMMIT": "main", "ANACONDA_ORG": "my-org"}, "my-org"),
    ],
)
def test_anaconda_argv_and_organisation(tmp_path, wheelhouse, stub_anaconda, env, org):
    proc = stage(tmp_path, wheelhouse, stub_anaconda, ANACONDA_TOKEN=TOKEN, **env)
    assert proc.returncode == 0, proc.stderr
    # one call per file, so that each file's outcome is known
    assert calls(stub_anaconda) == [
        ["upload", "--skip-existing", "-u", org, w] for w in wheels(wheelhouse)
    ]
    assert Path(f"{stub_anaconda[1]}.env").read_text() == f"{TOKEN}\n" * 2  # off the argv
    out = proc.stdout.splitlines()
    assert f"stage: to {org}, with the token of ANACONDA_TOKEN" in out
    for w in wheels(wheelhouse):
        assert f"+ ANACONDA_API_TOKEN={MASK} anaconda upload --skip-existing -u {org} {w}" in out
    assert out[-1] == "2 of 2 files ended well: 2 uploaded, 0 already there, 0 failed"
    assert TOKEN not in proc.stdout + proc.stderr


def test_force_and_token_file(tmp_path, wheelhouse, stub_anaconda):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proc = stage(
        tmp_path, wheelhouse, stub_anaconda, ANACONDA_TOKEN_FILE=str(token_file), STAGE_FORCE="1"
    )
    assert proc.returncode == 0, proc.stderr
    assert calls(stub_anaconda)[0][:4] == ["upload", "--force", "-u", "multibuild-wheels-staging"]
    assert Path(f"{stub_anaconda[1]}.env").read_text() == f"{TOKEN}\n" * 2
    assert f"with the token of ANACONDA_TOKEN_FILE={token_file}" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr


def test_make_stage_dry_run_masks_the_token(tmp_path, wheelhouse, stub_anaconda):
    env = {
        "WHEEL_SDIR": str(wheelhouse),
        "ANACONDA_TOKEN": TOKEN,
        "STAGE_PROJECT": "numpy,tinyproj",
    }
    env["PATH"] = f"{stub_anaconda[0]}:{clean_env(tmp_path)['PATH']}"
    proc = make("stage", "DRY_RUN=1", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not stub_anaconda[1].exists()  # nothing run
    for w in wheels(wheelhouse):
        expected = (
            f"+ ANACONDA_API_TOKEN={MASK} anaconda upload --skip-existing "
            f"-u multibuild-wheels-staging {w}"
        )
        assert expected in proc.stdout.splitlines()
    assert TOKEN not in proc.stdout + proc.stderr


def test_counts_already_there_and_a_failure(tmp_path, wheelhouse, stub_anaconda):
    numpy_whl, tiny = wheels(wheelhouse)
    # GIVEN tinyproj already staged: it is counted as such, numpy as uploaded
    proc = stage(tmp_path, wheelhouse, stub_anaconda, ANACONDA_TOKEN=TOKEN,
                 STUB_STAGED=Path(tiny).name)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        "2 of 2 files ended well: 1 uploaded, 1 already there, 0 failed"
    )
    # GIVEN anaconda.org refusing numpy's wheel (on GitHub Actions): the stage stops
    # there, tinyproj is not run, the error is one line and an annotation
    stub_anaconda[1].unlink()
    proc = stage(tmp_path, wheelhouse, stub_anaconda, ANACONDA_TOKEN=TOKEN,
                 STUB_FAIL=Path(numpy_whl).name, GITHUB_ACTIONS="true")  # fmt: skip
    assert proc.returncode == 1
    assert len(calls(stub_anaconda)) == 1
    out = proc.stdout.splitlines()
    assert "0 of 2 files ended well: 0 uploaded, 0 already there, 1 failed, 1 not run" in out
    error = (
        "anaconda upload to multibuild-wheels-staging failed (exit 1) for "
        f"{Path(numpy_whl).name}; its message is above"
    )
    assert proc.stderr.splitlines()[-1] == f"stage: error: {error}"
    assert out[-1] == f"::error title=stage::{error}"
    assert "[ERROR] 500 refused" in proc.stderr  # anaconda-client's own words


@pytest.mark.parametrize(
    ("env", "warning"),
    [
        (
            {},
            "no anaconda.org token (ANACONDA_TOKEN, ANACONDA_TOKEN_FILE, "
            "NUMPY_STAGING_UPLOAD_TOKEN: none is set)",
        ),
        (
            {"ANACONDA_TOKEN": "$(ANACONDA_TOKEN)"},
            "ANACONDA_TOKEN is an unexpanded CI secret ($(...))",
        ),
    ],
)
def test_missing_token_warns_and_skips(tmp_path, wheelhouse, stub_anaconda, env, warning):
    proc = stage(tmp_path, wheelhouse, stub_anaconda, **env)
    assert proc.returncode == 0
    assert proc.stderr.splitlines()[-1] == f"stage: warning: {warning}; skipping the upload"
    # the decision names no token, since none is used
    assert "stage: to multibuild-wheels-staging" in proc.stdout.splitlines()
    assert "with the token" not in proc.stdout
    assert not stub_anaconda[1].exists()
    dry = stage(tmp_path, wheelhouse, stub_anaconda, DRY_RUN="1", **env)
    assert dry.returncode == 0
    assert dry.stderr.splitlines()[-1] == (
        f"stage: warning: {warning}; a real run would skip the upload"
    )
    assert f"+ ANACONDA_API_TOKEN={MASK} anaconda upload" in dry.stdout  # still shown


@pytest.mark.parametrize(
    ("content", "why"), [(None, "No such file or directory"), ("", None), (b"\xff\xfe", None)]
)
def test_a_named_token_file_that_cannot_be_used_stops_first(
    tmp_path, wheelhouse, stub_anaconda, content, why
):
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_bytes(content.encode() if isinstance(content, str) else content)
    proc = stage(tmp_path, wheelhouse, stub_anaconda, ANACONDA_TOKEN_FILE=str(token_file))
    # THEN one line naming the setting, exit 2, before the audit or any upload
    assert proc.returncode == 2
    expected = {
        None: f"ANACONDA_TOKEN_FILE={token_file} cannot be read: {why}",
        "": f"ANACONDA_TOKEN_FILE={token_file} is empty; it must hold the anaconda.org token",
    }.get(content, f"ANACONDA_TOKEN_FILE={token_file} cannot be read: not a text file")
    assert proc.stderr == f"stage: error: {expected}\n"
    assert proc.stdout == ""  # check_wheel.py never ran
    assert not stub_anaconda[1].exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [("DRY_RUN", "yes"), ("STAGE_FORCE", "yes"), ("STAGE_STRICT", "true"), ("NIGHTLY", "true")],
)
def test_a_bad_boolean_is_refused_before_anything_runs(
    tmp_path, wheelhouse, stub_anaconda, name, value
):
    proc = stage(tmp_path, wheelhouse, stub_anaconda, ANACONDA_TOKEN=TOKEN, **{name: value})
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"stage: error: {name}={value!r} is not one of: 0, 1\n"
    assert not stub_anaconda[1].exists()


def test_a_bad_setting_is_an_azure_annotation(tmp_path, wheelhouse, stub_anaconda):
    proc = stage(tmp_path, wheelhouse, stub_anaconda, DRY_RUN="yes", TF_BUILD="True")
    assert (proc.returncode, proc.stdout) == (
        2,
        "##vso[task.logissue type=error]DRY_RUN='yes' is not one of: 0, 1\n",
    )


def test_make_stage_and_make_wheels_refuse_nightly_alike(tmp_path, wheelhouse, stub_anaconda):
    env = {"WHEEL_SDIR": str(wheelhouse), "ANACONDA_TOKEN": TOKEN}
    env["PATH"] = f"{stub_anaconda[0]}:{clean_env(tmp_path)['PATH']}"
    line = "NIGHTLY='true' is not one of: 0, 1"
    staged = make("stage", "DRY_RUN=1", "NIGHTLY=true", tmp_path=tmp_path, env=env)
    assert staged.returncode == 2 and f"stage: error: {line}" in staged.stderr.splitlines()
    assert "stage: to" not in staged.stdout
    built = make("wheels", "NIGHTLY=true", tmp_path=tmp_path, env=env)
    assert built.returncode == 2 and line in built.stderr
    dry = make("stage", "DRY_RUN=yes", tmp_path=tmp_path, env=env)
    assert dry.returncode == 2 and "stage: error: DRY_RUN='yes' is not one of: 0, 1" in dry.stderr
    assert not stub_anaconda[1].exists()


def test_anaconda_client_missing(tmp_path, wheelhouse):
    # (a PATH without the toolkit's venv, where `make setup` installs anaconda-client)
    proc = stage(tmp_path, wheelhouse, ANACONDA_TOKEN=TOKEN, PATH="/usr/local/bin:/usr/bin:/bin")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "stage: error: anaconda-client ('anaconda') is not on PATH; "
        "install it: pip install anaconda-client"
    )
    assert TOKEN not in proc.stdout + proc.stderr


def test_audit_failure_uploads_nothing(tmp_path, wheelhouse, stub_anaconda):
    good = wheelhouse / "tinyproj-1.0-py3-none-any.whl"
    bad = wheelhouse / "tinyproj-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as out:
        for info in src.infolist():  # RECORD no longer matches a member
            data = src.read(info)
            out.writestr(info, data + b"#\n" if info.filename.endswith(".py") else data)
    write_manifest(wheelhouse)
    proc = stage(tmp_path, wheelhouse, stub_anaconda, ANACONDA_TOKEN=TOKEN)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == "stage: error: check_wheel.py failed; nothing uploaded"
    assert not stub_anaconda[1].exists()
    # on GitHub Actions the shell's own errors are annotations too
    github = stage(tmp_path, wheelhouse, stub_anaconda, ANACONDA_TOKEN=TOKEN, GITHUB_ACTIONS="true")
    assert github.returncode == 1
    assert github.stdout.splitlines()[-1] == (
        "::error title=stage::check_wheel.py failed; nothing uploaded"
    )


def test_no_wheels(tmp_path):
    empty = tmp_path / "empty"
    proc = stage(tmp_path, empty, ANACONDA_TOKEN=TOKEN)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"stage: error: no wheels in {empty}/ to stage (set WHEEL_SDIR?)"


def test_make_stage_to_pypiserver_exactly_once(tmp_path, wheelhouse, pypiserver):
    env = {"WHEEL_SDIR": str(wheelhouse), "STAGE_REPOSITORY_URL": pypiserver.url}
    env.update(pypiserver.twine_env())
    proc = make("stage", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert pypiserver.files() == {Path(w).name: sha256(Path(w)) for w in wheels(wheelhouse)}
    assert pypiserver.password not in proc.stdout + proc.stderr

    again = make("stage", tmp_path=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    for w in wheels(wheelhouse):
        assert f"{Path(w).name}: already on {pypiserver.simple_url} (same sha256), skipped" in (
            again.stderr
        )
    twine_ran = re.compile(r"^\+ \S*twine --no-color upload ", re.MULTILINE)
    assert len(twine_ran.findall(proc.stderr)) == len(wheels(wheelhouse))
    assert not twine_ran.search(again.stderr)  # the re-run never started twine


def test_twine_dry_run_masks_url_credentials(tmp_path, wheelhouse, pypiserver):
    url = pypiserver.url.replace("http://", f"http://{pypiserver.username}:{pypiserver.password}@")
    proc = stage(tmp_path, wheelhouse, STAGE_REPOSITORY_URL=url, DRY_RUN="1")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("+ twine")]
    assert lines == [
        f"+ twine --no-color upload --non-interactive --repository-url "
        f"http://127.0.0.1:{pypiserver.port}/ --disable-progress-bar {w}"
        for w in wheels(wheelhouse)
    ]
    assert pypiserver.password not in proc.stdout + proc.stderr
    assert pypiserver.files() == {}


def test_dry_run_to_an_index_that_needs_a_login_to_read(tmp_path, wheelhouse):
    # GIVEN a real pypiserver that wants a login to list or download, and no login
    from conftest import PypiServer

    server = PypiServer(tmp_path / "private", authenticate="list,download,update")
    try:
        proc = stage(tmp_path, wheelhouse, STAGE_REPOSITORY_URL=server.url, DRY_RUN="1")
    finally:
        server.stop()
    # THEN the commands a real run would start are still printed, and it says why
    # it could not tell which files are already there
    assert proc.returncode == 0, proc.stdout + proc.stderr
    twine = [ln for ln in proc.stdout.splitlines() if ln.startswith("+ twine")]
    assert twine == [
        f"+ twine --no-color upload --non-interactive --repository-url {server.url} "
        f"--disable-progress-bar {w}"
        for w in wheels(wheelhouse)
    ]
    assert re.search(r"cannot query \S+ without a login \(HTTP 401\)", proc.stderr), proc.stderr
    assert "2 would be uploaded, 0 already there, 0 failed" in proc.stdout
    assert server.files() == {}


def test_arguments_version_and_verbosity(tmp_path, wheelhouse, stub_anaconda):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    run = functools.partial(stage, tmp_path, wheelhouse, stub_anaconda, ANACONDA_TOKEN=TOKEN)
    # --version and an unknown argument never stage anything
    shown = run(args=["--version"])
    assert (shown.returncode, shown.stdout) == (0, f"stage.sh (numpy-wheels-toolkit) {version}\n")
    typo = run(args=["--dry-run"])
    assert (typo.returncode, typo.stdout) == (2, "")
    assert typo.stderr.splitlines() == [
        "stage.sh: error: unknown argument --dry-run",
        "usage: stage.sh [-h] [--version] [-q | -v]   (settings come from the environment: "
        "see its header)",
    ]
    assert not stub_anaconda[1].exists()
    # -q / NW_QUIET: the commands (the results of a dry run) and nothing else;
    # -v / NW_VERBOSE: each wheel the manifest gave, with what the default prints
    normal = run(DRY_RUN="1")
    commands = [ln for ln in normal.stdout.splitlines() if ln.startswith("+ ANACONDA_API_TOKEN=")]
    assert len(commands) == 2 and "stage: to multibuild-wheels-staging" in normal.stdout
    assert "scripts/check_wheel.py" in normal.stdout
    for quiet in (run(args=["-q"], DRY_RUN="1"), run(DRY_RUN="1", NW_QUIET="1")):
        assert quiet.returncode == 0, quiet.stderr
        assert quiet.stdout.splitlines() == commands
    for verbose in (run(args=["-v"], DRY_RUN="1"), run(DRY_RUN="1", NW_VERBOSE="1")):
        assert verbose.returncode == 0, verbose.stderr
        assert verbose.stdout == normal.stdout
        for w in wheels(wheelhouse):
            assert f"stage: {w} (sha256 as listed)" in verbose.stderr.splitlines()
            assert w not in normal.stderr
    assert not stub_anaconda[1].exists()
