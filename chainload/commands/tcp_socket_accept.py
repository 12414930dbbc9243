"""tcp-socket-accept: accept TCP connections on fd 3, the rest of the chain
in a child per connection."""

from chainload import accept

USAGE = f"""Usage: tcp-socket-accept [options] [--] <next-prog>...

Take the listening TCP socket on file descriptor 3 (from a listener
before it, or from systemd or inetd), and accept connections on it
forever. For each, run next-prog in a child process with the connection
on fds 0 and 1 (the listening socket closed) and PROTO=TCP, TCPLOCALIP,
TCPLOCALPORT, TCPREMOTEIP and TCPREMOTEPORT set; no DNS or ident lookups
are made. next-prog is itself a chain, run in the child before its one
exec. N is decimal, 0-prefixed octal or 0x-prefixed hexadecimal.

Options:
{accept.OPTIONS}
{accept.TCP_OPTIONS}
  -h, --help                 Show this help and exit.
"""

# Each child runs the rest of the chain with nothing left to import.
PRELOAD_REST = True
preload = accept.preload


def run(args, env):
    options = accept.options(args)
    sock = accept.listener(("AF_INET", "AF_INET6"), "SOCK_STREAM", "TCP")
    return accept.request(sock, args["<next-prog>"], env, "tcp-socket-accept",
                          accept.tcp_describe, accept.tcp_setup(args), **options)


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((1110, 186294451636362499),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3, 4, 5, 6, 7)),)), ('NotRequired', (('Command', '--', False),)), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-c', '--connection-limit', 1, None), ('Option', '-v', '--verbose', 0, False), ('Option', None, '--systemd-compatibility', 0, False), ('Option', '-l', '--localname', 1, None), ('Option', None, '--no-keepalives', 0, False), ('Option', None, '--no-delay', 0, False), ('Option', None, '--no-kill-IP-options', 0, False), ('Option', '-h', '--help', 0, False)),
          (True, 0, '<next-prog>'), {'--connection-limit': None, '--verbose': False, '--systemd-compatibility': False, '--localname': None, '--no-keepalives': False, '--no-delay': False, '--no-kill-IP-options': False, '--help': False, '--': False, '<next-prog>': []})
