"""Take the sockets that chainload (or systemd) passed to this process.

The receiving side of socket activation, for daemons written in Python,
with nothing beyond the standard library. A listener such as

    chainload listen-seqpacket --systemd-compatibility --fd-name echo \\
        /run/echo.sock python3 mydaemon.py

binds and listens, puts the socket on file descriptor 3 and describes it in
the environment (LISTEN_FDS, LISTEN_PID, LISTEN_PIDFDID, LISTEN_FDNAMES:
the protocol of sd_listen_fds(3)); systemd does the same for a service
with a .socket unit. In the daemon:

    from chainload import activation

    for fd, name in activation.listen_fds():
        print(fd, name)             # 3 echo

Functions
---------

listen_fds(unset_environment=True) -> [(fd, name), ...]
    The passed descriptors, 3, 4, ... in order, each with its name. They
    are this process's only when LISTEN_PID is this process's pid and,
    where LISTEN_PIDFDID is set and the kernel has pidfs, that is the inode
    number of this process's pidfd; else (a variable missing, malformed or
    meant for another process, LISTEN_FDS not from 1 up, a descriptor not
    open) the list is empty: never an exception. The names come from
    LISTEN_FDNAMES when it has exactly one name per descriptor (split at
    ":", empty names kept); otherwise every name is "unknown". Every
    descriptor returned gets close-on-exec set, so programs the daemon
    starts do not inherit it. With unset_environment (the default),
    LISTEN_PID, LISTEN_PIDFDID, LISTEN_FDS and LISTEN_FDNAMES are removed,
    whatever the outcome, from os.environ and from the process's real
    environment (what os.system, subprocess and exec pass on), so no child
    takes them for its own; a second call then returns [].

listen_sockets(unset_environment=True) -> [socket.socket, ...]
    The same descriptors as socket objects, in descriptor order, with the
    family and type read from each descriptor (so an AF_UNIX SOCK_SEQPACKET
    socket is one, not an AF_INET SOCK_STREAM guess as socket.fromfd would
    make it). Each object owns its descriptor (same number, no dup).
    Blocking mode is left as passed and the object agrees with it.
    Descriptors that are not sockets (a FIFO from systemd's ListenFIFO=,
    say) are left out: use listen_fds() for those.

sockets_by_name(unset_environment=True) -> {name: [socket.socket, ...]}
    listen_sockets(), grouped by name, each list in descriptor order.

upstart_fd(unset_environment=True) -> int or None
    Upstart's socket bridge (socket-event(7)), as set by a chainload
    listener's --upstart-compatibility: the descriptor named by UPSTART_FDS
    when UPSTART_EVENTS lists "socket" and that descriptor is open, else
    None. The descriptor gets close-on-exec set; with unset_environment,
    UPSTART_FDS and UPSTART_EVENTS are removed as above.

diagnose() -> str or None
    Why listen_fds() would return nothing, as one line for an error
    message ("LISTEN_PID=1 is not this process (4242)"), or None when it
    would return descriptors. It reads the environment and changes nothing:
    call it before listen_fds() removes the variables.

Call listen_fds() (or listen_sockets(), or sockets_by_name()) once, early,
before starting threads: the environment is not thread-safe to change.

Example: serve a stream socket with asyncio (TCP or AF_UNIX)

    import asyncio
    import socket

    from chainload import activation

    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main():
        (sock,) = activation.listen_sockets()
        if sock.family == socket.AF_UNIX:
            server = await asyncio.start_unix_server(echo, sock=sock)
        else:
            server = await asyncio.start_server(echo, sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())

asyncio's servers make the socket non-blocking and call listen() again,
with their own backlog (100 unless given as backlog=): the listener's
--backlog does not survive them.

Example: serve a stream socket with socketserver (TCP or AF_UNIX)

    import socketserver

    from chainload import activation

    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            while data := self.request.recv(65536):
                self.request.sendall(data)

    class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True

        def __init__(self, sock, handler):
            # No bind, no listen: the socket comes ready.
            super().__init__(None, handler, bind_and_activate=False)
            self.socket.close()  # the unbound one TCPServer made
            self.socket, self.address_family = sock, sock.family
            self.server_address = sock.getsockname()

    (sock,) = activation.listen_sockets()
    with Server(sock, Echo) as server:
        server.serve_forever()

Example: serve SEQPACKET with a plain accept loop

asyncio's start_server() and start_unix_server() refuse SOCK_SEQPACKET
("A Stream Socket was expected"); accept() itself works, and each recv()
is one whole message:

    from chainload import activation

    (listener,) = activation.listen_sockets()
    while True:
        conn, _ = listener.accept()
        with conn:
            while message := conn.recv(65536):
                conn.send(message)

Example: serve SEQPACKET with asyncio (loop.sock_accept)

    import asyncio

    from chainload import activation

    async def serve(loop, conn):
        with conn:
            while message := await loop.sock_recv(conn, 65536):
                await loop.sock_sendall(conn, message)

    async def main():
        loop = asyncio.get_running_loop()
        listener = activation.sockets_by_name()["echo"][0]
        listener.setblocking(False)
        tasks = set()
        while True:
            conn, _ = await loop.sock_accept(listener)
            task = asyncio.create_task(serve(loop, conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    asyncio.run(main())

Differences from libsystemd and python-systemd
----------------------------------------------

- A malformed variable, LISTEN_FDS=0, a descriptor that is not open, or a
  LISTEN_FDNAMES with the wrong number of names is no error here:
  sd_listen_fds(3) returns -EINVAL for those (python-systemd raises
  OSError), listen_fds() returns [] or, for the names, "unknown" names.
- Numbers are plain decimal digits only; libsystemd also takes leading
  blanks and a "+".
- python-systemd unsets the variables in C and leaves os.environ stale;
  here both are cleared.
- Twisted takes no descriptors at all when LISTEN_FDNAMES is missing; here
  they are all "unknown".

Importing this module loads only os and two small chainload modules
(socket when listen_sockets() or sockets_by_name() is first called); not
the chainload command driver, nor docopt. See also chainload.activation(3)
and sd_listen_fds(3).
"""

import os

from chainload.core import decode
from chainload.listenfds import INT_MAX, LISTEN_FDS_START, decimal, pidfd_mismatch

__all__ = ["LISTEN_FDS_START", "VARIABLES", "UPSTART_VARIABLES", "listen_fds",
           "listen_sockets", "sockets_by_name", "upstart_fd", "diagnose"]

#: The variables of the sd_listen_fds(3) protocol, removed by unset_environment.
VARIABLES = ("LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES")
#: The variables of Upstart's socket bridge, removed by upstart_fd().
UPSTART_VARIABLES = ("UPSTART_FDS", "UPSTART_EVENTS")

LISTEN_FDS_MAX = INT_MAX - LISTEN_FDS_START


def _getenv(name):
    """The variable NAME as chainload decodes it (utf-8, surrogateescape),
    whatever the locale, or None."""
    raw = os.environb.get(name.encode("ascii"))
    return None if raw is None else decode(raw)


def _unset(names):
    for name in names:
        os.environ.pop(name, None)  # also unsetenv()s it, when it is there
        os.unsetenv(name)  # and when only the C environment had it


def _is_open(fd):
    try:
        os.get_inheritable(fd)  # fcntl(F_GETFD): EBADF if not open
    except OSError as e:
        return e
    return None


def _examine():
    """(fds, names, None) for the descriptors passed to this process, or
    ([], [], reason) when there are none."""
    pid_text = _getenv("LISTEN_PID")
    if pid_text is None:
        return [], [], "LISTEN_PID is not set: no descriptors were passed"
    if decimal(pid_text) != os.getpid():
        return [], [], f"LISTEN_PID={pid_text} is not this process ({os.getpid()})"
    ident_text = _getenv("LISTEN_PIDFDID")
    reason = ident_text is not None and pidfd_mismatch(ident_text)
    if reason:
        return [], [], reason
    count_text = _getenv("LISTEN_FDS")
    if count_text is None:
        return [], [], "LISTEN_FDS is not set"
    count = decimal(count_text, LISTEN_FDS_MAX)
    if not count:
        return [], [], f"LISTEN_FDS={count_text}: Not a number from 1 to {LISTEN_FDS_MAX}"
    fds = range(LISTEN_FDS_START, LISTEN_FDS_START + count)
    for fd in fds:  # stops at the first closed one, however big the count
        error = _is_open(fd)
        if error is not None:
            return [], [], f"LISTEN_FDS={count_text}: descriptor {fd}: {os.strerror(error.errno)}"
    names_text = _getenv("LISTEN_FDNAMES")
    # As libsystemd splits it: "" is one empty name, ":" two.
    names = names_text.split(":") if names_text is not None else []
    if len(names) != count:
        names = ["unknown"] * count
    return list(fds), names, None


def diagnose():
    """Why listen_fds() would return nothing, as one line (no final
    period), or None if it would return descriptors. Changes nothing."""
    return _examine()[2]


def listen_fds(unset_environment=True):
    """The descriptors passed to this process: [(fd, name), ...] in order.

    See the module documentation for the rules; never raises for a bad
    environment (the list is empty then). Sets close-on-exec on each fd.
    With UNSET_ENVIRONMENT, removes the LISTEN_* variables from os.environ
    and from the real environment, whatever the outcome.
    """
    fds, names, _ = _examine()
    try:
        for fd in fds:
            os.set_inheritable(fd, False)
    except OSError:  # closed by another thread since _examine()
        fds = names = []
    if unset_environment:
        _unset(VARIABLES)
    return list(zip(fds, names))


def _named_sockets(unset_environment):
    import socket  # only daemons that want socket objects pay for it
    import stat

    found = []
    for fd, name in listen_fds(unset_environment):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=fd)  # family, type, protocol from the fd
        except OSError:
            continue
        if not os.get_blocking(fd):
            sock.setblocking(False)  # a Python-level timeout of None would lie
        found.append((name, sock))
    return found


def listen_sockets(unset_environment=True):
    """listen_fds() as socket.socket objects, in descriptor order; family
    and type come from each descriptor; non-sockets are left out."""
    return [sock for _, sock in _named_sockets(unset_environment)]


def sockets_by_name(unset_environment=True):
    """listen_sockets() grouped by name: {name: [socket, ...]}."""
    groups = {}
    for name, sock in _named_sockets(unset_environment):
        groups.setdefault(name, []).append(sock)
    return groups


def upstart_fd(unset_environment=True):
    """The descriptor of Upstart's socket bridge (UPSTART_FDS, when
    UPSTART_EVENTS lists "socket" and the descriptor is open and not one
    of the standard ones, 0 to 2), or None. Sets close-on-exec on it; with
    UNSET_ENVIRONMENT removes UPSTART_FDS and UPSTART_EVENTS, whatever the
    outcome."""
    fd = None
    if "socket" in (_getenv("UPSTART_EVENTS") or "").split():
        fd = decimal(_getenv("UPSTART_FDS"))
        if fd is not None and fd < LISTEN_FDS_START:  # stdin, stdout, stderr
            fd = None
        if fd is not None:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                fd = None
    if unset_environment:
        _unset(UPSTART_VARIABLES)
    return fd
