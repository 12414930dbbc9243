"""install-dir: make a directory with a mode and an owner, then chain.

The walk opens every component with O_DIRECTORY|O_NOFOLLOW relative to the
one before it (openat), makes what is missing with mkdirat, and changes the
directory only through its own descriptor (fchmod, fchown): a symbolic link
at DIR is never followed, and one planted at a parent after the walk went
past it changes nothing. A symbolic link at a parent is followed only when
it belongs to root or to the user the chain runs as (whoever else made it
could point it anywhere); that keeps /var/run -> /run working.
"""

import errno
import os
import stat

from chainload import core

USAGE = """Usage: install-dir [options] [--] <dir> <next-prog>...

Make directory DIR and its missing parents, give DIR its mode, owner and
group, and chain to next-prog. Parents made get mode 0755 and the owner the
chain runs as. An existing DIR gets the mode, owner and group too, unless
the option --if-missing is given. MODE is octal with a leading 0 (0750); a
bare decimal like 755 is refused as ambiguous. USER and GROUP are names or
numbers.

Options:
  --if-missing        Leave an existing DIR exactly as it is.
  -m, --mode MODE     Mode of DIR (default 0755).
  -o, --owner USER    Owner of DIR (default: unchanged, or the chain's).
  -g, --group GROUP   Group of DIR (default: unchanged, or the chain's).
  -h, --help          Show this help and exit.
"""

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PARENT_MODE = 0o755
MAX_LINKS = 40  # symbolic links followed in one walk, as the kernel's ELOOP


class _Refused(Exception):
    """A walk that stops: WHERE (the path so far) and why."""

    def __init__(self, where, why):
        super().__init__(where, why)
        self.where, self.why = where, why


def preload():
    """What the user and group lookups need after an earlier setuidgid
    dropped to a user who cannot read the Python installation."""
    import grp  # noqa: F401
    import pwd  # noqa: F401


def run(args, env):
    path = args["<dir>"]
    mode = 0o755 if args["--mode"] is None else core.parse_octal(args["--mode"], "--mode", "mode",
                                                                0o7777)
    uid = -1 if args["--owner"] is None else core.account_of(args["--owner"])[1]
    gid = -1 if args["--group"] is None else core.group_of(args["--group"])
    raw = core.encode(path)
    if not raw or b"\0" in raw:
        raise core.system_error(path, OSError(errno.ENOENT, "")) from None
    try:
        fd, existed = _walk(raw, mode, args["--if-missing"])
    except _Refused as e:
        where = core.decode(e.where) or path
        if isinstance(e.why, str):
            raise core.Fail(core.EXIT_SYSTEM, f"{where}: {e.why}") from None
        raise core.system_error(where, e.why) from None
    try:
        if fd is not None:
            _set_owner_and_mode(fd, path, mode, uid, gid, existed)
    finally:
        if fd is not None:
            os.close(fd)
    return args["<next-prog>"]


def _walk(raw, mode, if_missing):
    """(descriptor of DIR, whether it existed), making what is missing;
    (None, True) if IF_MISSING and DIR exists (nothing to change)."""
    parts = [p for p in raw.split(b"/") if p and p != b"."]
    where = b"/" if raw.startswith(b"/") else b""
    fd = _open(b"/" if where else b".", None, where or b".")
    try:  # full names for removing what is made (a later link may chdir)
        base = os.getcwdb()
    except OSError:
        base = b""
    links = 0
    try:
        existed = True
        while parts:
            name = parts.pop(0)
            last = not parts
            here = where + (b"/" if where and not where.endswith(b"/") else b"") + name
            try:
                opened = os.open(name, DIRECTORY, dir_fd=fd)
                existed = True
            except FileNotFoundError:
                opened, existed = _make(fd, name, here, base, mode if last else None)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise _Refused(here, e) from None
                st = _lstat(fd, name, here)
                if not stat.S_ISLNK(st.st_mode):
                    raise _Refused(here, "Exists and is not a directory."
                                   if last else os.strerror(errno.ENOTDIR)) from None
                if last:
                    if if_missing and _is_directory(fd, name):
                        return None, True  # a link to a directory: nothing to change
                    raise _Refused(here, "Is a symbolic link; not following it.") from None
                if st.st_uid not in (0, os.geteuid()):
                    raise _Refused(here, f"Symbolic link owned by uid {st.st_uid}, "
                                   "not by root or this user; not following it.") from None
                links += 1
                if links > MAX_LINKS:
                    raise _Refused(here, os.strerror(errno.ELOOP)) from None
                try:
                    target = os.readlink(name, dir_fd=fd)
                except OSError as e:  # replaced meanwhile
                    raise _Refused(here, e) from None
                parts[:0] = [p for p in target.split(b"/") if p and p != b"."]
                if target.startswith(b"/"):
                    os.close(fd)
                    fd = None
                    fd = _open(b"/", None, here)
                    where = b"/"
                continue
            os.close(fd)
            fd, where = opened, here
        if existed and if_missing:
            os.close(fd)
            return None, True
        return fd, existed
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise


def _open(name, dir_fd, where):
    try:
        return os.open(name, DIRECTORY, dir_fd=dir_fd)
    except OSError as e:
        raise _Refused(where, e) from None


def _lstat(fd, name, where):
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError as e:
        raise _Refused(where, e) from None


def _is_directory(fd, name):
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=fd).st_mode)
    except OSError:
        return False


def _make(fd, name, where, base, mode):
    """(descriptor, False): directory NAME made in FD and opened. MODE None
    makes a parent, 0755; DIR is made with MODE under the umask (never wider
    than asked; _set_owner_and_mode then sets MODE). It is removed again if
    the chain fails (on_abort)."""
    with core.signals_deferred():  # made and registered for removal as one step
        try:
            os.mkdir(name, PARENT_MODE if mode is None else mode & 0o777, dir_fd=fd)
        except FileExistsError:  # made by someone else meanwhile: walk on into it
            return _open(name, fd, where), True
        except OSError as e:
            raise _Refused(where, e) from None
        try:
            opened = os.open(name, DIRECTORY, dir_fd=fd)
            st = os.fstat(opened)
        except OSError as e:  # replaced (by a symlink?) since the mkdir
            raise _Refused(where, e) from None
        core.on_abort(_remove, (os.path.join(base, where), where), (st.st_dev, st.st_ino))
    if st.st_uid != os.geteuid():
        os.close(opened)
        raise _Refused(where, "Replaced by another user's directory since it was made.")
    if mode is None and stat.S_IMODE(st.st_mode) != PARENT_MODE:
        try:  # narrowed by the umask; parents are 0755 whatever it is
            os.fchmod(opened, PARENT_MODE)
        except OSError as e:
            os.close(opened)
            raise _Refused(where, e) from None
    return opened, False


def _remove(names, made):
    """Remove the directory by the first of NAMES (its full name, then the
    name relative to the starting directory, for a user who cannot search
    every directory above it) that is still the one MADE (st_dev, st_ino),
    if it is empty."""
    for name in names:
        try:
            st = os.lstat(name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == made:
            os.rmdir(name)
            return


def _set_owner_and_mode(fd, path, mode, uid, gid, existed):
    """Give the directory open on FD the owner UID, group GID (-1: as it is)
    and MODE, through FD. No one ever has more access than before or after:
    the mode is first narrowed to what both allow, then the owner changes,
    then the mode is set."""
    st = os.fstat(fd)
    now = stat.S_IMODE(st.st_mode)
    uid = -1 if uid == st.st_uid else uid
    gid = -1 if gid == st.st_gid else gid
    if now == mode and uid == -1 and gid == -1:
        return
    if existed and os.geteuid() != 0 and (
            st.st_uid != os.geteuid() or uid != -1
            or (gid != -1 and gid not in (os.getegid(), *os.getgroups()))):
        # Known before anything is changed: only root changes another's
        # directory or gives one away (nothing half-done).
        raise core.system_error(path, OSError(errno.EPERM, "")) from None
    try:
        if now & ~mode:
            os.fchmod(fd, now & mode)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)  # also after fchown, which may clear set-id bits
    except OSError as e:
        raise core.system_error(path, e) from None


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((753, 139959653286022728),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3, 4)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<dir>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', None, '--if-missing', 0, False), ('Option', '-m', '--mode', 1, None), ('Option', '-o', '--owner', 1, None), ('Option', '-g', '--group', 1, None), ('Option', '-h', '--help', 0, False)),
          (True, 1, '<next-prog>'), {'--if-missing': False, '--mode': None, '--owner': None, '--group': None, '--help': False, '--': False, '<dir>': None, '<next-prog>': []})
