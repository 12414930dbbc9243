"""The chain driver: the command table, argv[0] dispatch, the in-process loop
and the one final exec.

A chain such as

    chainload listen-seqpacket /run/x.sock fdmove 0 3 setuidgid nobody daemon

runs in one process: while the next program is a bare name (no "/") found in
COMMANDS, its module's run() is called here; the first name that is not a
builtin (or that contains a "/") is exec'd, with PATH taken from the chain's
environment.

It is also the process boundary, the one place that crosses it. A C chain
loader passes on the bytes it was given; CPython does not quite: it decodes
argv with the C library's multibyte functions and encodes it back with its
own codec (in legacy locales such as zh_HK.BIG5HKSCS the two disagree and
bytes change), it coerces a C locale by setting LC_CTYPE, and os.execve
cannot pass an environment entry with an empty name or without "=". So the
driver reads /proc/self/environ (and, outside Python's UTF-8 mode,
/proc/self/cmdline), decodes them with core.decode(), and execs with bytes
encoded by core.encode(): the next program gets exactly the bytes the chain
got, less what its links changed.

Only os and built-in modules are used at start-up; ctypes is imported only
when the environment holds an entry that os.execve cannot pass.
"""

import errno
import gc
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
    execute(argv, env)


def _spawner(prog):
    """The spawn function a core.Request gets: a child that runs a chain
    in-process (process.spawn has the child's rules), its messages named
    PROG until its first builtin runs."""
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
            encode_ahead(env)
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
    if any("\0" in a for a in argv):
        return None
    try:
        exec_env = _exec_pairs(env)
    except core.Fail:
        return None
    if exec_env is None:
        return None
    args = [core.encode(a) for a in argv]
    for candidate, directory in _candidates(argv[0], args[0], env):
        if directory is not None:
            try:
                os.stat(candidate)
            except OSError as e:
                if e.errno in _NEXT or e.errno == errno.EACCES:
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
    return guarded(state, _start, argv, state)


def _start(argv, state):
    """Read the chain as exec'd (unless a test passes ARGV) and run it."""
    if argv is None:  # a real start-up, not a call from a test
        process.catch_signals()
        argv, env = start_argv(sys.argv), start_environ()
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
    return core.EXIT_SYSTEM  # not reached: execute() either execs or raises


# --- arguments and environment as exec'd ------------------------------------------


class Environ(dict):
    """The chain's environment: name -> value, both decoded text.

    Entries a dict cannot hold (no "=", an empty name, a second entry for a
    name) are passed on as they came, in their place; a repeated name only
    while no link has changed that variable. .raw keeps the entries as
    exec'd, only when there are such entries.
    """

    def __init__(self, items=(), raw=None):
        super().__init__(items)
        self.raw = raw
        self.initial = dict(self) if raw else None

    def clear(self):
        """Remove every variable, and the entries a dict cannot hold too."""
        super().clear()
        self.raw = self.initial = None


def _read(path):
    """The whole of PATH, or None (os.open/os.read: open() builds a file
    object for two reads)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


def _entries(data):
    """NUL-terminated strings as a list (a missing final NUL is tolerated)."""
    items = data.split(b"\0")
    if items and items[-1] == b"":
        items.pop()
    return items


def start_argv(sys_argv):
    """argv as exec'd: sys.argv[0] (the name that picks the command), then
    the raw bytes of every argument after the script name, decoded.

    In Python's UTF-8 mode (the installed commands start in it; it is on by
    default in the C and POSIX locales) CPython decoded them with
    core.decode's own codec, so sys.argv holds them exactly; otherwise the
    C library's decoder did, and they are read back from /proc/self/cmdline
    or, without /proc, from where exec put them (_exec_strings)."""
    if sys.flags.utf8_mode:
        return list(sys_argv)
    count = len(sys_argv) - 1
    data = _read("/proc/self/cmdline")
    raw = _entries(data) if data is not None else (_exec_strings() or (None, None))[0]
    if raw is not None and count > 0:
        if len(raw) > count:
            return [sys_argv[0], *map(core.decode, raw[len(raw) - count:])]
    if raw is None and not all(a.isascii() for a in sys_argv[1:]):
        raise core.Fail(core.EXIT_SYSTEM, "Cannot read the arguments as given: no "
                        "/proc/self/cmdline, and Python is not in UTF-8 mode (-X utf8).")
    return [sys_argv[0], *(core.decode(os.fsencode(a)) for a in sys_argv[1:])]


def start_environ():
    """The environment as exec'd, before CPython's locale coercion."""
    data = _read("/proc/self/environ")
    raw = _entries(data) if data is not None else _environ_without_proc()
    env = {}
    for entry in raw:
        name, eq, value = entry.partition(b"=")
        key = core.decode(name)
        if name and eq and key not in env:
            env[key] = core.decode(value)
    if len(env) == len(raw):
        return Environ(env)
    try:
        import ctypes  # noqa: F401  (loaded now: after setuidgid it may be unreadable)
    except ImportError as e:  # no memory to map it (a tiny RLIMIT_AS), ...
        raise core.Fail(core.EXIT_SYSTEM, "Cannot load ctypes, which passes on environment "
                        f"entries without \"=\" or with an empty name: {e}") from None
    return Environ(env, raw)


# Without /proc (a chroot, a mount namespace) --------------------------------------

AT_EXECFN = 31  # getauxval(3): the name of the file exec'd
_COERCED = ("C.UTF-8", "C.utf8", "UTF-8")  # what Python's locale coercion sets LC_CTYPE to
_exec_strings_read = []


def _exec_strings():
    """(argv, environment) as raw strings, read where exec(2) put them, or
    None: for a system without /proc, whose cmdline and environ files read
    this same memory. The kernel copies the argument strings and then the
    environment strings, one after the other, to the top of the new stack,
    followed by the name of the file exec'd: they run from argv[0]'s string
    (glibc's program_invocation_name) to that name (AT_EXECFN in the
    auxiliary vector). Used only if it checks out: every argument and
    every variable Python saw (less the LC_CTYPE it may have set) are
    there. ctypes is imported only on this path."""
    if _exec_strings_read:
        return _exec_strings_read[0]
    _exec_strings_read.append(None)
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        getauxval = libc.getauxval
        getauxval.restype, getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
        end = getauxval(AT_EXECFN)
        start = ctypes.c_void_p.in_dll(libc, "program_invocation_name").value
        limit = max(os.sysconf("SC_ARG_MAX"), 1 << 21)  # they never take more
    except (ImportError, OSError, AttributeError, ValueError):
        return None
    if not start or not end or not 0 < end - start <= limit:
        return None
    data = ctypes.string_at(start, end - start)
    strings = data[:-1].split(b"\0") if data.endswith(b"\0") else []
    argc = len(sys.orig_argv)
    argv, environment = strings[:argc], strings[argc:]
    if len(argv) != argc or any(os.fsencode(a) != b for a, b in zip(sys.orig_argv, argv)
                                if a.isascii()):
        return None
    present = set(environment)
    if any(k != b"LC_CTYPE" and k + b"=" + v not in present for k, v in os.environb.items()):
        return None
    _exec_strings_read[0] = argv, environment
    return argv, environment


def _environ_without_proc():
    """The environment's entries as exec'd, without /proc/self/environ."""
    found = _exec_strings()
    if found is not None:
        return found[1]
    # Python's copy: exact but for entries without "=" and repeated names,
    # which it drops, and the LC_CTYPE that its locale coercion may have set.
    if not os.environ.get("LC_ALL") and os.environ.get("LC_CTYPE") in _COERCED:
        raise core.Fail(core.EXIT_SYSTEM, "Cannot tell whether Python set LC_CTYPE "
                        "(locale coercion): no /proc/self/environ to read the environment from.")
    return [k + b"=" + v for k, v in os.environb.items()]


def _entry(name, value):
    if not name or "=" in name or "\0" in name or "\0" in value:
        raise core.Fail(core.EXIT_SYSTEM, f"Environment variable {name!r}={value!r}: "
                        "Cannot be passed on (an empty name, \"=\" or NUL).")
    return core.encode(name) + b"=" + core.encode(value)


# (name, value) -> (NAME, VALUE) as bytes, checked: the server's variables,
# encoded once before its children (encode_ahead) instead of in each.
_pairs = {}


def _pair(name, value):
    pair = _pairs.get((name, value))
    if pair is None:
        entry = _entry(name, value)
        pair = core.encode(name), entry[len(core.encode(name)) + 1:]
    return pair


def encode_ahead(env):
    """Encode ENV's variables for _exec_pairs now, in a server: its
    children's environments are mostly its own."""
    for name, value in env.items():
        try:
            _pairs[(name, value)] = _pair(name, value)
        except core.Fail:
            pass  # the child says so


def _exec_pairs(env):
    """ENV as os.execve takes it, or None when it holds entries a dict
    cannot (Environ.raw): then _environment() and _execve_raw."""
    if getattr(env, "raw", None):
        return None
    exec_env = {}
    for name, value in env.items():
        encoded_name, encoded_value = _pair(name, value)
        exec_env[encoded_name] = encoded_value
    return exec_env


def _environment(env):
    """ENV as the list of NAME=VALUE byte strings for execve(2), in the
    order the chain got them, new variables last."""
    raw = getattr(env, "raw", None)
    if not raw:
        return [_entry(name, value) for name, value in env.items()]
    entries, done = [], set()
    for entry in raw:
        name, eq, _ = entry.partition(b"=")
        key = core.decode(name)
        if not name or not eq:
            entries.append(entry)  # nobody can set or unset these
        elif key not in done:
            done.add(key)
            if key in env:
                entries.append(_entry(key, env[key]))
        elif env.get(key) == env.initial.get(key):
            entries.append(entry)  # a repeat of a variable no link changed
    entries += [_entry(k, v) for k, v in env.items() if k not in done]
    return entries


# --- signals --------------------------------------------------------------------------
# The signal side of the process boundary, and forking, are in
# chainload.process (catch_signals, for_exec, execve, spawn).

# --- the final exec ------------------------------------------------------------------

# execvp(3) goes on to the next PATH entry after these errors.
_NEXT = {errno.ENOENT, errno.ENOTDIR, errno.ESTALE, errno.ENODEV, errno.ETIMEDOUT}

# glibc's execvp(3) passes over a PATH element this long or longer.
PATH_MAX = 4096


def _exec_env(environment):
    """ENVIRONMENT as os.execve takes it, or None where it cannot (an entry
    without "=" or with an empty name, or a name given twice)."""
    pairs = [e.partition(b"=") for e in environment]
    if all(name and eq for name, eq, _ in pairs):
        env = {name: value for name, _, value in pairs}
        if len(env) == len(pairs):
            return env
    return None


def _execve_raw(path, argv, environment):
    """execve(2) with the environment exactly as given (ctypes)."""
    import ctypes

    def vector(items):
        return (ctypes.c_char_p * (len(items) + 1))(*items, None)

    libc = ctypes.CDLL(None, use_errno=True)
    libc.execve(path, vector(argv), vector(environment))
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err))


def _candidates(name, encoded, env):
    """[(file, directory of PATH or None)] to try for program NAME (ENCODED
    its bytes), in order, as execvp(3) tries them (PATH from ENV)."""
    if not name:
        return []
    if "/" in name:
        return [(encoded, None)]
    path = env.get("PATH", os.defpath)
    return [(d + b"/" + encoded, d) for d in
            (core.encode(d or ".") for d in path.split(":")) if len(d) < PATH_MAX]


def execute(argv, env):
    """Replace this process with ARGV, found as execvp(3) finds it (PATH from
    ENV; a name with "/" is used as it is); only returns by raising Fail."""
    name = argv[0]
    if any("\0" in a for a in argv):
        raise core.Fail(core.EXIT_CANNOT_EXECUTE, f"{name}: An argument contains a NUL byte.")
    exec_env, environment = _exec_pairs(env), None
    if exec_env is None:  # entries a dict cannot hold: as they came
        environment = _environment(env)
        exec_env = _exec_env(environment)
    args = [core.encode(a) for a in argv]
    candidates = _candidates(name, args[0], env)
    error, denied, unsearchable = errno.ENOENT, False, None
    process.end_children()
    process.for_exec(True)
    try:
        for candidate, directory in candidates:
            try:
                if directory is not None:
                    # A name that is not there is passed over without an
                    # execve (with the caught signals at their defaults).
                    try:
                        os.stat(candidate)
                    except OSError as e:
                        if e.errno == errno.EACCES:
                            # stat needs only search permission on the way:
                            # this directory of PATH cannot be searched.
                            unsearchable = unsearchable or directory
                            error = e.errno
                            continue
                        if e.errno in _NEXT:
                            raise
                if exec_env is not None:
                    process.execve(os.execve, candidate, args, exec_env)
                else:
                    process.execve(_execve_raw, candidate, args, environment)
            except OSError as e:
                error = e.errno
                if error == errno.EACCES:
                    denied = True
                elif error not in _NEXT:
                    break
    finally:  # only reached when exec failed
        process.for_exec(False)
    raise _exec_failure(name, error, denied, unsearchable)


def _exec_failure(name, error, denied, unsearchable):
    """The Fail for an exec of NAME that did not happen: ERROR the errno of
    the last try, DENIED whether a file was found that could not be run,
    UNSEARCHABLE the first directory of PATH that could not be searched."""
    if unsearchable is not None and not denied and error in (*_NEXT, errno.EACCES):
        # As execvp(3): 126, for the program may be in there.
        return core.Fail(core.EXIT_CANNOT_EXECUTE,
                         f"{name}: Not found in the directories of PATH this user can "
                         f"search; {core.decode(unsearchable)}: Permission denied")
    if denied and error in _NEXT:
        error = errno.EACCES
    if error in (errno.ENOENT, errno.ENOTDIR):
        message = f"{name}: {os.strerror(error)}"
        if name.startswith("-"):
            message += " (taken as the next program: options go before the operands)"
        return core.Fail(core.EXIT_NOT_FOUND, message)
    return core.Fail(core.EXIT_CANNOT_EXECUTE, f"{name}: {os.strerror(error)}")


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
