"""setuidgid: drop to an account's user and group ids, then chain."""

import os

from chainload import core

USAGE = """Usage: setuidgid [options] [--] <account> <next-prog>...

Set the supplementary groups, then the real, effective and saved group id,
then the real, effective and saved user id, check that all of them took,
and chain to next-prog. ACCOUNT is a user name, or else a user id (an
account's, or with -g any), or UID:GID (two numbers, not looked up). The
environment is left as it is. Needs superuser privileges.

Options:
  -s, --supplementary        Add the groups the account is in (initgroups).
  -g, --primary-group GROUP  Primary group GROUP (name or gid), not the user's.
  --groups LIST              Supplementary groups exactly LIST (g1,g2,...).
  -h, --help                 Show this help and exit.
"""


# The new user may not be able to read the Python installation: the driver
# imports the rest of the chain before run() (chain.preload).
PRELOAD_REST = True


def preload():
    """What a later setuidgid needs after an earlier one dropped privileges."""
    import grp  # noqa: F401  (core.group_of, for --primary-group and --groups)
    import pwd  # noqa: F401


def ids(account, primary_group):
    """(name, uid, gid) for ACCOUNT and -g: NAME is None when no account
    is known (UID:GID, or a user id no account has)."""
    if ":" in account:  # never in a user name: it separates passwd's fields
        uid_text, _, gid_text = account.partition(":")
        uid, gid = core.numeric_id(uid_text, "User"), core.numeric_id(gid_text, "Group")
        if uid is None or gid is None:
            raise core.usage_error(f"{account}: Not UID:GID (two decimal numbers); for a "
                                   "user and a group, write -g GROUP USER.")
        if primary_group is not None:
            raise core.usage_error(f"{account}: UID:GID gives the group already; "
                                   "drop -g.")
        return None, uid, gid
    name, uid, gid = core.account_of(account)
    if primary_group is not None:
        gid = core.group_of(primary_group)
    elif gid is None:
        raise core.Fail(core.EXIT_SYSTEM, f"{account}: No account has this user id; give "
                        f"its group too, as {account}:GID (or -g GROUP).")
    return name, uid, gid


def group_list(text):
    """The gids of --groups TEXT, in order, each once. An empty TEXT is
    the empty list."""
    gids = {}  # a dict keeps the order
    for item in text.split(",") if text else []:
        if not item:
            raise core.Fail(core.EXIT_SYSTEM, f"--groups: {text}: Empty group name.")
        gids[core.group_of(item)] = None
    return list(gids)


def run(args, env):
    # 1. Every lookup, before anything changes.
    account = args["<account>"]
    name, uid, gid = ids(account, args["--primary-group"])
    groups = [gid]
    if args["--groups"] is not None:
        groups = group_list(args["--groups"])
    if args["--supplementary"]:
        if name is None:
            if ":" in account:
                raise core.usage_error(f"-s: {account} is no account to take groups from; "
                                       "list them with --groups.")
            raise core.Fail(core.EXIT_SYSTEM, f"{account}: No account has this user id, "
                            "so -s has no groups to add; list them with --groups.")
        member = os.getgrouplist(name, gid)  # what initgroups(3) would set
        base = [] if args["--groups"] is None else groups
        groups = list(dict.fromkeys([*base, *member]))
    limit = os.sysconf("SC_NGROUPS_MAX")
    if len(groups) > limit:
        raise core.Fail(core.EXIT_SYSTEM,
                        f"{account}: Too many groups ({len(groups)}; at most {limit}).")

    # 2. The change: groups, then gids, then uids (after the uid there is no
    # privilege left to change the others).
    try:
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise core.system_error(account, e) from None
    if os.getresgid() != (gid, gid, gid) or os.getresuid() != (uid, uid, uid):
        raise core.Fail(core.EXIT_SYSTEM, f"{account}: Ids did not change as asked.")
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((703, 650430625501583135),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<account>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-s', '--supplementary', 0, False), ('Option', '-g', '--primary-group', 1, None), ('Option', None, '--groups', 1, None), ('Option', '-h', '--help', 0, False)),
          (True, 1, '<next-prog>'), {'--supplementary': False, '--primary-group': None, '--groups': None, '--help': False, '--': False, '<account>': None, '<next-prog>': []})
