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
                passcred=s.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED),
                passsec=s.getsockopt(socket.SOL_SOCKET, socket.SO_PASSSEC),
            )
        finally:
            s.close()
    else:
        try:
            info["target"] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return info


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
           "RSS", "STACK")


def process_state():
    import resource

    umask = os.umask(0o022)
    os.umask(umask)
    with open("/proc/self/environ", "rb") as f:  # exactly as exec'd, bytes
        environ = f.read()
    return {
        "umask": umask,
        "cwd_hex": os.getcwdb().hex(),
        "rlimits": {name: list(resource.getrlimit(getattr(resource, "RLIMIT_" + name)))
                    for name in RLIMITS},  # -1 is RLIM_INFINITY
        "sid": os.getsid(0),
        "pgid": os.getpgrp(),
        "environ_hex": [item.hex() for item in environ.split(b"\0") if item],
    }


REPORTS.append(process_state)

main()
