"""adopt-socket: pass an already-open socket on fd 3+n, as the listeners
pass the sockets they make, then chain."""

from chainload import listen

USAGE = f"""Usage: adopt-socket [options] [--] <fd> <next-prog>...

Take the open socket on file descriptor FD (from s6-fdholder-retrieve, a
parent, a supervisor), move it to file descriptor 3+n, inheritable and
blocking, and chain to next-prog, exactly as a listener passes the socket
it made (n = listening descriptors already passed, counted only with the
option --systemd-compatibility). FD is closed unless it is 3+n. The
socket is never bound, listened on or otherwise changed; any family and
type is taken. FD is decimal, 0-prefixed octal or 0x-prefixed hexadecimal.

Options:
{listen.PASSING_OPTIONS}
  -h, --help                 Show this help and exit.
"""

preload = listen.preload  # after an earlier setuidgid: chainload.listenfds


def run(args, env):
    listen.adopt(args["<fd>"], env, listen.passing_options(args))
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((853, 484945071409074493),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<fd>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', None, '--upstart-compatibility', 0, False), ('Option', None, '--systemd-compatibility', 0, False), ('Option', None, '--fd-name', 1, None), ('Option', '-h', '--help', 0, False)),
          (True, 1, '<next-prog>'), {'--upstart-compatibility': False, '--systemd-compatibility': False, '--fd-name': None, '--help': False, '--': False, '<fd>': None, '<next-prog>': []})
