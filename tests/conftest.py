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

# The package under test is the one installed in the venv, which the
# commands run, not the checkout: `python -m pytest` puts the working
# directory (the checkout) first on sys.path, and so would a `python -c`
# that a test starts from there.
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != HERE.parent]
os.environ["PYTHONSAFEPATH"] = "1"


def _searchable(path):
    """PATH without the directories this user cannot search.

    `runuser -u someone -- make test` keeps root's PATH (/root/.pyenv/shims,
    ...). A C execvp(3), and so every chain, reports the EACCES of such a
    directory (126) when a name is found nowhere, where the tests expect
    "not found" (127): give the tests and their chains the PATH the user
    can actually use."""
    return os.pathsep.join(d for d in path.split(os.pathsep)
                           if d and os.access(d, os.X_OK))


os.environ["PATH"] = _searchable(os.environ.get("PATH", os.defpath))


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
    owner = os.getpid()
    yield d
    # A @pytest.mark.forked test tears down every fixture in its child,
    # session ones too: only the process that made the copy removes it.
    if os.getpid() == owner:
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


def build_locales(top, table):
    """Build the locales of TABLE ({name: (localedef -i, -f)}) into the
    directory TOP with localedef(1), and return TOP for LOCPATH; skip,
    saying why, where that cannot be done."""
    if shutil.which("localedef") is None:
        pytest.skip("localedef is not installed (Debian: libc-bin)")
    for name, (source, charmap) in table.items():
        proc = subprocess.run(["localedef", "-i", source, "-f", charmap, str(top / name)],
                              capture_output=True, text=True)
        if not (top / name).is_dir():
            pytest.skip(f"cannot build {name} with localedef (Debian package locales "
                        f"has the sources): {proc.stderr.strip()[-200:]}")
    return str(top)


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


def snapshot(root, exact=False):
    """Everything observable about the tree under ROOT, symlinks not followed:
    type and mode, owner, size, contents or link target; with EXACT also the
    inode and times, so that "created, then removed again" shows too."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            size = None if stat.S_ISDIR(st.st_mode) else st.st_size  # dirs: fs-specific
            entry = [stat.filemode(st.st_mode), st.st_uid, st.st_gid, size]
            if exact:
                entry += [st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
            if stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                entry.append(Path(p).read_bytes())
            out[os.path.normpath(os.path.relpath(p, root))] = entry
    return out


def main_as_user(argv, user, cwd=None):
    """Fork; in the child drop to USER and run chainload.chain.main(ARGV).

    Returns (exit status, stdout, stderr). The child is a copy of this
    interpreter with every command imported already, so it needs no file
    that USER cannot read (this Python may live under a 0700 /root).
    """
    import io

    import docopt  # noqa: F401  (parsing happens after the drop)

    import chainload.chain

    chainload.chain.preload([*argv, *chainload.chain.COMMANDS])
    pw = pwd.getpwnam(user)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 99
        try:
            os.close(out_r)
            os.close(err_r)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            if cwd is not None:
                os.chdir(cwd)
            os.setgroups([pw.pw_gid])
            os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
            os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                          write_through=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                          errors="backslashreplace", write_through=True)
            status = chainload.chain.main(argv)
        finally:
            os._exit(status)
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r, "rb") as f:
        out = f.read()
    with os.fdopen(err_r, "rb") as f:
        err = f.read()
    _, wstatus = os.waitpid(pid, 0)
    return (os.waitstatus_to_exitcode(wstatus), out.decode("utf-8", "backslashreplace"),
            err.decode("utf-8", "backslashreplace"))
