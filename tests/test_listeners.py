"""The listener family (issue 11), end to end, plus the shared core in-process.

Stream, datagram, TCP and UDP listeners (and the seqpacket one where the
rule is shared): what the next program inherits, real data through real
clients, the stacking of mixed listeners, every option read back with
getsockopt or ss(8), the live-socket rule, bad input. TCP and UDP bind only
127.0.0.1 and ::1, on ports the kernel just said were free.
"""

import json
import os
import shutil
import socket
import stat
import subprocess
import sys

import pytest

from conftest import command, main_as_user, root_only, run

LIBSYSTEMD = any(os.path.exists(f"{d}/libsystemd.so.0")
                 for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                           "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"))
SS = shutil.which("ss")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LISTEN_", "UPSTART_", "PROBE_"))}
    env.update(extra)
    return env


def free_port(family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A port that nobody uses on loopback right now (TCP and UDP alike)."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    for _ in range(50):
        with socket.socket(family, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(family, other) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port")


def port_is_free(host, port, kind):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def report_of(argv, probe, **env):
    r = run([*argv, *probe], env=clean_env(**env))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return r.report


def fatal(r, status, text):
    assert r.returncode == status, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    line = r.fatal_line()
    assert text in line, line
    return line


# --- what the next program inherits ------------------------------------------------

# (command, family, type, listening)
LOCAL = [("listen-stream", "AF_UNIX", "SOCK_STREAM", True),
         ("local-stream-socket-listen", "AF_UNIX", "SOCK_STREAM", True),
         ("listen-datagram", "AF_UNIX", "SOCK_DGRAM", False),
         ("local-datagram-socket-listen", "AF_UNIX", "SOCK_DGRAM", False),
         ("listen-seqpacket", "AF_UNIX", "SOCK_SEQPACKET", True)]
INET = [("listen-tcp", "127.0.0.1", "AF_INET", "SOCK_STREAM", True),
        ("tcp-socket-listen", "::1", "AF_INET6", "SOCK_STREAM", True),
        ("listen-udp", "127.0.0.1", "AF_INET", "SOCK_DGRAM", False),
        ("udp-socket-listen", "::1", "AF_INET6", "SOCK_DGRAM", False)]


def check_fd3(report, family, kind, listening):
    info = report["fds"]["3"]
    assert (info["family"], info["type"], info["listening"]) == (family, kind, listening)
    assert info["blocking"] is True
    assert info["cloexec"] is False
    assert sorted(report["fds"]) == ["0", "1", "2", "3"]
    if LIBSYSTEMD:
        sd = info["sd"]
        assert sd["unix"] is (family == "AF_UNIX")
        assert sd["inet"] is (family != "AF_UNIX")
        assert sd["types"] == [kind]
        assert sd["listening"] is listening
    return info


@pytest.mark.parametrize("name, family, kind, listening", LOCAL, ids=[c[0] for c in LOCAL])
def test_local_listener_fd3(tmp_path, probe, name, family, kind, listening):
    path = str(tmp_path / "s")
    rep = report_of([name, path], probe, PROBE_LIBSYSTEMD="1")
    info = check_fd3(rep, family, kind, listening)
    assert info["name"] == path
    assert rep["env"] == {}
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.mark.parametrize("name", ["listen-stream", "listen-datagram"])
def test_local_listener_options(tmp_path, probe, name):
    """The seqpacket listener's file and socket options, on the siblings."""
    path = str(tmp_path / "s")
    owner = [] if os.geteuid() != 0 else ["--uid", "1", "--gid", "2"]
    rep = report_of([name, *owner, "--pass-credentials", "-m", "02640", path], probe)
    assert rep["fds"]["3"]["passcred"] == 1
    st = os.lstat(path)
    assert stat.S_IMODE(st.st_mode) == 0o2640
    if owner:
        assert (st.st_uid, st.st_gid) == (1, 2)
    abstract = f"@chainload-test-{os.getpid()}-{name}"
    rep = report_of([name, "--systemd-compatibility", abstract], probe)
    assert rep["fds"]["3"]["name"] == "\0" + abstract[1:]
    assert rep["env"]["LISTEN_FDS"] == "1"


@pytest.mark.parametrize("name, host, family, kind, listening", INET, ids=[c[0] for c in INET])
def test_inet_listener_fd3(probe, name, host, family, kind, listening):
    port = free_port(getattr(socket, family), getattr(socket, kind))
    rep = report_of([name, host, str(port)], probe, PROBE_LIBSYSTEMD="1")
    info = check_fd3(rep, family, kind, listening)
    assert info["name"][:2] == [host, port]
    assert info["proto"] == (socket.IPPROTO_TCP if kind == "SOCK_STREAM" else socket.IPPROTO_UDP)
    # The defaults: SO_REUSEADDR on, the rest off, IPv6 only on an IPv6 socket.
    assert (info["reuseaddr"], info["reuseport"], info["freebind"]) == (1, 0, 0)
    assert info.get("v6only", 1) == 1


def test_umbrella_and_service_name(probe):
    """Through `chainload`, a service given by name (from /etc/services)."""
    if not port_is_free("127.0.0.1", 7, socket.SOCK_DGRAM):
        pytest.skip("udp port 7 (echo) is in use")
    try:
        socket.getservbyname("echo", "udp")
    except OSError:
        pytest.skip("no 'echo' in the services database")
    if os.geteuid() != 0:
        pytest.skip("port 7 needs root")
    rep = report_of(["chainload", "listen-udp", "127.0.0.1", "echo"], probe)
    assert rep["fds"]["3"]["name"] == ["127.0.0.1", 7]


# --- real data --------------------------------------------------------------------

SERVER = r"""
import json, os, socket, sys
s = socket.socket(fileno=3)
print(json.dumps({"pid": os.getpid()}), flush=True)
if s.type == socket.SOCK_DGRAM:
    for _ in range(int(sys.argv[1])):
        msg, peer = s.recvfrom(1 << 17)
        s.sendto(b"got:" + msg, peer)
else:
    conn, _ = s.accept()
    data = b""
    while chunk := conn.recv(1 << 16):
        data += chunk
    conn.sendall(b"got:" + data)
    conn.close()
print("done", flush=True)
"""

MESSAGES = [b"a", b"\0two\0", b"x" * 4096, os.urandom(60_000), b"last"]


def serve(argv):
    proc = subprocess.Popen([command(argv[0]), *argv[1:], sys.executable, "-I", "-S", "-c",
                             SERVER, str(len(MESSAGES))],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    hello = proc.stdout.readline()
    assert hello, proc.communicate(timeout=10)
    assert json.loads(hello)["pid"] == proc.pid  # exec'd, never forked
    return proc


def finish(proc):
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out, err) == (0, "done\n", "")


def stream_exchange(client, address):
    client.settimeout(20)
    client.connect(address)
    data = b"".join(MESSAGES)
    client.sendall(data)
    client.shutdown(socket.SHUT_WR)
    got = b""
    while chunk := client.recv(1 << 16):
        got += chunk
    assert got == b"got:" + data


def datagram_exchange(client, address):
    client.settimeout(20)
    for m in MESSAGES:  # all queued before any reply is read
        client.sendto(m, address)
    for m in MESSAGES:  # one reply per datagram, boundaries kept
        assert client.recv(1 << 17) == b"got:" + m


def test_stream_bytes(tmp_path):
    path = str(tmp_path / "s")
    proc = serve(["listen-stream", path])
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            stream_exchange(c, path)
    finally:
        finish(proc)


def test_local_datagrams_keep_boundaries(tmp_path):
    path = str(tmp_path / "s")
    proc = serve(["listen-datagram", "--mode", "0600", path])
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            c.bind(str(tmp_path / "client"))  # so the server can answer
            datagram_exchange(c, path)
    finally:
        finish(proc)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("name, kind, exchange", [
    ("listen-tcp", socket.SOCK_STREAM, stream_exchange),
    ("listen-udp", socket.SOCK_DGRAM, datagram_exchange),
], ids=["tcp-bytes", "udp-datagrams-keep-boundaries"])
def test_ip_exchange(host, name, kind, exchange):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    port = free_port(family, kind)
    proc = serve([name, host, str(port)])
    try:
        with socket.socket(family, kind) as c:
            exchange(c, (host, port))
    finally:
        finish(proc)


# --- stacking ---------------------------------------------------------------------

def test_mixed_listeners_stack(tmp_path, probe):
    port = free_port()
    sd = "--systemd-compatibility"
    rep = report_of(["listen-stream", sd, "--fd-name", "api", str(tmp_path / "api"),
                     "listen-datagram", sd, "--fd-name", "log", str(tmp_path / "log"),
                     "listen-tcp", sd, "--fd-name", "web", "127.0.0.1", str(port),
                     "listen-udp", sd, "--upstart-compatibility", "::1", str(port)], probe)
    fds = rep["fds"]
    assert [(fds[n]["family"], fds[n]["type"], fds[n]["listening"]) for n in "3456"] == [
        ("AF_UNIX", "SOCK_STREAM", True), ("AF_UNIX", "SOCK_DGRAM", False),
        ("AF_INET", "SOCK_STREAM", True), ("AF_INET6", "SOCK_DGRAM", False)]
    assert "7" not in fds
    env = rep["env"]
    assert env["LISTEN_FDS"] == "4"
    assert env["LISTEN_PID"] == str(rep["pid"])
    assert env["LISTEN_FDNAMES"] == "api:log:web:unknown"
    assert (env["UPSTART_FDS"], env["UPSTART_EVENTS"]) == ("6", "socket")


def test_three_kinds_on_3_4_5(tmp_path, probe):
    """The chain of the issue: stream, datagram, tcp -> fds 3, 4, 5."""
    sd = "--systemd-compatibility"
    rep = report_of(["listen-stream", sd, "--fd-name", "a", str(tmp_path / "a"),
                     "listen-datagram", sd, "--fd-name", "b", str(tmp_path / "b"),
                     "listen-tcp", sd, "--fd-name", "c", "127.0.0.1", str(free_port())],
                    probe)
    assert sorted(rep["fds"]) == ["0", "1", "2", "3", "4", "5"]
    assert (rep["env"]["LISTEN_FDS"], rep["env"]["LISTEN_FDNAMES"]) == ("3", "a:b:c")


# --- options read back -------------------------------------------------------------

@pytest.mark.parametrize("name", ["listen-tcp", "listen-udp"])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("flags, expect", [
    (["--no-reuse-address"], {"reuseaddr": 0}),
    (["--reuse-port"], {"reuseaddr": 1, "reuseport": 1}),
    (["--bind-to-any"], {"freebind": 1}),
    (["--combine4and6"], {"v6only": 0}),
    (["--no-reuse-address", "--reuse-port", "--bind-to-any", "-H", "--numeric-service",
      "--check-interfaces"], {"reuseaddr": 0, "reuseport": 1, "freebind": 1, "v6only": 1}),
])
def test_ip_options(probe, name, host, flags, expect):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if name == "listen-tcp" else socket.SOCK_DGRAM
    port = free_port(family, kind)
    if "--combine4and6" in flags and family == socket.AF_INET6:
        # bind(2) to an IPv6 address other than :: or a v4-mapped one sets
        # IPV6_V6ONLY itself; the mapped loopback address keeps what we set.
        host, port = "::ffff:127.0.0.1", free_port(socket.AF_INET, kind)
    rep = report_of([name, *flags, host, str(port)], probe)
    info = rep["fds"]["3"]
    if family == socket.AF_INET:
        assert "v6only" not in info  # not an IPv6 socket: not set, not read
        expect = {k: v for k, v in expect.items() if k != "v6only"}
    assert {k: info[k] for k in expect} == expect


def test_combine4and6_takes_ipv4():
    """An IPv6 socket takes IPv4 traffic only with --combine4and6: bound to
    the IPv4-mapped loopback address it then answers on 127.0.0.1; without
    the option (IPV6_V6ONLY on) that address cannot even be bound."""
    port = free_port()
    address = f"::ffff:127.0.0.1 {port}"
    r = run(["listen-tcp", "::ffff:127.0.0.1", str(port), "true"], env=clean_env())
    fatal(r, 111, f"listen-tcp: FATAL: {address}: Invalid argument")
    client = ("import socket, sys\n"
              "c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
              "print(socket.socket(fileno=3).accept()[1][0])\n")
    r = run(["listen-tcp", "--combine4and6", "::ffff:127.0.0.1", str(port),
             sys.executable, "-I", "-S", "-c", client, str(port)], env=clean_env())
    assert (r.returncode, r.stdout, r.stderr) == (0, "::ffff:127.0.0.1\n", "")


@pytest.mark.skipif(SS is None, reason="ss (iproute2) is not installed")
def test_backlog_read_back_with_ss(tmp_path):
    """ss shows a listening socket's backlog in its Send-Q column."""
    port, path = free_port(), str(tmp_path / "s")
    sd = "--systemd-compatibility"
    r = run(["listen-stream", sd, "-b", "7", path,
             "listen-seqpacket", sd, "--backlog", "011", str(tmp_path / "q"),
             "listen-tcp", sd, "-b", "0x1d", "127.0.0.1", str(port),
             "listen-tcp", sd, "::1", str(free_port(socket.AF_INET6)),
             "/bin/sh", "-c", f'{SS} -xlH; echo =; {SS} -ltnH "sport = :{port}"; echo =;'
             f'{SS} -ltnH "src [::1]"'], env=clean_env())
    assert r.returncode == 0, r.stderr
    unix, tcp, tcp6 = r.stdout.split("=\n")
    backlog = {line.split()[4]: int(line.split()[3]) for line in unix.splitlines()
               if line.split()[4] in (path, str(tmp_path / "q"))}
    assert backlog == {path: 7, str(tmp_path / "q"): 9}
    assert [int(line.split()[2]) for line in tcp.splitlines()] == [29]
    somaxconn = int(open("/proc/sys/net/core/somaxconn").read())
    assert str(min(socket.SOMAXCONN, somaxconn)) in tcp6.split()


# --- the live-socket rule (all three AF_UNIX types) -------------------------------

KINDS = {"listen-stream": socket.SOCK_STREAM, "listen-seqpacket": socket.SOCK_SEQPACKET,
         "listen-datagram": socket.SOCK_DGRAM}


def live_server(path, kind):
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(path)
    if kind != socket.SOCK_DGRAM:
        s.listen()
    return s


def still_serving(server, path, kind):
    with socket.socket(socket.AF_UNIX, kind) as c:
        c.settimeout(5)
        if kind == socket.SOCK_DGRAM:
            c.sendto(b"ping", path)
            server.settimeout(5)
            assert server.recv(10) == b"ping"
        else:
            c.connect(path)
            server.settimeout(5)
            conn, _ = server.accept()
            conn.close()


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("server_kind", KINDS)
def test_live_socket_is_never_replaced(tmp_path, probe, name, server_kind):
    path = str(tmp_path / "s")
    kind = KINDS[server_kind]
    with live_server(path, kind) as server:
        before = os.lstat(path)
        r = run([name, path, *probe], env=clean_env())
        fatal(r, 111, f"{path}: In use by a running server; not replacing it.")
        after = os.lstat(path)
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
        if kind != socket.SOCK_DGRAM:
            # Our probe connection is the one the server sees first.
            server.settimeout(5)
            probe_conn, _ = server.accept() if kind == KINDS[name] else (None, None)
            if probe_conn is not None:
                probe_conn.close()
        still_serving(server, path, kind)


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("server_kind", KINDS)
def test_stale_socket_is_replaced(tmp_path, probe, name, server_kind):
    path = str(tmp_path / "s")
    live_server(path, KINDS[server_kind]).close()
    rep = report_of([name, path], probe)
    assert rep["fds"]["3"]["name"] == path
    assert rep["fds"]["3"]["type"] == socket.SocketKind(KINDS[name]).name
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_live_socket_with_full_backlog_is_not_replaced(tmp_path, probe):
    """EAGAIN (nobody accepts, backlog full) still means a live server."""
    path = str(tmp_path / "s")
    with live_server(path, socket.SOCK_STREAM) as server:
        server.listen(0)
        clients = []
        try:
            for _ in range(4):  # fill the backlog
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.setblocking(False)
                try:
                    c.connect(path)
                except BlockingIOError:
                    c.close()
                    break
                clients.append(c)
            r = run(["listen-stream", path, *probe], env=clean_env())
            fatal(r, 111, "In use by a running server")
        finally:
            for c in clients:
                c.close()


@root_only
def test_live_socket_that_cannot_be_reached_is_refused_with_the_reason(world_tmp):
    """As nobody, a root-owned 0600 socket cannot be connected to (EACCES):
    we cannot tell whether it is stale, so it stays."""
    path = str(world_tmp / "s")
    live_server(path, socket.SOCK_STREAM).close()
    os.chmod(path, 0o600)
    status, _, err = main_as_user(["listen-stream", path, "true"], "nobody")
    assert status == 111, err
    assert f"listen-stream: FATAL: {path}: Permission denied; not replacing it." in err
    assert os.lstat(path).st_uid == 0


# --- bad input: nothing bound ---------------------------------------------------------

STRACE = shutil.which("strace")


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (make tools)")
@pytest.mark.parametrize("argv", [["listen-tcp", "127.0.0.1", "{port}"],
                                  ["listen-udp", "127.0.0.1", "{port}"],
                                  ["listen-stream", "{d}/s"], ["listen-datagram", "{d}/s"]])
def test_missing_next_program_binds_nothing(tmp_path, argv):
    """nosh's udp-socket-listen binds before it notices; here not even a
    socket is made (a socket bound and closed at exit would leave no trace
    afterwards, so the system calls are watched)."""
    port, log = free_port(), tmp_path / "strace.log"
    argv = [a.replace("{port}", str(port)).replace("{d}", str(tmp_path)) for a in argv]
    r = run([STRACE, "-f", "-qq", "-o", str(log), "-e", "trace=socket,bind,listen",
             "-e", "signal=none", command(argv[0]), *argv[1:]], env=clean_env())
    if "PTRACE" in r.stderr:
        pytest.skip(f"strace cannot trace here: {r.stderr.strip()}")
    fatal(r, 100, "Missing next program")
    calls = [ln.split("(")[0].split()[-1] for ln in log.read_text().splitlines() if "(" in ln]
    assert not {"socket", "bind", "listen"} & set(calls), calls
    assert port_is_free("127.0.0.1", port, socket.SOCK_STREAM)
    assert os.listdir(tmp_path) == ["strace.log"]


def test_missing_next_program_in_a_chain_binds_nothing(tmp_path):
    """A later link's usage error comes after the first listener bound; the
    chain then exits, and the first socket (file) is gone."""
    port = free_port()
    r = run(["listen-stream", str(tmp_path / "s"), "listen-tcp", "127.0.0.1", str(port)],
            env=clean_env())
    fatal(r, 100, "Missing next program")
    assert os.listdir(tmp_path) == []
    assert port_is_free("127.0.0.1", port, socket.SOCK_STREAM)


@pytest.mark.parametrize("argv, where", [(["listen-stream", "{d}/s"], "{d}/s"),
                                         (["listen-udp", "127.0.0.1", "{port}"],
                                          "127.0.0.1 {port}")], ids=["stream", "udp"])
def test_descriptor_beyond_the_limit_is_named(tmp_path, argv, where):
    """LISTEN_FDS=100 for this very process puts the socket on 103, beyond
    softlimit -o 64: the message names the address and the descriptor, and
    the socket file is removed."""
    port = str(free_port(kind=socket.SOCK_DGRAM))
    argv = [a.replace("{d}", str(tmp_path)).replace("{port}", port) for a in argv]
    where = where.replace("{d}", str(tmp_path)).replace("{port}", port)
    r = run(["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=100 exec "$@"', "sh",
             command("chainload"), "softlimit", "-o", "64", argv[0],
             "--systemd-compatibility", *argv[1:], "true"], env=clean_env())
    fatal(r, 111, f"{argv[0]}: FATAL: {where}: descriptor 103: Bad file descriptor")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["listen-stream", "listen-datagram", "listen-seqpacket"])
def test_relative_socket_is_removed_after_a_later_chdir(tmp_path, name):
    """A relative PATH names the file in the directory of the bind: a later
    chdir link must not send the clean-up somewhere else."""
    r = run([name, "s", "chdir", "/", "no-such-program-x"], env=clean_env(), cwd=tmp_path)
    fatal(r, 127, "no-such-program-x")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("service, text", [
    ("0", "service: 0: Out of range (must be 1 to 65535)."),
    ("65536", "service: 65536: Out of range"),
    ("99999", "service: 99999: Out of range"),
    ("-1", "service: -1: Not a port number"),
    (" 80", "Not a port number"),
    ("08080", "leading 0"),
])
def test_bad_port_is_a_usage_error(service, text):
    r = run(["listen-udp", "127.0.0.1", service, "true"], env=clean_env())
    fatal(r, 100, text)


def test_unknown_host_and_service(tmp_path):
    r = run(["listen-tcp", "no-such-host.invalid", "80", "true"], env=clean_env())
    fatal(r, 111, "listen-tcp: FATAL: no-such-host.invalid 80: ")
    # Issue 22 item 5: not glibc's "Servname not supported for ai_socktype".
    r = run(["listen-tcp", "127.0.0.1", "x", "true"], env=clean_env())
    fatal(r, 111, "127.0.0.1 x: Unknown service name (not in /etc/services).")
    r = run(["listen-udp", "127.0.0.1", "no-such-service-xyz", "true"], env=clean_env())
    fatal(r, 111, "no-such-service-xyz: Unknown service name (not in /etc/services).")


def test_service_name_of_another_protocol():
    """A name /etc/services has, but not for this protocol."""
    try:
        socket.getservbyname("ssh", "tcp")
        socket.getservbyname("ssh", "udp")
        pytest.skip("ssh is in the services database for udp as well")
    except OSError:
        pass
    try:
        socket.getservbyname("ssh", "tcp")
    except OSError:
        pytest.skip("no ssh in the services database")
    r = run(["listen-udp", "127.0.0.1", "ssh", "true"], env=clean_env())
    fatal(r, 111, "127.0.0.1 ssh: Service name not defined for udp")


def test_port_in_use_names_host_and_service():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = run(["listen-tcp", "--no-reuse-address", "127.0.0.1", str(port), "true"],
                env=clean_env())
        fatal(r, 111, f"listen-tcp: FATAL: 127.0.0.1 {port}: Address already in use")


@root_only
def test_privileged_port_as_nobody():
    if int(open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read()) <= 80:
        pytest.skip("unprivileged users may bind port 80 here")
    status, _, err = main_as_user(["listen-tcp", "127.0.0.1", "80", "true"], "nobody")
    assert status == 111, err
    assert "listen-tcp: FATAL: 127.0.0.1 80: Permission denied" in err


# --- issue 10 item 6: an account whose id is (uid_t)-1 ----------------------------------

UNSHARE = shutil.which("unshare")


@root_only
@pytest.mark.skipif(UNSHARE is None, reason="unshare (util-linux) is not installed")
@pytest.mark.parametrize("option, field", [("--user", "uid"), ("--group", "gid")])
def test_account_with_id_minus_one_is_refused(tmp_path, option, field):
    """A passwd/group database (bind-mounted over /etc in a private mount
    namespace) with an account whose id is 4294967295: chown would read that
    as "unchanged", so it is refused like --uid 4294967295."""
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text(open("/etc/passwd").read() + "bigid:x:4294967295:0::/:/bin/false\n")
    group.write_text(open("/etc/group").read() + "bigid:x:4294967295:\n")
    path = tmp_path / "s"
    script = ('mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && '
              'shift 2 && exec "$@"')
    r = run([UNSHARE, "-m", "/bin/sh", "-c", script, "sh", str(passwd), str(group),
             command("listen-stream"), option, "bigid", str(path), "/bin/true"],
            env=clean_env())
    if "unshare failed" in r.stderr or "mount:" in r.stderr:
        pytest.skip(f"no private mount namespace here: {r.stderr.strip()}")
    line = fatal(r, 100, f"{option}: bigid: ")
    assert "4294967295 is out of range" in line
    assert not os.path.lexists(path)
    # The same database with an ordinary id works (the setup is sound).
    for f in (passwd, group):
        f.write_text(f.read_text().replace("4294967295", "4242"))
    r = run([UNSHARE, "-m", "/bin/sh", "-c", script, "sh", str(passwd), str(group),
             command("listen-stream"), option, "bigid", str(path), "/bin/true"],
            env=clean_env())
    assert r.returncode == 0, r.stderr
    assert getattr(os.lstat(path), f"st_{field}") == 4242


# --- the shared core, in-process ----------------------------------------------------

@pytest.mark.forked
def test_port_rules_in_process():
    from chainload import core, listen

    assert listen.service_of("1", False) == "1"
    assert listen.service_of("65535", True) == "65535"
    assert listen.service_of("http", False) == "http"
    assert listen.service_of("x-y1", False) == "x-y1"
    for bad in ("0", "65536", "99999", "", "+1", " 1", "1 ", "0x50", "010", "\u0661",
                "-"):
        with pytest.raises(core.Fail) as e:
            listen.service_of(bad, False)
        assert e.value.status == 100, bad
    with pytest.raises(core.Fail):
        listen.service_of("http", True)


@pytest.mark.forked
def test_local_address_in_process():
    from chainload import core, listen

    os.chdir("/")
    assert listen.local_address("a/b") == b"/a/b"  # relative: from the root
    assert listen.local_address("/a/b") == b"/a/b"
    assert listen.local_address("@x") == b"\0x"
    assert listen.local_address("/\udcff") == b"/\xff"  # bytes as given
    assert listen.local_address("/" + "p" * 106) == b"/" + b"p" * 106
    assert listen.local_address("p" * 106) == b"/" + b"p" * 106
    os.chdir("/tmp")
    assert listen.local_address("./x//y/./z") == b"/tmp/x/y/z"
    assert listen.local_address("../x") == b"/tmp/../x"  # ".." stays
    assert listen.local_address("@" + "p" * 107) == b"\0" + b"p" * 107
    for bad in ("", "@", "p" * 108, "@" + "p" * 108, "p" * 103):  # /tmp/ + 103 = 108
        with pytest.raises(core.Fail) as e:
            listen.local_address(bad)
        assert e.value.status == 100


@pytest.mark.forked
def test_passing_options_in_process():
    from chainload import core, listen

    args = {"--systemd-compatibility": True, "--upstart-compatibility": False,
            "--fd-name": "web"}
    assert listen.passing_options(args) == {"systemd": True, "upstart": False, "fd_name": "web"}
    with pytest.raises(core.Fail):
        listen.passing_options({**args, "--systemd-compatibility": False})
    with pytest.raises(core.Fail):
        listen.passing_options({**args, "--fd-name": "a:b"})
    assert listen.backlog_option({"--backlog": None}, 4096) == 4096
    assert listen.backlog_option({"--backlog": "010"}, 4096) == 8


@pytest.mark.forked
@pytest.mark.parametrize("kind", ["SOCK_STREAM", "SOCK_SEQPACKET", "SOCK_DGRAM"])
def test_refuse_if_live_in_process(tmp_path, kind):
    from chainload import core, listen

    number = getattr(socket, kind)
    path = str(tmp_path / "s")
    server = live_server(path, number)
    with pytest.raises(core.Fail) as e:
        listen._refuse_if_live(path.encode(), path, number)
    assert e.value.status == 111 and "In use by a running server" in e.value.message
    server.close()
    listen._refuse_if_live(path.encode(), path, number)  # stale: no complaint


def _lowest_free_fd():
    fd = os.dup(0)
    os.close(fd)
    return fd


@pytest.mark.forked
@pytest.mark.parametrize("name", ["listen-stream", "listen-seqpacket", "listen-datagram"])
def test_no_fd_for_the_owner_step_removes_the_socket(tmp_path, name):
    """Issue 10 item 5: with room for the socket but not for the O_PATH
    handle (EMFILE), the file this run bound must not stay behind."""
    import resource

    import chainload.chain
    from chainload import core

    chainload.chain.preload([name, "fdmove"])
    core.parse_args(chainload.chain.load(name).USAGE, ["x", "y"])  # docopt loaded
    path = str(tmp_path / "s")
    argv = [name, "--uid", str(os.geteuid()), path, "/bin/true"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_fd() + 1, hard))
    try:
        status = chainload.chain.main(argv)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert status == 111
    assert not os.path.lexists(path)
