"""chainload.activation, the receiving side (issue 13).

End to end: real chains (the installed chainload) end in tests/activated.py,
a small daemon that takes its descriptors with the module and reports as
JSON what it got, what it left in the environment and what a child it
starts inherits. libsystemd's sd_listen_fds_with_names (through ctypes)
must find the same fds and names on the same chains, and systemd's own
sender (systemd-socket-activate) must work too. In-process tests (forked)
cover every malformed variable. The examples in the module's docstring and
examples/stream_echo.py are run against real clients.
"""

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chainload import activation, chain
from chainload.listenfds import pidfd_id

from conftest import command

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DAEMON = str(HERE / "activated.py")
LAUNCH = str(HERE / "socket_activate.py")
STREAM_ECHO = str(ROOT / "examples" / "stream_echo.py")
PY = sys.executable
SD = "--systemd-compatibility"
ENV = {k: v for k, v in os.environ.items()
       if not k.startswith(("LISTEN_", "UPSTART_"))}


def seq(path, name=None, *options):
    return ["listen-seqpacket", SD, *options, *(["--fd-name", name] if name else []), str(path)]


def report(links, *args, via=()):
    """Run `chainload LINKS... VIA... python activated.py ARGS`; its report."""
    proc = subprocess.run([command("chainload"), *links, *via, PY, DAEMON, *args],
                          env=ENV, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def built_in(*names):
    """Skip unless every listener in NAMES is a chainload builtin."""
    for name in names:
        if not chain.is_builtin(name):
            pytest.skip(f"{name} not built in yet")


def socket_entry(path, fd, type_="SOCK_SEQPACKET", family="AF_UNIX"):
    return {"fd": fd, "family": family, "type": type_, "name": str(path),
            "timeout": None, "blocking": True}


# --- end to end: chains ending in a daemon that uses the module --------------------

def test_one_socket(tmp_path):
    path = tmp_path / "one.sock"
    r = report(seq(path), "--api", "sockets")
    assert r["diagnose"] is None
    assert r["result"] == [socket_entry(path, 3)]
    assert r["fds_before"] == {"3": {"cloexec": False}}
    assert r["fds_after"] == {"3": {"cloexec": True}}  # taken: close-on-exec
    assert r["environ"] == {}
    assert r["child"] == {"environ": {}, "fds": []}
    if pidfd_id() is not None:  # the listener named us by pidfd too, and that matched
        assert "LISTEN_PIDFDID" in r["environ_before"]


def test_three_stacked_sockets_with_names(tmp_path):
    paths = [tmp_path / f"{n}.sock" for n in "abc"]
    links = [*seq(paths[0], "a"), *seq(paths[1], "b"), *seq(paths[2], "c")]
    r = report(links)
    assert r["result"] == [[3, "a"], [4, "b"], [5, "c"]]
    assert r["environ_before"]["LISTEN_FDNAMES"] == "a:b:c"
    assert {fd: s["cloexec"] for fd, s in r["fds_after"].items()} == {
        "3": True, "4": True, "5": True}
    assert r["child"] == {"environ": {}, "fds": []}
    r = report(links, "--api", "by-name")
    assert r["result"] == {n: [socket_entry(p, fd)] for n, p, fd in zip("abc", paths, (3, 4, 5))}


def test_three_stacked_sockets_of_mixed_types(tmp_path):
    built_in("listen-stream", "listen-datagram")
    paths = [tmp_path / f"{n}.sock" for n in ("stream", "dgram", "seq")]
    links = ["listen-stream", SD, "--fd-name", "stream", str(paths[0]),
             "listen-datagram", SD, "--fd-name", "dgram", str(paths[1]),
             *seq(paths[2], "seq")]
    r = report(links, "--api", "by-name")
    assert r["result"] == {
        "stream": [socket_entry(paths[0], 3, "SOCK_STREAM")],
        "dgram": [socket_entry(paths[1], 4, "SOCK_DGRAM")],
        "seq": [socket_entry(paths[2], 5)],
    }
    assert r["child"] == {"environ": {}, "fds": []}


def test_no_names(tmp_path):
    # The listeners always set LISTEN_FDNAMES (unknown:unknown here): take
    # it away to see what the daemon makes of a sender that sets none.
    r = report([*seq(tmp_path / "a.sock"), *seq(tmp_path / "b.sock")],
               via=["/usr/bin/env", "-u", "LISTEN_FDNAMES"])
    assert "LISTEN_FDNAMES" not in r["environ_before"]
    assert r["result"] == [[3, "unknown"], [4, "unknown"]]


def test_mismatched_name_count_gives_unknown_names(tmp_path):
    r = report([*seq(tmp_path / "a.sock", "a"), *seq(tmp_path / "b.sock", "b")],
               via=["/usr/bin/env", "LISTEN_FDNAMES=a:b:c"])
    assert r["result"] == [[3, "unknown"], [4, "unknown"]]
    assert r["environ"] == {} and r["child"] == {"environ": {}, "fds": []}


def test_stale_listen_pid_takes_nothing(tmp_path):
    # /usr/bin/env sets LISTEN_PID=1 after the listener, then execs the daemon
    # (same process): the socket is on fd 3, but not for this pid.
    r = report(seq(tmp_path / "a.sock", "a"), via=["/usr/bin/env", "LISTEN_PID=1"])
    assert r["result"] == []
    assert r["diagnose"] == f"LISTEN_PID=1 is not this process ({r['pid']})"
    assert r["fds_after"] == {"3": {"cloexec": False}}  # not taken: left as it was
    assert r["environ"] == {}  # removed whatever the outcome, as sd_listen_fds does
    assert r["child"] == {"environ": {}, "fds": [3]}


def test_wrong_listen_pidfdid_takes_nothing(tmp_path):
    mine = pidfd_id()
    if mine is None:
        pytest.skip("the kernel has no pidfs: LISTEN_PIDFDID cannot be checked")
    # The pidfd inode of this test process: alive, so never the daemon's.
    r = report(seq(tmp_path / "a.sock"), via=["/usr/bin/env", f"LISTEN_PIDFDID={mine}"])
    assert r["result"] == []
    assert r["diagnose"].startswith(f"LISTEN_PIDFDID={mine} is not this process's pidfd (")
    assert r["fds_after"] == {"3": {"cloexec": False}}
    assert r["child"] == {"environ": {}, "fds": [3]}


def test_malformed_listen_pidfdid_takes_nothing(tmp_path):
    r = report(seq(tmp_path / "a.sock"), via=["/usr/bin/env", "LISTEN_PIDFDID=12x"])
    assert r["result"] == [] and r["diagnose"] == "LISTEN_PIDFDID=12x: Not a number"


def test_unset_environment_as_seen_from_a_child(tmp_path):
    """The default removes the variables from the real environment (what a
    child gets), not only os.environ; the fds never reach the child."""
    r = report(seq(tmp_path / "a.sock", "a"))
    assert r["environ_before"]["LISTEN_FDS"] == "1"
    assert r["environ"] == {} and r["child"] == {"environ": {}, "fds": []}
    # unset_environment=False: the variables stay, for us and the child;
    # a second call finds the same; the fds are close-on-exec all the same.
    r = report(seq(tmp_path / "a.sock", "a"), "--keep")
    assert r["result"] == r["again"] == [[3, "a"]]
    assert r["environ"] == r["environ_before"] == r["child"]["environ"]
    assert r["child"]["fds"] == []


def test_upstart_socket(tmp_path):
    r = report(["listen-seqpacket", "--upstart-compatibility", str(tmp_path / "u.sock")],
               "--api", "upstart")
    assert r["environ_before"] == {"UPSTART_FDS": "3", "UPSTART_EVENTS": "socket"}
    assert r["result"] == 3
    assert r["fds_after"] == {"3": {"cloexec": True}}
    assert r["environ"] == {} and r["child"] == {"environ": {}, "fds": []}


# --- the same chains through libsystemd --------------------------------------------

def _libsystemd_loads():
    try:
        ctypes.CDLL("libsystemd.so.0").sd_listen_fds_with_names
    except (OSError, AttributeError):
        return False
    return True


needs_libsystemd = pytest.mark.skipif(not _libsystemd_loads(),
                                      reason="libsystemd.so.0 is not installed")

SAME_AS_LIBSYSTEMD = {
    "one": (lambda d: seq(d / "a.sock"), []),
    "three-named": (lambda d: [*seq(d / "a.sock", "a"), *seq(d / "b.sock", "b"),
                               *seq(d / "c.sock", "c")], []),
    "no-names": (lambda d: [*seq(d / "a.sock"), *seq(d / "b.sock")], []),
    "some-named": (lambda d: [*seq(d / "a.sock"), *seq(d / "b.sock", "b")], []),
    "empty-name-kept": (lambda d: [*seq(d / "a.sock"), *seq(d / "b.sock"), *seq(d / "c.sock")],
                        ["/usr/bin/env", "LISTEN_FDNAMES=a::c"]),
    "one-empty-name": (lambda d: seq(d / "a.sock"), ["/usr/bin/env", "LISTEN_FDNAMES="]),
    "stale-pid": (lambda d: seq(d / "a.sock", "a"), ["/usr/bin/env", "LISTEN_PID=1"]),
    "no-pid": (lambda d: seq(d / "a.sock", "a"), ["/usr/bin/env", "-u", "LISTEN_PID"]),
}


@needs_libsystemd
@pytest.mark.parametrize("case", SAME_AS_LIBSYSTEMD)
def test_same_fds_and_names_as_libsystemd(tmp_path, case):
    links, via = SAME_AS_LIBSYSTEMD[case]
    r = report(links(tmp_path), "--libsystemd", via=via)
    assert r["result"] == r["libsystemd"]


@needs_libsystemd
def test_name_count_mismatch_is_einval_in_libsystemd_unknown_here(tmp_path):
    """The one documented difference on a valid LISTEN_PID: libsystemd fails."""
    r = report([*seq(tmp_path / "a.sock", "a"), *seq(tmp_path / "b.sock", "b")],
               "--libsystemd", via=["/usr/bin/env", "LISTEN_FDNAMES=a"])
    import errno

    assert r["libsystemd"] == {"errno": errno.EINVAL}
    assert r["result"] == [[3, "unknown"], [4, "unknown"]]


# --- systemd's own sender ----------------------------------------------------------

def test_sockets_from_systemd_socket_activate(tmp_path):
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("systemd-socket-activate is not installed")
    path = tmp_path / "sd.sock"
    # It waits for the first connection before it execs the daemon.
    proc = subprocess.Popen([tool, "--seqpacket", "-l", str(path), "--fdname=web",
                             PY, DAEMON, "--api", "sockets"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with connect(path, socket.SOCK_SEQPACKET, proc):
            out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    r = json.loads(out)
    assert r["environ_before"]["LISTEN_FDNAMES"] == "web"
    assert r["result"] == [socket_entry(path, 3)]
    assert r["child"] == {"environ": {}, "fds": []}


# --- in process: every malformed variable ------------------------------------------

@contextlib.contextmanager
def passed(*fds):
    """Put FDS on 3, 4, ... for the test, and put back what was there."""
    targets = range(3, 3 + len(fds))
    saved = {}
    for target in targets:
        try:
            saved[target] = (fcntl.fcntl(target, fcntl.F_DUPFD_CLOEXEC, 200),
                             os.get_inheritable(target))
        except OSError:
            saved[target] = None
    copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 300) for fd in fds]
    for target, copy in zip(targets, copies):
        os.dup2(copy, target)
        os.close(copy)
    try:
        yield list(targets)
    finally:
        for target, old in saved.items():
            if old is None:
                os.close(target)
            else:
                os.dup2(old[0], target, inheritable=old[1])
                os.close(old[0])


def set_environment(values):
    for key in activation.VARIABLES + activation.UPSTART_VARIABLES:
        os.environ.pop(key, None)
    for key, value in values.items():
        os.environ[key] = value.replace("{pid}", str(os.getpid()))


def c_getenv(name):
    """The variable as the C library sees it (what a child would get)."""
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    return libc.getenv(name.encode())


PID = {"LISTEN_PID": "{pid}"}
NOTHING = [
    # (environment, number of sockets on 3..., words of diagnose())
    ({"LISTEN_FDS": "1"}, 1, "LISTEN_PID is not set"),
    ({"LISTEN_PID": "", "LISTEN_FDS": "1"}, 1, "LISTEN_PID= is not this process"),
    ({"LISTEN_PID": "+{pid}", "LISTEN_FDS": "1"}, 1, "is not this process"),
    ({"LISTEN_PID": " {pid}", "LISTEN_FDS": "1"}, 1, "is not this process"),
    ({"LISTEN_PID": "{pid}x", "LISTEN_FDS": "1"}, 1, "is not this process"),
    ({"LISTEN_PID": "1", "LISTEN_FDS": "1"}, 1, "LISTEN_PID=1 is not this process"),
    ({"LISTEN_PID": "9" * 40, "LISTEN_FDS": "1"}, 1, "is not this process"),
    (PID, 1, "LISTEN_FDS is not set"),
    ({**PID, "LISTEN_FDS": "0"}, 1, "LISTEN_FDS=0: Not a number from 1 to 2147483644"),
    ({**PID, "LISTEN_FDS": "-1"}, 1, "LISTEN_FDS=-1: Not a number"),
    ({**PID, "LISTEN_FDS": ""}, 1, "LISTEN_FDS=: Not a number"),
    ({**PID, "LISTEN_FDS": "1 "}, 1, "Not a number"),
    ({**PID, "LISTEN_FDS": "\u0661"}, 1, "Not a number"),
    ({**PID, "LISTEN_FDS": "0x1"}, 1, "Not a number"),
    ({**PID, "LISTEN_FDS": "2147483645"}, 1, "Not a number from 1 to 2147483644"),
    ({**PID, "LISTEN_FDS": "2"}, 1, "LISTEN_FDS=2: descriptor 4: Bad file descriptor"),
    ({**PID, "LISTEN_FDS": "2147483644"}, 2, "descriptor 5: Bad file descriptor"),
    ({**PID, "LISTEN_FDS": "1", "LISTEN_PIDFDID": "abc"}, 1,
     "LISTEN_PIDFDID=abc: Not a number"),
    ({**PID, "LISTEN_FDS": "1", "LISTEN_PIDFDID": str(2**64)}, 1, "Not a number"),
    ({**PID, "LISTEN_FDS": "1", "LISTEN_PIDFDID": "-1"}, 1, "Not a number"),
]


@pytest.mark.forked
@pytest.mark.parametrize("values, count, words", NOTHING,
                         ids=[str(i) for i in range(len(NOTHING))])
def test_nothing_for_a_missing_malformed_or_stale_variable(values, count, words):
    socks = [socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(count)]
    # Close 4 and 5 for the duration, so "not open" is what the rows say.
    with passed(*[s.fileno() for s in socks]) as fds, closed(3 + count, 3 + count + 1):
        set_environment(values)
        assert words in activation.diagnose()
        assert activation.listen_fds() == []
        assert all(os.get_inheritable(fd) for fd in fds)  # not taken
        for key in activation.VARIABLES:  # removed whatever the outcome
            assert key not in os.environ and c_getenv(key) is None


@contextlib.contextmanager
def closed(*fds):
    """FDS closed for the duration (put back afterwards)."""
    saved = {}
    for fd in fds:
        try:
            saved[fd] = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 200), os.get_inheritable(fd))
            os.close(fd)
        except OSError:
            pass
    try:
        yield
    finally:
        for fd, (copy, inheritable) in saved.items():
            os.dup2(copy, fd, inheritable=inheritable)
            os.close(copy)


NAMES = [
    # (LISTEN_FDNAMES or None, number of fds, the names listen_fds gives)
    (None, 2, ["unknown", "unknown"]),
    ("a:b", 2, ["a", "b"]),
    ("a", 2, ["unknown", "unknown"]),
    ("a:b:c", 2, ["unknown", "unknown"]),
    ("", 1, [""]),  # one empty name, as libsystemd reads it
    ("", 2, ["unknown", "unknown"]),
    (":", 2, ["", ""]),  # empty names are kept
    (":", 1, ["unknown"]),
    ("a::c", 3, ["a", "", "c"]),
    ("caf\u00e9:x y", 2, ["caf\u00e9", "x y"]),
]


@pytest.mark.forked
@pytest.mark.parametrize("names, count, expected", NAMES)
def test_names(names, count, expected):
    socks = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(count)]
    with passed(*[s.fileno() for s in socks]) as fds:
        set_environment({**PID, "LISTEN_FDS": str(count),
                         **({"LISTEN_FDNAMES": names} if names is not None else {})})
        assert activation.diagnose() is None
        assert activation.listen_fds() == list(zip(fds, expected))
        assert not any(os.get_inheritable(fd) for fd in fds)


@pytest.mark.forked
def test_a_name_that_is_not_utf8_comes_back_as_the_same_bytes():
    from chainload import core

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with passed(sock.fileno()):
        set_environment({**PID, "LISTEN_FDS": "1"})
        os.environb[b"LISTEN_FDNAMES"] = b"\xff\xfe"
        ((fd, name),) = activation.listen_fds()
        assert core.encode(name) == b"\xff\xfe"


@pytest.mark.forked
def test_listen_pidfdid_of_this_process_is_accepted_and_another_refused():
    mine = pidfd_id()
    if mine is None:
        pytest.skip("the kernel has no pidfs: LISTEN_PIDFDID cannot be checked")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with passed(sock.fileno()):
        set_environment({**PID, "LISTEN_FDS": "1", "LISTEN_PIDFDID": str(mine + 1)})
        assert activation.diagnose() == (
            f"LISTEN_PIDFDID={mine + 1} is not this process's pidfd ({pidfd_id()})")
        assert activation.listen_fds() == []
        set_environment({**PID, "LISTEN_FDS": "1", "LISTEN_PIDFDID": str(pidfd_id())})
        assert activation.listen_fds() == [(3, "unknown")]


@pytest.mark.forked
def test_variables_only_the_c_environment_has_are_removed_too():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with passed(sock.fileno()):
        set_environment({**PID, "LISTEN_FDS": "1"})
        # Set behind os.environ's back, as a C library would.
        ctypes.CDLL(None).setenv(b"LISTEN_FDNAMES", b"x", 1)
        assert "LISTEN_FDNAMES" not in os.environ
        assert activation.listen_fds() == [(3, "unknown")]  # os.environ is what it reads
        assert c_getenv("LISTEN_FDNAMES") is None
        assert c_getenv("LISTEN_FDS") is None and c_getenv("LISTEN_PID") is None


@pytest.mark.forked
def test_listen_sockets_detects_family_and_type_and_leaves_out_non_sockets():
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    seqpacket = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp6.bind(("::1", 0))
    udp6.setblocking(False)
    r, w = os.pipe()
    with passed(tcp.fileno(), r, seqpacket.fileno(), udp6.fileno()):
        set_environment({**PID, "LISTEN_FDS": "4", "LISTEN_FDNAMES": "web:fifo:seq:dns"})
        socks = activation.listen_sockets(unset_environment=False)
        assert [(s.fileno(), s.family, s.type) for s in socks] == [
            (3, socket.AF_INET, socket.SOCK_STREAM),
            (5, socket.AF_UNIX, socket.SOCK_SEQPACKET),
            (6, socket.AF_INET6, socket.SOCK_DGRAM)]
        assert socks[0].getsockname() == tcp.getsockname()
        # Blocking mode as passed, and the objects agree with the fds.
        assert [s.gettimeout() for s in socks] == [None, None, 0.0]
        assert os.get_blocking(3) and not os.get_blocking(6)
        assert not os.get_inheritable(4)  # the pipe: taken all the same
        for s in socks:
            s.detach()  # leave the fds to passed() to put back
        by_name = activation.sockets_by_name()
        assert {n: [s.fileno() for s in ss] for n, ss in by_name.items()} == {
            "web": [3], "seq": [5], "dns": [6]}
        for ss in by_name.values():
            ss[0].detach()
        assert activation.listen_sockets() == []  # the variables are gone now


@pytest.mark.forked
def test_sockets_by_name_groups_sockets_of_one_name_in_fd_order():
    socks = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3)]
    with passed(*[s.fileno() for s in socks]):
        set_environment({**PID, "LISTEN_FDS": "3", "LISTEN_FDNAMES": "a:b:a"})
        by_name = activation.sockets_by_name()
        assert list(by_name) == ["a", "b"]
        assert {n: [s.fileno() for s in ss] for n, ss in by_name.items()} == {
            "a": [3, 5], "b": [4]}
        for ss in by_name.values():
            for s in ss:
                s.detach()


UPSTART = [
    ({"UPSTART_EVENTS": "socket", "UPSTART_FDS": "3"}, 3),
    ({"UPSTART_EVENTS": "started socket", "UPSTART_FDS": "3"}, 3),
    ({"UPSTART_EVENTS": "started", "UPSTART_FDS": "3"}, None),
    ({"UPSTART_FDS": "3"}, None),
    ({"UPSTART_EVENTS": "socket"}, None),
    ({"UPSTART_EVENTS": "socket", "UPSTART_FDS": "x"}, None),
    ({"UPSTART_EVENTS": "socket", "UPSTART_FDS": "9"}, None),  # not open
    ({"UPSTART_EVENTS": "socket", "UPSTART_FDS": "0"}, None),  # standard: never taken
    ({"UPSTART_EVENTS": "socket", "UPSTART_FDS": "2"}, None),
]


@pytest.mark.forked
@pytest.mark.parametrize("values, expected", UPSTART)
def test_upstart_fd(values, expected):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with passed(sock.fileno()), closed(9):
        set_environment(values)
        assert activation.upstart_fd() == expected
        assert os.get_inheritable(3) == (expected is None)
        assert all(os.get_inheritable(fd) for fd in (0, 1, 2))
        for key in activation.UPSTART_VARIABLES:
            assert key not in os.environ and c_getenv(key) is None


def test_importing_takes_no_driver_docopt_or_socket():
    proc = subprocess.run(
        [PY, "-c", "import sys, chainload.activation; "
                   "print(sorted(m for m in ('chainload.chain', 'docopt', 'socket', "
                   "'_socket', 'chainload.commands') if m in sys.modules))"],
        capture_output=True, text=True, timeout=30, env=ENV)
    assert (proc.returncode, proc.stdout) == (0, "[]\n"), proc.stderr


# --- the docstring's examples and examples/stream_echo.py, with real clients ---------

def example(marker):
    """The code block that follows the first line containing MARKER in the
    module's docstring (prose lines in between are skipped)."""
    lines = activation.__doc__.split("\n")
    start = next(i for i, ln in enumerate(lines) if marker in ln)
    block = []
    for line in lines[start + 1:]:
        if line.startswith("    "):
            block.append(line)
        elif block and not line.strip():
            block.append(line)
        elif block:
            break
    return textwrap.dedent("\n".join(block))


@contextlib.contextmanager
def connect(address, type_, proc, timeout=10):
    """A client connected to ADDRESS, retrying while the server comes up."""
    family = socket.AF_UNIX if isinstance(address, (str, Path)) else socket.AF_INET
    address = str(address) if family == socket.AF_UNIX else tuple(address)
    deadline = time.monotonic() + timeout
    while True:
        client = socket.socket(family, type_)
        client.settimeout(10)
        try:
            client.connect(address)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            client.close()
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "nobody listening"
            time.sleep(0.02)
    with client:
        yield client


@contextlib.contextmanager
def started(argv):
    """Popen ARGV; stop it with SIGTERM (then SIGKILL) on the way out."""
    proc = subprocess.Popen(argv, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def launched(specs, prog, names=None):
    """socket_activate.py: sockets passed as systemd passes them."""
    return [PY, LAUNCH, *(["--names", names] if names else []), *specs, "--", *prog]


def stream_exchange(client):
    client.sendall(b"hello ")
    client.sendall(b"world\n")
    got = b""
    while len(got) < 12:
        got += client.recv(100)
    assert got == b"hello world\n"


def seqpacket_exchange(client):
    client.send(b"one")
    client.send(b"two, longer")
    assert [client.recv(100), client.recv(100)] == [b"one", b"two, longer"]


def test_intro_example_prints_fds_and_names(tmp_path):
    script = tmp_path / "intro.py"
    script.write_text(example("In the daemon:"))
    proc = subprocess.run([command("chainload"), *seq(tmp_path / "a.sock", "echo"),
                           PY, str(script)], env=ENV, capture_output=True, text=True,
                          timeout=30)
    assert (proc.returncode, proc.stdout) == (0, "3 echo\n"), proc.stderr


@pytest.mark.parametrize("kind", ["tcp", "unix-stream"])
@pytest.mark.parametrize("title", ["serve a stream socket with asyncio",
                                   "serve a stream socket with socketserver"])
def test_stream_examples(tmp_path, title, kind):
    script = tmp_path / "example.py"
    script.write_text(example(f"Example: {title}"))
    where = "127.0.0.1" if kind == "tcp" else str(tmp_path / "s.sock")
    with started(launched([f"{kind}={where}"], [PY, str(script)])) as proc:
        (address,) = json.loads(proc.stdout.readline())
        for _ in range(2):  # one connection after another
            with connect(address, socket.SOCK_STREAM, proc) as client:
                stream_exchange(client)


@pytest.mark.parametrize("title, name", [("serve SEQPACKET with a plain accept loop", None),
                                         ("serve SEQPACKET with asyncio", "echo")])
def test_seqpacket_examples(tmp_path, title, name):
    script = tmp_path / "example.py"
    script.write_text(example(f"Example: {title}"))
    path = tmp_path / "s.sock"
    with started([command("chainload"), *seq(path, name), PY, str(script)]) as proc:
        for _ in range(2):
            with connect(path, socket.SOCK_SEQPACKET, proc) as client:
                seqpacket_exchange(client)


def test_stream_echo_serves_every_passed_stream_socket(tmp_path):
    unix = tmp_path / "echo.sock"
    specs = ["tcp=127.0.0.1", f"unix-stream={unix}", f"unix-dgram={tmp_path / 'd.sock'}"]
    with started(launched(specs, [PY, STREAM_ECHO])) as proc:
        tcp, _, _ = json.loads(proc.stdout.readline())
        for address in (tcp, unix):
            with connect(address, socket.SOCK_STREAM, proc) as client:
                stream_exchange(client)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "fd 5 (name unknown): not a stream socket; ignored" in err
    assert f"listening on fd 3 (name unknown, AF_INET ('127.0.0.1', {tcp[1]}))" in err
    assert f"listening on fd 4 (name unknown, AF_UNIX '{unix}')" in err
    assert "SIGTERM: exiting" in err


def test_stream_echo_serves_only_the_named_sockets(tmp_path):
    # -S: no site-packages, so the example finds chainload in its checkout.
    specs = ["tcp=127.0.0.1", "tcp=127.0.0.1"]
    with started(launched(specs, [PY, "-S", STREAM_ECHO, "--fd-name", "admin"],
                          names="web:admin")) as proc:
        web, admin = json.loads(proc.stdout.readline())
        with connect(admin, socket.SOCK_STREAM, proc) as client:
            stream_exchange(client)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "listening on fd 4 (name admin," in err and "fd 3" not in err


@pytest.mark.parametrize("env, words", [
    ({}, "LISTEN_PID is not set"),
    ({"LISTEN_PID": "1", "LISTEN_FDS": "1"}, "LISTEN_PID=1 is not this process"),
])
def test_stream_echo_without_sockets_says_why(env, words):
    proc = subprocess.run([PY, STREAM_ECHO], env={**ENV, **env}, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 100
    (line,) = proc.stderr.splitlines()
    assert line.startswith("stream_echo: FATAL: ") and words in line


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stream_echo_behind_listen_tcp():
    built_in("listen-tcp")
    port = _free_port()
    with started([command("chainload"), "listen-tcp", SD, "127.0.0.1", str(port),
                  PY, STREAM_ECHO]) as proc:
        with connect(("127.0.0.1", port), socket.SOCK_STREAM, proc) as client:
            stream_exchange(client)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_stream_echo_behind_listen_stream(tmp_path):
    built_in("listen-stream")
    path = tmp_path / "echo.sock"
    with started([command("chainload"), "listen-stream", SD, str(path),
                  PY, STREAM_ECHO]) as proc:
        with connect(path, socket.SOCK_STREAM, proc) as client:
            stream_exchange(client)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


# --- the manual page ---------------------------------------------------------------

PAGE = ROOT / "man" / "chainload.activation.3"


def test_page_names_every_public_function_and_variable():
    text = PAGE.read_text().replace("\\-", "-")
    for name in activation.__all__:
        assert name in text, f"{PAGE.name} does not mention {name}"
    for name in activation.VARIABLES + activation.UPSTART_VARIABLES:
        assert name in text, f"{PAGE.name} does not mention {name}"


def test_page_installed_with_the_package():
    installed = Path(sys.prefix) / "share" / "man" / "man3" / PAGE.name
    assert installed.is_file(), f"{installed} is missing: reinstall (make venv)"
    assert installed.read_text() == PAGE.read_text()


def test_page_lint():
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed (make tools installs it as root)")
    proc = subprocess.run(["mandoc", "-Tlint", "-W", "warning", str(PAGE)],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")
    if shutil.which("groff") is not None:
        proc = subprocess.run(["groff", "-ww", "-z", "-man", str(PAGE)],
                              capture_output=True, text=True, timeout=60)
        assert proc.stderr == ""
