"""unsetenv: remove one environment variable, then chain."""

from chainload import core

USAGE = """Usage: unsetenv [options] [--] <name> <next-prog>...

Remove the environment variable NAME, if it is set, and chain to
next-prog. NAME must not be empty and must not contain "=".

Options:
  -h, --help  Show this help and exit.
"""


def run(args, env):
    env.pop(core.variable_name(args["<name>"]), None)
    return args["<next-prog>"]
