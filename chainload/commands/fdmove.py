"""fdmove: move or copy a file descriptor, then chain."""

import os

from chainload import core

USAGE = """Usage: fdmove [options] [--] <to> <from> <next-prog>...

Make file descriptor TO refer to what FROM refers to (dup2), close FROM
unless --copy is given, and chain to next-prog. TO is left inheritable.
"fdmove N N" keeps N open and makes it inheritable. Numbers are decimal,
0-prefixed octal or 0x-prefixed hexadecimal.

Options:
  -c, --copy  Copy: leave FROM open as well.
  -h, --help  Show this help and exit.
"""


def run(args, env):
    to = core.parse_number(args["<to>"], "to", core.INT_MAX)
    frm = core.parse_number(args["<from>"], "from", core.INT_MAX)
    try:
        os.get_inheritable(frm)  # EBADF if FROM is not open
    except OSError as e:
        raise core.system_error(str(frm), e) from None
    if to == frm:
        # dup2(N, N) is a no-op that leaves close-on-exec set; and closing
        # N afterwards, as nosh does, would lose it. Keep it, inheritable.
        os.set_inheritable(to, True)
    else:
        try:
            os.dup2(frm, to)
        except OSError as e:
            raise core.system_error(str(to), e) from None
        if not args["--copy"]:
            os.close(frm)
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((413, 1889123005875155938),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<to>', None), ('Argument', '<from>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-c', '--copy', 0, False), ('Option', '-h', '--help', 0, False)),
          (True, 2, '<next-prog>'), {'--copy': False, '--help': False, '--': False, '<to>': None, '<from>': None, '<next-prog>': []})
