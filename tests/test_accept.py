"""The accept servers (issue 20): tcp-socket-accept, local-stream-socket-
accept, local-seqpacket-socket-accept, through the installed commands.

Each test starts a real server chain (a listener, then the accept server),
talks to it with real clients, and ends each connection's chain in a
program that reports what it got: the probe, or a line of shell.
"""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import command, root_only

PY = [sys.executable, "-I", "-S", "-c"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server chain started in the background; stopped (SIGTERM) at the end."""

    def __init__(self, argv, connect, env=None, preexec_fn=None):
        self.connect_to = connect
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     env=env, preexec_fn=preexec_fn)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.connect().close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited: {self.proc.stderr.read()}")
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.02)

    def connect(self):
        return self.connect_to()

    def talk(self, data=b"", timeout=10):
        s = self.connect()
        s.settimeout(timeout)
        try:
            if data:
                s.sendall(data)
            if s.type == socket.SOCK_STREAM:
                s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            s.close()

    def children(self):
        pid = self.proc.pid
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()

    def stop(self, signum=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.stderr.close()
            self.proc.wait(timeout=20)
            err = ""
        return err


def tcp_server(argv, listen=(), **kw):
    port = free_port()

    def connect():
        return socket.create_connection(("127.0.0.1", port), timeout=10)
    server = Server([command("listen-tcp"), *listen, "127.0.0.1", str(port), *argv],
                    connect, **kw)
    server.port = port
    return server


def local_server(path, argv, kind="stream", mode=None, **kw):
    sock_type = socket.SOCK_STREAM if kind == "stream" else socket.SOCK_SEQPACKET

    def connect():
        s = socket.socket(socket.AF_UNIX, sock_type)
        s.settimeout(10)
        s.connect(str(path))
        return s
    extra = ["--mode", mode] if mode else []
    return Server([command(f"listen-{kind}"), *extra, str(path), *argv], connect, **kw)


@pytest.fixture
def servers():
    started = []
    yield started
    for s in started:
        s.stop(signal.SIGKILL)


def environ_of(report):
    return dict(bytes.fromhex(h).decode("utf-8", "surrogateescape").partition("=")[::2]
                for h in report["environ_hex"])


# --- what a connection's program gets -------------------------------------------------

@pytest.mark.parametrize("name", ["tcp-socket-accept", "accept-tcp"])
def test_tcp_child_gets_the_connection_and_ucspi_variables(name, probe, servers):
    env = {**os.environ, "TCPREMOTEHOST": "stale", "TCPREMOTEINFO": "stale",
           "TCPLOCALHOST": "stale"}
    server = tcp_server([name, *probe], listen=["--systemd-compatibility"], env=env)
    servers.append(server)
    client = server.connect()
    client.shutdown(socket.SHUT_WR)
    report = json.loads(client.makefile("rb").read())
    here = client.getsockname()
    client.close()
    e = environ_of(report)
    assert (e["PROTO"], e["TCPLOCALIP"], e["TCPLOCALPORT"]) == ("TCP", "127.0.0.1",
                                                                 str(server.port))
    assert (e["TCPREMOTEIP"], e["TCPREMOTEPORT"]) == ("127.0.0.1", str(here[1]))
    for gone in ("TCPREMOTEHOST", "TCPREMOTEINFO", "TCPLOCALHOST", "LISTEN_FDS",
                 "LISTEN_PID", "LISTEN_FDNAMES", "REMOTE_ADDR"):
        assert gone not in e
    fds = report["fds"]
    for fd in ("0", "1"):
        assert fds[fd]["family"] == "AF_INET" and not fds[fd]["listening"]
        assert fds[fd]["name"] == ["127.0.0.1", server.port]
    assert fds["0"]["ino"] == fds["1"]["ino"]
    assert set(fds) == {"0", "1", "2"}  # no descriptor of the server's
    assert report["pid"] != server.proc.pid


def test_tcp_localname_and_ipv4_mapped_addresses(probe, servers, tmp_path):
    port = free_port()

    def connect():
        return socket.create_connection(("::1", port), timeout=10)
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = Server([command("listen-tcp"), "--combine4and6", "::", str(port),
                     "accept-tcp", "--localname", "example.org", *probe], connect)
    servers.append(server)
    for host, want in (("::1", "::1"), ("127.0.0.1", "127.0.0.1")):
        client = socket.create_connection((host, port), timeout=10)
        client.shutdown(socket.SHUT_WR)
        e = environ_of(json.loads(client.makefile("rb").read()))
        client.close()
        assert (e["TCPREMOTEIP"], e["TCPLOCALIP"], e["TCPLOCALHOST"]) == (want, want,
                                                                          "example.org")


def test_systemd_compatibility_puts_the_connection_on_fd_3(probe, servers, tmp_path):
    out = tmp_path / "report.json"
    env = {**os.environ, "PROBE_OUT": str(out)}
    server = tcp_server(["accept-tcp", "--systemd-compatibility", *probe], env=env)
    servers.append(server)
    client = server.connect()
    client.shutdown(socket.SHUT_WR)
    assert client.recv(10) == b""  # the program wrote its report elsewhere
    client.close()
    deadline = time.monotonic() + 10
    while not out.exists() or not out.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.1)
    report = json.loads(out.read_text())
    fds, e = report["fds"], environ_of(report)
    assert fds["3"]["family"] == "AF_INET" and not fds["3"]["listening"]
    assert fds["3"]["name"] == ["127.0.0.1", server.port]
    assert "family" not in fds["0"] and "family" not in fds["1"]  # /dev/null as given
    assert (e["LISTEN_FDS"], e["LISTEN_PID"], e["LISTEN_FDNAMES"]) == (
        "1", str(report["pid"]), "connection")
    assert e["REMOTE_ADDR"] == "127.0.0.1" and e["REMOTE_PORT"] == e["TCPREMOTEPORT"]


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_local_child_gets_peer_credentials(kind, probe, servers, tmp_path):
    path = tmp_path / "s.sock"
    server = local_server(path, [f"accept-{kind}", *probe], kind=kind)
    servers.append(server)
    s = server.connect()
    if kind == "stream":
        s.shutdown(socket.SHUT_WR)
    data = s.recv(1 << 20)
    s.close()
    report = json.loads(data)
    e = environ_of(report)
    assert e["PROTO"] == "UNIX" and e["UNIXLOCALPATH"] == str(path)
    assert (e["UNIXREMOTEPID"], e["UNIXREMOTEEUID"], e["UNIXREMOTEEGID"]) == (
        str(os.getpid()), str(os.geteuid()), str(os.getegid()))
    assert report["fds"]["0"]["type"] == f"SOCK_{kind.upper()}"
    assert set(report["fds"]) == {"0", "1", "2"}


@root_only
def test_local_service_tells_two_users_apart(servers, tmp_path, world_tmp):
    """A local-stream service that prints UNIXREMOTEEUID, to clients
    running as root and as nobody."""
    path = world_tmp / "who.sock"
    server = local_server(path, ["accept-stream", "sh", "-c", 'echo "$UNIXREMOTEEUID"'],
                          mode="0666")
    servers.append(server)
    assert server.talk() == b"0\n"
    nobody = pwd.getpwnam("nobody")
    code = ("import socket,sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "sys.stdout.write(s.makefile().read())")
    out = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", code, str(path)],
                         capture_output=True, text=True, timeout=30,
                         user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    assert out.stdout == f"{nobody.pw_uid}\n", out.stderr


# --- the child's state: signals, builtins in-process, nothing imported ---------------

def test_child_gets_the_signal_state_the_server_inherited(servers):
    def preexec():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

    from test_signals import status_masks
    server = tcp_server(["accept-tcp", "/bin/grep", "^Sig", "/proc/self/status"],
                        preexec_fn=preexec)
    servers.append(server)
    masks = status_masks(server.talk().decode())
    assert masks["SigIgn"] & {signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE, signal.SIGINT} \
        == {signal.SIGHUP, signal.SIGCHLD}
    assert masks["SigBlk"] == {signal.SIGUSR1}
    assert not masks["SigCgt"] & {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT,
                                  signal.SIGHUP}
    # SIGCHLD ignored, and still every child was reaped by the server.
    deadline = time.monotonic() + 10
    while server.children():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def traced(servers, tmp_path, trace, argv, reply):
    """The lines strace -f -e trace=TRACE wrote while a TCP server chain
    ending in ARGV answered one connection with REPLY (and the readiness
    check's before it)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (make test installs it as root)")
    log = tmp_path / "strace.log"
    port = free_port()
    server = Server([strace, "-f", "-qq", "-o", str(log), "-e", f"trace={trace}",
                     command("listen-tcp"), "127.0.0.1", str(port), *argv],
                    lambda: socket.create_connection(("127.0.0.1", port), timeout=10))
    servers.append(server)
    assert server.talk() == reply
    time.sleep(0.3)
    (chain,) = server.children()  # strace's child: stop the server, not strace
    os.kill(int(chain), signal.SIGTERM)
    server.proc.communicate(timeout=20)
    return log.read_text().splitlines()


def test_each_connection_costs_a_fork_and_one_exec(servers, tmp_path):
    lines = traced(servers, tmp_path, "execve,openat,open",
                   ["accept-tcp", "setenv", "X", "1", "umask", "077", "fdmove", "-c", "2", "1",
                    "sh", "-c", "echo $X"], b"1\n")
    pids = [int(ln.split()[0]) for ln in lines]
    first = pids[0]
    opened_after_fork = [ln for ln, pid in zip(lines, pids) if pid != first
                         and "open" in ln and ("python" in ln or ".py" in ln)
                         and "execve" not in ln]
    # A child's opens before its exec are its links' own (none here), and
    # after the exec sh's: never a Python module.
    assert not opened_after_fork, opened_after_fork
    # One exec per connection (the readiness check's and this one), straight
    # to the program: the links ran in the child (strace may split a line
    # into "unfinished" and "resumed" parts).
    execs = [ln for ln, pid in zip(lines, pids) if pid != first and "execve(" in ln]
    assert len(execs) == 2 and all('execve("/usr/bin/sh"' in ln or 'execve("/bin/sh"' in ln
                                   for ln in execs), execs


# --- the children never touch the server --------------------------------------------

def test_failing_children_leave_the_server_and_its_socket(servers, tmp_path):
    path = tmp_path / "s.sock"
    server = local_server(path, ["accept-stream", "setuidgid", "no-such-user-chainload",
                                 "true"])
    servers.append(server)
    for _ in range(3):
        assert server.talk() == b""
    server2 = local_server(tmp_path / "t.sock", ["accept-stream", "sh", "-c",
                                                 "kill -KILL $$"])
    servers.append(server2)
    for _ in range(3):
        assert server2.talk() == b""
    time.sleep(0.3)
    for s in (server, server2):
        assert s.proc.poll() is None
        assert s.children() == []
    assert path.is_socket() and (tmp_path / "t.sock").is_socket()
    err = server.stop()
    assert err.count("setuidgid: FATAL: no-such-user-chainload: No such user.") == 4
    assert "Traceback" not in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_stop_signal_removes_the_socket_and_spares_running_children(servers, tmp_path,
                                                                     signum):
    path = tmp_path / "s.sock"
    server = local_server(path, ["accept-stream", "sh", "-c",
                                 "echo started; read line; echo \"got $line\""])
    servers.append(server)
    client = server.connect()
    reader = client.makefile("rb")
    assert reader.readline() == b"started\n"
    server.proc.send_signal(signum)  # (the child holds the stderr pipe: no communicate)
    assert server.proc.wait(timeout=20) == -signum
    assert not path.exists()
    client.sendall(b"late\n")
    assert reader.readline() == b"got late\n"
    client.close()


def test_connection_limit_waits_for_a_child_to_exit(servers):
    server = tcp_server(["accept-tcp", "--connection-limit", "1", "-v", "sh", "-c",
                         "echo started; read line"])
    servers.append(server)
    time.sleep(0.2)  # the readiness check's child has gone
    first = server.connect()
    assert first.makefile("rb").readline() == b"started\n"
    second = server.connect()  # the kernel completes it; nobody accepts yet
    second.settimeout(0.5)
    with pytest.raises(TimeoutError):
        second.recv(1)
    first.sendall(b"done\n")
    second.settimeout(10)
    assert second.makefile("rb").readline() == b"started\n"
    second.close()
    first.close()
    err = server.stop()
    assert "(1/1)" in err and "(0/1)" in err
    assert "end " in err and ": exit 0 " in err


def test_out_of_descriptors_is_survived(servers, tmp_path):
    """softlimit -o leaves the server no descriptor for a connection: it
    says so, pauses, and goes on; a connection gets served once there are."""
    path = tmp_path / "s.sock"
    # 0-2, the listener, the wakeup pipe: 6; at 6 an accept gets EMFILE.
    server = local_server(path, ["softlimit", "-o", "6", "accept-stream", "echo", "hi"])
    servers.append(server)
    time.sleep(1)
    assert server.proc.poll() is None
    err = server.stop()
    lines = err.splitlines()
    assert lines and all(ln == "local-stream-socket-accept: accept: Too many open files; "
                         "trying again." for ln in lines), err
    assert len(lines) < 30  # it pauses between tries
    assert not path.exists()


# --- socket options --------------------------------------------------------------

OPTIONS = ("import socket; s = socket.socket(fileno=0); "
           "print(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), "
           "s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)); s.detach()")


@pytest.mark.parametrize("flags, want", [([], b"1 0\n"), (["--no-delay"], b"1 1\n"),
                                         (["--no-keepalives"], b"0 0\n")])
def test_tcp_socket_options(servers, flags, want):
    server = tcp_server(["accept-tcp", *flags, *PY, OPTIONS])
    servers.append(server)
    assert server.talk() == want


# --- real inetd-mode programs -------------------------------------------------------

def test_rsync_daemon_serves_a_module(servers, tmp_path):
    rsync = shutil.which("rsync")
    if rsync is None:
        pytest.skip("rsync is not installed (Debian package rsync)")
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("hello\n")
    conf = tmp_path / "rsyncd.conf"
    conf.write_text(f"use chroot = no\n[mod]\npath = {data}\nread only = yes\n")
    server = tcp_server(["accept-tcp", rsync, "--daemon", f"--config={conf}"])
    servers.append(server)
    out = subprocess.run([rsync, f"rsync://127.0.0.1:{server.port}/mod/"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "hello.txt" in out.stdout
    dest = tmp_path / "copy"
    out = subprocess.run([rsync, "-r", f"rsync://127.0.0.1:{server.port}/mod/", str(dest)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (dest / "hello.txt").read_text() == "hello\n"


def test_git_daemon_inetd_serves_a_repository(servers, tmp_path):
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed (Debian package git)")
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    repo = tmp_path / "repo"
    subprocess.run([git, "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    subprocess.run([git, "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "--allow-empty", "-m", "one"], check=True, env=env)
    head = subprocess.run([git, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True, env=env).stdout.strip()
    server = tcp_server(["accept-tcp", git, "daemon", "--inetd", "--export-all",
                         f"--base-path={tmp_path}", str(tmp_path)], env=env)
    servers.append(server)
    out = subprocess.run([git, "ls-remote", f"git://127.0.0.1:{server.port}/repo"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert f"{head}\trefs/heads/main" in out.stdout


# --- a program alone after the server: posix_spawn, same start as a fork ------------

def _same_start(report):
    """What must not differ between two connections' programs."""
    e = environ_of(report)
    e.pop("TCPREMOTEPORT"), e.pop("TCPLOCALPORT")  # two servers (each its stderr pipe)
    fds = {fd: {k: v for k, v in d.items() if k not in ("ino", "name", "target")}
           for fd, d in report["fds"].items()}
    keep = {k: report[k] for k in ("umask", "cwd", "argv") if k in report}
    return e, fds, keep


def test_program_alone_is_spawned_with_what_a_forked_child_gets(probe, servers):
    """`accept-tcp PROG` starts PROG with posix_spawn (no fork of the server);
    `accept-tcp unsetenv NAME PROG` (a builtin that changes nothing here)
    forks a child that runs the link: both programs get the same
    environment, descriptors and signal state."""
    def preexec():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

    from test_signals import GREP, status_masks
    env = {**os.environ, "LISTEN_FDNAMES": "stale", "TCPREMOTEHOST": "stale"}
    reports, masks = [], []
    for links in ([], ["unsetenv", "CHAINLOAD_NOT_SET"]):
        server = tcp_server(["accept-tcp", *links, *probe], env=env, preexec_fn=preexec)
        servers.append(server)
        reports.append(json.loads(server.talk()))
        server = tcp_server(["accept-tcp", *links, *GREP], env=env, preexec_fn=preexec)
        servers.append(server)
        masks.append(status_masks(server.talk().decode()))
    assert _same_start(reports[0]) == _same_start(reports[1])
    e, fds, _ = _same_start(reports[0])
    assert set(fds) == {"0", "1", "2"} and e["PROTO"] == "TCP"
    assert "LISTEN_FDNAMES" not in e and "TCPREMOTEHOST" not in e
    assert masks[0] == masks[1]
    assert masks[0]["SigBlk"] == {signal.SIGUSR1}
    assert masks[0]["SigIgn"] & {signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ,
                                 signal.SIGCHLD} == {signal.SIGHUP}
    assert not masks[0]["SigCgt"] & {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def test_program_alone_costs_a_vfork_not_a_fork(servers, tmp_path):
    lines = traced(servers, tmp_path, "clone,clone3,fork,vfork",
                   ["accept-tcp", "/bin/echo", "hi"], b"hi\n")
    clones = [ln for ln in lines if "clone" in ln or "fork(" in ln]
    assert len(clones) == 2, clones  # the readiness check's connection and this one
    assert all("CLONE_VFORK" in ln and "CLONE_VM" in ln for ln in clones), clones


def test_program_not_found_is_the_forked_childs_fatal_line_and_127(servers, tmp_path):
    """When posix_spawn cannot start the program, the forked child tries
    the same PATH search and fails as it always did: one FATAL line and
    status 127 per connection, the server going on."""
    server = tcp_server(["accept-tcp", "--verbose", "no-such-program-chainload"])
    servers.append(server)
    for _ in range(2):
        assert server.talk() == b""
    time.sleep(0.3)
    assert server.proc.poll() is None and server.children() == []
    err = server.stop()
    lines = err.splitlines()
    fatal = "accept-tcp: FATAL: no-such-program-chainload: No such file or directory"
    assert lines.count(fatal) == 3  # the readiness check's and these two
    assert sum(ln.startswith("tcp-socket-accept: end ") and ": exit 127 (" in ln
               for ln in lines) == 3
    assert "Traceback" not in err


def test_links_parsed_ahead_still_print_help_and_refuse_bad_words(servers):
    """The server parses the later links once (each child is a copy of it),
    but --help and usage errors stay the child's, connection by connection."""
    server = tcp_server(["accept-tcp", "setenv", "--help"])
    servers.append(server)
    assert server.talk().startswith(b"Usage: setenv ")
    bad = tcp_server(["accept-tcp", "umask", "99x", "true"])
    servers.append(bad)
    assert bad.talk() == b""
    err = bad.stop()
    assert err.count("umask: FATAL: ") == 2 and "Traceback" not in err


@pytest.mark.parametrize("links", [[], ["setenv", "CHAINLOAD_SET", "new"]],
                         ids=["spawned", "forked"])
def test_environment_bytes_pass_exactly_through_both_paths(links, probe, servers):
    """The server encodes its variables once (boundary.encode_ahead) and both
    the posix_spawn path and a forked child's exec pass them on byte for
    byte, in order, with what a link changed and the UCSPI variables."""
    env = {**os.environb, b"CHAINLOAD_RAW": b"\xff\xfe=x", b"CHAINLOAD_SET": b"old"}
    server = tcp_server(["accept-tcp", *links, *probe], env=env)
    servers.append(server)
    report = json.loads(server.talk())
    entries = [bytes.fromhex(h) for h in report["environ_hex"]]
    assert b"CHAINLOAD_RAW=\xff\xfe=x" in entries
    assert (b"CHAINLOAD_SET=new" if links else b"CHAINLOAD_SET=old") in entries
    given = [k + b"=" for k in env if not k.startswith(b"LISTEN_")]
    names = [e.partition(b"=")[0] + b"=" for e in entries]
    assert [n for n in names if n in given] == given  # the order as given
    assert names[len(given):][:1] == [b"PROTO="]  # the new ones after
