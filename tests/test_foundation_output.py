"""The foundation's output and retries, as a user sees them: urllib3's Retry
honouring a server's Retry-After (a loopback server that answers 503/429
first), the rich progress display through a pseudo-terminal and without one
(plain lines; also with NO_COLOR or CI set), and the CI fold formatter."""

from __future__ import annotations

import email.utils
import hashlib
import io
import itertools
import logging
import os
import re
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, LoopbackServer, clean_env, run_pty
from numpy_wheels import log, net
from numpy_wheels.progress import Transfers

# ------------------------------------------------------------------ Retry-After


class Answers(LoopbackServer):
    """``routes[path] = [(status, headers), ...]``: one answer per request, in order,
    then the body; records when each request came."""

    def __init__(self) -> None:
        super().__init__()
        self.times: dict[str, list[float]] = {}

    def respond(self, handler, route) -> None:
        self.times.setdefault(handler.path, []).append(time.monotonic())
        answers, body = route
        status, headers = answers.pop(0) if answers else (200, {})
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        data = body if status == 200 else b""
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def answers():
    with Answers() as srv:
        yield srv


BODY = os.urandom(50_000)


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 2) for a, b in itertools.pairwise(times)]


def test_download_waits_as_long_as_retry_after_says(answers, tmp_path, capsys):
    # GIVEN a server that is busy twice, saying how long to wait (no backoff of ours)
    answers.routes["/f"] = ([(503, {"Retry-After": "1"}), (429, {"Retry-After": "2"})], BODY)
    # WHEN the file is downloaded
    got = net.download(f"{answers.base}/f", tmp_path / "f", retries=3, backoff=0,
                       sha256=hashlib.sha256(BODY).hexdigest())  # fmt: skip
    # THEN each retry came after the wait asked for, and the third attempt succeeded
    assert got.read_bytes() == BODY
    waited = gaps(answers.times["/f"])
    assert len(waited) == 2 and 1.0 <= waited[0] < 1.9 and 2.0 <= waited[1] < 2.9, waited
    err = capsys.readouterr().err
    assert f"{answers.base}/f: HTTP 503, retrying (1/3) after 1 s\n" in err
    assert f"{answers.base}/f: HTTP 429, retrying (2/3) after 2 s\n" in err


def test_retry_after_as_a_date_and_unreadable(answers, tmp_path):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1 to 2 s
    answers.routes["/f"] = ([(503, {"Retry-After": when}), (503, {"Retry-After": "soon"})], BODY)
    net.download(f"{answers.base}/f", tmp_path / "f", retries=3, backoff=0)
    waited = gaps(answers.times["/f"])
    assert 0.9 <= waited[0] < 2.5 and waited[1] < 0.5, waited  # "soon": our backoff (0)


def test_retry_after_is_capped(answers, tmp_path, monkeypatch):
    monkeypatch.setenv("NW_MAX_RETRY_AFTER", "1")
    answers.routes["/f"] = ([(503, {"Retry-After": "3600"})], BODY)
    start = time.monotonic()
    net.download(f"{answers.base}/f", tmp_path / "f", retries=2, backoff=0)
    assert time.monotonic() - start < 5
    assert 1.0 <= gaps(answers.times["/f"])[0] < 1.9


def test_retry_after_runs_out_of_attempts(answers, tmp_path):
    answers.routes["/f"] = ([(429, {"Retry-After": "1"})] * 5, BODY)
    with pytest.raises(net.HTTPStatusError, match=r"/f: HTTP 429 Too Many Requests$"):
        net.download(f"{answers.base}/f", tmp_path / "f", retries=2, backoff=0)
    assert len(answers.times["/f"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_page_is_retried_by_the_same_session(answers):
    answers.routes["/simple/"] = ([(503, {"Retry-After": "1"})], b"<html></html>")
    with net.http_session(retries=2, backoff=0) as session:
        resp = session.get(f"{answers.base}/simple/", timeout=5)
    assert (resp.status_code, resp.content) == (200, b"<html></html>")
    assert 1.0 <= gaps(answers.times["/simple/"])[0] < 1.9


# --------------------------------------------------------------------- progress


class Slow(LoopbackServer):
    """Files sent in 40 slices over ~1 s, each only once all ``together`` requests
    have arrived (so the downloads run at the same time)."""

    def __init__(self, together: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(together, timeout=10)

    def respond(self, handler, route) -> None:
        body = route[0]
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        self.barrier.wait()
        step = len(body) // 40 + 1
        for start in range(0, len(body), step):
            handler.wfile.write(body[start : start + step])
            handler.wfile.flush()
            time.sleep(0.025)


# Three downloads in threads through one display, as `wheel-uploader -j 3` runs them.
CHILD = """
import sys, threading
from pathlib import Path
from numpy_wheels.net import download
from numpy_wheels.progress import Transfers
base, dest, names = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
with Transfers(files=len(names), total_bytes=len(names) * 300_000) as shown:
    jobs = [threading.Thread(target=download, args=(f"{base}/{n}", dest / n),
                             kwargs={"progress": shown}) for n in names]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
print("done", file=sys.stderr)
"""
NAMES = ["alpha-1.0.whl", "beta-1.0.whl", "gamma-1.0.whl"]


def run_child(tmp_path, *, terminal: bool, **env: str) -> str:
    """The child's stderr, through a pseudo-terminal or a pipe."""
    full = clean_env(tmp_path, PYTHONPATH=str(ROOT / "scripts"), TERM="xterm-256color",
                     COLUMNS="150", LINES="40", **env)  # fmt: skip
    for name in ("NO_COLOR", "CI", "GITHUB_ACTIONS", "TF_BUILD", "TRAVIS", "FORCE_COLOR"):
        if name not in env:
            full.pop(name, None)
    with Slow(len(NAMES)) as server:
        for n in NAMES:
            server.routes[f"/{n}"] = (os.urandom(300_000),)
        args = [sys.executable, "-c", CHILD, server.base, str(tmp_path), *NAMES]
        if not terminal:
            proc = subprocess.run(args, env=full, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr
            return proc.stderr
        return run_pty(args, full, timeout=30)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DONE_LINE = re.compile(r"^downloaded (\S+) \(293\.0 KiB in \d+\.\d s\)$")


def test_terminal_draws_a_bar_per_file_and_an_overall_bar(tmp_path):
    out = run_child(tmp_path, terminal=True)
    # each refresh of rich's live display redraws every bar: split the stream there
    frames = [ANSI.sub("", f) for f in re.split(r"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)*", out)]
    most = max(sum(1 for n in NAMES if re.search(rf"{n} +━", f)) for f in frames)
    assert most == len(NAMES)  # one bar per file, all three drawn at once
    assert any(re.search(r"\d/3 files +━", f) for f in frames)  # the overall bar
    assert re.search(r"3/3 files +━+ +878\.9/878\.9 KiB", ANSI.sub("", out))  # at its end
    plain = ANSI.sub("", out).replace("\r", "\n").splitlines()
    assert sorted(m[1] for line in plain if (m := DONE_LINE.match(line))) == NAMES


@pytest.mark.parametrize(
    ("terminal", "env"),
    [(False, {}), (True, {"NO_COLOR": "1"}), (True, {"CI": "true"})],
    ids=["pipe", "terminal-NO_COLOR", "terminal-CI"],
)
def test_plain_line_per_file_without_a_terminal_or_with_no_color_or_ci(tmp_path, terminal, env):
    out = run_child(tmp_path, terminal=terminal, **env)
    lines = out.replace("\r\n", "\n").splitlines()
    assert "\x1b" not in out and "━" not in out
    assert sorted(m[1] for line in lines if (m := DONE_LINE.match(line))) == NAMES
    assert len(lines) == len(NAMES) + 1 and lines[-1] == "done"


def test_quiet_shows_no_progress(tmp_path):
    out = run_child(tmp_path, terminal=True, NW_QUIET="1")
    assert out.replace("\r\n", "\n") == "done\n"


# ------------------------------------------------------------------ CI folds


@pytest.fixture
def fresh_log(monkeypatch):
    for name in ("GITHUB_ACTIONS", "TF_BUILD", "TRAVIS", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    old = log.is_verbose(), log.is_quiet()
    log.set_verbosity(False, False)
    yield monkeypatch
    log.set_verbosity(*old)


TIME = r"\s+\d+\.\d\ds"


@pytest.mark.parametrize(
    ("env", "start", "end"),
    [
        ({"GITHUB_ACTIONS": "true"}, r"::group::Repair 50%25 done%0Anow", r"::endgroup::"),
        ({"TF_BUILD": "True"}, r"##\[group\]Repair 50% done\nnow", r"##\[endgroup\]"),
        ({"TRAVIS": "true"},
         r"travis_fold:start:Repair_50_done_now\.\d+\r\x1b\[0KRepair 50% done\nnow",
         r"travis_fold:end:Repair_50_done_now\.\d+\r\x1b\[0K"),
        ({}, r"==> Repair 50% done\nnow", None),
    ],
    ids=["github", "azure", "travis", "none"],
)  # fmt: skip
def test_a_step_is_folded_in_the_ci_syntax(fresh_log, capsys, env, start, end):
    for name, value in env.items():
        fresh_log.setenv(name, value)
    with log.step("Repair 50% done\nnow"):
        log.log("auditwheel repair ...")
    err = capsys.readouterr().err
    close = f"\n{end}" if end else ""
    assert re.fullmatch(f"{start}\nauditwheel repair \\.\\.\\.\n✓{TIME}{close}\n", err), err


def test_a_failed_step_is_closed_and_marked(fresh_log, capsys):
    fresh_log.setenv("GITHUB_ACTIONS", "true")
    with pytest.raises(RuntimeError), log.step("Build"):
        raise RuntimeError("compiler crashed")
    assert re.fullmatch(f"::group::Build\n✕{TIME}\n::endgroup::\n", capsys.readouterr().err)


def test_folds_and_marks_on_a_terminal_without_utf8_or_with_colour(fresh_log):
    class Tty:
        encoding = "ascii"

        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    tty = Tty()
    fresh_log.setattr(sys, "stderr", tty)
    with log.step("Test"):
        pass
    assert re.fullmatch(f"==> Test\n\x1b\\[32mdone\x1b\\[0m{TIME}\n", tty.text), tty.text
    fresh_log.setenv("NO_COLOR", "1")
    tty.text = ""
    with log.step("Test"):
        pass
    assert re.fullmatch(f"==> Test\ndone{TIME}\n", tty.text), tty.text


def test_quiet_and_verbose_are_the_logger_level(fresh_log, capsys):
    log.log("shown")
    log.log("hidden", verbose_only=True)
    log.set_verbosity(verbose=True)
    log.log("detail", verbose_only=True)
    log.set_verbosity(quiet=True)
    log.log("progress")
    log.logger.warning("a warning")
    assert capsys.readouterr().err == "shown\ndetail\na warning\n"
    assert log.logger.level == logging.WARNING


def test_a_lone_download_prints_one_line_off_a_terminal(answers, tmp_path, capsys):
    # With no Transfers given a download makes its own: one line off a terminal (the
    # sdist, OpenBLAS); progress=False shows nothing (the small provenance files).
    answers.routes["/f"] = ([], BODY)
    net.download(f"{answers.base}/f", tmp_path / "f")
    assert re.fullmatch(r"downloaded f \(48\.8 KiB in \d+\.\d s\)\n", capsys.readouterr().err)
    net.download(f"{answers.base}/f", tmp_path / "g", progress=False)
    assert capsys.readouterr().err == ""
    with Transfers() as shown:
        net.download(f"{answers.base}/f", tmp_path / "h", progress=shown)
    assert re.fullmatch(r"downloaded h \(48\.8 KiB in \d+\.\d s\)\n", capsys.readouterr().err)


def test_one_live_display_at_a_time(monkeypatch):
    monkeypatch.setattr("numpy_wheels.progress.plain_output", lambda stream=None: False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with Transfers(files=2) as outer, Transfers() as inner:
        assert not outer.plain and inner.plain  # the inner one cannot draw: lines only


def test_verbosity_options_default_from_the_environment(fresh_log):
    import argparse

    def parsed(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        log.add_verbosity_options(parser)
        return parser.parse_args(argv)

    assert (parsed().verbose, parsed().quiet) == (False, False)
    assert parsed("-q").quiet and parsed("--verbose").verbose
    fresh_log.setenv("NW_VERBOSE", "1")
    fresh_log.setenv("NW_QUIET", "1")
    assert (parsed().verbose, parsed().quiet) == (True, True)
