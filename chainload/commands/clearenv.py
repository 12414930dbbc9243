"""clearenv: remove every environment variable, then chain."""

USAGE = """Usage: clearenv [options] [--] <next-prog>...

Remove every environment variable, also the entries that have no "=" or an
empty name, and chain to next-prog: it gets an empty environment, less what
later links set.

Options:
  -p, --keep-path  Keep PATH (the next program is found on it too).
  -h, --help       Show this help and exit.
"""


def run(args, env):
    path = env.get("PATH") if args["--keep-path"] else None
    env.clear()  # the driver's environment drops its odd entries too
    if path is not None:
        env["PATH"] = path
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((337, 1244512204255971893),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1)),)), ('NotRequired', (('Command', '--', False),)), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-p', '--keep-path', 0, False), ('Option', '-h', '--help', 0, False)),
          (True, 0, '<next-prog>'), {'--keep-path': False, '--help': False, '--': False, '<next-prog>': []})
