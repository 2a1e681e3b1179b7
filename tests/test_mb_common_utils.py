"""multibuild/common_utils.sh: every function, each test in a fresh bash."""

from __future__ import annotations

import concurrent.futures
import os
import shlex
import signal
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, clean_env

MB = ROOT / "multibuild"


def src(*files: str) -> str:
    return "; ".join(f"source {shlex.quote(str(MB / f))}" for f in files)


def run(bash, body: str, *, files=("common_utils.sh",), **kw) -> subprocess.CompletedProcess:
    return bash(f"{src(*files)}\n{body}", **kw)


# ------------------------------------------------------------------ version helpers


@pytest.mark.parametrize(
    ("ver", "out"),
    [
        ("2", "002000000"),
        ("2.1", "002001000"),
        ("2.1.4", "002001004"),
        ("2.1.4rc1", "002001004"),
        ("3.12.7", "003012007"),
        ("1.2.3.4", "001002003"),
        ("010.2", "010002000"),
        ("999.999.999", "999999999"),
    ],
)
def test_lex_ver(bash, ver, out):
    r = run(bash, f"lex_ver {ver}")
    assert (r.returncode, r.stdout, r.stderr) == (0, out + "\n", "")


@pytest.mark.parametrize(
    ("ver", "part"), [("1.1000", "1000"), ("1000", "1000"), ("2.3.4567rc1", "4567rc1")]
)
def test_lex_ver_component_over_999_is_an_error(bash, ver, part):
    r = run(bash, f"lex_ver {ver}")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == f"lex_ver: component '{part}' of '{ver}' is over 999\n"


@pytest.mark.parametrize(
    ("lex", "out"),
    [
        ("002000000", "2.0.0"),
        ("003002012", "3.2.12"),
        ("003044099", "3.44.99"),  # not octal
        ("003543012", "3.543.12"),
        ("003543012abc", "3.543.12"),
    ],
)
def test_unlex_ver(bash, lex, out):
    r = run(bash, f"unlex_ver {lex}")
    assert (r.returncode, r.stdout) == (0, out + "\n")


def test_unlex_ver_rejects_non_lex(bash):
    r = run(bash, "unlex_ver 1.2.3")
    assert (r.returncode, r.stderr) == (1, "unlex_ver: '1.2.3' is not a lex_ver string\n")


@pytest.mark.parametrize(
    ("ver", "out"), [("3.4.0rc1", "3.4.0"), ("3.24.12a4", "3.24.12"), ("3", "3.0.0")]
)
def test_strip_ver_suffix(bash, ver, out):
    r = run(bash, f"strip_ver_suffix {ver}")
    assert (r.returncode, r.stdout) == (0, out + "\n")


def test_strip_ver_suffix_propagates_lex_error(bash):
    r = run(bash, "strip_ver_suffix 1.1000.0 || echo failed=$?")
    assert r.stdout == "failed=1\n"
    assert "over 999" in r.stderr


# ------------------------------------------------------------------ is_function, options


def test_is_function_prints_true_or_nothing(bash, tmp_path):
    (tmp_path / "testfile").write_text("")
    r = run(
        bash,
        "rmfile() { rm testfile; }\nbar=baz\nset +e\n"
        'echo "[$(is_function abspath)]"\necho "[$(is_function foo)]"\n'
        'echo "[$(is_function bar)]"\necho "[$(is_function rmfile)]"\n'
        "is_function nope; echo status=$?\n",
        cwd=tmp_path,
    )
    assert r.stdout == "[true]\n[]\n[]\n[true]\nstatus=1\n"
    assert (tmp_path / "testfile").exists(), "is_function must not run the function"


def test_sourcing_turns_on_errexit_and_sets_variables(bash):
    r = bash(
        "source multibuild/common_utils.sh\n"
        'case "$-" in *e*) echo errexit;; esac\n'
        'echo "$MULTIBUILD_DIR|$UNICODE_WIDTH|$MB_ML_VER|$NW_ML_VER_GIVEN|$IS_MACOS"\n'
        "source multibuild/common_utils.sh; echo sourced-twice"
    )
    assert r.stdout == "errexit\nmultibuild|32|2014||\nsourced-twice\n"


def test_mb_ml_ver_given_by_caller_is_remembered(bash):
    r = bash(
        'source multibuild/common_utils.sh\necho "$MB_ML_VER|$NW_ML_VER_GIVEN"',
        env={"MB_ML_VER": "_2_28"},
    )
    assert r.stdout == "_2_28|1\n"


def test_musllinux_default(bash):
    r = bash(
        'source multibuild/common_utils.sh; echo "$MB_ML_VER|$IS_ALPINE"',
        env={"MB_ML_LIBC": "musllinux"},
    )
    assert r.stdout == "_1_2|1\n"


def test_set_opts_restores_options(bash):
    r = run(bash, 'set +e +x\nopts=$-\nset -e -x\nset_opts "$opts"\necho "$-"')
    assert "e" not in r.stdout.strip() and "x" not in r.stdout.strip()
    r = run(bash, 'set -e\nopts=$-\nset +e\nset_opts "$opts"\necho "$-"')
    assert "e" in r.stdout.strip()


# ------------------------------------------------------------------ suppress & friends

CMDS = """
bad_cmd() { echo bad; return 1; }
bad_mid_cmd() { echo ok for now; false; echo should be bad now; return 0; }
good_cmd() { echo good; return 0; }
"""


@pytest.mark.parametrize(
    ("errexit", "cmd", "out"),
    [
        ("+e", "bad_cmd", "Running bad_cmd\nbad"),
        ("+e", "good_cmd", "Running good_cmd"),
        ("+e", "bad_mid_cmd", "Running bad_mid_cmd"),
        ("-e", "bad_cmd", "Running bad_cmd\nbad"),
        ("-e", "good_cmd", "Running good_cmd"),
        ("-e", "bad_mid_cmd", "Running bad_mid_cmd\nok for now"),
    ],
)
def test_suppress_table(bash, tmp_path, errexit, cmd, out):
    r = run(
        bash,
        f'{CMDS}\nset +e\nactual="$(set {errexit}; suppress {cmd})"\nprintf "%s" "$actual"',
        cwd=tmp_path,
    )
    assert r.stdout == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"], "no temp files left"


def test_suppress_status_options_and_no_leaked_globals(bash, tmp_path):
    r = run(
        bash,
        f"{CMDS}\nset -e\nsuppress bad_cmd || echo status=$?\n"
        'case "$-" in *e*) echo still-e;; esac\n'
        'echo "leaks:${ret-}${errexit-}${status-}${tmp-}"',
        cwd=tmp_path,
    )
    assert r.stdout == "Running bad_cmd\nbad\nstatus=1\nstill-e\nleaks:\n"


def test_suppress_without_command(bash):
    r = run(bash, "suppress || echo status=$?")
    assert (r.stdout, r.stderr) == ("status=1\n", "suppress: no command given\n")


@pytest.mark.parametrize(
    ("call", "status"),
    [
        ("expect_return 0 true", 0),
        ("expect_return 3 bash -c 'exit 3'", 0),
        ("expect_return 1 true", 1),
        ("expect_return 0 bash -c 'exit 4'", 4),
        ("expect_return 5 bash -c 'exit 4'", 4),
    ],
)
def test_expect_return(bash, call, status):
    r = run(bash, f"set +e\n{call}\necho status=$?")
    assert r.stdout.endswith(f"status={status}\n")


def test_expect_return_needs_two_args(bash):
    r = run(bash, "set +e; expect_return 0; echo status=$?")
    assert (r.stdout, r.stderr) == ("status=1\n", "Must have at least 2 arguments\n")


def test_cmd_notexit_keeps_going_and_leaks_nothing(bash):
    r = run(
        bash,
        "set -e\ncmd_notexit bash -c 'exit 7' || echo status=$?\n"
        'case "$-" in *e*) echo still-e;; esac\necho "[${errexit_set-}${retval-}]"\n'
        "cmd_notexit || echo none=$?",
    )
    assert r.stdout == "status=7\nstill-e\n[]\nnone=1\n"
    assert r.stderr == "no command\n"


# ------------------------------------------------------------------ paths


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("abspath foo", "{cwd}/foo"),
        ("abspath foo/bar", "{cwd}/foo/bar"),
        ("abspath /foo", "/foo"),
        ("relpath {cwd}/foo", "foo"),
        ("relpath foo/bar foo", "bar"),
        ("realpath /foo", "/foo"),
    ],
)
def test_path_helpers(bash, tmp_path, call, expected):
    r = run(bash, call.format(cwd=tmp_path), cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, expected.format(cwd=tmp_path) + "\n")


def test_paths_with_quotes_and_spaces(bash, tmp_path):
    odd = tmp_path / 'it\'s a "dir"'
    odd.mkdir()
    (odd / "link").symlink_to(odd)
    q = shlex.quote(str(odd))
    r = run(
        bash,
        f"abspath {q}/x\nrelpath {q}/x/y {q}\nrealpath {q}/link",
        cwd=tmp_path,
    )
    assert r.stdout == f"{odd}/x\nx/y\n{odd}\n"


def test_realpath_resolves_symlinks_abspath_does_not(bash, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "ln").symlink_to(tmp_path / "real")
    r = run(bash, "abspath ln; realpath ln", cwd=tmp_path)
    assert r.stdout == f"{tmp_path}/ln\n{tmp_path}/real\n"


def test_any_python(bash, tmp_path):
    r = run(bash, "any_python")
    assert r.stdout == "python3\n"
    r = run(bash, "any_python", env={"PYTHON_EXE": "python3.11"})
    assert r.stdout == "python3.11\n"
    r = bash(
        f"{src('common_utils.sh')}\nPATH=/nonexistent\nany_python || echo status=$?",
    )
    assert (r.stdout, r.stderr) == ("status=1\n", "Could not find python or python3\n")


def test_os_and_platform(bash):
    r = run(bash, "get_os; get_platform; PYTHON_EXE=python3 get_distutils_platform")
    assert r.stdout == f"Linux\n{os.uname().machine}\nlinux-{os.uname().machine}\n"


def test_python_checks(bash):
    r = run(bash, "set +e; check_python; echo s=$?; check_pip; echo s=$?; get_py_mm; echo s=$?")
    assert r.stdout == "s=1\ns=1\ns=1\n"
    assert r.stderr == (
        "PYTHON_EXE variable not defined\nPIP_CMD variable not defined\n"
        "PYTHON_EXE variable not defined\n"
    )
    r = run(bash, "PYTHON_EXE=python3.11 get_py_mm; PIP_CMD=pip check_pip && echo ok")
    assert r.stdout == "3.11\nok\n"


@pytest.mark.parametrize(
    ("args", "out"),
    [
        ("3.7", "/opt/python/cp37-cp37m"),
        ("3.8", "/opt/python/cp38-cp38"),
        ("3.12", "/opt/python/cp312-cp312"),
        ("3.13.1", "/opt/python/cp313-cp313"),
        ("2.7", "/opt/python/cp27-cp27mu"),
        ("2.7 16", "/opt/python/cp27-cp27m"),
        ("2.7 u", "/opt/python/cp27-cp27mu"),
        ("", "/opt/python/cp27-cp27mu"),
    ],
)
def test_cpython_path(bash, args, out):
    r = run(bash, f"cpython_path {args}")
    assert (r.returncode, r.stdout) == (0, out + "\n")


def test_cpython_path_bad_width(bash):
    r = run(bash, "set +e; cpython_path 2.7 8; echo s=$?")
    assert (r.stdout, r.stderr) == ("s=1\n", "Incorrect u_width value 8\n")


# ------------------------------------------------------------------ dirs and archives


def test_rm_mkdir(bash, tmp_path):
    r = run(
        bash,
        "rm_mkdir tmp_dir; touch tmp_dir/afile; rm_mkdir tmp_dir; ls -A tmp_dir; echo done\n"
        "rm_mkdir '' || echo status=$?",
        cwd=tmp_path,
    )
    assert r.stdout == "done\nstatus=1\n"
    assert r.stderr == "Need not-empty path\n"


def _make_archives(d):
    src_dir = d / "src"
    (src_dir / "pkg-1.0").mkdir(parents=True)
    (src_dir / "pkg-1.0" / "file.txt").write_text("hello\n")
    made = {}
    for ext, mode in [("tar", "w"), ("tar.gz", "w:gz"), ("tgz", "w:gz"), ("tar.bz2", "w:bz2")]:
        p = d / f"pkg.{ext}"
        with tarfile.open(p, mode) as tf:
            tf.add(src_dir / "pkg-1.0", arcname="pkg-1.0")
        made[ext] = p
    p = d / "pkg.tar.xz"
    with tarfile.open(p, "w:xz") as tf:
        tf.add(src_dir / "pkg-1.0", arcname="pkg-1.0")
    made["tar.xz"] = p
    p = d / "pkg.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.write(src_dir / "pkg-1.0" / "file.txt", "pkg-1.0/file.txt")
    made["zip"] = p
    return made


@pytest.mark.parametrize("ext", ["tar", "tar.gz", "tgz", "tar.bz2", "tar.xz", "zip"])
def test_untar(bash, tmp_path, ext):
    archive = _make_archives(tmp_path)[ext]
    out = tmp_path / "out"
    out.mkdir()
    r = run(bash, f"untar {shlex.quote(str(archive))}", cwd=out)
    assert r.returncode == 0, r.stderr
    assert (out / "pkg-1.0" / "file.txt").read_text() == "hello\n"


def test_untar_unknown_extension(bash, tmp_path):
    r = run(bash, "set +e; untar foo.rar; echo s=$?", cwd=tmp_path)
    assert (r.stdout, r.stderr) == ("s=1\n", "Did not recognize extension of 'foo.rar'\n")


def test_fetch_unpack_from_archive_dir(bash, tmp_path):
    # GIVEN an archive already in ARCHIVE_SDIR (no download needed)
    archive = _make_archives(tmp_path)["tar.gz"]
    work = tmp_path / "work"
    (work / "archives").mkdir(parents=True)
    (work / "archives" / "pkg-1.0.tar.gz").write_bytes(archive.read_bytes())
    (work / "pkg-1.0").mkdir()
    (work / "pkg-1.0" / "stale").write_text("old")
    # WHEN fetch_unpack is asked for it by URL
    r = run(bash, 'd=$(fetch_unpack http://127.0.0.1:9/pkg-1.0.tar.gz); echo "dir=$d"', cwd=work)
    # THEN it prints the top-level name and replaces the old tree; no temp dirs remain
    assert (r.returncode, r.stdout) == (0, "dir=pkg-1.0\n"), r.stderr
    assert sorted(p.name for p in (work / "pkg-1.0").iterdir()) == ["file.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("nw-")]


def test_fetch_unpack_download_failure_leaves_nothing(bash, tmp_path):
    r = run(bash, "set +e; fetch_unpack http://127.0.0.1:9/x.tar.gz; echo s=$?", cwd=tmp_path)
    assert r.stdout == "s=1\n"
    assert r.stderr.endswith("download failed: http://127.0.0.1:9/x.tar.gz\n")
    assert list((tmp_path / "archives").iterdir()) == []


# ------------------------------------------------------------------ pypy and versions


@pytest.mark.parametrize(
    ("ver", "out"),
    [("7", "7.3.12"), ("7.3", "7.3.12"), ("7.2", "7.2.0"), ("5", "5.10.0"), ("6", "6.0.0"),
     ("7.3.8", "7.3.8"), ("9", "9")],
)  # fmt: skip
def test_fill_pypy_ver(bash, ver, out):
    r = run(bash, f"fill_pypy_ver {ver}")
    assert r.stdout == out + "\n"


def test_unroll_version_custom_prefix(bash):
    r = run(bash, "MY_1=1.2; MY_1p2=1.2.9; unroll_version MY 1; unroll_version MY 2.0")
    assert r.stdout == "1.2.9\n2.0\n"


@pytest.mark.parametrize(
    ("ver", "out"),
    [
        ("pypy3.8-7.3.8", "pypy3.8-v"),
        ("pypy3.10-7.3.12", "pypy3.10-v"),
        ("7.3.1", "pypy2.7-v"),
        ("6.0.0", "pypy2-v"),
        ("5.3.1", "pypy2-v"),
        ("5.1.1", "pypy-"),
    ],
)
def test_get_pypy_build_prefix(bash, ver, out):
    r = run(bash, f"get_pypy_build_prefix {ver}")
    assert r.stdout == out + "\n"


def test_get_pypy_build_prefix_bad(bash):
    r = run(bash, "set +e; get_pypy_build_prefix foo; echo s=$?")
    assert (r.stdout, r.stderr) == ("s=1\n", "error: expected version number, got 'foo'\n")


def test_install_pypy_bad_plat(bash, tmp_path):
    r = run(bash, "set +e; PLAT=sparc install_pypy 7.3; echo s=$?", cwd=tmp_path)
    assert (r.stdout, r.stderr) == ("s=1\n", "install_pypy: unexpected platform 'sparc'\n")


# ------------------------------------------------------------------ retry, spinner, pip_opts


def test_retry(bash, tmp_path):
    r = run(
        bash,
        "n=0; flaky() { n=$((n+1)); [ $n -ge 3 ]; }\nretry flaky; echo tries=$n\n"
        "set +e; retry false; echo s=$?",
        env={"NW_RETRY_DELAY": "0"},
    )
    assert r.stdout == "tries=3\ns=1\n"
    assert r.stderr == "Retry failed [5]: false\n"


def test_spinner_start_stop(bash):
    r = run(
        bash,
        'start_spinner; pid=$MB_SPINNER_PID; start_spinner; [ "$pid" = "$MB_SPINNER_PID" ]\n'
        'stop_spinner; echo "[${MB_SPINNER_PID-unset}]"; stop_spinner\n'
        'for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done\n'
        'kill -0 "$pid" 2>/dev/null && echo alive || echo gone',
        timeout=30,
    )
    assert r.stdout == "[unset]\ngone\n"
    assert r.stderr == "Building libraries...\nBuilding libraries finished.\n"


def test_spinner_prints_and_dies_with_its_shell(tmp_path):
    # GIVEN a shell that started the spinner (1 s interval) and waits on its stdin
    proc = subprocess.Popen(
        ["bash", "-c", f"{src('common_utils.sh')}\n"
         'NW_SPINNER_INTERVAL=1 start_spinner; echo "$MB_SPINNER_PID"; read -r _ || true'],
        env=clean_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    spinner = int(proc.stdout.readline())
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        # WHEN its first "Still building..." has come (stderr is read line by line,
        # so no fixed wait races the interval) and the shell then exits
        lines = [pool.submit(proc.stderr.readline).result(timeout=30) for _ in range(2)]
        assert lines == ["Building libraries...\n", "Still building...\n"]
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        # THEN the spinner ends with it: it was the last holder of the stderr pipe,
        # so the pipe reaches EOF, and its process is gone
        rest = pool.submit(proc.stderr.read).result(timeout=30)
        assert set(rest.splitlines()) <= {"Still building..."}
        deadline = time.monotonic() + 10  # closing its files is the first step of its exit
        while time.monotonic() < deadline and _running(spinner):
            time.sleep(0.05)
        assert not _running(spinner)
    finally:
        if _running(spinner):  # a broken spinner: do not leave it behind
            os.kill(spinner, signal.SIGTERM)
        proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_pip_opts(bash):
    r = run(bash, 'echo "[$(pip_opts)]"; MANYLINUX_URL=http://x/y pip_opts')
    assert r.stdout == "[]\n--find-links http://x/y\n"


def test_wrap_wheel_builder_default_runs_command(bash):
    r = run(bash, "wrap_wheel_builder printf '%s|' a 'b c'")
    assert r.stdout == "a|b c|"


def test_shell_session_update_is_noop(bash):
    r = run(bash, "shell_session_update && echo ok")
    assert r.stdout == "ok\n"


# ------------------------------------------------------------------ install_run's test directory

# install_wheel is a hook a config.sh may override; a no-op one keeps these tests
# about the directory run_tests runs in.
NO_INSTALL = "install_wheel() { :; }\n"


def test_install_run_uses_its_own_fresh_dir_under_the_cwd(bash, tmp_path):
    # GIVEN a tmp_for_test directory, with a file, left by someone else
    work = tmp_path / "my work"
    (work / "tmp_for_test").mkdir(parents=True)
    (work / "tmp_for_test" / "theirs").write_text("x")
    # WHEN install_run runs
    r = run(
        bash,
        NO_INSTALL + 'run_tests() { pwd; ls -A; cd .. && pwd; }\ninstall_run; echo "s=$?"',
        cwd=work,
    )
    # THEN run_tests ran in a fresh empty tmp_for_test.* directly under the cwd,
    # which is gone again, and the other directory is untouched
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[1:] == [str(work), "s=0"], r.stdout
    assert lines[0].startswith(f"{work}/tmp_for_test.") and lines[0] != f"{work}/tmp_for_test"
    assert sorted(p.name for p in work.iterdir()) == ["tmp_for_test"]
    assert (work / "tmp_for_test" / "theirs").read_text() == "x"


def test_install_run_removes_its_dir_when_run_tests_fails(bash, tmp_path):
    # GIVEN run_tests that writes a file and then fails (under set -e)
    r = run(
        bash,
        NO_INSTALL + "run_tests() { touch leftover; false; echo not-reached; }\n"
        "install_run; echo not-reached-either",
        cwd=tmp_path,
    )
    # THEN install_run fails with run_tests, set -e held inside run_tests, and
    # the test directory is gone
    assert r.returncode == 1
    assert r.stdout == ""
    assert not list(tmp_path.glob("tmp_for_test*"))


def test_install_run_returns_run_tests_status_without_errexit(bash, tmp_path):
    r = run(
        bash,
        NO_INSTALL + "set +e; run_tests() { return 3; }\ninstall_run; echo s=$?",
        cwd=tmp_path,
    )
    assert r.stdout == "s=3\n"
    assert not list(tmp_path.glob("tmp_for_test*"))


def test_install_run_at_the_same_time_keeps_each_dir(bash, tmp_path):
    # GIVEN a run whose run_tests starts a second install_run in the same root
    # (as a second build in the same checkout would)
    r = run(
        bash,
        NO_INSTALL + "run_tests() {\n"
        '    if [ -n "$inner" ]; then echo "inner $PWD"; return; fi\n'
        "    local mine=$PWD\n"
        "    (cd .. && inner=1 && install_run)\n"
        '    [ -d "$mine" ] && echo "outer $mine"\n'
        "}\ninstall_run",
        cwd=tmp_path,
    )
    # THEN each had its own directory and the inner one did not remove the outer's
    assert r.returncode == 0, r.stderr
    inner, outer = (line.split(" ", 1) for line in r.stdout.splitlines())
    assert (inner[0], outer[0]) == ("inner", "outer")
    assert inner[1] != outer[1]
    assert not list(tmp_path.glob("tmp_for_test*"))


def test_install_run_cannot_make_its_dir(bash, tmp_path):
    # GIVEN a cwd that no longer exists
    r = run(
        bash,
        NO_INSTALL + "run_tests() { echo ran; }\nmkdir gone; cd gone; rmdir ../gone\n"
        "set +e; install_run; echo s=$?",
        cwd=tmp_path,
    )
    assert r.stdout == "s=1\n"
    expected = f"install_run: cannot make a test directory in {tmp_path}/gone"
    assert r.stderr.splitlines()[-1] == expected


def test_install_run_without_run_tests(bash, tmp_path):
    r = run(bash, NO_INSTALL + "set +e; install_run; echo s=$?", cwd=tmp_path)
    assert (r.stdout, r.stderr) == ("s=1\n", "install_run: run_tests is not defined in config.sh\n")
