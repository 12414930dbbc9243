"""if: run a program in a child; chain only if it exits 0."""

from chainload import process  # loaded with this link, as a chain that forks needs

USAGE = """Usage: if [options] [--] <next-prog>...

The words are "prog... ; next-prog...". Run PROG, the words up to the
first word that is exactly ";", in a child process and wait for it. If
it exits 0, chain to next-prog, the words after the ";", in this
process; otherwise stop with PROG's exit status (128 plus the signal
number if it was killed), printing nothing. PROG is itself a chain: its
builtins run in the child, before its one exec. In PROG a word made only
of two or more ";" stands for one fewer: ";;" passes a literal ";". A
SIGINT, SIGTERM or SIGHUP while waiting is passed on to the child.

Options:
  -h, --help  Show this help and exit.
"""

# The child runs the rest of the chain with nothing left to import.
PRELOAD_REST = True


def run(args, env):
    return process.sequence(args["<next-prog>"], env, stop_on_failure=True)


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((647, 2169047583051348147),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0,)),)), ('NotRequired', (('Command', '--', False),)), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-h', '--help', 0, False),),
          (True, 0, '<next-prog>'), {'--help': False, '--': False, '<next-prog>': []})
