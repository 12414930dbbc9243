"""The chain driver: the command table, argv[0] dispatch, the in-process loop
and the one final exec.

A chain such as

    chainload listen-seqpacket /run/x.sock fdmove 0 3 setuidgid nobody daemon

runs in one process: while the next program is a bare name (no "/") found in
COMMANDS, its module's run() is called here; the first name that is not a
builtin (or that contains a "/") is exec'd, with PATH taken from the chain's
environment.

The process boundary (argv and environment as exec'd, the signals, the
exec) is chainload.boundary; forking (foreground, if, the accept servers)
is chainload.process, imported only when a chain forks.

Only os and built-in modules are used at start-up.
"""

import errno
import gc
import os
import sys

from chainload import boundary, core

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
    "adopt-socket": ("adopt_socket", "pass an already-open socket on fd 3+n, then chain"),
    "fdmove": ("fdmove", "move or copy a file descriptor, then chain"),
    "setuidgid": ("setuidgid", "drop to an account's uid, gid and groups, then chain"),
    "envdir": ("envdir", "set variables from the files of a directory, then chain"),
    "setenv": ("setenv", "set an environment variable, then chain"),
    "unsetenv": ("unsetenv", "remove an environment variable, then chain"),
    "umask": ("umask", "set the file mode creation mask, then chain"),
    "chdir": ("chdir", "change the working directory, then chain"),
    "softlimit": ("softlimit", "set resource soft limits, then chain"),
    "chainload-setsid": ("chainload_setsid", "start a new session (setsid), then chain"),
    "envfile": ("envfile", "set variables from a systemd EnvironmentFile, then chain"),
    "substitute": ("substitute", "expand $NAME and ${NAME} in the rest as systemd does"),
    "clearenv": ("clearenv", "remove every environment variable, then chain"),
    "userenv": ("userenv", "set HOME, USER, LOGNAME and SHELL from an account"),
    "install-dir": ("install_dir", "make a directory with a mode and owner, then chain"),
    "fdredir": ("fdredir", "open a file on a file descriptor, then chain"),
    "hardlimit": ("hardlimit", "set resource hard limits, then chain"),
    "foreground": ("foreground", "run a program in a child and wait, then chain"),
    "if": ("if_", "run a program in a child; chain only if it exits 0"),
    "tcp-socket-accept": ("tcp_socket_accept",
                          "accept TCP connections on fd 3, a child chain for each"),
    "local-stream-socket-accept": ("local_stream_socket_accept",
                                   "accept AF_UNIX stream connections on fd 3, a child "
                                   "chain for each"),
    "local-seqpacket-socket-accept": ("local_seqpacket_socket_accept",
                                      "accept AF_UNIX seqpacket connections on fd 3, a "
                                      "child chain for each"),
}
ALIASES = {
    "listen-seqpacket": "local-seqpacket-socket-listen",
    "listen-stream": "local-stream-socket-listen",
    "listen-datagram": "local-datagram-socket-listen",
    "listen-tcp": "tcp-socket-listen",
    "listen-udp": "udp-socket-listen",
    "cd": "chdir",
    "setsid": "chainload-setsid",
    "accept-tcp": "tcp-socket-accept",
    "accept-stream": "local-stream-socket-accept",
    "accept-seqpacket": "local-seqpacket-socket-accept",
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


_loaded = {}  # name -> module: a dict look-up, not an import statement, each time


def load(name):
    """The module of builtin NAME, imported on first use."""
    found = _loaded.get(name)
    if found is not None:
        return found
    module, _ = COMMANDS[ALIASES.get(name, name)]
    full = "chainload.commands." + module
    try:
        __import__(full)  # importlib itself costs an import
    except OSError as e:  # no descriptor left to read it with, ...
        raise core.system_error("Cannot load the command", e) from None
    except ImportError as e:  # unreadable after setuidgid, no memory to map it, ...
        raise core.Fail(core.EXIT_SYSTEM, f"Cannot load the command: {e}") from None
    found = _loaded[name] = sys.modules[full]
    return found


def preload(argv):
    """Import everything the rest of the chain may need.

    run_chain() calls this before a link whose module sets PRELOAD_REST
    (setuidgid, softlimit, hardlimit): after it, the new user may not be able to read
    the Python installation, or the new limits may leave no descriptor or
    memory to import with; after foreground, if or an accept server, a
    child must cost no import. Any bare builtin name among ARGV counts (an
    over-estimate is harmless).
    """
    for word in argv:
        if is_builtin(word):
            module = load(word)
            if hasattr(module, "preload"):
                module.preload()


def preparse(argv):
    """Parse, ahead, the links a child of a server will run from ARGV
    (core.preparse): every bare builtin name among ARGV with the words
    after it, as the link would be parsed if the chain reached it there
    (a link run with other words, as after substitute, is parsed then).
    Each child of the server is a copy of it: the parse is done once, not
    once per connection."""
    for i, word in enumerate(argv):
        if is_builtin(word):
            try:
                module = load(word)
            except core.Fail:
                continue  # the child says so
            core.preparse(module.USAGE, argv[i + 1:], getattr(module, "PARSED", None))


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
        state.prog = argv[0]  # a failure to load it is its own
        module = load(argv[0])
        # Parsed as written (by its docopt parse, stored in the module as
        # PARSED), shown as called.
        state.usage = _as_called(module.USAGE, argv[0])
        args = core.parse_args(module.USAGE, argv[1:], shown=state.usage,
                               frozen=getattr(module, "PARSED", None),
                               hint=getattr(module, "operand_hint", None))
        if getattr(module, "PRELOAD_REST", False):
            preload(argv[1:])
        argv = module.run(args, env)
        if isinstance(argv, core.Request):
            argv = argv.carry_out(_spawner(state.prog))
        if not argv:
            raise core.Fail(core.EXIT_USAGE, "Missing next program.")
    boundary.execute(argv, env)


def _spawner(prog):
    """The spawn function a core.Request gets: a child that runs a chain
    in-process (process.spawn has the child's rules), its messages named
    PROG until its first builtin runs. The command that made the request
    imported chainload.process already: a chain that does not fork never
    does."""
    from chainload import process

    def run(argv, env, prepare):
        state = Chain()
        state.prog = prog
        return guarded(state, _prepared, prepare, argv, env, state)

    parsed = []  # the argv whose links were parsed ahead (preparse)

    def spawn(argv, env, prepare=None, program=None):
        # PROGRAM: a server's (see core.Request), which spawns many
        # children of the same ARGV.
        if program is None:
            pass
        elif not is_builtin(argv[0]):
            if not getattr(env, "raw", None) and process.direct_ok():
                direct = program()
                if direct is not None:
                    pid = _spawn_program(argv, *direct)
                    if pid is not None:
                        return pid
        elif not parsed or parsed[0] is not argv:
            parsed[:] = [argv]
            preparse(argv)
            boundary.encode_ahead(env)
        return process.spawn(run, argv, env, prepare)

    return spawn


def _spawn_program(argv, env, file_actions):
    """Start program ARGV with posix_spawn (process.spawn_program) where
    the forked child would exec it: ENV the child's environment, as
    prepared in the parent. The pid, or None whenever the child would not
    simply exec the first file found (an argument with a NUL, an entry
    os.execve cannot pass, no file found, a file that would not run): the
    forked child then does the same search and gives the same message
    and status as it always does."""
    from chainload import process

    if any("\0" in a for a in argv):
        return None
    try:
        exec_env = boundary._exec_pairs(env)
    except core.Fail:
        return None
    if exec_env is None:
        return None
    args = [core.encode(a) for a in argv]
    for candidate, directory in boundary._candidates(argv[0], args[0], env):
        if directory is not None:
            try:
                os.stat(candidate)
            except OSError as e:
                if e.errno in boundary._NEXT or e.errno == errno.EACCES:
                    continue
                return None
        try:
            return process.spawn_program(candidate, args, exec_env, file_actions)
        except OSError:
            return None
    return None


def _prepared(prepare, argv, env, state):
    if prepare is not None:
        prepare(env)
    run_chain(argv, env, state)


def umbrella(argv, env, state):
    if len(argv) >= 2 and is_builtin(argv[1]):
        # The common case, "chainload CMD ...": nothing for docopt to do
        # (a builtin name is neither an option nor "--").
        return run_chain(argv[1:], env, state)
    state.usage = usage = _umbrella_usage()
    if len(argv) < 2:
        raise core.Fail(core.EXIT_USAGE, "Missing command.")
    args = core.parse_args(usage, argv[1:], frozen=UMBRELLA_PARSED)
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
    # A chain lives for milliseconds and ends in exec or exit, which free
    # everything: the cyclic collector has nothing to do that they won't,
    # and the dozen passes it makes while docopt is imported (it leaves
    # ~11,000 objects to track) cost ~1 ms (make bench: floor-gc - floor).
    gc.disable()
    state = Chain()
    try:
        return guarded(state, _start, argv, state)
    except MemoryError:  # even its handling ran out (a tiny RLIMIT_AS)
        return _out_of_memory(state)


_OUT_OF_MEMORY = b": FATAL: Cannot allocate memory\n"  # made now: later may be too late


def _out_of_memory(state):
    """The last resort when guarded()'s own handler ran out of memory: the
    clean-up, then one line made of what is already allocated, never a
    traceback; status 111."""
    try:
        core.abort()
    except MemoryError:
        pass
    for prog in (state.prog, UMBRELLA):
        try:
            os.write(2, core.encode(prog) + _OUT_OF_MEMORY)
            break
        except MemoryError:
            continue
        except OSError:
            break
    return core.EXIT_SYSTEM


def _start(argv, state):
    """Read the chain as exec'd (unless a test passes ARGV) and run it."""
    if argv is None:  # a real start-up, not a call from a test
        boundary.catch_signals()
        argv, env = boundary.start_argv(sys.argv), boundary.start_environ()
    else:
        argv, env = list(argv), dict(os.environ)
    name = personality(argv[0]) if argv else None
    if name is None:
        umbrella(argv or [UMBRELLA], env, state)
    else:
        run_chain([name, *argv[1:]], env, state)


def guarded(state, function, *args):
    """FUNCTION(*ARGS), which runs a chain and execs; the exit status if it
    stops instead, after the clean-up and the one FATAL line. Start-up
    runs inside it too: reading argv and the environment can fail."""
    try:
        function(*args)
    except core.Done:
        core.abort()
        return 0
    except core.Stop as e:
        core.abort()
        return e.status
    except core.Fail as e:
        core.abort()
        return _fatal(state, e.status, e.message)
    except KeyboardInterrupt:
        core.abort()
        return _fatal(state, core.EXIT_SYSTEM, "Interrupted.")
    except MemoryError:  # a memory limit (softlimit -a, -d) too low to go on
        core.abort()
        return _fatal(state, core.EXIT_SYSTEM, os.strerror(errno.ENOMEM))
    except Exception as e:  # never a traceback: a bug still gets one line
        core.abort()
        text = f": {e}" if str(e) else ""  # some (MemoryError()) have none
        return _fatal(state, core.EXIT_SYSTEM, f"Internal error: {type(e).__name__}{text}")
    return core.EXIT_SYSTEM  # not reached: boundary.execute() either execs or raises


# --- messages ---------------------------------------------------------------------

def _fatal(state, status, message):
    text = f"{core.one_line(state.prog)}: FATAL: {core.one_line(message)}\n"
    if status == core.EXIT_USAGE and state.usage:
        text += core.synopsis(state.usage) + "\n"
    core.write_out(sys.stderr, text)
    return status


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
UMBRELLA_PARSED = ((3088, 268072102533802613),
                   ('Required', (('Either', (('Required', (('NotRequired', (('Command', '--', False),)), ('Argument', '<command>', None), ('NotRequired', (('OneOrMore', (('Argument', '<args>', []),)),)))), ('Required', (('Required', (('Either', (('Option', '-h', '--help', 0, False), ('Option', '-h', '--help', 0, False))),)),)), ('Required', (('Option', None, '--version', 0, False),)))),)),
                   (('Option', '-h', '--help', 0, False), ('Option', None, '--version', 0, False)),
                   None, {'--': False, '<command>': None, '<args>': [], '--help': False, '--version': False})
