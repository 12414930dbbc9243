"""The symlink-swap attack on the listener's chown/chmod (issue 7, part 3).

Root only. The listener runs as root, again and again, with
`--uid 65534 --gid 65534 --mode 0666` (and once in a while 04666, so the
special bits need a chmod after bind). Meanwhile a second thread watches the
socket path and, the moment a socket appears there, replaces it with a
symlink to a victim (os.symlink to a prepared name, then os.rename over the
path): a root-owned 0600 file with known contents, or a root-owned 0700
directory, in a separate directory. A listener that chowns or chmods by name
after bind (as nosh does) follows that symlink and hands the victim to
nobody; this one must not.

Pass: the victim's owner, group, mode, inode and contents never change; every
run either exits 0 (on every fourth run the next program is the probe, and
it must see fd 3 as a listening AF_UNIX SOCK_SEQPACKET socket bound to the
path; the attacker may have replaced the name since) or fails with
status 111 and a single "local-seqpacket-socket-listen: FATAL: ..." line. Never
a traceback, never another status.

To check that this test can fail, point CHAINLOAD_ATTACK_PYTHONPATH at a
directory holding a (broken) copy of the chainload package: the runs then
use `python -c '... sys.path.insert(0, P); from chainload.chain import main
...'` instead of the installed command.
"""

import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from conftest import command, root_only

RUNS = 60          # listener runs per variant ...
TIME_LIMIT = 4.5   # ... or this many seconds, whichever comes first
SWAP_LIMIT = 1_000_000
PROG = "local-seqpacket-socket-listen"


def listener_argv(args):
    copy = os.environ.get("CHAINLOAD_ATTACK_PYTHONPATH")
    if copy:
        code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
                "from chainload.chain import main; sys.exit(main(sys.argv[1:]))")
        return [sys.executable, "-c", code, copy, PROG, *args]
    return [command(PROG), *args]


def state(path):
    """Everything about the victim that must not change."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        contents = sorted((name, open(os.path.join(path, name), "rb").read())
                          for name in os.listdir(path))
    else:
        with open(path, "rb") as f:
            contents = f.read()
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
            st.st_ino, contents)


class Attacker(threading.Thread):
    """Swap a symlink to VICTIM in over PATH whenever PATH is a socket."""

    def __init__(self, path, victim):
        super().__init__(daemon=True)
        self.path, self.victim = path, victim
        self.spare = os.path.join(os.path.dirname(path), ".swap")
        self.stop = threading.Event()
        self.swaps = 0
        self.errors = []

    def run(self):
        try:
            lstat, rename, is_socket = os.lstat, os.rename, stat.S_ISSOCK
            os.symlink(self.victim, self.spare)
            loops = 0
            while not self.stop.is_set() and self.swaps < SWAP_LIMIT:
                loops += 1
                try:
                    mode = lstat(self.path).st_mode
                except FileNotFoundError:
                    continue
                if is_socket(mode):
                    rename(self.spare, self.path)
                    self.swaps += 1
                    os.symlink(self.victim, self.spare)
                if loops % 64 == 0:
                    time.sleep(0)  # let the main thread start the next run
        except Exception as e:  # reported by the test
            self.errors.append(repr(e))


@root_only
@pytest.mark.parametrize("victim_kind", ["file", "directory"])
def test_symlink_swap_never_touches_the_victim(tmp_path, probe, victim_kind):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.chmod(run_dir, 0o755)
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    os.chmod(victim_dir, 0o700)
    victim = victim_dir / "secret"
    if victim_kind == "file":
        victim.write_bytes(b"root's secret\n")
        os.chmod(victim, 0o600)
    else:
        victim.mkdir()
        (victim / "inside").write_bytes(b"root's secret\n")
        os.chmod(victim, 0o700)
    os.chown(victim, 0, 0)
    path = str(run_dir / "s.sock")
    expected = state(victim)
    out = tmp_path / "probe.json"

    attacker = Attacker(path, str(victim))
    attacker.start()
    outcomes = {"ok": 0, "refused": 0}
    start = time.monotonic()
    try:
        for i in range(RUNS):
            if time.monotonic() - start > TIME_LIMIT and i >= 10:
                break
            # Most runs start from an empty path, so bind() succeeds and the
            # race is on; every eighth finds the attacker's symlink there.
            if i % 8:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            if out.exists():
                out.unlink()
            mode = "04666" if i % 5 == 4 else "0666"
            # The probe checks fd 3 on some runs; /bin/true is quicker.
            probing = i % 4 == 1
            argv = listener_argv(["--uid", "65534", "--gid", "65534", "--mode", mode,
                                  path, *(probe if probing else ["/bin/true"])])
            proc = subprocess.run(argv, capture_output=True, timeout=30,
                                  env={**os.environ, "PROBE_OUT": str(out)},
                                  stdin=subprocess.DEVNULL)
            err = proc.stderr.decode("utf-8", "backslashreplace")
            where = (f"run {i} ({mode}): status {proc.returncode}, stderr {err!r}, "
                     f"{attacker.swaps} swaps so far")
            now = state(victim)
            assert now == expected, f"victim changed! {where}: {expected} -> {now}"
            assert "Traceback" not in err and "Internal error" not in err, where
            if proc.returncode == 0:
                assert err == "", where
                outcomes["ok"] += 1
                if not probing:
                    continue
                report = json.loads(out.read_text())
                fd3 = report["fds"].get("3")
                assert fd3 and fd3["family"] == "AF_UNIX" and fd3["type"] == "SOCK_SEQPACKET" \
                    and fd3["listening"] and fd3["name"] == path, (where, report)
            else:
                assert proc.returncode == 111, where
                lines = err.splitlines()
                assert len(lines) == 1 and lines[0].startswith(f"{PROG}: FATAL: "), where
                outcomes["refused"] += 1
    finally:
        attacker.stop.set()
        attacker.join(timeout=10)
    assert not attacker.errors, attacker.errors
    assert state(victim) == expected
    # The attack really happened: the attacker got to swap, and some runs
    # found its symlink (the every-eighth runs at least).
    assert attacker.swaps > 0, outcomes
    assert outcomes["refused"] > 0, outcomes
    print(f"{victim_kind}: {outcomes}, {attacker.swaps} swaps")
