"""local-datagram-socket-listen: bind an AF_LOCAL SOCK_DGRAM socket on
fd 3+n, then chain."""

from chainload import listen, localsocket

USAGE = f"""Usage: local-datagram-socket-listen [options] [--] <path> <next-prog>...

Bind an AF_LOCAL datagram socket to PATH (there is nothing to listen(2)
for), put it on file descriptor 3+n, and chain to next-prog (n = listening
descriptors already passed, counted only with --systemd-compatibility).
{localsocket.PATH_NOTES}

Options:
{localsocket.OWNER_OPTIONS}
{localsocket.PASS_OPTIONS}
{listen.PASSING_OPTIONS}
  -h, --help                 Show this help and exit.
"""

preload = localsocket.preload


def run(args, env):
    return localsocket.run(args, env, "SOCK_DGRAM")
