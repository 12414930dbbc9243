"""Signals: the next program gets the dispositions the chain inherited, and
an interrupt before the exec undoes the run and kills it with the signal.

CPython ignores SIGPIPE and SIGXFSZ at start-up, and an ignored signal stays
ignored across exec. A C chain loader passes them on at their defaults, so
must we: otherwise `chainload ... daemon | head` leaves the daemon unable to
die of SIGPIPE.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import command, run


def ignored_signals(stdout):
    for line in stdout.splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {sig for sig in signal.Signals if mask & (1 << (sig - 1))}
    raise AssertionError(f"no SigIgn line in {stdout!r}")


SHOW = ["sh", "-c", "grep SigIgn /proc/$$/status"]


def test_final_program_gets_default_sigpipe_and_sigxfsz():
    result = run(["chainload", "fdmove", "-c", "5", "2", *SHOW])
    assert result.returncode == 0, result.stderr
    ignored = ignored_signals(result.stdout)
    assert signal.SIGPIPE not in ignored
    assert signal.SIGXFSZ not in ignored


def test_single_command_form_too():
    result = run([command("fdmove"), "-c", "5", "2", *SHOW])
    assert result.returncode == 0, result.stderr
    assert signal.SIGPIPE not in ignored_signals(result.stdout)


# --- what the chain inherited reaches the next program ---------------------------

def status_masks(stdout):
    masks = {}
    for line in stdout.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigBlk", "SigIgn", "SigCgt"):
            mask = int(value.split()[0], 16)
            masks[key] = {sig for sig in signal.Signals if mask & (1 << (sig - 1))}
    return masks


GREP = ["/bin/grep", "^Sig", "/proc/self/status"]
WATCHED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def watched_at_default():
    """preexec_fn: the watched signals at their defaults, as a chain started
    by a supervisor gets them (a suite run as a shell's background job
    inherits SIGINT ignored, which a chain rightly passes on)."""
    for signum in WATCHED:
        signal.signal(signum, signal.SIG_DFL)


def test_caught_signals_are_back_at_their_defaults(tmp_path):
    result = subprocess.run([command("chainload"), "listen-seqpacket", str(tmp_path / "s"),
                             *GREP], capture_output=True, text=True,
                            preexec_fn=watched_at_default, timeout=30)
    assert result.returncode == 0, result.stderr
    masks = status_masks(result.stdout)
    assert not masks["SigIgn"] & WATCHED
    assert not masks["SigCgt"] & WATCHED  # (grep itself catches SIGSEGV)


def test_ignored_and_blocked_signals_stay_so(tmp_path):
    # As under nohup, with SIGINT ignored (a shell's background job) and a
    # blocked signal: all three pass on unchanged.
    def preexec():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

    proc = subprocess.run([command("chainload"), "listen-seqpacket", str(tmp_path / "s"), *GREP],
                          capture_output=True, text=True, preexec_fn=preexec, timeout=30)
    assert proc.returncode == 0, proc.stderr
    masks = status_masks(proc.stdout)
    assert masks["SigIgn"] & WATCHED == {signal.SIGHUP, signal.SIGINT}
    assert masks["SigBlk"] == {signal.SIGUSR1}


# --- an interrupt undoes this run and kills it with the signal ----------------------

@pytest.mark.parametrize("syscall", ["bind", "listen"])
@pytest.mark.parametrize("signum", sorted(WATCHED))
def test_signal_after_bind_removes_the_socket_and_kills(tmp_path, signum, syscall):
    """strace holds the chain inside bind(2) or listen(2) for a while; the
    signal arrives then. The chain must remove its socket file and die of
    that very signal (a calling script must not carry on after exit 111)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make test installs it as root)")
    sock = tmp_path / "s.sock"
    log = tmp_path / "strace.log"
    proc = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(log), "-e", f"trace={syscall},execve",
         "-e", f"inject={syscall}:delay_exit=3000000",
         command("chainload"), "listen-seqpacket", str(sock), "/bin/true"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=watched_at_default)
    try:
        deadline = time.monotonic() + 20
        while "DELAYED" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the chain never reached " + syscall
            time.sleep(0.02)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        assert sock.exists()
        os.kill(int(children[0]), signum)
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    traced = log.read_text()
    assert f"+++ killed by {signal.Signals(signum).name} +++" in traced, traced
    assert 'execve("/bin/true"' not in traced
    assert "FATAL" not in stderr and "Traceback" not in stderr, stderr
    assert not sock.exists()


def test_signal_during_the_path_search_removes_the_socket(tmp_path):
    """The exec loop walks PATH; a signal that arrives while it looks at an
    entry where the program is not must still undo the run (only the
    execve(2) call itself runs with the caught signals at their defaults)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make test installs it as root)")
    sock = tmp_path / "s.sock"
    log = tmp_path / "strace.log"
    missing = tmp_path / "no-such-dir"
    env = {**os.environ, "PATH": f"{missing}:/nonexistent"}
    calls = "execve,stat,newfstatat,statx"
    proc = subprocess.Popen(
        [shutil.which("strace"), "-f", "-qq", "-o", str(log), "-P", str(missing / "nosuchprog"),
         "-e", f"trace={calls}", "-e", f"inject={calls}:delay_exit=3000000",
         command("chainload"), "listen-seqpacket", str(sock), "nosuchprog"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 20
        while "DELAYED" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the chain never searched PATH"
            time.sleep(0.02)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        assert sock.exists()
        os.kill(int(children[0]), signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    traced = log.read_text()
    assert "+++ killed by SIGTERM +++" in traced, traced
    assert "FATAL" not in stderr and "Traceback" not in stderr, stderr
    assert not sock.exists()
