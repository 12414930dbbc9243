"""setuidgid: drop to an account's user and group ids, then chain."""

import os

from chainload import core

SUMMARY = "drop to an account's uid, gid and groups, then chain"

USAGE = """Usage: setuidgid [options] [--] <account> <next-prog>...

Look ACCOUNT up by name in the password database, set the supplementary
groups, then the real, effective and saved group id, then the real,
effective and saved user id, check that all of them took, and chain to
next-prog. The environment is left as it is. Needs superuser privileges.

Options:
  -s, --supplementary        Take the supplementary groups from the group
                             database (initgroups); without it they become
                             just the primary group.
  -g, --primary-group GROUP  Use GROUP (a name) as the primary group
                             instead of the account's own.
  -h, --help                 Show this help and exit.
"""


def run(args, env):
    import grp
    import pwd

    from chainload.chain import preload

    account = args["<account>"]
    try:
        entry = pwd.getpwnam(account)
    except (KeyError, ValueError):
        raise core.Fail(core.EXIT_SYSTEM, f"{account}: No such user.") from None
    uid, gid = entry.pw_uid, entry.pw_gid
    group = args["--primary-group"]
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except (KeyError, ValueError):
            raise core.Fail(core.EXIT_SYSTEM, f"{group}: No such group.") from None

    # The rest of the chain runs in this process as the new user, who may
    # not be able to read the Python installation: import it all now.
    preload(args["<next-prog>"])

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
