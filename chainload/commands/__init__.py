"""One module per chain command.

Each module defines USAGE (its docopt text, which is also its --help) and
run(args, env) -> next program's argv; its one-line summary for
`chainload --help` is in the command table, chainload.chain.COMMANDS, so
that listing the commands imports none of them.
A module may define preload(), called before setuidgid drops privileges, to
import whatever its run() imports lazily.
"""
