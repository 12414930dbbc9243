"""umask: set the file mode creation mask, then chain."""

import os

from chainload import core

USAGE = """Usage: umask [options] [--] <mask> <next-prog>...

Set the file mode creation mask to MASK (0 to 0777) and chain to next-prog.
Write MASK in octal with a leading 0 (027), or in hexadecimal (0x17); a
decimal number of 8 or more, such as 22, is refused as ambiguous.

Options:
  -h, --help  Show this help and exit.
"""


def run(args, env):
    os.umask(core.parse_octal(args["<mask>"], "mask", "mask", 0o777))
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((314, 547301955735736052),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0,)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<mask>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-h', '--help', 0, False),),
          (True, 1, '<next-prog>'), {'--help': False, '--': False, '<mask>': None, '<next-prog>': []})
