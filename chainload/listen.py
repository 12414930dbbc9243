"""The listener core: everything the five listeners share.

A listener is a short command module: its usage text, put together from the
option lines here, and a run() that calls run_local() (AF_UNIX) or run_ip()
(TCP, UDP) with its socket type. adopt-socket is one too: its run() calls
adopt(), which passes a socket that is already open the way the listeners
pass theirs. Three parts, one per concern:

The protocol. A listener hands its socket to the next program on file
descriptor 3+n, where n is the number of listening descriptors already
passed (0 unless --systemd-compatibility finds a valid LISTEN_FDS/LISTEN_PID
for this process), and optionally describes it in the environment:

  systemd (sd_listen_fds(3)): LISTEN_FDS=n+1, LISTEN_PID=<this pid>,
      LISTEN_FDNAMES with exactly one name per descriptor (always: "unknown"
      where --fd-name was not given, and for inherited descriptors whose
      names were missing or did not match LISTEN_FDS),
      LISTEN_PIDFDID=<this process's pidfd inode> where the kernel has pidfs
      (otherwise unset, never stale);
  upstart (socket-event(7)): UPSTART_FDS=3+n, UPSTART_EVENTS=socket.

AF_UNIX listeners (local-seqpacket-, local-stream-, local-datagram-socket-
listen differ only in the socket type; a datagram socket is never
listen()ed). The steps of run_local(), in order:

1. Everything that can be checked without side effects: the path (empty,
   too long, @abstract; a relative path is made absolute with the working
   directory, and must still fit), the numbers (a --mode such as 666 is
   refused as ambiguous, as umask 22 is), --fd-name, then the user and
   group names (after the numbers, so a usage error comes before a lookup).
2. The socket and its SO_PASSCRED/SO_PASSSEC options.
3. An exclusive flock(2) on the socket's directory (not for @abstract):
   every chainload start in that directory waits for it, so steps 4 to 6
   are one step for each of them. Two starts at the same moment on one
   path: exactly one binds, the other finds its socket live.
4. The bind, by absolute name, under umask ~mode so the file is born with
   its final mode. If the name is taken by a socket, that socket is
   replaced only when a connect() of our own type is refused (ECONNREFUSED:
   nobody listens); anything but a socket, or a live socket, is refused
   and left alone.
5. The file's identity (lstat: a socket owned by us, or someone replaced
   it), registered with core.on_abort() (signals wait from before the bind
   until then); then the owner, and the mode where the bind could not give
   it (special bits; a default ACL on the directory), through an O_PATH handle
   on that very inode (its /proc/self/fd name; without /proc, fchownat and
   fchmodat2 with AT_EMPTY_PATH). From here on every failure removes the file.
6. listen() (not for datagrams), the lock released, then pass_listener().

IP listeners (tcp- and udp-socket-listen; a UDP socket is never listen()ed).
The steps of run_ip(), in order:

1. Everything that can be checked without side effects: the host, the
   service (a number must be 1 to 65535: glibc would silently wrap 99999
   to 34463 and turn 65536 or 0 into a random port), the backlog and
   --fd-name.
2. getaddrinfo(HOST, SERVICE, AI_PASSIVE | the asked flags); the FIRST
   result is the one bound, as in nosh.
3. The socket, SO_REUSEADDR (on unless --no-reuse-address), SO_REUSEPORT,
   IP_FREEBIND and, for IPv6, IPV6_V6ONLY (on unless --combine4and6).
4. bind(), listen() (not for UDP), then pass_listener().
Every message names HOST SERVICE as given. There is no file, so nothing
has to be undone on a later failure: the socket closes with the process.

At import only os, errno and stat (all loaded at start-up) are needed;
_socket is imported by run_local()/run_ip(), fcntl by run_local() for the
directory lock, chainload.listenfds (the part
the receiving side shares) only with --systemd-compatibility.
"""

import errno
import os
import stat

from chainload import core


def preload():
    """What a listener needs once setuidgid may have made the Python
    installation unreadable."""
    import fcntl  # noqa: F401
    import grp  # noqa: F401
    import pwd  # noqa: F401
    import _socket  # noqa: F401

    from chainload import listenfds  # noqa: F401  (--systemd-compatibility)


# --- the protocol: fd 3+n, LISTEN_* and UPSTART_* ----------------------------------

FIRST_FD = 3  # listenfds.LISTEN_FDS_START, not imported for it (a test holds them equal)
FD_NAME_MAX = 255
# The name of a descriptor passed without --fd-name: what sd_listen_fds_with_names(3)
# reports for every descriptor when LISTEN_FDNAMES is absent.
DEFAULT_FD_NAME = "unknown"

# Option lines of the usage texts, shared by every listener.
BACKLOG_OPTION = """\
  -b, --backlog N            listen(2) backlog (default SOMAXCONN)."""
PASSING_OPTIONS = """\
  --upstart-compatibility    Set UPSTART_FDS=3+n and UPSTART_EVENTS=socket.
  --systemd-compatibility    Count inherited LISTEN_FDS; set the LISTEN_* vars.
  --fd-name NAME             Name in LISTEN_FDNAMES (default unknown)."""


def inherited_count(env):
    """How many listening descriptors the environment says we already hold.

    LISTEN_FDS counts only when LISTEN_PID is this process (a chain never
    forks, so an earlier listener in it set our own pid) and, where
    LISTEN_PIDFDID is set and the kernel has pidfs, that names this process
    too (as chainload.activation and sd_listen_fds(3) check). Anything
    missing, malformed or stale counts as none.
    """
    from chainload import listenfds

    if listenfds.decimal(env.get("LISTEN_PID")) != os.getpid():
        return 0
    ident = env.get("LISTEN_PIDFDID")
    if ident is not None and listenfds.pidfd_mismatch(ident):
        return 0
    count = listenfds.decimal(env.get("LISTEN_FDS"))
    if count is None or count > core.INT_MAX - FIRST_FD - 1:
        return 0
    return count


def valid_fd_name(name):
    """systemd's rule for FileDescriptorName=: ASCII, printable, no ":"."""
    return (0 < len(name) <= FD_NAME_MAX and name.isascii() and ":" not in name
            and all(" " <= c < "\x7f" for c in name))


def check_fd_name(name):
    if not valid_fd_name(name):
        raise core.usage_error(
            f"--fd-name: {name}: Not a valid name (1 to {FD_NAME_MAX} printable "
            "ASCII characters, no \":\")."
        )
    return name


def passing_options(args):
    """The checked --systemd-compatibility, --upstart-compatibility and
    --fd-name of ARGS, as keyword arguments for pass_listener()."""
    fd_name = args["--fd-name"]
    if fd_name is not None:
        check_fd_name(fd_name)
        if not args["--systemd-compatibility"]:
            raise core.usage_error("--fd-name: Needs --systemd-compatibility.")
    return {"systemd": args["--systemd-compatibility"],
            "upstart": args["--upstart-compatibility"], "fd_name": fd_name}


def backlog_option(args, somaxconn):
    """The checked --backlog of ARGS, SOMAXCONN if not given."""
    if args["--backlog"] is None:
        return somaxconn
    return core.parse_number(args["--backlog"], "--backlog", core.INT_MAX)


def place(fd, target):
    """Move FD to TARGET (closing whatever TARGET was), inheritable, blocking."""
    if fd != target:
        os.dup2(fd, target)  # makes target inheritable
        os.close(fd)
    else:
        # dup2(fd, fd) would be a no-op that leaves close-on-exec set.
        os.set_inheritable(target, True)
    os.set_blocking(target, True)


def pass_listener(fd, env, what, *, systemd=False, upstart=False, fd_name=None):
    """Put listening socket FD on 3+n and describe it; return 3+n.

    A failure to move the descriptor (3+n beyond the limit of open files,
    say) is a Fail naming WHAT (the path, or HOST SERVICE) and 3+n; the
    caller knows what to clean up.
    """
    n = inherited_count(env) if systemd else 0
    target = FIRST_FD + n
    try:
        place(fd, target)
    except OSError as e:
        try:
            os.close(fd)  # still open: dup2 is the first step of place()
        except OSError:
            pass
        raise core.system_error(f"{what}: descriptor {target}", e) from None
    if systemd:
        from chainload.listenfds import pidfd_id

        old = env.get("LISTEN_FDNAMES")
        names = old.split(":") if n and old is not None else None
        if names is not None and (len(names) != n or not all(map(valid_fd_name, names))):
            names = None
        # Always one name per descriptor, as systemd passes them (where a
        # socket unit's name is the default): Twisted's systemd: endpoints
        # see no descriptor at all without LISTEN_FDNAMES.
        names = (names or [DEFAULT_FD_NAME] * n) + [fd_name or DEFAULT_FD_NAME]
        env["LISTEN_FDNAMES"] = ":".join(names)
        env["LISTEN_FDS"] = str(n + 1)
        env["LISTEN_PID"] = str(os.getpid())
        ident = pidfd_id()
        if ident is None:
            env.pop("LISTEN_PIDFDID", None)
        else:
            env["LISTEN_PIDFDID"] = str(ident)
    if upstart:
        env["UPSTART_FDS"] = str(target)
        env["UPSTART_EVENTS"] = "socket"
    return target


_FILE_TYPES = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
               (stat.S_ISFIFO, "a pipe or FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"))


def adopt(text, env, passing):
    """adopt-socket: the already-open socket on descriptor TEXT is passed on
    exactly as a listener passes the socket it made (pass_listener, with
    PASSING from passing_options()): moved to 3+n, the old descriptor
    closed unless it is 3+n. Any family and type; it is never bound,
    listened on or otherwise changed."""
    fd = core.parse_number(text, "fd", core.INT_MAX)
    what = f"fd {fd}"
    try:
        st = os.fstat(fd)
    except OSError as e:
        raise core.system_error(f"{what}: Not open", e) from None
    if not stat.S_ISSOCK(st.st_mode):
        kind = next((name for test, name in _FILE_TYPES if test(st.st_mode)), "no socket")
        raise core.Fail(core.EXIT_SYSTEM, f"{what}: Not a socket ({kind}).")
    n = inherited_count(env) if passing["systemd"] else 0
    if FIRST_FD <= fd < FIRST_FD + n:
        # Moving it to 3+n would leave a hole that LISTEN_FDS still counts.
        raise core.Fail(core.EXIT_SYSTEM, f"{what}: Already passed (LISTEN_FDS={n} counts "
                        f"descriptors {FIRST_FD} to {FIRST_FD + n - 1}).")
    pass_listener(fd, env, what, **passing)


# --- AF_UNIX: the path, the socket file, its owner and mode ---------------------

SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux
FILE_OPTIONS = ("--uid", "--gid", "--user", "--group", "--mode")

# Parts of the usage texts.
PATH_NOTES = """\
A PATH of @NAME is a Linux abstract socket; a relative PATH is bound by its
absolute name. An existing socket at PATH is replaced only if no server
answers on it; anything else there is refused and left alone. Starts in
one directory take turns (a flock on it). Numbers are decimal, 0-prefixed
octal or 0x-prefixed hexadecimal; a bare decimal --mode of 8 or more (666)
is refused as ambiguous."""
OWNER_OPTIONS = """\
  -u, --uid N                Owner of the socket file (a user id).
  -g, --gid N                Group of the socket file (a group id).
  --user NAME                Owner by user name (--uid wins).
  --group NAME               Group by group name (--gid wins).
  -m, --mode N               Socket file mode, set at creation (octal: 0660)."""
PASS_OPTIONS = """\
  --pass-credentials         Set SO_PASSCRED on the socket.
  --pass-security            Set SO_PASSSEC on the socket."""

# connect() results that show a server at the other end: accepted, its
# backlog full, or a live socket of another type.
_LIVE = (0, errno.EAGAIN, errno.EINPROGRESS, errno.EPROTOTYPE, errno.EISCONN)


def local_address(path):
    """The bind address of PATH: bytes, abstract if PATH starts with @, and
    otherwise always from the root (see absolute_name)."""
    if not path:
        raise core.usage_error("Empty socket path.")
    encoded = core.encode(path)
    if path.startswith("@"):
        if len(encoded) < 2:
            raise core.usage_error("@: Empty abstract socket name.")
        result, limit = b"\0" + encoded[1:], SUN_PATH_MAX
    else:
        result, limit = encoded, SUN_PATH_MAX - 1  # room for the NUL
    if len(result) > limit:
        raise core.usage_error(
            f"{path}: Socket path too long ({len(result)} bytes, at most {limit})."
        )
    if path.startswith("@") or path.startswith("/"):
        return result
    result = absolute_name(path)
    if len(result) > limit:
        raise core.usage_error(
            f"{path}: Socket path too long from the root ({len(result)} bytes with the "
            f"working directory, at most {limit}); a relative path is bound by its "
            "absolute name.")
    return result


def absolute_name(path):
    """Relative PATH (text) as bytes from the root: the working directory,
    then PATH without its "." components and repeated slashes (".." stays:
    through a symbolic link it would lead elsewhere than a textual step
    up). The daemon's getsockname(2) then shows the full path, which
    daemons that match their configured path against the passed sockets
    need; and removing the file after a failure does not depend on a later
    chdir link."""
    try:
        cwd = os.getcwdb()
    except OSError as e:  # removed, or its name is longer than the kernel gives
        raise core.system_error(f"{path}: Cannot name the working directory", e) from None
    parts = [p for p in core.encode(path).split(b"/") if p not in (b"", b".")]
    trail = b"/" if path.endswith("/") else b""  # names a directory: bind says so
    return cwd.rstrip(b"/") + b"/" + b"/".join(parts) + trail


def _account_id(value, option, name, what):
    """VALUE, the id that the database gives NAME, if chown can set it."""
    if not 0 <= value <= core.ID_MAX:  # (uid_t)-1 would mean "unchanged"
        # Python reports (uid_t)-1 as -1; say it as the database has it.
        value &= 0xFFFFFFFF
        raise core.usage_error(f"{option}: {name}: {what} {value} is out of range "
                               f"(must be 0 to {core.ID_MAX}).")
    return value


def owner(args):
    """(uid, gid) for chown, -1 meaning unchanged; names resolved now."""
    # Both numbers first: a usage error (100) is reported before any lookup.
    uid, gid = (core.parse_number(args[o], o, core.ID_MAX) if args[o] is not None else None
                for o in ("--uid", "--gid"))
    user, group = args["--user"], args["--group"]
    if uid is None:
        uid = -1 if user is None else _account_id(
            core.user_entry(user).pw_uid, "--user", user, "User id")
    if gid is None:
        gid = -1 if group is None else _account_id(
            core.group_id(group), "--group", group, "Group id")
    return uid, gid


def run_local(args, env, kind):
    """The whole of an AF_UNIX listener of socket type KIND ("SOCK_STREAM",
    "SOCK_SEQPACKET" or "SOCK_DGRAM"); returns the next program's argv."""
    import _socket as socket  # socket.py's enums, selectors, array: ~3-6 ms

    # 1. Everything that can be checked without side effects.
    listening = kind != "SOCK_DGRAM"
    path = args["<path>"]
    abstract = path.startswith("@")
    if abstract:
        given = [o for o in FILE_OPTIONS if args[o] is not None]
        if given:
            raise core.usage_error(f"{given[0]}: Not possible with an abstract socket ({path}).")
    bind_to = local_address(path)
    name = None if abstract else core.decode(bind_to)  # the file, from the root
    mode = None
    if args["--mode"] is not None:
        mode = core.parse_octal(args["--mode"], "--mode", "mode", 0o7777)
    backlog = backlog_option(args, socket.SOMAXCONN) if listening else None
    passing = passing_options(args)
    uid, gid = owner(args)

    # 2. The socket and its options.
    command, kind = _LOCAL_COMMANDS[kind], getattr(socket, kind)
    try:
        sock = socket.socket(socket.AF_UNIX, kind)
    except OSError as e:
        raise core.system_error(path, e) from None
    made = None  # (st_dev, st_ino) of the socket file this run made
    lock = None  # the directory, locked from before the bind until listen()
    try:
        for flag, option in (("--pass-credentials", socket.SO_PASSCRED),
                             ("--pass-security", socket.SO_PASSSEC)):
            if args[flag]:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, 1)
                except OSError as e:
                    raise core.system_error(f"{path}: {flag}", e) from None
        if not abstract:
            lock = _lock_directory(name, path, command)
        # 3. The bind. Until the file is registered for removal, a signal
        # must wait: else SIGINT just after bind() would leave it behind.
        with core.signals_deferred():
            # The node is created with the final mode: umask ~mode around
            # bind means it never exists with wider permissions, and no chmod
            # by name follows.
            old_umask = os.umask(0o777 & ~mode) if mode is not None else None
            try:
                _bind(sock, bind_to, path, abstract, kind)
            finally:
                if old_umask is not None:
                    os.umask(old_umask)
            if not abstract:
                made, born = _identify(name, path)
                # If the chain ends without exec'ing (this or a later link
                # fails, the next program cannot be run, a signal), the
                # driver removes our socket file; a successful exec never does.
                # By absolute name: a later chdir link must not move it.
                core.on_abort(_remove_if_ours, name, made)

        # 4. From here on a failure removes the socket file this run made.
        if made is not None:
            # A default ACL on the directory can make the node narrower
            # than the umask asked for; then the mode is set as well.
            chmod = mode is not None and (mode & 0o7000 or born != mode)
            _set_owner_and_mode(name, path, made, uid, gid, mode if chmod else None)
        # Owner and mode are right before listen(): until then every
        # connect() is refused. (A datagram socket takes messages from the
        # bind on, under the mode it was created with.)
        if listening:
            sock.listen(backlog)
        # Live now (a connect() is no longer refused): another start may
        # look at PATH.
        lock = _unlock(lock)
        pass_listener(sock.detach(), env, path, **passing)
    except (OSError, core.Fail) as e:
        if made is not None:
            _remove_if_ours(name, made)
        _unlock(lock)
        sock.close()
        if isinstance(e, core.Fail):
            raise
        raise core.system_error(path, e) from None
    return args["<next-prog>"]


# The command of each socket type (for a warning: the driver names the
# command in a FATAL line itself).
_LOCAL_COMMANDS = {"SOCK_STREAM": "local-stream-socket-listen",
                   "SOCK_SEQPACKET": "local-seqpacket-socket-listen",
                   "SOCK_DGRAM": "local-datagram-socket-listen"}
# How long a start waits for the directory lock: held by another start for
# well under a millisecond; longer only if something else holds it (flock(1)
# on the directory).
LOCK_WAIT = 5.0


def _lock_directory(name, path, prog):
    """An exclusive flock(2) on the directory of the socket file NAME, held
    from before the bind until the socket listens: the look at a socket
    already there (live or stale), its replacement, the bind, the owner
    and mode and listen() are then one step for every chainload start in
    that directory. Without it, two starts at the same moment can both
    succeed: the second finds the first one's socket not yet listening
    (connect() refused, as from a stale socket), replaces it, and the first
    daemon serves a socket that no path reaches.

    The lock is on the directory itself, so no lock file is made or left
    behind (a killed start releases it with its descriptors). Returns the
    directory's descriptor, or None where the file system has no flock(2)
    for directories or another process held the lock for LOCK_WAIT (then
    starts are not serialized, as before; PROG names the warning).
    """
    import fcntl

    directory = name[:name.rindex("/")] or "/"
    try:
        fd = os.open(core.encode(directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno != errno.EACCES:
            raise core.system_error(path, e) from None
        try:  # found but not readable, or a directory on the way not searchable
            os.stat(core.encode(directory))
            why = " (it must be readable)"
        except OSError:
            why = ""
        raise core.Fail(core.EXIT_SYSTEM, f"{path}: Cannot open its directory {directory} "
                        f"to lock it{why}: {os.strerror(e.errno)}") from None
    waited, delay = 0.0, 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF):
                    return None
                raise core.system_error(f"{path}: Cannot lock its directory {directory}",
                                        e) from None
        if waited >= LOCK_WAIT:
            # Anyone who can read the directory can hold its flock (nobody
            # on /run): failing here would let any user stop every start
            # there. Go on unserialized, as where flock is missing.
            os.close(fd)
            core.warn(prog, f"{directory}: Locked (flock) by another process for "
                      f"{LOCK_WAIT:g} seconds; going on without the lock.")
            return None
        import time  # built in; only a start that has to wait needs it

        time.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.05)


def _unlock(lock):
    """Release the directory lock (None: none held); returns None."""
    if lock is not None:
        os.close(lock)
    return None


def _bind(sock, bind_to, path, abstract, kind):
    """Bind; replace a stale socket at PATH, refuse anything else there.
    Runs under the directory lock (see _lock_directory)."""
    try:
        sock.bind(bind_to)
        return
    except OSError as e:
        if abstract or e.errno != errno.EADDRINUSE:
            raise core.system_error(path, e) from None
    try:
        st = os.lstat(bind_to)
        if not stat.S_ISSOCK(st.st_mode):
            raise core.Fail(core.EXIT_SYSTEM,
                            f"{path}: Exists and is not a socket; not removing it.")
        _refuse_if_live(bind_to, path, kind)
        os.unlink(bind_to)
        sock.bind(bind_to)
    except OSError as e:
        raise core.system_error(path, e) from None


def _refuse_if_live(bind_to, path, kind):
    """Fail unless connecting to the socket at PATH, with a socket of our
    own type, is refused: only ECONNREFUSED proves that nobody serves it."""
    import _socket as socket

    probe = socket.socket(socket.AF_UNIX, kind | socket.SOCK_NONBLOCK)
    try:
        probe.connect(bind_to)
        err = 0
    except OSError as e:
        err = e.errno
    finally:
        probe.close()
    if err == errno.ECONNREFUSED:
        return
    if err in _LIVE:
        raise core.Fail(core.EXIT_SYSTEM,
                        f"{path}: In use by a running server; not replacing it.")
    raise core.Fail(core.EXIT_SYSTEM, f"{path}: {os.strerror(err)}; not replacing it.")


def _identify(name, path):
    """The identity (st_dev, st_ino) of the socket file NAME (PATH as given)
    this run just bound, and its permission bits.

    It must be a socket owned by our effective user: otherwise someone
    swapped PATH since bind(), and we stop without touching what is there.
    lstat needs no descriptor, so a full descriptor table cannot keep the
    file from being identified (and removed again on a later failure).
    """
    st = os.lstat(core.encode(name))
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        raise core.Fail(core.EXIT_SYSTEM, f"{path}: Replaced by something else after bind.")
    return (st.st_dev, st.st_ino), stat.S_IMODE(st.st_mode)


def _set_owner_and_mode(name, path, made, uid, gid, mode):
    """Change the owner of the file MADE, and its mode unless MODE is None,
    through an O_PATH handle opened without following a symlink and checked
    to be that very inode, never by name."""
    if uid == -1 and gid == -1 and mode is None:
        return
    handle = os.open(core.encode(name), os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(handle)
        if (st.st_dev, st.st_ino) != made:
            raise core.Fail(core.EXIT_SYSTEM,
                            f"{path}: Replaced by something else after bind.")
        node = f"/proc/self/fd/{handle}"  # this very inode, not a name
        try:
            if uid != -1 or gid != -1:
                os.chown(node, uid, gid)
            if mode is not None:
                os.chmod(node, mode)  # after chown, which clears set-id bits
        except FileNotFoundError:
            # The handle is open, so only a missing /proc (a chroot, a bare
            # mount namespace) makes its /proc name not found.
            _change_without_proc(handle, path, uid, gid, mode)
    finally:
        # Closed before the socket moves to 3+n, so the handle can never
        # sit on (and be clobbered by) that descriptor.
        os.close(handle)


AT_EMPTY_PATH = 0x1000  # <fcntl.h>
SYS_FCHMODAT2 = 452  # Linux 6.6; the same number on every architecture but alpha


def _change_without_proc(handle, path, uid, gid, mode):
    """What _set_owner_and_mode does through /proc, on the O_PATH HANDLE
    itself: fchownat(2) and fchmodat2(2) with AT_EMPTY_PATH (os offers
    neither flag, so through ctypes). Where that cannot work, one line says
    that /proc is needed."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError) as e:
        raise core.Fail(core.EXIT_SYSTEM, f"{path}: Cannot set the owner or mode: /proc is "
                        f"not mounted, and ctypes is not available ({e}).") from None
    if uid != -1 or gid != -1:
        libc.fchownat.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32,
                                  ctypes.c_uint32, ctypes.c_int)
        if libc.fchownat(handle, b"", uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, AT_EMPTY_PATH):
            raise core.system_error(path, OSError(ctypes.get_errno(), "")) from None
    if mode is not None:
        if libc.syscall(ctypes.c_long(SYS_FCHMODAT2), ctypes.c_int(handle), ctypes.c_char_p(b""),
                        ctypes.c_uint(mode), ctypes.c_int(AT_EMPTY_PATH)):
            err = ctypes.get_errno()
            if err in (errno.ENOSYS, errno.EINVAL):
                raise core.Fail(core.EXIT_SYSTEM,
                                f"{path}: Cannot set mode {mode:04o}: /proc is not mounted, "
                                "and this kernel has no fchmodat2 (Linux 6.6).")
            raise core.system_error(path, OSError(err, "")) from None


def _remove_if_ours(name, made):
    """Unlink NAME only if it is still the file MADE = (st_dev, st_ino)."""
    try:
        now = os.lstat(core.encode(name))
        if (now.st_dev, now.st_ino) == made:
            os.unlink(core.encode(name))
    except OSError:
        pass


# --- IP: name resolution, the port range, the socket options ----------------------

PORT_MAX = 65535
IP_FREEBIND = 15  # <linux/in.h>; Python's socket module does not name it

# Option lines of the usage texts.
IP_OPTIONS = """\
  --no-reuse-address         Do not set SO_REUSEADDR (it is set by default).
  --reuse-port               Set SO_REUSEPORT.
  --bind-to-any              Set IP_FREEBIND: bind an address not (yet) local.
  --combine4and6             Clear IPV6_V6ONLY: IPv6 also takes IPv4 traffic.
  -H, --numeric-host         HOST must be a numeric address (AI_NUMERICHOST).
  --numeric-service          SERVICE must be a port number (AI_NUMERICSERV).
  --check-interfaces         Resolve with AI_ADDRCONFIG."""


def service_of(service, numeric_only):
    """SERVICE checked: a port number 1..65535 (plain decimal), or a name
    from the services database, which starts with a letter."""
    if service[:1].isascii() and service[:1].isalpha():
        if numeric_only:
            raise core.usage_error(f"service: {service}: Not a port number "
                                   "(--numeric-service).")
        return service
    if not (service.isascii() and service.isdigit()):
        raise core.usage_error(f"service: {service}: Not a port number or service name.")
    if len(service) > 1 and service.startswith("0"):
        # getaddrinfo reads 010 as 10; our numbers elsewhere read it as 8.
        raise core.usage_error(f"service: {service}: Ambiguous leading 0 "
                               "(write the port in plain decimal).")
    return str(core.parse_number(service, "service", PORT_MAX, minimum=1))


def _lookup_failure(error, service, kind):
    """What a getaddrinfo failure means: glibc's words for a service name it
    cannot find ("Servname not supported for ai_socktype") hide the usual
    cause, a name that is not in /etc/services."""
    import _socket as socket

    if error.errno != socket.EAI_SERVICE:
        return error.strerror
    proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    try:
        socket.getservbyname(service)  # any protocol
    except OSError:
        return "Unknown service name (not in /etc/services)."
    return f"Service name not defined for {proto} (in /etc/services only for another protocol)."


def run_ip(args, env, kind):
    """The whole of an IP listener of socket type KIND ("SOCK_STREAM" or
    "SOCK_DGRAM"); returns the next program's argv."""
    import _socket as socket  # socket.py's enums, selectors, array: ~3-6 ms

    # 1. Everything that can be checked without side effects.
    listening = kind == "SOCK_STREAM"
    host = args["<host>"]
    if not host:
        raise core.usage_error("Empty host name.")
    service = service_of(args["<service>"], args["--numeric-service"])
    backlog = backlog_option(args, socket.SOMAXCONN) if listening else None
    passing = passing_options(args)
    where = f"{host} {args['<service>']}"

    # 2. The address: the first result.
    flags = socket.AI_PASSIVE
    for option, flag in (("--numeric-host", socket.AI_NUMERICHOST),
                         ("--numeric-service", socket.AI_NUMERICSERV),
                         ("--check-interfaces", socket.AI_ADDRCONFIG)):
        if args[option]:
            flags |= flag
    kind = getattr(socket, kind)
    try:
        found = socket.getaddrinfo(core.encode(host), core.encode(service),
                                   socket.AF_UNSPEC, kind, 0, flags)
    except socket.gaierror as e:
        raise core.Fail(core.EXIT_SYSTEM, f"{where}: {_lookup_failure(e, service, kind)}") \
            from None
    except OSError as e:  # EAI_SYSTEM: the errno
        raise core.system_error(where, e) from None
    if not found:  # getaddrinfo promises at least one, but do not trust it
        raise core.Fail(core.EXIT_SYSTEM, f"{where}: No address found.")
    family, _, proto, _, sockaddr = found[0]

    # 3. The socket and its options; 4. bind and 
    options = [("--no-reuse-address", socket.SOL_SOCKET, socket.SO_REUSEADDR,
                0 if args["--no-reuse-address"] else 1)]
    if args["--reuse-port"]:
        options.append(("--reuse-port", socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
    if args["--bind-to-any"]:  # SOL_IP works on an IPv6 socket too
        options.append(("--bind-to-any", socket.SOL_IP, IP_FREEBIND, 1))
    if family == socket.AF_INET6:
        options.append(("--combine4and6", socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                        0 if args["--combine4and6"] else 1))
    try:
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise core.system_error(where, e) from None
    try:
        for option, level, name, value in options:
            try:
                sock.setsockopt(level, name, value)
            except OSError as e:
                raise core.system_error(f"{where}: {option}", e) from None
        sock.bind(sockaddr)
        if listening:
            sock.listen(backlog)
        pass_listener(sock.detach(), env, where, **passing)
    except (OSError, core.Fail) as e:
        sock.close()
        if isinstance(e, core.Fail):
            raise
        raise core.system_error(where, e) from None
    return args["<next-prog>"]
