"""unsetenv: remove one environment variable, then chain."""

from chainload import core

USAGE = """Usage: unsetenv [options] [--] <name> <next-prog>...

Remove the environment variable NAME, if it is set, and chain to
next-prog. NAME must not be empty and must not contain "=".

Options:
  -h, --help  Show this help and exit.
"""


def run(args, env):
    env.pop(core.variable_name(args["<name>"]), None)
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((228, 727139928724879904),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0,)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<name>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-h', '--help', 0, False),),
          (True, 1, '<next-prog>'), {'--help': False, '--': False, '<name>': None, '<next-prog>': []})
