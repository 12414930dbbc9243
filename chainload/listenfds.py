"""What the two sides of the LISTEN_FDS protocol must agree on: the first
descriptor, the number syntax, and how a process names itself in
LISTEN_PIDFDID.

The sending side (chainload.listen, used by every listener) and the
receiving side (chainload.activation, used by daemons) both import this
module; it imports only os, so neither side pays for the other's imports.
"""

import os

LISTEN_FDS_START = 3
INT_MAX = 2**31 - 1
U64_MAX = 2**64 - 1


def decimal(text, maximum=INT_MAX):
    """TEXT as a strictly decimal int from 0 to MAXIMUM, or None.

    Only ASCII digits: no sign, blanks, underscores or other scripts'
    digits, which int() would all accept.
    """
    if not text or not text.isascii() or not text.isdigit() or len(text) > 20:
        return None
    value = int(text)
    return value if value <= maximum else None


def pidfd_id():
    """This process's pidfd inode number if the kernel has pidfs, else None.

    Without pidfs every pidfd shares the one anonymous inode, which an
    eventfd shows; only a pidfs inode identifies the process.
    """
    fds = []
    try:
        fds.append(os.pidfd_open(os.getpid()))
        fds.append(os.eventfd(0))
        pid, anon = os.fstat(fds[0]), os.fstat(fds[1])
    except (OSError, AttributeError):
        return None
    finally:
        for fd in fds:
            os.close(fd)
    if (pid.st_dev, pid.st_ino) == (anon.st_dev, anon.st_ino):
        return None
    return pid.st_ino


def pidfd_mismatch(text):
    """Why LISTEN_PIDFDID=TEXT does not name this process, or None if it
    does or cannot be checked (a kernel without pidfs)."""
    ident = decimal(text, U64_MAX)
    if ident is None:
        return f"LISTEN_PIDFDID={text}: Not a number"
    mine = pidfd_id()
    if mine is not None and ident != mine:
        return f"LISTEN_PIDFDID={text} is not this process's pidfd ({mine})"
    return None
