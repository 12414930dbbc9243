"""setuidgid: drop to an account's user and group ids, then chain."""

import os

from chainload import core

USAGE = """Usage: setuidgid [options] [--] <account> <next-prog>...

Look ACCOUNT up by name in the password database, set the supplementary
groups, then the real, effective and saved group id, then the real,
effective and saved user id, check that all of them took, and chain to
next-prog. The environment is left as it is. Needs superuser privileges.

Options:
  -s, --supplementary        Add the groups the account is in (initgroups).
  -g, --primary-group GROUP  Primary group GROUP (a name), not the account's.
  -h, --help                 Show this help and exit.
"""


# The new user may not be able to read the Python installation: the driver
# imports the rest of the chain before run() (chain.preload).
PRELOAD_REST = True


def preload():
    """What a later setuidgid needs after an earlier one dropped privileges."""
    import grp  # noqa: F401  (core.group_id, for --primary-group)
    import pwd  # noqa: F401


def run(args, env):
    account = args["<account>"]
    entry = core.user_entry(account)
    uid, gid = entry.pw_uid, entry.pw_gid
    if args["--primary-group"] is not None:
        gid = core.group_id(args["--primary-group"])

    try:
        if args["--supplementary"]:
            os.initgroups(account, gid)
        else:
            os.setgroups([gid])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise core.system_error(account, e) from None
    if os.getresgid() != (gid, gid, gid) or os.getresuid() != (uid, uid, uid):
        raise core.Fail(core.EXIT_SYSTEM, f"{account}: Ids did not change as asked.")
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((560, 546648590376003708),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<account>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-s', '--supplementary', 0, False), ('Option', '-g', '--primary-group', 1, None), ('Option', '-h', '--help', 0, False)),
          (True, 1, '<next-prog>'), {'--supplementary': False, '--primary-group': None, '--help': False, '--': False, '<account>': None, '<next-prog>': []})
