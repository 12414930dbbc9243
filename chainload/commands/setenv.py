"""setenv: set one environment variable, then chain."""

from chainload import core

USAGE = """Usage: setenv [options] [--] <name> <value> <next-prog>...

Set the environment variable NAME to VALUE and chain to next-prog. NAME
must not be empty and must not contain "=".

Options:
  -h, --help  Show this help and exit.
"""


def run(args, env):
    env[core.variable_name(args["<name>"])] = args["<value>"]
    return args["<next-prog>"]
