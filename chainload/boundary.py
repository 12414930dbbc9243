"""The process boundary: the chain's arguments and environment as exec'd,
the signals, and the one final exec. The only module that crosses it.

A C chain loader passes on the bytes it was given; CPython does not quite:
it decodes argv with the C library's multibyte functions and encodes it
back with its own codec (in legacy locales such as zh_HK.BIG5HKSCS the two
disagree and bytes change), it coerces a C locale by setting LC_CTYPE, and
os.execve cannot pass an environment entry with an empty name or without
"=". So the driver reads /proc/self/environ (and, outside Python's UTF-8
mode, /proc/self/cmdline) here, decodes them with core.decode(), and execs
with bytes encoded by core.encode(): the next program gets exactly the
bytes the chain got, less what its links changed.

Signals. Python's start-up changes two things a C chain loader would not:
it ignores SIGPIPE and SIGXFSZ, and it catches SIGINT. The driver catches
SIGINT, SIGTERM and SIGHUP where they were not ignored (catch_signals), to
undo this run's files (core.abort) before dying of the signal as a C tool
would. Each execve(2) call gets the caught signals at their defaults and
SIGPIPE/SIGXFSZ at theirs (what they were when the chain started: a caught
signal would revert at exec anyway); an ignored one is left alone, and a
disposition changed for a parent's own use (SIGCHLD, by chainload.process)
goes back to the one the chain inherited (end_children).

Forking is in chainload.process, imported only by a chain that forks.

Only os and built-in modules are used at start-up; ctypes is imported only
when the environment holds an entry that os.execve cannot pass.
"""

import errno
import os
import sys

from chainload import core


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

_caught = []
# signum -> the disposition the chain inherited, for each signal a parent
# changed for its own use (SIGCHLD, chainload.process): a child gets these
# back, and so does the final exec (end_children).
_inherited = {}


def _die(signum, frame):
    import _signal as signal

    core.abort()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def catch_signals():
    """From start-up on, an interrupt undoes this run and then kills us with
    the signal itself, as it would kill a C tool."""
    import _signal as signal  # built in and loaded; signal.py costs ~1.5 ms

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _die)
            _caught.append(signum)


def for_exec(yes):
    """SIGPIPE and SIGXFSZ at their defaults for an exec (YES), or back to
    ignored as Python wants them (after a failed one)."""
    import _signal as signal

    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL if yes else signal.SIG_IGN)


def execve(call, *args):
    """CALL(*ARGS), an execve(2), with the caught signals at their defaults
    only for the call itself: an interrupt during the rest of the PATH
    search still undoes this run. signal.signal() runs a pending handler
    before it changes the disposition, so no signal is lost on the way in."""
    import _signal as signal

    for signum in _caught:
        signal.signal(signum, signal.SIG_DFL)
    try:
        call(*args)
    finally:  # only reached when exec failed
        for signum in _caught:
            signal.signal(signum, _die)


def end_children():
    """After the last child was reaped: SIGCHLD as the chain inherited it,
    for the final exec."""
    import _signal as signal

    if signal.SIGCHLD in _inherited:
        signal.signal(signal.SIGCHLD, _inherited.pop(signal.SIGCHLD))


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
    end_children()
    for_exec(True)
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
                    execve(os.execve, candidate, args, exec_env)
                else:
                    execve(_execve_raw, candidate, args, environment)
            except OSError as e:
                error = e.errno
                if error == errno.EACCES:
                    denied = True
                elif error not in _NEXT:
                    break
    finally:  # only reached when exec failed
        for_exec(False)
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
