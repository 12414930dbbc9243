"""tcp-socket-listen: listen on a TCP socket on fd 3+n, then chain."""

from chainload import listen

USAGE = f"""Usage: tcp-socket-listen [options] [--] <host> <service> <next-prog>...

Look HOST and SERVICE up with getaddrinfo(3), bind a TCP socket to the
first address found, listen on it, put it on file descriptor 3+n, and
chain to next-prog (n = listening descriptors already passed, counted
only with the --systemd-compatibility option). A numeric SERVICE must be
a port from 1 to 65535 in plain decimal; the backlog is decimal,
0-prefixed octal or 0x-prefixed hexadecimal.

Options:
{listen.BACKLOG_OPTION}
{listen.IP_OPTIONS}
{listen.PASSING_OPTIONS}
  -h, --help                 Show this help and exit.
"""

preload = listen.preload


def run(args, env):
    return listen.run_ip(args, env, "SOCK_STREAM")


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((1319, 2111578944097467126),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<host>', None), ('Argument', '<service>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-b', '--backlog', 1, None), ('Option', None, '--no-reuse-address', 0, False), ('Option', None, '--reuse-port', 0, False), ('Option', None, '--bind-to-any', 0, False), ('Option', None, '--combine4and6', 0, False), ('Option', '-H', '--numeric-host', 0, False), ('Option', None, '--numeric-service', 0, False), ('Option', None, '--check-interfaces', 0, False), ('Option', None, '--upstart-compatibility', 0, False), ('Option', None, '--systemd-compatibility', 0, False), ('Option', None, '--fd-name', 1, None), ('Option', '-h', '--help', 0, False)),
          (True, 2, '<next-prog>'), {'--backlog': None, '--no-reuse-address': False, '--reuse-port': False, '--bind-to-any': False, '--combine4and6': False, '--numeric-host': False, '--numeric-service': False, '--check-interfaces': False, '--upstart-compatibility': False, '--systemd-compatibility': False, '--fd-name': None, '--help': False, '--': False, '<host>': None, '<service>': None, '<next-prog>': []})
