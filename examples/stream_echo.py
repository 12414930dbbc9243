#!/usr/bin/env python3
"""An asyncio echo daemon for stream sockets (TCP or AF_UNIX) that takes
its listening sockets with chainload.activation: standard library only.

Run it behind a listener that passes the sockets the systemd way:

    chainload listen-tcp --systemd-compatibility 127.0.0.1 8080 \\
        python3 examples/stream_echo.py

    chainload listen-stream --systemd-compatibility /tmp/echo.sock \\
        python3 examples/stream_echo.py

or as a systemd service with a matching .socket unit (ListenStream=).
Then `nc 127.0.0.1 8080` (or `nc -U /tmp/echo.sock`) gets back every byte
it sends.

Every passed stream socket is served (with --fd-name NAME only those of
that name); other passed descriptors are ignored with a note on stderr.
asyncio's servers call listen() again: it is given SOMAXCONN, the
listeners' default backlog. SIGTERM or SIGINT stops the daemon cleanly
(status 0).

Exit status: 0 stopped cleanly, 100 usage error or no stream socket
passed, 111 system failure.
"""

import argparse
import asyncio
import os
import signal
import socket
import sys

try:
    from chainload import activation
except ImportError:  # run from a checkout, chainload not installed
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from chainload import activation

PROG = "stream_echo"
EXIT_USAGE = 100
EXIT_SYSTEM = 111


class Fatal(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def log(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def stream_sockets(fd_name):
    """The passed stream sockets to serve, as [(name, socket), ...]."""
    reason = activation.diagnose()  # before the variables are removed
    passed = activation.sockets_by_name()
    if not passed:
        raise Fatal(EXIT_USAGE, f"{reason or 'no socket among the passed descriptors'}: "
                                "nothing to serve (run me behind listen-tcp or "
                                "listen-stream --systemd-compatibility).")
    chosen = []
    for name, sockets in passed.items():
        for sock in sockets:
            if fd_name is not None and name != fd_name:
                continue
            if sock.type != socket.SOCK_STREAM:
                log(f"fd {sock.fileno()} (name {name}): not a stream socket; ignored")
                continue
            chosen.append((name, sock))
    if not chosen:
        which = f" named {fd_name}" if fd_name is not None else ""
        raise Fatal(EXIT_USAGE, f"No stream socket{which} was passed "
                                f"(have: {', '.join(passed)}).")
    return chosen


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(chosen):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda sig=sig: (log(f"{sig.name}: exiting"), stop.set()))
    servers = []
    for name, sock in chosen:
        if sock.family == socket.AF_UNIX:
            server = await asyncio.start_unix_server(echo, sock=sock, backlog=socket.SOMAXCONN)
        else:
            server = await asyncio.start_server(echo, sock=sock, backlog=socket.SOMAXCONN)
        servers.append(server)
        address = sock.getsockname()
        log(f"pid {os.getpid()}: listening on fd {sock.fileno()} (name {name}, "
            f"{sock.family.name} {address!r})")
    await stop.wait()
    for server in servers:
        server.close()
        await server.wait_closed()


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        """One FATAL line and status 100, as the chain tools do (not 2)."""
        self.exit(EXIT_USAGE, f"{self.prog}: FATAL: {message}\n{self.format_usage()}")


def main(argv=None):
    parser = ArgumentParser(
        prog=PROG, description="Stream echo daemon; takes its sockets from the "
        "systemd LISTEN_FDS protocol (fd 3 on).")
    parser.add_argument("--fd-name", metavar="NAME",
                        help="serve only the passed sockets named NAME in LISTEN_FDNAMES")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(stream_sockets(args.fd_name)))
    except Fatal as e:
        print(f"{PROG}: FATAL: {e}", file=sys.stderr, flush=True)
        return e.status
    except OSError as e:
        print(f"{PROG}: FATAL: {e.strerror or e}.", file=sys.stderr, flush=True)
        return EXIT_SYSTEM
    return 0


if __name__ == "__main__":
    sys.exit(main())
