"""The daemon at the end of tests/test_activation.py's chains: it takes its
descriptors with chainload.activation and reports, as one JSON line on
stdout, what it got and what a child it starts inherits.

    python activated.py [--keep] [--api fds|sockets|by-name|upstart] [--libsystemd]

--api         which function to call (default fds: listen_fds())
--keep        call it with unset_environment=False, then listen_fds(False) again
--libsystemd  first ask libsystemd: sd_listen_fds_with_names(0, &names)
              through ctypes (unset_environment=0, so ours sees the same)

The report: "diagnose" (activation.diagnose() before the call), "result"
(the call's answer, sockets as dicts), "again" (--keep's second call),
"libsystemd" ([[fd, name], ...], or {"errno": N} for a negative return),
"environ_before" (the LISTEN_*/UPSTART_* variables it was given),
"fds_before"/"fds_after" (fds 3-9: open? close-on-exec?), "environ" (the
LISTEN_*/UPSTART_* entries left in os.environ) and "child" (what a child
started with subprocess, close_fds=False and the real environment, sees:
the same variables and its open fds 3-9).
"""

import argparse
import ctypes
import json
import os
import subprocess
import sys

from chainload import activation

KEYS = activation.VARIABLES + activation.UPSTART_VARIABLES
FDS = range(3, 10)

CHILD = f"""
import json, os
print(json.dumps({{"environ": {{k: os.environ[k] for k in {KEYS!r} if k in os.environ}},
                   "fds": [fd for fd in {list(FDS)!r} if os.path.exists(f"/proc/self/fd/{{fd}}")]}}))
"""


def fd_states():
    states = {}
    for fd in FDS:
        try:
            states[fd] = {"cloexec": not os.get_inheritable(fd)}
        except OSError:
            pass
    return states


def describe(sock):
    name = sock.getsockname()
    return {"fd": sock.fileno(), "family": sock.family.name, "type": sock.type.name,
            "name": name.decode("latin-1") if isinstance(name, bytes) else name,
            "timeout": sock.gettimeout(), "blocking": os.get_blocking(sock.fileno())}


def libsystemd():
    lib = ctypes.CDLL("libsystemd.so.0")
    names = ctypes.POINTER(ctypes.c_char_p)()
    n = lib.sd_listen_fds_with_names(0, ctypes.byref(names))
    if n < 0:
        return {"errno": -n}
    return [[3 + i, names[i].decode()] for i in range(n)]


held = []  # the socket objects: kept alive, else they close their fds


def call(api, unset):
    if api == "fds":
        return [list(pair) for pair in activation.listen_fds(unset)]
    if api == "sockets":
        held.extend(activation.listen_sockets(unset))
        return [describe(s) for s in held]
    if api == "by-name":
        groups = activation.sockets_by_name(unset)
        held.extend(groups.values())
        return {name: [describe(s) for s in socks] for name, socks in groups.items()}
    return activation.upstart_fd(unset)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", choices=["fds", "sockets", "by-name", "upstart"], default="fds")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--libsystemd", action="store_true")
    args = parser.parse_args()
    report = {"pid": os.getpid(), "fds_before": fd_states(),
              "environ_before": {k: os.environ[k] for k in KEYS if k in os.environ}}
    if args.libsystemd:
        report["libsystemd"] = libsystemd()
    report["diagnose"] = activation.diagnose()
    report["result"] = call(args.api, not args.keep)
    if args.keep:
        report["again"] = [list(pair) for pair in activation.listen_fds(False)]
    report["fds_after"] = fd_states()
    report["environ"] = {k: os.environ[k] for k in KEYS if k in os.environ}
    child = subprocess.run([sys.executable, "-c", CHILD], close_fds=False,
                           stdout=subprocess.PIPE, check=True)
    report["child"] = json.loads(child.stdout)
    print(json.dumps(report), flush=True)


main()
