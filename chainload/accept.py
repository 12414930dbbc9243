"""The accept servers' core: what tcp-socket-accept, local-stream-socket-
accept and local-seqpacket-socket-accept share.

Each takes a listening socket on descriptor 3, checks that it is one of
its kind, and returns a core.Request to the driver: accept forever, and
run the rest of the chain for each connection in a child (the driver's
spawn: chainload.process has the child's rules). The steps:

1. Everything checked before the first accept: the options, then what
   descriptor 3 is (111 saying what it is when it is not a listening
   socket of the command's kind).
2. The loop (serve): poll the listener and the SIGCHLD wakeup pipe; below
   the connection limit accept one connection and spawn its child; reap
   every child that has exited. Transient errors (ECONNABORTED and the
   network errors accept(2) passes on, EMFILE, ENFILE, ENOBUFS, ENOMEM,
   a failed fork) are one line on stderr and survived, with a short pause
   after those that retrying at once would repeat.
3. In the child, before the rest of the chain (_prepare): the connection
   on fds 0 and 1 and the listener closed (or, with
   --systemd-compatibility, the connection on fd 3 and LISTEN_FDS=1,
   LISTEN_PID=the child, LISTEN_FDNAMES=connection), the socket options,
   and the UCSPI variables. When a program alone follows the server, the
   driver may posix_spawn it instead, all of that done by the server
   (program_for; see chainload.process).

SIGINT, SIGTERM and SIGHUP keep the chain's own handling: the server stops
accepting, removes what the chain made (a listener's socket file) and dies
of the signal. Running children are not signalled (a terminal's process
group or a supervisor's kill of the control group reaches them anyway).
"""

import errno
import os

from chainload import core

LISTENER_FD = 3
DEFAULT_LIMIT = 40
PAUSE = 0.1  # seconds, after an error that retrying at once would repeat

OPTIONS = """\
  -c, --connection-limit N   At most N children at once (default 40).
  -v, --verbose              Log each connection's start and end on stderr.
  --systemd-compatibility    Connection on fd 3, LISTEN_FDS=1 (see the page)."""
TCP_OPTIONS = """\
  -l, --localname NAME       Set TCPLOCALHOST=NAME (no lookups are made).
  --no-keepalives            Do not set SO_KEEPALIVE on connections.
  --no-delay                 Set TCP_NODELAY on connections.
  --no-kill-IP-options       Leave IPv4 options (source routes) in place."""

# accept(2) on Linux passes on these errors of the new connection: try the
# next one at once.
_NEXT_CONNECTION = {errno.ECONNABORTED, errno.EPROTO, errno.ENETDOWN, errno.ENOPROTOOPT,
                    errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP,
                    errno.ENETUNREACH, errno.EPERM, errno.ETIMEDOUT}
# Out of a resource: wait a little before trying again.
_PAUSE = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EAGAIN}

# Variables that describe the server's listener, not the connection.
_SERVER_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
                     "UPSTART_FDS", "UPSTART_EVENTS")


def preload():
    """What the server and its children need: nothing is imported after
    the first accept."""
    import _socket  # noqa: F401
    import select  # noqa: F401
    import time  # noqa: F401

    import chainload.listenfds  # noqa: F401
    import chainload.process  # noqa: F401


# --- 1. descriptor 3 ------------------------------------------------------------------

_FILE_TYPES = (("S_ISREG", "a regular file"), ("S_ISDIR", "a directory"),
               ("S_ISFIFO", "a pipe"), ("S_ISCHR", "a character device"),
               ("S_ISBLK", "a block device"), ("S_ISLNK", "a symbolic link"))


def _family_name(socket, family):
    for name in ("AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
        if getattr(socket, name, None) == family:
            return name
    return f"family {family}"


def _type_name(socket, kind):
    for name in ("SOCK_STREAM", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_RAW"):
        if getattr(socket, name) == kind:
            return name
    return f"type {kind}"


def listener(families, kind, what):
    """The listening socket on descriptor 3 (a _socket.socket), checked to
    be of one of FAMILIES (names) and socket type KIND (a name); WHAT
    names the wanted kind in messages."""
    import _socket as socket
    import stat

    where = f"Descriptor {LISTENER_FD}"
    try:
        st = os.fstat(LISTENER_FD)
    except OSError as e:
        if e.errno == errno.EBADF:
            raise core.Fail(core.EXIT_SYSTEM, f"{where} is not open; a listening {what} "
                            "socket must be there.") from None
        raise core.system_error(f"{where} (a listening {what} socket)", e) from None
    if not stat.S_ISSOCK(st.st_mode):
        kind_of = next((text for test, text in _FILE_TYPES
                        if getattr(stat, test)(st.st_mode)), "not a socket")
        raise core.Fail(core.EXIT_SYSTEM,
                        f"{where} is {kind_of}, not a listening {what} socket.")
    sock = socket.socket(fileno=os.dup(LISTENER_FD))
    try:
        family, sock_type = sock.family, sock.type
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    finally:
        sock.close()
    described = f"{_family_name(socket, family)} {_type_name(socket, sock_type)} socket"
    if family not in [getattr(socket, f) for f in families] \
            or sock_type != getattr(socket, kind):
        state = "a listening" if listening else "a non-listening"
        raise core.Fail(core.EXIT_SYSTEM,
                        f"{where} is {state} {described}, not a listening {what} socket.")
    if not listening:
        raise core.Fail(core.EXIT_SYSTEM, f"{where} is an {described} that is not "
                        "listening (no listen(2) was called on it).")
    return socket.socket(family, sock_type, 0, LISTENER_FD)


def options(args):
    """The checked options shared by the three commands."""
    limit = DEFAULT_LIMIT
    if args["--connection-limit"] is not None:
        limit = core.parse_number(args["--connection-limit"], "--connection-limit",
                                  core.INT_MAX, minimum=1)
    return {"limit": limit, "verbose": args["--verbose"],
            "systemd": args["--systemd-compatibility"]}


def local_usage(name, kind):
    """The usage text of the AF_UNIX accept server NAME of socket type
    KIND ("SOCK_STREAM" or "SOCK_SEQPACKET")."""
    return f"""Usage: {name} [options] [--] <next-prog>...

Take the listening AF_UNIX {kind} socket on file descriptor 3 (from
a listener before it, or from systemd or inetd), and accept connections
on it forever. For each, run next-prog in a child process with the
connection on fds 0 and 1 (the listening socket closed) and PROTO=UNIX,
UNIXLOCALPATH and, from SO_PEERCRED, UNIXREMOTEPID, UNIXREMOTEEUID and
UNIXREMOTEEGID set. next-prog is itself a chain, run in the child before
its one exec. N is decimal, 0-prefixed octal or 0x-prefixed hexadecimal.

Options:
{OPTIONS}
  -h, --help                 Show this help and exit.
"""


def run_local(args, env, name, kind):
    """The whole of the AF_UNIX accept server NAME of socket type KIND."""
    options_ = options(args)
    sock = listener(("AF_UNIX",), kind, f"AF_UNIX {kind}")
    return request(sock, args["<next-prog>"], env, name, local_describe, local_setup,
                   **options_)


# --- 2. the loop --------------------------------------------------------------------


def request(sock, argv, env, prog, describe, setup, *, limit, verbose, systemd):
    """The core.Request of an accept server: SOCK the listener on fd 3,
    ARGV the rest of the chain, PROG the server's name in its messages;
    DESCRIBE(conn, address) the peer for --verbose; SETUP(conn, address,
    env) sets the variables and socket options in the child."""
    def prepare_for(conn, address):
        def prepare(child_env):
            setup(conn, address, child_env)
            _connection_on(conn, child_env, systemd)
        return prepare

    def program_for(conn, address):
        """What prepare_for(conn, address) would do, done in the server for
        a program spawned straight away (core.Request: PROGRAM): the
        child's environment and the descriptors as file actions."""
        if systemd or conn <= LISTENER_FD:
            return None  # LISTEN_PID is the child's; a low conn needs moving first

        def program():
            child_env = dict(env)
            try:
                setup(conn, address, child_env)  # socket options: the same socket
            except core.Fail:
                return None  # the forked child fails and says so
            for name in _SERVER_VARIABLES:
                child_env.pop(name, None)
            return child_env, ((os.POSIX_SPAWN_DUP2, conn, 0), (os.POSIX_SPAWN_DUP2, conn, 1),
                               (os.POSIX_SPAWN_CLOSE, LISTENER_FD))
        return program

    def carry_out(spawn):
        serve(sock, spawn, argv, env, prog, describe, prepare_for, program_for, limit, verbose)
    return core.Request(carry_out)


def _say(prog, text):
    import sys

    core.write_out(sys.stderr, f"{prog}: {text}\n")


def _status(wstatus):
    if os.WIFSIGNALED(wstatus):
        import _signal as signal

        number = os.WTERMSIG(wstatus)
        name = next((n for n in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGABRT",
                                 "SIGKILL", "SIGSEGV", "SIGPIPE", "SIGALRM", "SIGTERM",
                                 "SIGUSR1", "SIGUSR2", "SIGBUS", "SIGFPE", "SIGXCPU",
                                 "SIGXFSZ", "SIGSYS")
                     if getattr(signal, n, None) == number), f"signal {number}")
        return f"killed by {name}"
    return f"exit {os.waitstatus_to_exitcode(wstatus)}"


def serve(sock, spawn, argv, env, prog, describe, prepare_for, program_for, limit, verbose):
    """Accept forever (see the module's docstring); never returns."""
    import select
    import time

    from chainload import process

    wake = process.watch_children()
    poller = select.poll()
    poller.register(wake, select.POLLIN)
    running = {}  # pid -> peer, for --verbose
    polled = False
    while True:
        below = len(running) < limit
        if below != polled:
            if below:
                poller.register(LISTENER_FD, select.POLLIN)
            else:
                poller.unregister(LISTENER_FD)
            polled = below
        ready = {fd for fd, _ in poller.poll()}
        if wake in ready:
            process.drain(wake)
            for pid, wstatus in process.reap():
                peer = running.pop(pid, None)
                if verbose and peer is not None:
                    _say(prog, f"end {pid} {peer}: {_status(wstatus)} "
                         f"({len(running)}/{limit})")
        if LISTENER_FD not in ready or len(running) >= limit:
            continue
        try:
            conn, address = sock._accept()
        except (BlockingIOError, InterruptedError):
            continue  # another process took it, or a signal came first
        except OSError as e:
            if e.errno in _NEXT_CONNECTION:
                _say(prog, f"accept: {os.strerror(e.errno)}; going on.")
                continue
            if e.errno in _PAUSE:
                _say(prog, f"accept: {os.strerror(e.errno)}; trying again.")
                time.sleep(PAUSE)
                continue
            raise core.system_error(f"accept on descriptor {LISTENER_FD}", e) from None
        peer = describe(conn, address) if verbose else None
        try:
            pid = spawn(argv, env, prepare_for(conn, address), program_for(conn, address))
        except OSError as e:
            _say(prog, f"fork: {os.strerror(e.errno)}; connection closed, trying again.")
            os.close(conn)
            time.sleep(PAUSE)
            continue
        os.close(conn)
        running[pid] = peer
        if verbose:
            _say(prog, f"start {pid} {peer} ({len(running)}/{limit})")


# --- 3. the child's side -------------------------------------------------------------


def _connection_on(conn, env, systemd):
    """In the child: the connection where the program wants it, the
    listener closed, and the LISTEN_* variables saying so."""
    if systemd:
        from chainload.listenfds import pidfd_id

        os.dup2(conn, LISTENER_FD)  # replaces the listener; inheritable
        os.close(conn)
        for name in _SERVER_VARIABLES:
            env.pop(name, None)
        env["LISTEN_FDS"] = "1"
        env["LISTEN_PID"] = str(os.getpid())
        env["LISTEN_FDNAMES"] = "connection"
        ident = pidfd_id()
        if ident is not None:
            env["LISTEN_PIDFDID"] = str(ident)
        return
    if conn < 2:  # standard input or output was closed: keep it clear of 0 and 1
        import fcntl

        high = fcntl.fcntl(conn, fcntl.F_DUPFD_CLOEXEC, LISTENER_FD + 1)
        os.close(conn)
        conn = high
    os.dup2(conn, 0)
    os.dup2(conn, 1)
    os.close(conn)
    os.close(LISTENER_FD)
    for name in _SERVER_VARIABLES:
        env.pop(name, None)


def plain_ip(host):
    """An IPv4-mapped IPv6 address as plain IPv4."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


def _as_socket(conn):
    """A _socket.socket on CONN that never closes it."""
    import _socket as socket

    return socket.socket(fileno=conn)


def tcp_describe(conn, address):
    return f"{plain_ip(address[0])} {address[1]}"


def tcp_setup(args):
    """The child's TCP set-up: socket options and the UCSPI variables."""
    import _socket as socket

    localname = args["--localname"]
    keepalive = not args["--no-keepalives"]
    nodelay = args["--no-delay"]
    kill_options = not args["--no-kill-IP-options"]
    systemd = args["--systemd-compatibility"]

    def setup(conn, address, env):
        sock = _as_socket(conn)
        try:
            local = sock.getsockname()
            if keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if kill_options and sock.family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"")
        except OSError as e:
            raise core.system_error("connection", e) from None
        finally:
            sock.detach()
        remote_ip, remote_port = plain_ip(address[0]), str(address[1])
        env["PROTO"] = "TCP"
        env["TCPLOCALIP"] = plain_ip(local[0])
        env["TCPLOCALPORT"] = str(local[1])
        env["TCPREMOTEIP"] = remote_ip
        env["TCPREMOTEPORT"] = remote_port
        if localname is not None:
            env["TCPLOCALHOST"] = localname
        else:
            env.pop("TCPLOCALHOST", None)
        env.pop("TCPREMOTEHOST", None)
        env.pop("TCPREMOTEINFO", None)
        if systemd:
            env["REMOTE_ADDR"] = remote_ip
            env["REMOTE_PORT"] = remote_port
    return setup


def _peer_credentials(conn):
    """(pid, uid, gid) of the peer (SO_PEERCRED), or None."""
    import _socket as socket

    sock = _as_socket(conn)
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    except OSError:
        return None
    finally:
        sock.detach()
    import sys

    # struct ucred: pid_t pid; uid_t uid; gid_t gid; in the host's order.
    return tuple(int.from_bytes(raw[i:i + 4], sys.byteorder, signed=i == 0)
                 for i in (0, 4, 8))


def local_describe(conn, address):
    cred = _peer_credentials(conn)
    return "pid ? uid ?" if cred is None else f"pid {cred[0]} uid {cred[1]}"


def local_setup(conn, address, env):
    """The child's AF_UNIX set-up: the UCSPI variables."""
    sock = _as_socket(conn)
    try:
        local = sock.getsockname()
    except OSError:
        local = ""
    finally:
        sock.detach()
    if isinstance(local, bytes):  # an abstract name (or none)
        local = "@" + core.decode(local[1:]) if local[:1] == b"\0" else core.decode(local)
    env["PROTO"] = "UNIX"
    env["UNIXLOCALPATH"] = local
    cred = _peer_credentials(conn)
    for name, value in zip(("UNIXREMOTEPID", "UNIXREMOTEEUID", "UNIXREMOTEEGID"),
                           cred or (None, None, None)):
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
