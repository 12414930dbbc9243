"""The chain driver: the command table, argv[0] dispatch, the in-process loop
and the one final exec.

A chain such as

    chainload listen-seqpacket /run/x.sock fdmove 0 3 setuidgid nobody daemon

runs in one process: while the next program is a bare name (no "/") found in
COMMANDS, its module's run() is called here; the first name that is not a
builtin (or that contains a "/") is exec'd, with PATH taken from the chain's
environment.
"""

import os
import sys

from chainload import core, process

# name -> (module under chainload.commands, one-line summary).
# Adding a command is one module and one line here.
COMMANDS = {
    "local-seqpacket-socket-listen": (
        "local_seqpacket_socket_listen",
        "bind an AF_LOCAL SOCK_SEQPACKET socket to fd 3+n, then chain",
    ),
    "local-stream-socket-listen": (
        "local_stream_socket_listen",
        "listen on an AF_UNIX stream socket on fd 3+n",
    ),
    "local-datagram-socket-listen": (
        "local_datagram_socket_listen",
        "bind an AF_UNIX datagram socket on fd 3+n",
    ),
    "tcp-socket-listen": ("tcp_socket_listen", "listen on a TCP socket on fd 3+n"),
    "udp-socket-listen": ("udp_socket_listen", "bind a UDP socket on fd 3+n"),
    "fdmove": ("fdmove", "move or copy a file descriptor, then chain"),
    "setuidgid": ("setuidgid", "drop to an account's uid, gid and groups, then chain"),
    "envdir": ("envdir", "set variables from the files of a directory, then chain"),
    "setenv": ("setenv", "set an environment variable, then chain"),
    "unsetenv": ("unsetenv", "remove an environment variable, then chain"),
    "umask": ("umask", "set the file mode creation mask, then chain"),
    "chdir": ("chdir", "change the working directory, then chain"),
    "softlimit": ("softlimit", "set resource soft limits, then chain"),
    "chainload-setsid": ("chainload_setsid", "start a new session (setsid), then chain"),
}
ALIASES = {
    "listen-seqpacket": "local-seqpacket-socket-listen",
    "listen-stream": "local-stream-socket-listen",
    "listen-datagram": "local-datagram-socket-listen",
    "listen-tcp": "tcp-socket-listen",
    "listen-udp": "udp-socket-listen",
    "cd": "chdir",
    "setsid": "chainload-setsid",
}
# Names that work in a chain (and as "chainload NAME") but are never
# installed as programs: util-linux has a setsid(1), and cd is a shell
# builtin (an executable cd elsewhere on PATH would be shadowed).
IN_CHAIN_ONLY = ("setsid", "cd")

UMBRELLA = "chainload"


NAME_COLUMN = 16  # a longer name gets its summary on the next line
HELP_WIDTH = 79  # --help fits an 80-column terminal


def _umbrella_usage():
    entries = [(name, summary) for name, (_, summary) in COMMANDS.items()]
    entries += [(alias, f"alias of {name}") for alias, name in ALIASES.items()]
    width = max((len(name) for name, _ in entries if len(name) <= NAME_COLUMN), default=0)
    indent = " " * (width + 4)
    lines = []
    for name, summary in entries:
        line = f"  {name:<{width}}  " if len(name) <= width else f"  {name}\n{indent}"
        for word in summary.split():
            if len(line) - line.rfind("\n") - 1 + len(word) > HELP_WIDTH:
                line = line.rstrip() + "\n" + indent
            line += word + " "
        lines.append(line.rstrip())
    return f"""Usage: chainload [--] <command> [<args>...]
       chainload (-h | --help)
       chainload --version

Run a chain of chain-loading commands in one process, ending in one exec.
A symbolic link to chainload named after a command runs that command.

Commands:
{chr(10).join(lines)}

Options:
  -h, --help  Show this help and exit.
  --version   Show the version and exit.

Exit status: 100 usage error, 111 system failure, 126 next program cannot
be executed, 127 next program not found. See chainload(1).
"""


def is_builtin(name):
    """Bare builtin names run in-process; anything with a "/" is exec'd."""
    return "/" not in name and (name in COMMANDS or name in ALIASES)


def load(name):
    """The module of builtin NAME, imported on first use."""
    module, _ = COMMANDS[ALIASES.get(name, name)]
    full = "chainload.commands." + module
    __import__(full)  # importlib itself costs an import
    return sys.modules[full]


def preload(argv):
    """Import everything the rest of the chain may need.

    setuidgid calls this before dropping privileges, so later links still
    work when the new user cannot read the Python installation. Any bare
    builtin name among ARGV counts (an over-estimate is harmless).
    """
    for word in argv:
        if is_builtin(word):
            module = load(word)
            if hasattr(module, "preload"):
                module.preload()


class Chain:
    """The state of a running chain, for messages: which command is running."""

    def __init__(self):
        self.prog = UMBRELLA
        self.usage = None


def _as_called(usage, name):
    """USAGE with the program name of its synopsis spelled NAME, as called
    (an alias): --help and the synopsis after an error then agree with the
    "NAME: FATAL:" line."""
    canonical = ALIASES.get(name)
    if canonical is None:
        return usage
    return usage.replace(f"Usage: {canonical} ", f"Usage: {name} ", 1)


def run_chain(argv, env, state):
    """Run builtins in-process from ARGV (argv[0] a builtin name), then exec."""
    while is_builtin(argv[0]):
        state.prog, module = argv[0], load(argv[0])
        # Parsed as written (its docopt parse is stored in _parsed.py),
        # shown as called.
        state.usage = _as_called(module.USAGE, argv[0])
        args = core.parse_args(module.USAGE, argv[1:], shown=state.usage)
        argv = module.run(args, env)
        if not argv:
            raise core.Fail(core.EXIT_USAGE, "Missing next program.")
    process.execute(argv, env)


def umbrella(argv, env, state):
    if len(argv) >= 2 and is_builtin(argv[1]):
        # The common case, "chainload CMD ...": nothing for docopt to do
        # (a builtin name is neither an option nor "--").
        return run_chain(argv[1:], env, state)
    state.usage = usage = _umbrella_usage()
    if len(argv) < 2:
        raise core.Fail(core.EXIT_USAGE, "Missing command.")
    args = core.parse_args(usage, argv[1:])
    if args["--version"]:
        from chainload import __version__

        core.print_out(f"chainload {__version__}")
        raise core.Done
    command = args["<command>"]
    if not is_builtin(command):
        raise core.Fail(core.EXIT_USAGE, f"{command}: Unknown command.")
    run_chain([command, *args["<args>"]], env, state)


def personality(argv0):
    """The command named by argv[0], or None for the umbrella form."""
    name = os.path.basename(argv0)
    if name.endswith(".py"):
        name = name[:-3]
    return name if is_builtin(name) else None


def main(argv=None):
    """Entry point of every installed name; returns the exit status."""
    state = Chain()
    if argv is None:  # a real start-up, not a call from a test
        process.catch_signals()
        argv, env = process.start_argv(sys.argv), process.start_environ()
    else:
        argv, env = list(argv), dict(os.environ)
    try:
        name = personality(argv[0]) if argv else None
        if name is None:
            umbrella(argv or [UMBRELLA], env, state)
        else:
            run_chain([name, *argv[1:]], env, state)
    except core.Done:
        core.abort()
        return 0
    except core.Fail as e:
        core.abort()
        return _fatal(state, e.status, e.message)
    except KeyboardInterrupt:
        core.abort()
        return _fatal(state, core.EXIT_SYSTEM, "Interrupted.")
    except Exception as e:  # never a traceback: a bug still gets one line
        core.abort()
        return _fatal(state, core.EXIT_SYSTEM, f"Internal error: {type(e).__name__}: {e}")
    return core.EXIT_SYSTEM  # not reached: execute() either execs or raises


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(c):
    code = ord(c)
    if c in _ESCAPES:
        return _ESCAPES[c]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _one_line(text):
    """TEXT with control and unprintable characters escaped: a message
    quotes user input (paths, names, numbers), and must stay one line.
    Built-ins only: after setuidgid no codec may be loadable."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _fatal(state, status, message):
    text = f"{_one_line(state.prog)}: FATAL: {_one_line(message)}\n"
    if status == core.EXIT_USAGE and state.usage:
        text += core.synopsis(state.usage) + "\n"
    core.write_out(sys.stderr, text)
    return status
