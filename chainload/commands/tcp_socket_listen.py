"""tcp-socket-listen: listen on a TCP socket on fd 3+n, then chain."""

from chainload import inetsocket, listen

USAGE = f"""Usage: tcp-socket-listen [options] [--] <host> <service> <next-prog>...

Look HOST and SERVICE up with getaddrinfo(3), bind a TCP socket to the
first address found, listen on it, put it on file descriptor 3+n, and
chain to next-prog (n = listening descriptors already passed, counted
only with the --systemd-compatibility option). A numeric SERVICE must be
a port from 1 to 65535 in plain decimal; the backlog is decimal,
0-prefixed octal or 0x-prefixed hexadecimal.

Options:
{listen.BACKLOG_OPTION}
{inetsocket.IP_OPTIONS}
{listen.PASSING_OPTIONS}
  -h, --help                 Show this help and exit.
"""

preload = inetsocket.preload


def run(args, env):
    return inetsocket.run(args, env, "SOCK_STREAM")
