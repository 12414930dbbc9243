"""udp-socket-listen: bind a UDP socket on fd 3+n, then chain."""

from chainload import inetsocket, listen

USAGE = f"""Usage: udp-socket-listen [options] [--] <host> <service> <next-prog>...

Look HOST and SERVICE up with getaddrinfo(3), bind a UDP socket to the
first address found (there is nothing to listen(2) for), put it on file
descriptor 3+n, and chain to next-prog (n = listening descriptors already
passed, counted only with the --systemd-compatibility option). A numeric
SERVICE must be a port from 1 to 65535 in plain decimal.

Options:
{inetsocket.IP_OPTIONS}
{listen.PASSING_OPTIONS}
  -h, --help                 Show this help and exit.
"""

preload = inetsocket.preload


def run(args, env):
    return inetsocket.run(args, env, "SOCK_DGRAM")
