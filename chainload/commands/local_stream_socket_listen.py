"""local-stream-socket-listen: listen on an AF_LOCAL SOCK_STREAM socket
on fd 3+n, then chain."""

from chainload import listen

USAGE = f"""Usage: local-stream-socket-listen [options] [--] <path> <next-prog>...

Bind an AF_LOCAL stream socket to PATH, listen on it, put it on file
descriptor 3+n, and chain to next-prog (n = listening descriptors already
passed, counted only with the --systemd-compatibility option).
{listen.PATH_NOTES}

Options:
{listen.OWNER_OPTIONS}
{listen.BACKLOG_OPTION}
{listen.PASS_OPTIONS}
{listen.PASSING_OPTIONS}
  -h, --help                 Show this help and exit.
"""

preload = listen.preload


def run(args, env):
    return listen.run_local(args, env, "SOCK_STREAM")


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((1488, 1952013859483302203),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<path>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-u', '--uid', 1, None), ('Option', '-g', '--gid', 1, None), ('Option', None, '--user', 1, None), ('Option', None, '--group', 1, None), ('Option', '-m', '--mode', 1, None), ('Option', '-b', '--backlog', 1, None), ('Option', None, '--pass-credentials', 0, False), ('Option', None, '--pass-security', 0, False), ('Option', None, '--upstart-compatibility', 0, False), ('Option', None, '--systemd-compatibility', 0, False), ('Option', None, '--fd-name', 1, None), ('Option', '-h', '--help', 0, False)),
          (True, 1, '<next-prog>'), {'--uid': None, '--gid': None, '--user': None, '--group': None, '--mode': None, '--backlog': None, '--pass-credentials': False, '--pass-security': False, '--upstart-compatibility': False, '--systemd-compatibility': False, '--fd-name': None, '--help': False, '--': False, '<path>': None, '<next-prog>': []})
