"""setenv: set one environment variable, then chain."""

from chainload import core

USAGE = """Usage: setenv [options] [--] <name> <value> <next-prog>...

Set the environment variable NAME to VALUE and chain to next-prog. NAME
must not be empty and must not contain "=".

Options:
  -h, --help  Show this help and exit.
"""


def run(args, env):
    name = args["<name>"]
    hint = operand_hint([name])
    if hint:
        raise core.usage_error(hint)
    env[core.variable_name(name)] = args["<value>"]
    return args["<next-prog>"]


def operand_hint(words):
    """For a NAME written NAME=VALUE, as env(1) takes it: how to write it
    (the driver asks when the words do not parse, run() when they do)."""
    name, eq, value = words[0].partition("=") if words else ("", "", "")
    if name and eq:
        return f"{words[0]}: Not a valid variable name; write setenv {name} {value}"
    return None


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((225, 132675389483723603),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0,)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<name>', None), ('Argument', '<value>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-h', '--help', 0, False),),
          (True, 2, '<next-prog>'), {'--help': False, '--': False, '<name>': None, '<value>': None, '<next-prog>': []})
