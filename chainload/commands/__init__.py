"""One module per chain command.

Each module defines USAGE (its docopt text, which is also its --help), SUMMARY
(one line for `chainload --help`) and run(args, env) -> next program's argv.
A module may define preload(), called before setuidgid drops privileges, to
import whatever its run() imports lazily.
"""
