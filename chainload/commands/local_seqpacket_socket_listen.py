"""local-seqpacket-socket-listen: listen on an AF_LOCAL SOCK_SEQPACKET socket
on fd 3+n, then chain."""

from chainload import listen, localsocket

USAGE = f"""Usage: local-seqpacket-socket-listen [options] [--] <path> <next-prog>...

Bind an AF_LOCAL sequential-packet socket to PATH, listen on it, put it on
file descriptor 3+n, and chain to next-prog (n = listening descriptors
already passed, counted only with the --systemd-compatibility option).
{localsocket.PATH_NOTES}

Options:
{localsocket.OWNER_OPTIONS}
{listen.BACKLOG_OPTION}
{localsocket.PASS_OPTIONS}
{listen.PASSING_OPTIONS}
  -h, --help                 Show this help and exit.
"""

preload = localsocket.preload


def run(args, env):
    return localsocket.run(args, env, "SOCK_SEQPACKET")
