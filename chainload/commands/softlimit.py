"""softlimit: lower (or raise up to the hard limit) resource soft limits,
then chain. The table of limits is chainload.limits, shared with hardlimit."""

from chainload import limits

USAGE = f"""Usage: softlimit [options] [--] <next-prog>...

Set the soft limit of each resource named by an option, and chain to
next-prog. N is a number (decimal, 0-prefixed octal or 0x-prefixed
hexadecimal), "=" for the hard limit, or "unlimited" (or "infinity"); a
value above the hard limit is lowered to the hard limit. Hard limits are
never changed.

Options:
{limits.OPTIONS}
  -h, --help        Show this help and exit.
"""


# Under the new limits (few descriptors, little memory) the later links
# could fail to import: the driver imports them before run() (chain.preload).
PRELOAD_REST = True
preload = limits.preload


def run(args, env):
    limits.apply(args, hard=False)
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((1439, 783918502671712300),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)),)), ('NotRequired', (('Command', '--', False),)), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-m', None, 1, None), ('Option', '-a', None, 1, None), ('Option', '-c', None, 1, None), ('Option', '-d', None, 1, None), ('Option', '-f', None, 1, None), ('Option', '-l', None, 1, None), ('Option', '-o', None, 1, None), ('Option', '-p', None, 1, None), ('Option', '-r', None, 1, None), ('Option', '-s', None, 1, None), ('Option', '-t', None, 1, None), ('Option', None, '--rtprio', 1, None), ('Option', None, '--rttime', 1, None), ('Option', None, '--sigpending', 1, None), ('Option', None, '--msgqueue', 1, None), ('Option', None, '--nice', 1, None), ('Option', None, '--locks', 1, None), ('Option', '-h', '--help', 0, False)),
          (True, 0, '<next-prog>'), {'-m': None, '-a': None, '-c': None, '-d': None, '-f': None, '-l': None, '-o': None, '-p': None, '-r': None, '-s': None, '-t': None, '--rtprio': None, '--rttime': None, '--sigpending': None, '--msgqueue': None, '--nice': None, '--locks': None, '--help': False, '--': False, '<next-prog>': []})
