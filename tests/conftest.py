"""Shared test helpers: run the installed commands, end chains in the probe.

Tests run the real installed commands (the console scripts next to the
interpreter running pytest, i.e. .venv/bin after `make test`) in a
subprocess, ending the chain in tests/probe.py, which reports its fds, ids
and environment as JSON.
"""

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


def command(name):
    """Absolute path of an installed command (console script)."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is not installed: run the tests through `make test`")
    return str(path)


def _probe_python():
    """An interpreter every user can run (the probe may run as nobody)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable):
        real = os.path.realpath(candidate)
        if os.path.exists(real) and _world_executable(real):
            return candidate
    return None


def _world_executable(path):
    p = Path(path)
    if not os.stat(p).st_mode & stat.S_IXOTH:
        return False
    for parent in p.parents:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    return True


def _public_dir(prefix, mode):
    """A fresh directory directly under /tmp: pytest's own basetemp
    (/tmp/pytest-of-root) is mode 0700, so nobody could not reach it."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, mode)
    return d


@pytest.fixture(scope="session")
def probe_dir():
    """A world-readable copy of probe.py (the checkout may sit in a 0700 dir)."""
    d = _public_dir("chainload-probe-", 0o755)
    shutil.copy(HERE / "probe.py", d / "probe.py")
    os.chmod(d / "probe.py", 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def probe(probe_dir):
    """argv prefix of the probe program: [python, -I, -S, probe.py]."""
    python = _probe_python() or sys.executable
    return [python, "-I", "-S", str(probe_dir / "probe.py")]


@pytest.fixture
def world_tmp():
    """A sticky, world-writable temporary directory every user can reach."""
    d = _public_dir("chainload-", 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Result:
    def __init__(self, proc, report):
        self.pid = proc.pid
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.report = report

    def fatal_line(self):
        """The one FATAL line on stderr (asserts there is exactly one)."""
        lines = [ln for ln in self.stderr.splitlines() if ": FATAL: " in ln]
        assert len(lines) == 1, self.stderr
        return lines[0]


def run(argv, *, env=None, pass_fds=(), cwd=None, timeout=30, user=None, out=None):
    """Run ARGV (argv[0] an installed command name or a path); return Result.

    The probe (if the chain ends in it) writes its JSON to OUT, a path, which
    defaults to stdout capture. USER runs the whole thing after dropping to
    that account (via preexec_fn) to test unprivileged behaviour.
    """
    argv = list(argv)
    if "/" not in argv[0]:
        argv[0] = command(argv[0])
    full_env = dict(os.environ if env is None else env)
    if out is not None:
        full_env["PROBE_OUT"] = str(out)
    preexec = None
    if user is not None:
        pw = pwd.getpwnam(user)

        def preexec():
            os.setgroups([pw.pw_gid])
            os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
            os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
    proc = subprocess.Popen(argv, env=full_env, pass_fds=pass_fds, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=preexec)
    stdout, stderr = proc.communicate(timeout=timeout)
    proc.stdout, proc.stderr = stdout, stderr
    report = None
    text = Path(out).read_text() if out is not None and Path(out).exists() else stdout
    if text.strip().startswith("{"):
        report = json.loads(text.strip().splitlines()[-1] if out is None else text)
    return Result(proc, report)


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")
