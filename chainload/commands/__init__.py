"""One module per chain command.

Each module defines USAGE (its docopt text, which is also its --help) and
run(args, env) -> next program's argv; its one-line summary for
`chainload --help` is in the command table, chainload.chain.COMMANDS, so
that listing the commands imports none of them.
A module may define preload(), to import whatever its run() imports
lazily, and PRELOAD_REST = True when its run() may leave the process unable
to import (setuidgid, softlimit): the driver then preloads the rest of the
chain before calling it. A command never imports the driver.
"""
