"""setsid (chainload-setsid): make the process a session leader, then chain."""

import os

from chainload import core

USAGE = """Usage: chainload-setsid [options] [--] <next-prog>...

Make the process the leader of a new session and process group (setsid) and
chain to next-prog. A process that already leads its session carries on.
Installed as chainload-setsid; "setsid" works inside a chain.

Options:
  -h, --help  Show this help and exit.
"""


def run(args, env):
    pid = os.getpid()
    if os.getsid(0) == pid:
        return args["<next-prog>"]  # a supervisor made us one already
    try:
        os.setsid()
    except OSError as e:
        if os.getpgrp() == pid:
            raise core.Fail(core.EXIT_SYSTEM,
                            "Leads a process group but not a session: setsid(2) would "
                            "need a fork, and a chain never forks.") from None
        raise core.system_error("setsid", e) from None
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((315, 75259890476917181),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0,)),)), ('NotRequired', (('Command', '--', False),)), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-h', '--help', 0, False),),
          (True, 0, '<next-prog>'), {'--help': False, '--': False, '<next-prog>': []})
