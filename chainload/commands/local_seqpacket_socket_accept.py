"""local-seqpacket-socket-accept: accept AF_UNIX SOCK_SEQPACKET connections on
fd 3, the rest of the chain in a child per connection."""

from chainload import accept

NAME = "local-seqpacket-socket-accept"
USAGE = accept.local_usage(NAME, "SOCK_SEQPACKET")

# Each child runs the rest of the chain with nothing left to import.
PRELOAD_REST = True
preload = accept.preload


def run(args, env):
    return accept.run_local(args, env, NAME, "SOCK_SEQPACKET")


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((860, 607405895483475902),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3)),)), ('NotRequired', (('Command', '--', False),)), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-c', '--connection-limit', 1, None), ('Option', '-v', '--verbose', 0, False), ('Option', None, '--systemd-compatibility', 0, False), ('Option', '-h', '--help', 0, False)),
          (True, 0, '<next-prog>'), {'--connection-limit': None, '--verbose': False, '--systemd-compatibility': False, '--help': False, '--': False, '<next-prog>': []})
