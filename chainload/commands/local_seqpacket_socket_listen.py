"""local-seqpacket-socket-listen: listen on an AF_LOCAL SOCK_SEQPACKET socket
on fd 3+n, then chain."""

import errno
import os
import stat

from chainload import core

SUMMARY = "bind an AF_LOCAL SOCK_SEQPACKET socket to fd 3+n, then chain"

USAGE = """Usage: local-seqpacket-socket-listen [options] [--] <path> <next-prog>...

Bind an AF_LOCAL sequential-packet socket to PATH, listen on it, put it on
file descriptor 3+n, and chain to next-prog (n = listening descriptors
already passed, counted only with the --systemd-compatibility option).
A PATH of @NAME is a Linux abstract socket. An existing socket at PATH is
replaced; anything else there is refused and left alone. Numbers are
decimal, 0-prefixed octal or 0x-prefixed hexadecimal.

Options:
  -u, --uid N                Owner of the socket file (a user id).
  -g, --gid N                Group of the socket file (a group id).
  --user NAME                Owner by user name (--uid wins).
  --group NAME               Group by group name (--gid wins).
  -m, --mode N               Socket file mode, set at creation (octal: 0660).
  -b, --backlog N            listen(2) backlog (default SOMAXCONN).
  --pass-credentials         Set SO_PASSCRED on the socket.
  --pass-security            Set SO_PASSSEC on the socket.
  --upstart-compatibility    Set UPSTART_FDS=3+n and UPSTART_EVENTS=socket.
  --systemd-compatibility    Count inherited LISTEN_FDS; set the LISTEN_* vars.
  --fd-name NAME             Name in LISTEN_FDNAMES (--systemd-compatibility).
  -h, --help                 Show this help and exit.
"""

SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux
FILE_OPTIONS = ("--uid", "--gid", "--user", "--group", "--mode")


def preload():
    import grp  # noqa: F401
    import pwd  # noqa: F401
    import _socket  # noqa: F401

    import chainload.listen  # noqa: F401


def _owner(args):
    """(uid, gid) for chown, -1 meaning unchanged; names resolved now."""
    # Both numbers first: a usage error (100) is reported before any lookup.
    uid, gid = (core.parse_number(args[o], o, core.ID_MAX) if args[o] is not None else None
                for o in ("--uid", "--gid"))
    if uid is None:
        uid = core.user_entry(args["--user"]).pw_uid if args["--user"] is not None else -1
    if gid is None:
        gid = core.group_id(args["--group"]) if args["--group"] is not None else -1
    return uid, gid


def _address(path):
    """The bind address of PATH: bytes, abstract if PATH starts with @."""
    if not path:
        raise core.usage_error("Empty socket path.")
    encoded = core.encode(path)
    if path.startswith("@"):
        if len(encoded) < 2:
            raise core.usage_error("@: Empty abstract socket name.")
        address = b"\0" + encoded[1:]
        limit = SUN_PATH_MAX
    else:
        address, limit = encoded, SUN_PATH_MAX - 1  # room for the NUL
    if len(address) > limit:
        raise core.usage_error(
            f"{path}: Socket path too long ({len(address)} bytes, at most {limit})."
        )
    return address


def run(args, env):
    import _socket as socket  # socket.py's enums, selectors, array: ~3-6 ms

    from chainload import listen

    # 1. Everything that can be checked without side effects.
    path = args["<path>"]
    address = _address(path)
    abstract = path.startswith("@")
    if abstract:
        given = [o for o in FILE_OPTIONS if args[o] is not None]
        if given:
            raise core.usage_error(f"{given[0]}: Not possible with an abstract socket ({path}).")
    mode = None
    if args["--mode"] is not None:
        mode = core.parse_number(args["--mode"], "--mode", 0o7777)
    backlog = socket.SOMAXCONN
    if args["--backlog"] is not None:
        backlog = core.parse_number(args["--backlog"], "--backlog", core.INT_MAX)
    fd_name = args["--fd-name"]
    if fd_name is not None:
        listen.check_fd_name(fd_name)
        if not args["--systemd-compatibility"]:
            raise core.usage_error("--fd-name: Needs --systemd-compatibility.")
    uid, gid = _owner(args)

    # 2. The socket, its options, and the bind.
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError as e:
        raise core.system_error(path, e) from None
    for flag, option in (("--pass-credentials", socket.SO_PASSCRED),
                         ("--pass-security", socket.SO_PASSSEC)):
        if args[flag]:
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, 1)
            except OSError as e:
                sock.close()
                raise core.system_error(f"{path}: {flag}", e) from None

    # The node is created with the final mode: umask ~mode around bind means
    # it never exists with wider permissions, and no chmod by name follows.
    made = handle = None  # made: (st_dev, st_ino) of the socket file this run made
    # Until that file is registered for removal, a signal must wait: else
    # SIGINT just after bind() would leave it behind.
    with core.signals_deferred():
        old_umask = os.umask(0o777 & ~mode) if mode is not None else None
        try:
            _bind(sock, address, path, abstract)
        finally:
            if old_umask is not None:
                os.umask(old_umask)
        if not abstract:
            try:
                handle, made = _own_node(path)
            except (OSError, core.Fail) as e:
                sock.close()
                if isinstance(e, core.Fail):
                    raise
                raise core.system_error(path, e) from None
            # If the chain ends without exec'ing (this or a later link
            # fails, the next program cannot be run, a signal), the driver
            # removes our socket file; a successful exec never does.
            core.on_abort(_remove_if_ours, path, made)

    # 3. From here on a failure removes the socket file this run made.
    try:
        if handle is not None:
            try:
                _set_owner_and_mode(handle, uid, gid, mode)
            finally:
                # Closed before the socket moves to 3+n, so the handle can
                # never sit on (and be clobbered by) that descriptor.
                os.close(handle)
        # Owner and mode are right before listen(): until then every
        # connect() is refused.
        sock.listen(backlog)
        listen.pass_listener(sock.detach(), env, systemd=args["--systemd-compatibility"],
                             upstart=args["--upstart-compatibility"], fd_name=fd_name)
    except (OSError, core.Fail) as e:
        if made is not None:
            _remove_if_ours(path, made)
        sock.close()
        if isinstance(e, core.Fail):
            raise
        raise core.system_error(path, e) from None
    return args["<next-prog>"]


def _set_owner_and_mode(handle, uid, gid, mode):
    """Change the owner and special mode bits of the file HANDLE is on."""
    node = f"/proc/self/fd/{handle}"  # this very inode, not a name
    if uid != -1 or gid != -1:
        os.chown(node, uid, gid)
    if mode is not None and mode & 0o7000:
        os.chmod(node, mode)  # the umask cannot give special bits


def _bind(sock, address, path, abstract):
    """Bind; replace a stale socket at PATH, refuse anything else there."""
    try:
        sock.bind(address)
        return
    except OSError as e:
        if abstract or e.errno != errno.EADDRINUSE:
            sock.close()
            raise core.system_error(path, e) from None
    try:
        st = os.lstat(core.encode(path))
        if not stat.S_ISSOCK(st.st_mode):
            sock.close()
            raise core.Fail(core.EXIT_SYSTEM,
                            f"{path}: Exists and is not a socket; not removing it.")
        os.unlink(core.encode(path))
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise core.system_error(path, e) from None


def _own_node(path):
    """An O_PATH handle on the socket file this run just bound, and that
    file's identity (st_dev, st_ino).

    Opened without following a symlink, and checked to be a socket owned by
    us: if anybody swapped PATH since bind(), we stop rather than change the
    owner or mode of whatever is there now.
    """
    handle = os.open(core.encode(path), os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(handle)
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        os.close(handle)
        raise core.Fail(core.EXIT_SYSTEM, f"{path}: Replaced by something else after bind.")
    return handle, (st.st_dev, st.st_ino)


def _remove_if_ours(path, made):
    """Unlink PATH only if it is still the file MADE = (st_dev, st_ino)."""
    try:
        now = os.lstat(core.encode(path))
        if (now.st_dev, now.st_ino) == made:
            os.unlink(core.encode(path))
    except OSError:
        pass
