"""chdir (cd): change the working directory, then chain."""

import os

from chainload import core

USAGE = """Usage: chdir [options] [--] <dir> <next-prog>...

Change the working directory to DIR and chain to next-prog. PWD is set to
DIR if DIR is absolute, and removed if it is relative.

Options:
  -h, --help  Show this help and exit.
"""


def run(args, env):
    where = args["<dir>"]
    try:
        os.chdir(core.encode(where))
    except (OSError, ValueError) as e:  # ValueError: a NUL in DIR
        raise core.system_error(where, e) from None
    if where.startswith("/"):
        env["PWD"] = where
    else:
        env.pop("PWD", None)
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((228, 2201159297605115238),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0,)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<dir>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-h', '--help', 0, False),),
          (True, 1, '<next-prog>'), {'--help': False, '--': False, '<dir>': None, '<next-prog>': []})
