"""The process boundary under conditions an attacker or an odd system makes
(issue 22): messages that cannot be written, operands miscounted, PATH
directories that cannot be searched, locales Python has no codec for, a
system without /proc, and resources that run out.

Everything runs the installed commands in a subprocess.
"""

import os
import subprocess

import pytest

from conftest import command


def clean_env(**extra):
    """An environment with Python's stdio buffered as it is by default
    (PYTHONUNBUFFERED, set on many CI machines, hides lost-message bugs)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(extra)
    return env


def start(argv, **kw):
    argv = [command(argv[0]), *argv[1:]]
    kw.setdefault("env", clean_env())
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(argv, timeout=30, **kw)


# --- item 14: the status is the documented one whatever happens to the message --

FAILURES = [
    (["fdmove", "-c", "5", "1", "no-such-program-xyzzy"], 127),
    (["umask", "22", "true"], 100),
    (["chdir", "/no/such/dir", "true"], 111),
]


def start_into(argv, where, stream):
    """start(ARGV) with STREAM ("stdout" or "stderr") on /dev/full or on a
    pipe whose reader is gone."""
    if where == "dev-full":
        with open("/dev/full", "wb") as f:
            return start(argv, **{stream: f})
    r, w = os.pipe()
    os.close(r)
    try:
        return start(argv, **{stream: w})
    finally:
        os.close(w)


@pytest.mark.parametrize("argv,status", FAILURES, ids=[a[0] for a, _ in FAILURES])
@pytest.mark.parametrize("where", ["dev-full", "closed-pipe"])
def test_unwritable_stderr_keeps_the_status(argv, status, where):
    proc = start_into(argv, where, "stderr")
    assert proc.returncode == status


def test_stderr_closed_by_a_link_keeps_the_status():
    # fdmove 5 2 moves stderr away: the message has nowhere to go.
    proc = start(["fdmove", "5", "2", "no-such-program-xyzzy"])
    assert proc.returncode == 127
    assert proc.stderr == b""


@pytest.mark.parametrize("argv", [["chainload", "--help"], ["fdmove", "--help"],
                                  ["chainload", "--version"]])
@pytest.mark.parametrize("where", ["dev-full", "closed-pipe"])
def test_help_to_an_unwritable_stdout_is_status_0_and_silent(argv, where):
    proc = start_into(argv, where, "stdout")
    assert proc.returncode == 0
    assert proc.stderr == b""
