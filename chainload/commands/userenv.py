"""userenv: set HOME, USER, LOGNAME and SHELL from an account, then chain."""

import os

from chainload import core

USAGE = """Usage: userenv [options] [--] <account> <next-prog>...

Look ACCOUNT up in the password database (a name, or a uid: decimal digits
only) and set HOME to its home directory, USER and LOGNAME to its name and
SHELL to its shell (/bin/sh if that is empty), as systemd does for User=.
Then chain to next-prog. Nothing else changes: put setuidgid after it.

Options:
  -h, --help  Show this help and exit.
"""


def preload():
    """What userenv needs after an earlier setuidgid dropped privileges."""
    import pwd  # noqa: F401


def run(args, env):
    account = args["<account>"]
    entry = core.account_entry(account)
    # systemd's $USER: the name as configured, or the database's for a uid.
    name = _text(entry.pw_name) if core.is_uid(account) else account
    env["HOME"] = _text(entry.pw_dir)
    env["USER"] = env["LOGNAME"] = name
    env["SHELL"] = _text(entry.pw_shell) or "/bin/sh"
    return args["<next-prog>"]


def _text(field):
    """A pwd field (decoded by the filesystem codec) as core.decode has it."""
    return core.decode(os.fsencode(field))


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((400, 553230878024038255),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0,)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<account>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-h', '--help', 0, False),),
          (True, 1, '<next-prog>'), {'--help': False, '--': False, '<account>': None, '<next-prog>': []})
