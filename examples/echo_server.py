#!/usr/bin/env python3
"""A small AF_UNIX SOCK_SEQPACKET echo daemon that takes its listening
socket the systemd way (sd_listen_fds(3)) with chainload.activation,
which needs nothing beyond the standard library.

Run it behind a listener that binds the socket and passes it on fd 3:

    chainload listen-seqpacket --systemd-compatibility --fd-name echo \\
        /run/echo.sock python3 echo_server.py

or as a systemd service with a matching .socket unit (ListenSequentialPacket=).

For every message it receives it sends back one message, b"echo: " + the
message. SEQPACKET keeps message boundaries, so a client gets exactly one
reply per recv.

Zero-length messages: recv() returns b"" both for an empty message and for
end of connection, so by default b"" ends the connection. If the listener
has SO_PASSCRED (chainload listen-seqpacket --pass-credentials), accepted
sockets inherit it and every real message, an empty one included, arrives
with SCM_CREDENTIALS while end of connection has none: then an empty
message is echoed as b"echo: " like any other.

Connections are served one at a time. SIGTERM or SIGINT stops the daemon
cleanly (status 0); so does --max-connections N after N connections.

Exit status: 0 stopped cleanly, 100 usage error or no socket passed (the
LISTEN_* checks failed), 111 system failure.
"""

import argparse
import errno
import os
import signal
import socket
import sys

try:
    from chainload import activation
except ImportError:  # run from a checkout, chainload not installed
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from chainload import activation

PROG = "echo_server"
EXIT_USAGE = 100
EXIT_SYSTEM = 111
MAX_MESSAGE = 256 * 1024  # larger than any default socket send buffer
PREFIX = b"echo: "


class Fatal(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave accept() or recv()."""


def log(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def listening_socket(sock):
    """SOCK, checked to be a listening AF_UNIX SOCK_SEQPACKET socket."""
    fd = sock.fileno()
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
        raise Fatal(EXIT_USAGE, f"fd {fd}: Not an AF_UNIX SOCK_SEQPACKET socket.")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise Fatal(EXIT_USAGE, f"fd {fd}: Not a listening socket.")
    sock.setblocking(True)
    return sock


def passed_socket(fd_name):
    """The passed socket named FD_NAME (None: the first one) and its name.

    chainload.activation takes the sockets only if they were passed to this
    very process, sets close-on-exec on them and removes the LISTEN_*
    variables, so no child of ours mistakes them for its own.
    """
    reason = activation.diagnose()  # before the variables are gone
    by_name = activation.sockets_by_name()
    if not by_name:
        raise Fatal(EXIT_USAGE, f"{reason or 'no socket among the passed descriptors'}: "
                                "nothing to serve (run me behind listen-seqpacket "
                                "--systemd-compatibility).")
    if fd_name is None:
        name, sockets = next(iter(by_name.items()))  # fd order: fd 3 first
    elif fd_name in by_name:
        name, sockets = fd_name, by_name[fd_name]
    else:
        raise Fatal(EXIT_USAGE, f"--fd-name: {fd_name}: No such passed socket "
                                f"(have: {', '.join(by_name)}).")
    return listening_socket(sockets[0]), name


def serve(conn):
    """Echo every message on CONN until end of connection; return the count."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED)
    ancillary = socket.CMSG_SPACE(12) if creds else 0  # struct ucred
    count = 0
    while True:
        data, ancdata, flags, _ = conn.recvmsg(MAX_MESSAGE, ancillary)
        if not data and not ancdata:
            return count  # end of connection (or an empty message, see above)
        if flags & socket.MSG_TRUNC:
            log(f"message longer than {MAX_MESSAGE} bytes; closing the connection")
            return count
        try:
            conn.send(PREFIX + data)  # one send: one whole message (or an error)
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET):
                return count
            if e.errno == errno.EMSGSIZE:
                log(f"a reply of {len(PREFIX) + len(data)} bytes is too long; "
                    "closing the connection")
                return count
            raise
        count += 1


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        """One FATAL line and status 100, as the chain tools do (not 2)."""
        self.exit(EXIT_USAGE, f"{self.prog}: FATAL: {message}\n{self.format_usage()}")


def main(argv=None):
    parser = ArgumentParser(
        prog=PROG, description="SOCK_SEQPACKET echo daemon; takes its socket "
        "from the systemd LISTEN_FDS protocol (fd 3).")
    parser.add_argument("--max-connections", type=int, metavar="N", default=0,
                        help="exit after serving N connections (default: never)")
    parser.add_argument("--fd-name", metavar="NAME",
                        help="use the passed socket named NAME in LISTEN_FDNAMES "
                             "(default: the first one, fd 3)")
    args = parser.parse_args(argv)
    if args.max_connections < 0:
        parser.error("--max-connections: must be 0 or more")

    def stop(signum, frame):
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    try:
        listener, name = passed_socket(args.fd_name)
        log(f"pid {os.getpid()}: listening on fd {listener.fileno()} "
            f"(name {name}, {listener.getsockname() or 'unnamed'})")
        served = 0
        while not args.max_connections or served < args.max_connections:
            try:
                conn, _ = listener.accept()
            except OSError as e:
                if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise Fatal(EXIT_SYSTEM, f"accept: {e.strerror}.") from None
            with conn:
                try:
                    replies = serve(conn)
                except OSError as e:
                    log(f"connection: {e.strerror}")
                    replies = None
            served += 1
            log(f"connection {served} closed after {replies} replies")
        log(f"served {served} connection(s); exiting")
    except Stop as e:
        log(f"{e}: exiting")
    except Fatal as e:
        print(f"{PROG}: FATAL: {e}", file=sys.stderr, flush=True)
        return e.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
