"""The end of every test chain: report this process as JSON.

Run as `python3 -I -S probe.py [ARGS...]` by the exec that ends a chain. It
writes one JSON object to the file named by $PROBE_OUT (or to stdout when that
is unset): pid, argv, real/effective/saved ids, groups, the chain-related
environment variables, the PYTHON* ones (which the probe itself ignores), and
every open file descriptor below 64 with what it is (for sockets: family,
type, listening, bound name, SO_PASSCRED, SO_PASSSEC, blocking); its umask,
working directory, resource limits, session and process group, and every
entry of its environment as hex bytes. Standard library only; no site
packages.
"""

import json
import os
import socket
import stat
import sys

KEYS = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
        "UPSTART_FDS", "UPSTART_EVENTS")


def sockopt(s, level, name):
    """An integer socket option, or None where the family has no such option
    (SO_PASSSEC on an IP socket is EOPNOTSUPP)."""
    try:
        return s.getsockopt(level, name)
    except OSError:
        return None


def describe(fd):
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    info = {"mode": stat.filemode(st.st_mode), "ino": st.st_ino,
            "blocking": os.get_blocking(fd), "cloexec": not os.get_inheritable(fd)}
    if stat.S_ISSOCK(st.st_mode):
        s = socket.socket(fileno=os.dup(fd))
        try:
            name = s.getsockname()
            info.update(
                family=s.family.name if hasattr(s.family, "name") else int(s.family),
                type=s.type.name if hasattr(s.type, "name") else int(s.type),
                listening=bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)),
                name=name.decode("latin-1") if isinstance(name, bytes) else name,
                passcred=sockopt(s, socket.SOL_SOCKET, socket.SO_PASSCRED),
                passsec=sockopt(s, socket.SOL_SOCKET, socket.SO_PASSSEC),
            )
            info.update(listener_options(s, fd))
        finally:
            s.close()
    else:
        try:
            info["target"] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    info.update(open_flags(fd))
    return info


def open_flags(fd):
    """The file status flags (O_ACCMODE, O_APPEND, O_NONBLOCK...) and offset
    of FD, from /proc/self/fdinfo (issue 19: fdredir)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}
    flags = int(fields["flags"], 8)
    return {"flags": flags, "access": ("r", "w", "rw", "?")[flags & os.O_ACCMODE],
            "append": bool(flags & os.O_APPEND), "pos": int(fields["pos"])}


# --- the listener family (issue 11): options and libsystemd's view ------------------

IP_FREEBIND = 15  # <linux/in.h>


def listener_options(s, fd):
    """Socket options the listeners set, and (with PROBE_LIBSYSTEMD=1) what
    libsystemd's sd_is_socket*() say about FD."""
    def get(level, name):
        return sockopt(s, level, name)

    out = {"proto": s.proto,
           "reuseaddr": get(socket.SOL_SOCKET, socket.SO_REUSEADDR),
           "reuseport": get(socket.SOL_SOCKET, socket.SO_REUSEPORT)}
    if s.family in (socket.AF_INET, socket.AF_INET6):
        out["freebind"] = get(socket.SOL_IP, IP_FREEBIND)
    if s.family == socket.AF_INET6:
        out["v6only"] = get(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    if os.environ.get("PROBE_LIBSYSTEMD"):
        out["sd"] = libsystemd_view(fd)
    return out


def libsystemd_view(fd):
    import ctypes

    lib = ctypes.CDLL("libsystemd.so.0")
    types = {"SOCK_STREAM": socket.SOCK_STREAM, "SOCK_DGRAM": socket.SOCK_DGRAM,
             "SOCK_SEQPACKET": socket.SOCK_SEQPACKET}
    return {
        "unix": lib.sd_is_socket_unix(fd, 0, -1, None, ctypes.c_size_t(0)) > 0,
        "inet": lib.sd_is_socket_inet(fd, 0, 0, -1, ctypes.c_uint16(0)) > 0,
        "types": [n for n, t in types.items() if lib.sd_is_socket(fd, 0, t, -1) > 0],
        "listening": lib.sd_is_socket(fd, 0, 0, 1) > 0,
    }


def main():
    report = {
        "pid": os.getpid(),
        "argv": sys.argv[1:],
        "resuid": list(os.getresuid()),
        "resgid": list(os.getresgid()),
        "groups": sorted(os.getgroups()),
        "env": {k: os.environ[k] for k in KEYS if k in os.environ},
        # What chainload's isolated interpreter ignores but must pass on.
        "python_env": {k: v for k, v in os.environ.items() if k.startswith("PYTHON")},
        "fds": {str(fd): d for fd in range(64) if (d := describe(fd)) is not None},
    }
    for extend in REPORTS:
        report.update(extend())
    out = os.environ.get("PROBE_OUT")
    text = json.dumps(report)
    if out:
        with open(out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")


REPORTS = []  # more reports, each a function returning a dict for the JSON


# --- process state (issue 12): umask, cwd, limits, session, raw environment ---

RLIMITS = ("AS", "CORE", "CPU", "DATA", "FSIZE", "MEMLOCK", "NOFILE", "NPROC",
           "RSS", "STACK", "RTPRIO", "RTTIME", "SIGPENDING", "MSGQUEUE", "NICE", "LOCKS")
RLIMIT_LOCKS = 10  # Linux's number; Python's resource module has no name for it


def process_state():
    import resource

    umask = os.umask(0o022)
    os.umask(umask)
    with open("/proc/self/environ", "rb") as f:  # exactly as exec'd, bytes
        environ = f.read()
    return {
        "umask": umask,
        "cwd_hex": os.getcwdb().hex(),
        "rlimits": {name: list(resource.getrlimit(getattr(resource, "RLIMIT_" + name,
                                                          RLIMIT_LOCKS)))
                    for name in RLIMITS},  # -1 is RLIM_INFINITY
        "sid": os.getsid(0),
        "pgid": os.getpgrp(),
        "environ_hex": [item.hex() for item in environ.split(b"\0") if item],
    }


REPORTS.append(process_state)

main()
