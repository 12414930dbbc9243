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
    except ValueError:  # an embedded NUL (only from an in-process caller)
        raise core.Fail(core.EXIT_SYSTEM, f"{where}: No such file or directory") from None
    except OSError as e:
        raise core.system_error(where, e) from None
    if where.startswith("/"):
        env["PWD"] = where
    else:
        env.pop("PWD", None)
    return args["<next-prog>"]
