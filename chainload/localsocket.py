"""AF_UNIX listeners: the path, the socket file and its owner and mode.

Shared by local-seqpacket-socket-listen, local-stream-socket-listen and
local-datagram-socket-listen, which differ only in the socket type (and a
datagram socket is never listen()ed). The steps, in order:

1. Everything that can be checked without side effects: the path (empty,
   too long, @abstract), the numbers, --fd-name, then the user and group
   names (after the numbers, so a usage error comes before a lookup).
2. The socket and its SO_PASSCRED/SO_PASSSEC options.
3. The bind, under umask ~mode so the file is born with its final mode. If
   the name is taken by a socket, that socket is replaced only when a
   connect() of our own type is refused (ECONNREFUSED: nobody listens);
   anything but a socket, or a live socket, is refused and left alone.
4. The file's identity (lstat: a socket owned by us, or someone replaced
   it), registered with core.on_abort() (signals wait from before the bind
   until then); then the owner, and the mode where the bind could not give
   it (special bits; a default ACL on the directory), through an O_PATH handle
   on that very inode. From here on every failure removes the file.
5. listen() (not for datagrams), then chainload.listen.pass_listener().
"""

import errno
import os
import stat

from chainload import core, listen

SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux
FILE_OPTIONS = ("--uid", "--gid", "--user", "--group", "--mode")

# Parts of the usage texts.
PATH_NOTES = """\
A PATH of @NAME is a Linux abstract socket. An existing socket at PATH is
replaced only if no server answers on it; anything else there is refused
and left alone. Numbers are decimal, 0-prefixed octal or 0x-prefixed
hexadecimal."""
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


def preload():
    import grp  # noqa: F401
    import pwd  # noqa: F401
    import _socket  # noqa: F401


def address(path):
    """The bind address of PATH: bytes, abstract if PATH starts with @."""
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
    return result


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


def run(args, env, kind):
    """The whole of an AF_UNIX listener of socket type KIND ("SOCK_STREAM",
    "SOCK_SEQPACKET" or "SOCK_DGRAM"); returns the next program's argv."""
    import _socket as socket  # socket.py's enums, selectors, array: ~3-6 ms

    # 1. Everything that can be checked without side effects.
    listening = kind != "SOCK_DGRAM"
    path = args["<path>"]
    bind_to = address(path)
    abstract = path.startswith("@")
    if abstract:
        given = [o for o in FILE_OPTIONS if args[o] is not None]
        if given:
            raise core.usage_error(f"{given[0]}: Not possible with an abstract socket ({path}).")
    mode = None
    if args["--mode"] is not None:
        mode = core.parse_number(args["--mode"], "--mode", 0o7777)
    backlog = listen.backlog(args, socket.SOMAXCONN) if listening else None
    passing = listen.passing(args)
    uid, gid = owner(args)

    # 2. The socket, its options, and the bind.
    kind = getattr(socket, kind)
    try:
        sock = socket.socket(socket.AF_UNIX, kind)
    except OSError as e:
        raise core.system_error(path, e) from None
    made = None  # (st_dev, st_ino) of the socket file this run made
    try:
        for flag, option in (("--pass-credentials", socket.SO_PASSCRED),
                             ("--pass-security", socket.SO_PASSSEC)):
            if args[flag]:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, 1)
                except OSError as e:
                    raise core.system_error(f"{path}: {flag}", e) from None
        # Until the file is registered for removal, a signal must wait: else
        # SIGINT just after bind() would leave it behind.
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
                made, born = _identify(path)
                # If the chain ends without exec'ing (this or a later link
                # fails, the next program cannot be run, a signal), the
                # driver removes our socket file; a successful exec never does.
                # By absolute name: a later chdir link must not move it.
                core.on_abort(_remove_if_ours, _absolute(path), made)
    except (OSError, core.Fail) as e:
        sock.close()
        if isinstance(e, core.Fail):
            raise
        raise core.system_error(path, e) from None

    # 3. From here on a failure removes the socket file this run made.
    try:
        if made is not None:
            # A default ACL on the directory can make the node narrower
            # than the umask asked for; then the mode is set as well.
            chmod = mode is not None and (mode & 0o7000 or born != mode)
            _set_owner_and_mode(path, made, uid, gid, mode if chmod else None)
        # Owner and mode are right before listen(): until then every
        # connect() is refused. (A datagram socket takes messages from the
        # bind on, under the mode it was created with.)
        if listening:
            sock.listen(backlog)
        listen.pass_listener(sock.detach(), env, path, **passing)
    except (OSError, core.Fail) as e:
        if made is not None:
            _remove_if_ours(path, made)
        sock.close()
        if isinstance(e, core.Fail):
            raise
        raise core.system_error(path, e) from None
    return args["<next-prog>"]


def _bind(sock, bind_to, path, abstract, kind):
    """Bind; replace a stale socket at PATH, refuse anything else there."""
    try:
        sock.bind(bind_to)
        return
    except OSError as e:
        if abstract or e.errno != errno.EADDRINUSE:
            raise core.system_error(path, e) from None
    try:
        st = os.lstat(core.encode(path))
        if not stat.S_ISSOCK(st.st_mode):
            raise core.Fail(core.EXIT_SYSTEM,
                            f"{path}: Exists and is not a socket; not removing it.")
        _refuse_if_live(bind_to, path, kind)
        os.unlink(core.encode(path))
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


def _identify(path):
    """The identity (st_dev, st_ino) of the socket file this run just bound,
    and its permission bits.

    It must be a socket owned by our effective user: otherwise someone
    swapped PATH since bind(), and we stop without touching what is there.
    lstat needs no descriptor, so a full descriptor table cannot keep the
    file from being identified (and removed again on a later failure).
    """
    st = os.lstat(core.encode(path))
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        raise core.Fail(core.EXIT_SYSTEM, f"{path}: Replaced by something else after bind.")
    return (st.st_dev, st.st_ino), stat.S_IMODE(st.st_mode)


def _set_owner_and_mode(path, made, uid, gid, mode):
    """Change the owner of the file MADE, and its mode unless MODE is None,
    through an O_PATH handle opened without following a symlink and checked
    to be that very inode, never by name."""
    if uid == -1 and gid == -1 and mode is None:
        return
    handle = os.open(core.encode(path), os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(handle)
        if (st.st_dev, st.st_ino) != made:
            raise core.Fail(core.EXIT_SYSTEM,
                            f"{path}: Replaced by something else after bind.")
        node = f"/proc/self/fd/{handle}"  # this very inode, not a name
        if uid != -1 or gid != -1:
            os.chown(node, uid, gid)
        if mode is not None:
            os.chmod(node, mode)  # after chown, which clears set-id bits
    finally:
        # Closed before the socket moves to 3+n, so the handle can never
        # sit on (and be clobbered by) that descriptor.
        os.close(handle)


def _absolute(path):
    """PATH from the root, as far as the working directory can be named."""
    if path.startswith("/"):
        return path
    try:
        return core.decode(os.getcwdb()) + "/" + path
    except OSError:  # the working directory was removed
        return path


def _remove_if_ours(path, made):
    """Unlink PATH only if it is still the file MADE = (st_dev, st_ino)."""
    try:
        now = os.lstat(core.encode(path))
        if (now.st_dev, now.st_ino) == made:
            os.unlink(core.encode(path))
    except OSError:
        pass
