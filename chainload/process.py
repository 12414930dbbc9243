"""What crosses the process boundary: the arguments and environment exactly
as they were exec'd, the signal dispositions, and the one final exec.

A C chain loader passes on the bytes it was given. CPython does not quite:
it decodes argv with the C library's multibyte functions and encodes it
back with its own codec (in legacy locales such as zh_HK.BIG5HKSCS the two
disagree and bytes change), it coerces a C locale by setting LC_CTYPE, and
os.execve cannot pass an environment entry with an empty name or without
"=". So the driver reads /proc/self/cmdline and /proc/self/environ, decodes
both with core.decode(), and execs with bytes encoded by core.encode(): the
next program gets exactly the bytes the chain got, less what its links
changed.

Only os and built-in modules are used; ctypes is imported only when the
environment holds an entry that os.execve cannot pass.
"""

import errno
import os

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


def _read(path):
    try:
        with open(path, "rb", buffering=0) as f:
            data = b""
            while chunk := f.read(65536):
                data += chunk
        return data
    except OSError:
        return None


def _entries(data):
    """NUL-terminated strings as a list (a missing final NUL is tolerated)."""
    items = data.split(b"\0")
    if items and items[-1] == b"":
        items.pop()
    return items


def start_argv(sys_argv):
    """argv as exec'd: sys.argv[0] (the name that picks the command), then
    the raw bytes of every argument after the script name, decoded."""
    data = _read("/proc/self/cmdline")
    count = len(sys_argv) - 1
    if data is not None and count > 0:
        raw = _entries(data)
        if len(raw) > count:
            return [sys_argv[0], *map(core.decode, raw[len(raw) - count:])]
    return [sys_argv[0], *(core.decode(os.fsencode(a)) for a in sys_argv[1:])]


def start_environ():
    """The environment as exec'd, before CPython's locale coercion."""
    data = _read("/proc/self/environ")
    if data is None:
        return Environ((core.decode(k), core.decode(v)) for k, v in os.environb.items())
    env, raw = {}, _entries(data)
    for entry in raw:
        name, eq, value = entry.partition(b"=")
        key = core.decode(name)
        if name and eq and key not in env:
            env[key] = core.decode(value)
    if len(env) == len(raw):
        return Environ(env)
    import ctypes  # noqa: F401  (loaded now: after setuidgid it may be unreadable)
    return Environ(env, raw)


def _entry(name, value):
    if not name or "=" in name or "\0" in name or "\0" in value:
        raise core.Fail(core.EXIT_SYSTEM, f"Environment variable {name!r}={value!r}: "
                        "Cannot be passed on (an empty name, \"=\" or NUL).")
    return core.encode(name) + b"=" + core.encode(value)


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

# Python's own start-up changes: it ignores SIGPIPE and SIGXFSZ (a C chain
# loader leaves them at their defaults), and catches SIGINT. We catch SIGINT,
# SIGTERM and SIGHUP where they were not ignored, to undo this run's files
# before dying of the signal. Only for each execve(2) call do they get their
# default back (what they were when the chain started: a caught signal
# would revert at exec anyway); an ignored one is left alone.

_caught = []


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


def _for_exec(yes):
    import _signal as signal

    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL if yes else signal.SIG_IGN)


def _execve(candidate, args, exec_env, environment):
    """One execve(2), with the caught signals at their defaults only for the
    call itself: an interrupt during the rest of the PATH search still
    undoes this run. signal.signal() runs a pending handler before it
    changes the disposition, so no signal is lost on the way in."""
    import _signal as signal

    for signum in _caught:
        signal.signal(signum, signal.SIG_DFL)
    try:
        if exec_env is not None:
            os.execve(candidate, args, exec_env)
        else:
            _execve_raw(candidate, args, environment)
    finally:  # only reached when exec failed
        for signum in _caught:
            signal.signal(signum, _die)


# --- the final exec ------------------------------------------------------------------

# execvp(3) goes on to the next PATH entry after these errors.
_NEXT = {errno.ENOENT, errno.ENOTDIR, errno.ESTALE, errno.ENODEV, errno.ETIMEDOUT}


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


def execute(argv, env):
    """Replace this process with ARGV, found as execvp(3) finds it (PATH from
    ENV; a name with "/" is used as it is); only returns by raising Fail."""
    name = argv[0]
    if any("\0" in a for a in argv):
        raise core.Fail(core.EXIT_CANNOT_EXECUTE, f"{name}: An argument contains a NUL byte.")
    environment = _environment(env)
    args = [core.encode(a) for a in argv]
    if not name:
        candidates = []
    elif "/" in name:
        candidates = [args[0]]
    else:
        path = env.get("PATH", os.defpath)
        candidates = [core.encode(d or ".") + b"/" + args[0] for d in path.split(":")]
    exec_env = _exec_env(environment)
    error, denied = errno.ENOENT, False
    _for_exec(True)
    try:
        for candidate in candidates:
            try:
                if len(candidates) > 1:
                    # A name that is not there is passed over without an
                    # execve (with the caught signals at their defaults).
                    try:
                        os.stat(candidate)
                    except OSError as e:
                        if e.errno in _NEXT:
                            raise
                _execve(candidate, args, exec_env, environment)
            except OSError as e:
                error = e.errno
                if error == errno.EACCES:
                    denied = True
                elif error not in _NEXT:
                    break
    finally:  # only reached when exec failed
        _for_exec(False)
    if denied and error in _NEXT:
        error = errno.EACCES
    status = core.EXIT_NOT_FOUND if error in (errno.ENOENT, errno.ENOTDIR) else core.EXIT_CANNOT_EXECUTE
    raise core.Fail(status, f"{name}: {os.strerror(error)}")
