"""softlimit: lower (or raise up to the hard limit) resource soft limits,
then chain."""

from chainload import core

USAGE = """Usage: softlimit [options] [--] <next-prog>...

Set the soft limit of each resource named by an option, and chain to
next-prog. N is a number (decimal, 0-prefixed octal or 0x-prefixed
hexadecimal) or "=" for the hard limit; a number above the hard limit is
lowered to the hard limit. Hard limits are never changed.

Options:
  -a N        Address space (RLIMIT_AS), bytes.
  -c N        Core file size (RLIMIT_CORE), bytes.
  -d N        Data segment (RLIMIT_DATA), bytes.
  -f N        Size of a written file (RLIMIT_FSIZE), bytes.
  -l N        Locked memory (RLIMIT_MEMLOCK), bytes.
  -m N        Sets -a, -d, -l and -s at once (before them: they win).
  -o N        Open file descriptors (RLIMIT_NOFILE).
  -p N        Processes of the real user (RLIMIT_NPROC).
  -r N        Resident set size (RLIMIT_RSS), bytes.
  -s N        Stack (RLIMIT_STACK), bytes.
  -t N        CPU time (RLIMIT_CPU), seconds.
  -h, --help  Show this help and exit.
"""

# option -> names of the resource module's RLIMIT_* constants, in the order
# applied: -m first, so that an explicit -a, -d, -l or -s overrides it.
LIMITS = {
    "-m": ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_MEMLOCK", "RLIMIT_STACK"),
    "-a": ("RLIMIT_AS",),
    "-c": ("RLIMIT_CORE",),
    "-d": ("RLIMIT_DATA",),
    "-f": ("RLIMIT_FSIZE",),
    "-l": ("RLIMIT_MEMLOCK",),
    "-o": ("RLIMIT_NOFILE",),
    "-p": ("RLIMIT_NPROC",),
    "-r": ("RLIMIT_RSS",),
    "-s": ("RLIMIT_STACK",),
    "-t": ("RLIMIT_CPU",),
}
LIMIT_MAX = 2**63 - 1  # rlim_t values Python's resource module takes


# Under the new limits (few descriptors, little memory) the later links
# could fail to import: the driver imports them before run() (chain.preload).
PRELOAD_REST = True


def preload():
    import resource  # noqa: F401  (an extension module, read from disk)


def run(args, env):
    import resource

    # Every value first: a usage error changes nothing.
    wanted = [(option, None if args[option] == "=" else
               core.parse_number(args[option], option, LIMIT_MAX))
              for option in LIMITS if args[option] is not None]
    for option, value in wanted:
        for name in LIMITS[option]:
            which = getattr(resource, name)
            try:
                _, hard = resource.getrlimit(which)
                soft = hard if value is None or (
                    hard != resource.RLIM_INFINITY and value > hard) else value
                resource.setrlimit(which, (soft, hard))
            except OSError as e:
                raise core.system_error(f"{option}: {name}", e) from None
    return args["<next-prog>"]


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((947, 2085700276486791898),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)),)), ('NotRequired', (('Command', '--', False),)), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-a', None, 1, None), ('Option', '-c', None, 1, None), ('Option', '-d', None, 1, None), ('Option', '-f', None, 1, None), ('Option', '-l', None, 1, None), ('Option', '-m', None, 1, None), ('Option', '-o', None, 1, None), ('Option', '-p', None, 1, None), ('Option', '-r', None, 1, None), ('Option', '-s', None, 1, None), ('Option', '-t', None, 1, None), ('Option', '-h', '--help', 0, False)),
          (True, 0, '<next-prog>'), {'-a': None, '-c': None, '-d': None, '-f': None, '-l': None, '-m': None, '-o': None, '-p': None, '-r': None, '-s': None, '-t': None, '--help': False, '--': False, '<next-prog>': []})
