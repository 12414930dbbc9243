"""local-stream-socket-accept: accept AF_UNIX SOCK_STREAM connections on
fd 3, the rest of the chain in a child per connection."""

from chainload import accept

NAME = "local-stream-socket-accept"
USAGE = accept.local_usage(NAME, "SOCK_STREAM")

# Each child runs the rest of the chain with nothing left to import.
PRELOAD_REST = True
preload = accept.preload


def run(args, env):
    return accept.run_local(args, env, NAME, "SOCK_STREAM")


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((854, 1869084648150838363),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3)),)), ('NotRequired', (('Command', '--', False),)), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-c', '--connection-limit', 1, None), ('Option', '-v', '--verbose', 0, False), ('Option', None, '--systemd-compatibility', 0, False), ('Option', '-h', '--help', 0, False)),
          (True, 0, '<next-prog>'), {'--connection-limit': None, '--verbose': False, '--systemd-compatibility': False, '--help': False, '--': False, '<next-prog>': []})
