"""The socket-passing protocol shared by every listener.

A listener hands its socket to the next program on file descriptor 3+n,
where n is the number of listening descriptors already passed (0 unless
--systemd-compatibility finds a valid LISTEN_FDS/LISTEN_PID for this
process), and optionally describes it in the environment:

  systemd (sd_listen_fds(3)): LISTEN_FDS=n+1, LISTEN_PID=<this pid>,
      LISTEN_FDNAMES with exactly one name per descriptor (or unset),
      LISTEN_PIDFDID=<this process's pidfd inode> where the kernel has pidfs
      (otherwise unset, never stale);
  upstart (socket-event(7)): UPSTART_FDS=3+n, UPSTART_EVENTS=socket.

Only the os module is needed here. Every listener (the AF_UNIX ones in
chainload.localsocket, the IP ones in chainload.inetsocket) parses its
options with the helpers below and ends with pass_listener().
"""

import os

from chainload import core
from chainload.listenfds import LISTEN_FDS_START, pidfd_id, pidfd_mismatch
from chainload.listenfds import decimal as _decimal

FD_NAME_MAX = 255

# Option lines of the usage texts, shared by every listener.
BACKLOG_OPTION = """\
  -b, --backlog N            listen(2) backlog (default SOMAXCONN)."""
PASSING_OPTIONS = """\
  --upstart-compatibility    Set UPSTART_FDS=3+n and UPSTART_EVENTS=socket.
  --systemd-compatibility    Count inherited LISTEN_FDS; set the LISTEN_* vars.
  --fd-name NAME             Name in LISTEN_FDNAMES (--systemd-compatibility)."""


def inherited_count(env):
    """How many listening descriptors the environment says we already hold.

    LISTEN_FDS counts only when LISTEN_PID is this process (a chain never
    forks, so an earlier listener in it set our own pid) and, where
    LISTEN_PIDFDID is set and the kernel has pidfs, that names this process
    too (as chainload.activation and sd_listen_fds(3) check). Anything
    missing, malformed or stale counts as none.
    """
    if _decimal(env.get("LISTEN_PID")) != os.getpid():
        return 0
    ident = env.get("LISTEN_PIDFDID")
    if ident is not None and pidfd_mismatch(ident):
        return 0
    count = _decimal(env.get("LISTEN_FDS"))
    if count is None or count > core.INT_MAX - LISTEN_FDS_START - 1:
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


def passing(args):
    """The checked --systemd-compatibility, --upstart-compatibility and
    --fd-name of ARGS, as keyword arguments for pass_listener()."""
    fd_name = args["--fd-name"]
    if fd_name is not None:
        check_fd_name(fd_name)
        if not args["--systemd-compatibility"]:
            raise core.usage_error("--fd-name: Needs --systemd-compatibility.")
    return {"systemd": args["--systemd-compatibility"],
            "upstart": args["--upstart-compatibility"], "fd_name": fd_name}


def backlog(args, somaxconn):
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
    target = LISTEN_FDS_START + n
    try:
        place(fd, target)
    except OSError as e:
        try:
            os.close(fd)  # still open: dup2 is the first step of place()
        except OSError:
            pass
        raise core.system_error(f"{what}: descriptor {target}", e) from None
    if systemd:
        old = env.get("LISTEN_FDNAMES")
        names = old.split(":") if n and old is not None else None
        if names is not None and (len(names) != n or not all(map(valid_fd_name, names))):
            names = None
        if fd_name is not None or names is not None:
            names = (names or ["unknown"] * n) + [fd_name or "unknown"]
            env["LISTEN_FDNAMES"] = ":".join(names)
        else:
            env.pop("LISTEN_FDNAMES", None)
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
