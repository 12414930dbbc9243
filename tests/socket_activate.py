"""Pass sockets to a program as systemd does, for tests/test_activation.py.

    python socket_activate.py [--names A:B] SOCKET... -- PROG [ARG...]

SOCKET is tcp=HOST (a free port on HOST), unix-stream=PATH,
unix-seqpacket=PATH or unix-dgram=PATH. Each socket is bound (and, but
for datagrams, listening), put on fd 3, 4, ... in order, and described
in LISTEN_FDS, LISTEN_PID (this pid: exec keeps it) and, with --names,
LISTEN_FDNAMES; then PROG is exec'd. Before the exec one JSON line on
stdout lists the bound addresses, so the caller learns the TCP ports.
"""

import fcntl
import json
import os
import socket
import sys

KINDS = {
    "tcp": (socket.AF_INET, socket.SOCK_STREAM),
    "unix-stream": (socket.AF_UNIX, socket.SOCK_STREAM),
    "unix-seqpacket": (socket.AF_UNIX, socket.SOCK_SEQPACKET),
    "unix-dgram": (socket.AF_UNIX, socket.SOCK_DGRAM),
}


def main():
    args = sys.argv[1:]
    split = args.index("--")
    specs, prog = args[:split], args[split + 1:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    if specs[:1] == ["--names"]:
        env["LISTEN_FDNAMES"] = specs[1]
        specs = specs[2:]
    made, addresses = [], []
    for spec in specs:
        kind, _, where = spec.partition("=")
        family, type_ = KINDS[kind]
        sock = socket.socket(family, type_)
        sock.bind((where, 0) if family == socket.AF_INET else where)
        if type_ != socket.SOCK_DGRAM:
            sock.listen()
        made.append(sock)
        addresses.append(sock.getsockname())
    # Out of the way first: a socket may already sit on 3, 4, ...
    high = [fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 100) for sock in made]
    for sock in made:
        sock.close()
    for fd, copy in enumerate(high, 3):
        os.dup2(copy, fd)  # inheritable, blocking
        os.close(copy)
    env["LISTEN_FDS"] = str(len(made))
    env["LISTEN_PID"] = str(os.getpid())
    print(json.dumps(addresses), flush=True)
    os.execvpe(prog[0], prog, env)


main()
