"""foreground and if (issue 19): a program in a child, then the chain.

The child's rules (chainload.process) are tested here once, through the
installed commands: the child runs its builtins in-process with nothing to
import, never runs the parent's clean-up, starts with the signal state the
chain inherited; the parent reaps it and forwards an interrupt to it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import command, run
from test_signals import status_masks

CHILDREN = [sys.executable, "-I", "-S", "-c",
            "import os; p = os.getpid(); "
            "print(repr(open(f'/proc/{p}/task/{p}/children').read()))"]


def go(argv, **kw):
    result = run(argv, **kw)
    assert "Traceback" not in result.stderr, result.stderr
    return result


# --- the words: prog ; next-prog ----------------------------------------------------

def test_foreground_runs_prog_then_next_whatever_its_status():
    result = go(["foreground", "sh", "-c", "echo first; exit 7", ";", "echo", "second"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "first\nsecond\n"


def test_if_goes_on_after_status_0():
    result = go(["if", "true", ";", "echo", "went on"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "went on\n", "")


@pytest.mark.parametrize("prog, status", [(["false"], 1), (["sh", "-c", "exit 200"], 200),
                                          (["sh", "-c", "kill -TERM $$"], 128 + 15),
                                          (["sh", "-c", "kill -KILL $$"], 128 + 9)])
def test_if_stops_with_the_child_status_silently(prog, status):
    result = go(["if", *prog, ";", "echo", "went on"])
    assert (result.returncode, result.stdout, result.stderr) == (status, "", "")


def test_if_child_that_cannot_run_stops_the_chain_with_its_status():
    result = go(["chainload", "if", "no-such-program-chainload", ";", "echo", "no"])
    assert result.returncode == 127
    assert result.stdout == ""
    assert result.fatal_line() == "if: FATAL: no-such-program-chainload: No such file or directory"


def test_literal_semicolon_is_written_twice():
    result = go(["foreground", "echo", "a", ";;", "b", ";;;", ";", "echo", ";;", "c"])
    assert result.stdout == "a ; b ;;\n;; c\n", result.stderr


def test_nested_foreground_writes_its_separator_twice():
    result = go(["foreground", "foreground", "echo", "1", ";;", "echo", "2", ";",
                 "if", "echo", "3", ";", "echo", "4"])
    assert result.stdout == "1\n2\n3\n4\n", result.stderr


@pytest.mark.parametrize("words, message", [
    (["echo", "a"], 'No ";" ends the program to run first.'),
    ([";", "echo"], 'Missing program before ";".'),
    (["echo", ";"], "Missing next program."),
    ([], "Missing next program."),
])
@pytest.mark.parametrize("name", ["foreground", "if"])
def test_usage_errors_run_nothing(name, words, message, tmp_path):
    result = go([name, *words], cwd=tmp_path)
    assert result.returncode == 100
    assert result.fatal_line() == f"{name}: FATAL: {message}"
    assert result.stdout == ""


# --- the child runs its builtins in-process, and imports nothing ---------------------

def strace_or_skip():
    path = shutil.which("strace")
    if path is None:
        pytest.skip("strace is not installed (make test installs it as root)")
    return path


@pytest.mark.parametrize("name", ["foreground", "if"])
def test_child_chain_costs_one_exec_and_no_import(name, tmp_path):
    log = tmp_path / "strace.log"
    proc = subprocess.run(
        [strace_or_skip(), "-f", "-qq", "-o", str(log), "-e", "trace=execve,openat,open",
         command("chainload"), name, "setenv", "X", "1", "umask", "077", "chdir", "/",
         "fdmove", "-c", "5", "2", "/bin/true", ";", "/bin/true"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    execs = [ln for ln in lines if "execve(" in ln and "= 0" in ln]
    assert len(execs) == 3, execs  # chainload, the child's /bin/true, ours
    parent = int(execs[0].split()[0])
    child = {int(ln.split()[0]) for ln in execs} - {parent}
    assert len(child) == 1
    child_pid = child.pop()
    before_exec = []
    for ln in lines:
        if int(ln.split()[0]) != child_pid:
            continue
        if "execve(" in ln:
            break
        before_exec.append(ln)
    opened = [ln for ln in before_exec if "open" in ln]
    assert not [ln for ln in opened if ".py" in ln or "python" in ln], opened


# --- the parent's clean-up is never the child's ----------------------------------

@pytest.mark.parametrize("name", ["foreground", "if"])
def test_failing_child_chain_leaves_the_parents_socket(tmp_path, name):
    sock = tmp_path / "s.sock"
    result = go(["listen-stream", str(sock), name, "setuidgid",
                 "no-such-user-chainload", "true", ";", "/bin/sh", "-c",
                 'test -S "$0" && echo present', str(sock)])
    assert "setuidgid: FATAL: no-such-user-chainload: No such user." in result.stderr
    if name == "foreground":
        assert result.returncode == 0
        assert result.stdout == "present\n"
    else:
        # The chain itself stops: now its own clean-up removes the socket.
        assert result.returncode == 111
        assert not sock.exists()


def test_child_killed_before_its_exec_leaves_the_parents_socket(tmp_path):
    """strace holds the child in chdir(2); SIGTERM kills it there, while its
    handler (the chain's own) runs the clean-up: the child's, not ours."""
    sock = tmp_path / "s.sock"
    log = tmp_path / "strace.log"
    proc = subprocess.Popen(
        [strace_or_skip(), "-f", "-qq", "-o", str(log), "-e", "trace=chdir",
         "-e", "inject=chdir:delay_exit=3000000",
         command("chainload"), "listen-stream", str(sock), "foreground", "chdir", "/",
         "/bin/true", ";", "/bin/sh", "-c", 'test -S "$0" && echo present', str(sock)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while "DELAYED" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the child never reached chdir"
            time.sleep(0.02)
        child = int(next(ln for ln in log.read_text().splitlines() if "chdir(" in ln).split()[0])
        os.kill(child, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert "+++ killed by SIGTERM +++" in log.read_text()
    assert proc.returncode == 0, stderr
    assert stdout == "present\n"
    assert "Traceback" not in stderr


# --- signals: the child's state, forwarding, no zombie -----------------------------

@pytest.mark.parametrize("name", ["foreground", "if"])
def test_child_and_next_get_the_signal_state_the_chain_inherited(tmp_path, name):
    def preexec():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

    grep = ["/bin/grep", "^Sig", "/proc/self/status"]
    proc = subprocess.run([command("chainload"), "listen-stream", str(tmp_path / "s"),
                           name, *grep, ";", *grep], capture_output=True, text=True,
                          preexec_fn=preexec, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    half = len(lines) // 2
    for which in ("\n".join(lines[:half]), "\n".join(lines[half:])):  # child, next
        found = status_masks(which)
        assert {signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE} & found["SigIgn"] == {
            signal.SIGHUP, signal.SIGCHLD}
        assert found["SigBlk"] == {signal.SIGUSR1}
        assert not found["SigCgt"] & {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}


@pytest.mark.parametrize("name", ["foreground", "if"])
def test_child_is_reaped(name):
    result = go([name, "true", ";", *CHILDREN])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "''\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_while_waiting_reaches_the_child_then_kills_the_chain(tmp_path, signum):
    sock = tmp_path / "s.sock"
    got, pidfile = tmp_path / "got", tmp_path / "pid"
    body = (f'trap "echo caught > {got}; exit 0" {signum.name[3:]}; '
            f'echo $$ > {pidfile}; while :; do sleep 0.05; done')
    proc = subprocess.Popen([command("chainload"), "listen-stream", str(sock), "foreground",
                             "/bin/sh", "-c", body, ";", "echo", "not reached"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=20)
        while not got.exists():
            assert time.monotonic() < deadline, "the child never got the signal"
            time.sleep(0.02)
    finally:
        proc.kill()
    assert proc.returncode == -signum, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert not sock.exists()
    assert got.read_text() == "caught\n"


def test_no_traceback_with_json_probe(probe, tmp_path):
    """The next program sees what the chain passed, after the child ran."""
    out = tmp_path / "report.json"
    result = go(["listen-stream", str(tmp_path / "s"), "foreground", "true", ";",
                 *probe], out=out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["fds"]["3"]["listening"] is True
    assert report["pid"] == result.pid
    assert Path(tmp_path / "s").exists()
