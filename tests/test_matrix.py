"""Every refusal the commands document, one table row each (issue 7, part 2).

The ROWS table below doubles as the documentation of every refusal (the
README links here): for each command line it gives what must exist first
(setup, see SETUP), the exit status and the words the one FATAL line must
contain. Statuses: 100 usage error, 111 system
failure (including an unknown user or group), 126 next program found but
not executable, 127 next program not found.

Each row runs the installed command (.venv/bin/<command>, in a subprocess)
in a fresh temporary directory and checks:

  * the exit status;
  * stderr has exactly one line with FATAL, the first one, reading
    "PROG: FATAL: ..." with the given words (for a usage error only the
    "Usage:" synopsis lines follow it); nothing on stdout;
  * no traceback;
  * the directory is exactly as before: names, types, modes, owners,
    contents and symlink targets (a refused command changes nothing).

The row that needs an unprivileged caller (setuidgid as non-root) forks,
drops to nobody in the child and calls chainload.chain.main() in-process,
because nobody cannot run the venv's interpreter under /root.
"""

import os
import socket
import subprocess
from dataclasses import dataclass

import pytest

from conftest import command, main_as_user, root_only, snapshot

L = "local-seqpacket-socket-listen"
LS = "listen-seqpacket"
SD = "--systemd-compatibility"
ABSTRACT = f"@chainload-matrix-{os.getpid()}"


# --- what a row may need in its directory --------------------------------------

def _file(d):
    with open(os.path.join(d, "file"), "w") as f:
        f.write("keep me\n")
    os.chmod(os.path.join(d, "file"), 0o644)


def _symlink(d):
    _file(d)
    os.symlink("file", os.path.join(d, "symlink"))


def _dangling(d):
    os.symlink("nowhere", os.path.join(d, "dangling"))


def _dir(d):
    os.mkdir(os.path.join(d, "dir"), 0o755)
    with open(os.path.join(d, "dir", "inside"), "w") as f:
        f.write("inside\n")


def _public(d):
    """A world-writable sticky directory "public", as /tmp is."""
    os.mkdir(os.path.join(d, "public"))
    os.chmod(os.path.join(d, "public"), 0o1777)


def _fifo(d):
    os.mkfifo(os.path.join(d, "fifo"), 0o644)


def _held_abstract(d):
    """An abstract socket name that this test process holds (EADDRINUSE)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind("\0" + ABSTRACT[1:])
    return s


def _live_stream(d):
    """A running stream server's socket at d/sock (kept open for the row),
    open to every user: the row means "live", also after setuidgid nobody."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(d, "sock"))
    os.chmod(os.path.join(d, "sock"), 0o777)
    s.listen()
    return s


def _envdir(d, bad=None):
    """An environment directory "env" with one good entry, and BAD."""
    env = os.path.join(d, "env")
    os.mkdir(env, 0o755)
    with open(os.path.join(env, "A"), "w") as f:
        f.write("a\n")
    os.chmod(os.path.join(env, "A"), 0o644)
    if bad == "dangling":
        os.symlink("nowhere", os.path.join(env, "Z"))
    elif bad == "subdir":
        os.mkdir(os.path.join(env, "sub"), 0o755)
    elif bad == "fifo":
        os.mkfifo(os.path.join(env, "fifo"), 0o644)
    elif bad == "equals":
        with open(os.path.join(env, "X=Y"), "w") as f:
            f.write("z\n")
        os.chmod(os.path.join(env, "X=Y"), 0o644)
    elif bad == "unreadable":
        with open(os.path.join(env, "secret"), "w") as f:
            f.write("s\n")
        os.chmod(os.path.join(env, "secret"), 0o600)
    elif bad == "closed":
        os.chmod(env, 0o700)


def _envfile_nul(d):
    with open(os.path.join(d, "nul.env"), "wb") as f:
        f.write(b"A=1\nB=\0\n")


def _envfile_huge(d):
    """A (sparse) file one byte over systemd's 64 MiB limit."""
    with open(os.path.join(d, "huge.env"), "wb") as f:
        f.truncate(64 * 1024 * 1024)


SETUP = {"file": _file, "symlink": _symlink, "dangling": _dangling, "dir": _dir,
         "public": _public,
         "fifo": _fifo, "held-abstract": _held_abstract, "live-stream": _live_stream}
SETUP.update({"env": _envdir, **{f"env-{bad}": (lambda d, bad=bad: _envdir(d, bad)) for bad in
                                 ("dangling", "subdir", "fifo", "equals", "unreadable",
                                  "closed")}})
SETUP.update({"envfile-nul": _envfile_nul, "envfile-huge": _envfile_huge})


@dataclass
class Row:
    id: str
    argv: list
    status: int
    words: list
    setup: tuple = ()
    prog: str = None  # the PROG of "PROG: FATAL:" (default: argv[0])
    user: str = None  # run unprivileged, in-process in a forked child
    group_leader: bool = False  # start it as the leader of a new process group
    root: bool = False  # needs root (skipped, with the reason, otherwise)


ROWS = [
    # --- local-seqpacket-socket-listen: the path ---------------------------------
    Row("listen-path-too-long", [LS, "x" * 108, "true"],
        100, ["too long", "108 bytes", "at most 107"]),
    Row("listen-path-too-long-full-name", [L, "d/" * 54 + "s", "true"], 100, ["too long"]),
    Row("listen-abstract-too-long", [LS, "@" + "x" * 108, "true"],
        100, ["too long", "at most 108"]),
    Row("listen-empty-path", [LS, "", "true"], 100, ["Empty socket path"]),
    Row("listen-empty-abstract-name", [LS, "@", "true"], 100, ["Empty abstract socket name"]),
    Row("listen-abstract-with-mode", [LS, "--mode", "0600", "@x", "true"],
        100, ["--mode", "Not possible with an abstract socket"]),
    Row("listen-abstract-with-uid", [LS, "--uid", "0", "@x", "true"],
        100, ["--uid", "Not possible with an abstract socket"]),
    Row("listen-abstract-in-use", [LS, ABSTRACT, "true"],
        111, ["Address already in use"], setup=("held-abstract",)),
    Row("listen-missing-directory", [LS, "nodir/sock", "true"],
        111, ["nodir/sock", "No such file or directory"]),
    Row("listen-parent-is-a-file", [LS, "file/sock", "true"],
        111, ["Not a directory"], setup=("file",)),
    Row("listen-file-at-path", [LS, "file", "true"],
        111, ["file", "not a socket", "not removing"], setup=("file",)),
    Row("listen-symlink-at-path", [LS, "symlink", "true"],
        111, ["symlink", "not a socket"], setup=("symlink",)),
    Row("listen-dangling-symlink-at-path", [LS, "dangling", "true"],
        111, ["dangling", "not a socket"], setup=("dangling",)),
    Row("listen-directory-at-path", [LS, "dir", "true"],
        111, ["dir", "not a socket"], setup=("dir",)),
    Row("listen-fifo-at-path", [LS, "fifo", "true"],
        111, ["fifo", "not a socket"], setup=("fifo",)),
    # --- local-seqpacket-socket-listen: users, groups, numbers --------------------
    Row("listen-unknown-user", [LS, "--user", "no-such-user-chainload", "sock", "true"],
        111, ["no-such-user-chainload", "No such user"]),
    Row("listen-user-lookup-without-descriptors",
        ["softlimit", "-o", "3", L, "--user", "nobody", "sock", "true"],
        111, ["nobody", "Cannot look up the user", "Too many open files"], prog=L),
    Row("listen-group-lookup-without-descriptors",
        ["softlimit", "-o", "3", L, "--group", "nogroup", "sock", "true"],
        111, ["nogroup", "Cannot look up the group", "Too many open files"], prog=L),
    Row("listen-unknown-group", [LS, "--group", "no-such-group-chainload", "sock", "true"],
        111, ["no-such-group-chainload", "No such group"]),
    Row("listen-mode-not-octal", [LS, "--mode", "0999", "sock", "true"],
        100, ["--mode", "0999", "Not a number"]),
    Row("listen-mode-too-big", [LS, "--mode", "0x10000", "sock", "true"],
        100, ["--mode", "Out of range"]),
    Row("listen-mode-10000-octal", [LS, "-m", "010000", "sock", "true"],
        100, ["--mode", "Out of range"]),
    Row("listen-mode-negative", [LS, "--mode", "-1", "sock", "true"],
        100, ["--mode", "Out of range"]),
    Row("listen-mode-empty", [LS, "--mode=", "sock", "true"], 100, ["--mode", "Not a number"]),
    Row("listen-mode-bare-decimal", [LS, "--mode", "666", "sock", "true"],
        100, ["--mode: 666", "Ambiguous decimal number", "(0666)"]),
    Row("listen-mode-bare-decimal-no-hint", [LS, "-m", "9", "sock", "true"],
        100, ["--mode: 9", "Ambiguous decimal number"]),
    Row("listen-relative-too-long-from-root", [LS, "r" * 100, "true"],
        100, ["too long from the root", "absolute name"]),
    Row("listen-mode-bare-0x", [LS, "--mode", "0x", "sock", "true"],
        100, ["--mode", "Not a number"]),
    Row("listen-mode-unicode-digit", [LS, "--mode", "\u0661", "sock", "true"],
        100, ["--mode", "Not a number"]),
    Row("listen-uid-too-big", [LS, "--uid", "4294967297", "sock", "true"],
        100, ["--uid", "Out of range"]),
    Row("listen-uid-minus-one-as-unsigned", [LS, "--uid", "4294967295", "sock", "true"],
        100, ["--uid", "Out of range"]),
    Row("listen-uid-negative", [LS, "--uid", "-1", "sock", "true"], 100, ["--uid", "Out of range"]),
    Row("listen-uid-not-a-number", [LS, "-u", "root", "sock", "true"],
        100, ["--uid", "Not a number"]),
    Row("listen-gid-too-big", [LS, "--gid", "4294967297", "sock", "true"],
        100, ["--gid", "Out of range"]),
    Row("listen-gid-negative", [LS, "-g", "-1", "sock", "true"], 100, ["--gid", "Out of range"]),
    Row("listen-backlog-negative", [LS, "--backlog", "-1", "sock", "true"],
        100, ["--backlog", "Out of range"]),
    Row("listen-backlog-too-big", [LS, "--backlog", "2147483648", "sock", "true"],
        100, ["--backlog", "Out of range"]),
    Row("listen-backlog-not-a-number", [LS, "-b", "1k", "sock", "true"],
        100, ["--backlog", "Not a number"]),
    # --- local-seqpacket-socket-listen: --fd-name ---------------------------------
    Row("listen-fd-name-colon", [LS, SD, "--fd-name", "a:b", "sock", "true"],
        100, ["--fd-name", "a:b", "Not a valid name"]),
    Row("listen-fd-name-control", [LS, SD, "--fd-name", "a\x01", "sock", "true"],
        100, ["--fd-name", "Not a valid name"]),
    Row("listen-fd-name-256-chars", [LS, SD, "--fd-name", "n" * 256, "sock", "true"],
        100, ["--fd-name", "Not a valid name"]),
    Row("listen-fd-name-empty", [LS, "--systemd-compatibility", "--fd-name=", "sock", "true"],
        100, ["--fd-name", "Not a valid name"]),
    Row("listen-fd-name-non-ascii", [LS, SD, "--fd-name", "caf\u00e9", "sock", "true"],
        100, ["--fd-name", "Not a valid name"]),
    Row("listen-fd-name-without-systemd", [LS, "--fd-name", "web", "sock", "true"],
        100, ["--fd-name", "Needs --systemd-compatibility"]),
    # --- local-seqpacket-socket-listen: the command line --------------------------
    Row("listen-no-operands", [LS], 100, ["Missing operand"]),
    Row("listen-missing-next-program", [LS, "sock"], 100, ["Missing next program"]),
    Row("listen-option-needs-value", [LS, "--uid"], 100, ["--uid", "requires argument"]),
    Row("listen-option-twice", [LS, "--uid", "1", "--uid", "2", "sock", "true"],
        100, ["--uid", "more than once"]),
    Row("listen-unknown-option", [LS, "--bogus", "sock", "true"],
        100, ["--bogus", "Unrecognized option"]),
    Row("listen-unknown-short-option", [L, "-z", "sock", "true"],
        100, ["-z", "Unrecognized option"]),
    Row("listen-next-program-not-found", [LS, "@chainload-matrix-nf", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    # The exec failed, so nobody will ever accept on it: the socket file this
    # run made is removed again (the directory is as before).
    Row("listen-next-program-not-found-removes-socket", [LS, "sock", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    Row("listen-next-program-not-executable-removes-socket", [LS, "sock", "./file"],
        126, ["./file", "Permission denied"], setup=("file",)),
    # --- the other listeners (issue 11) -----------------------------------------------
    # A live socket is never replaced, whatever its type and the listener's.
    Row("listen-stream-live-socket", ["listen-stream", "sock", "true"],
        111, ["sock", "In use by a running server", "not replacing it"], setup=("live-stream",)),
    Row("listen-seqpacket-live-stream-socket", [LS, "sock", "true"],
        111, ["sock", "In use by a running server"], setup=("live-stream",)),
    Row("listen-datagram-live-stream-socket", ["listen-datagram", "sock", "true"],
        111, ["sock", "In use by a running server"], setup=("live-stream",)),
    Row("listen-datagram-backlog", ["listen-datagram", "--backlog", "5", "sock", "true"],
        100, ["--backlog", "Unrecognized option"]),
    Row("listen-datagram-short-backlog", ["local-datagram-socket-listen", "-b", "5", "s", "true"],
        100, ["-b", "Unrecognized option"]),
    Row("listen-stream-missing-next-program", ["listen-stream", "sock"],
        100, ["Missing next program"]),
    Row("listen-tcp-port-0", ["listen-tcp", "127.0.0.1", "0", "true"],
        100, ["service: 0", "Out of range (must be 1 to 65535)"]),
    Row("listen-tcp-port-65536", ["listen-tcp", "127.0.0.1", "65536", "true"],
        100, ["service: 65536", "Out of range"]),
    Row("listen-tcp-port-99999", ["tcp-socket-listen", "127.0.0.1", "99999", "true"],
        100, ["service: 99999", "Out of range"]),
    Row("listen-udp-port-99999", ["listen-udp", "127.0.0.1", "99999", "true"],
        100, ["service: 99999", "Out of range"]),
    Row("listen-tcp-port-leading-zero", ["listen-tcp", "127.0.0.1", "080", "true"],
        100, ["service: 080", "leading 0"]),
    Row("listen-tcp-port-signed", ["listen-tcp", "127.0.0.1", "+80", "true"],
        100, ["service: +80", "Not a port number"]),
    Row("listen-tcp-port-hex", ["listen-tcp", "127.0.0.1", "0x50", "true"],
        100, ["service: 0x50", "Not a port number"]),
    Row("listen-tcp-port-empty", ["listen-tcp", "127.0.0.1", "", "true"],
        100, ["Not a port number"]),
    Row("listen-tcp-numeric-service-name", ["listen-tcp", "--numeric-service", "::1", "http",
                                            "true"], 100, ["service: http", "Not a port number"]),
    Row("listen-tcp-unknown-service", ["listen-tcp", "127.0.0.1", "x", "true"],
        111, ["127.0.0.1 x: ", "Unknown service name (not in /etc/services)"]),
    Row("listen-udp-unknown-host", ["listen-udp", "no-such-host.invalid", "53", "true"],
        111, ["no-such-host.invalid 53: "]),
    Row("listen-tcp-numeric-host-name", ["listen-tcp", "-H", "localhost", "8080", "true"],
        111, ["localhost 8080: Name or service not known"]),
    Row("listen-tcp-empty-host", ["listen-tcp", "", "8080", "true"], 100, ["Empty host name"]),
    Row("listen-udp-backlog", ["listen-udp", "--backlog", "5", "127.0.0.1", "53", "true"],
        100, ["--backlog", "Unrecognized option"]),
    Row("listen-tcp-backlog-negative", ["listen-tcp", "-b", "-1", "127.0.0.1", "80", "true"],
        100, ["--backlog", "Out of range"]),
    Row("listen-tcp-missing-service", ["listen-tcp", "127.0.0.1"], 100, ["Missing operand"]),
    Row("listen-tcp-missing-host", ["listen-tcp", "8090", "prog"], 100,
        ["Missing next program, or operand SERVICE (got HOST=8090, and prog as SERVICE)."]),
    Row("listen-tcp-missing-next-program", ["listen-tcp", "127.0.0.1", "80"],
        100, ["Missing next program"]),
    Row("listen-udp-fd-name-without-systemd",
        ["listen-udp", "--fd-name", "dns", "127.0.0.1", "53", "true"],
        100, ["--fd-name", "Needs --systemd-compatibility"]),
    # --- adopt-socket -----------------------------------------------------------------
    Row("adopt-socket-not-a-number", ["adopt-socket", "x", "true"],
        100, ["fd: x", "Not a number"]),
    Row("adopt-socket-out-of-range", ["adopt-socket", "2147483648", "true"],
        100, ["fd: 2147483648", "Out of range"]),
    Row("adopt-socket-not-open", ["adopt-socket", "9", "true"],
        111, ["fd 9: Not open", "Bad file descriptor"]),
    Row("adopt-socket-not-a-socket", ["adopt-socket", "0", "true"],
        111, ["fd 0: Not a socket (a character device)"]),
    Row("adopt-socket-fd-name-without-systemd", ["adopt-socket", "--fd-name", "web", "0", "true"],
        100, ["--fd-name", "Needs --systemd-compatibility"]),
    Row("adopt-socket-bad-fd-name", ["adopt-socket", SD, "--fd-name", "a:b", "0", "true"],
        100, ["--fd-name", "Not a valid name"]),
    Row("adopt-socket-missing-operand", ["adopt-socket"], 100, ["Missing operand"]),
    Row("adopt-socket-missing-next-program", ["adopt-socket", "0"],
        100, ["Missing next program"]),
    Row("adopt-socket-unknown-option", ["adopt-socket", "--mode", "0600", "0", "true"],
        100, ["--mode", "Unrecognized option"]),
    # --- fdmove ---------------------------------------------------------------------
    Row("fdmove-to-not-a-number", ["fdmove", "x", "1", "true"], 100, ["to", "x", "Not a number"]),
    Row("fdmove-to-bad-octal", ["fdmove", "09", "1", "true"], 100, ["to", "09", "Not a number"]),
    Row("fdmove-from-too-big", ["fdmove", "1", "99999999999", "true"],
        100, ["from", "Out of range"]),
    Row("fdmove-from-int-max-plus-one", ["fdmove", "1", "2147483648", "true"],
        100, ["from", "Out of range"]),
    Row("fdmove-to-negative", ["fdmove", "-1", "1", "true"], 100, ["to", "Out of range"]),
    Row("fdmove-from-empty", ["fdmove", "1", "", "true"], 100, ["from", "Not a number"]),
    Row("fdmove-from-blank", ["fdmove", "1", " 1", "true"], 100, ["from", "Not a number"]),
    Row("fdmove-from-closed", ["fdmove", "1", "9", "true"], 111, ["9", "Bad file descriptor"]),
    Row("fdmove-copy-from-closed", ["fdmove", "-c", "1", "9", "true"],
        111, ["9", "Bad file descriptor"]),
    Row("fdmove-same-closed", ["fdmove", "9", "9", "true"], 111, ["9", "Bad file descriptor"]),
    Row("fdmove-to-beyond-limit", ["fdmove", "2147483647", "1", "true"],
        111, ["2147483647", "Bad file descriptor"]),
    Row("fdmove-no-operands", ["fdmove"], 100, ["Missing operand"]),
    Row("fdmove-one-operand", ["fdmove", "1"], 100, ["Missing operand"]),
    Row("fdmove-missing-next-program", ["fdmove", "1", "2"], 100, ["Missing next program"]),
    Row("fdmove-one-fd", ["fdmove", "3", "prog"], 100, ["or operand FROM (got TO=3, and prog as FROM)"]),
    Row("fdmove-unknown-option", ["fdmove", "--bogus", "1", "2", "true"],
        100, ["--bogus", "Unrecognized option"]),
    Row("fdmove-next-program-not-found", ["fdmove", "1", "1", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    Row("fdmove-next-program-path-not-found", ["fdmove", "1", "1", "./nodir/prog"],
        127, ["./nodir/prog", "No such file or directory"]),
    Row("fdmove-next-program-empty", ["fdmove", "1", "1", ""], 127, ["No such file or directory"]),
    Row("fdmove-next-program-not-executable", ["fdmove", "1", "1", "./file"],
        126, ["./file", "Permission denied"], setup=("file",)),
    Row("fdmove-next-program-is-a-directory", ["fdmove", "1", "1", "./dir"],
        126, ["./dir", "Permission denied"], setup=("dir",)),
    # --- setuidgid --------------------------------------------------------------------
    Row("setuidgid-unknown-user", ["setuidgid", "no-such-user-chainload", "true"],
        111, ["no-such-user-chainload", "No such user"]),
    Row("setuidgid-empty-user", ["setuidgid", "", "true"], 111, ["No such user"]),
    # UID:GID is two numbers; chpst -u's user:group is -g GROUP USER here.
    Row("setuidgid-user-colon-group", ["setuidgid", "nobody:nogroup", "true"],
        100, ["nobody:nogroup", "Not UID:GID", "-g GROUP USER"]),
    Row("setuidgid-uid-colon-gid-and-g", ["setuidgid", "-g", "0", "0:0", "true"],
        100, ["0:0", "gives the group already"]),
    Row("setuidgid-uid-colon-gid-and-s", ["setuidgid", "-s", "0:0", "true"],
        100, ["-s: 0:0", "no account", "--groups"]),
    Row("setuidgid-uid-out-of-range", ["setuidgid", "4294967295:0", "true"],
        111, ["4294967295", "User id out of range"]),
    Row("setuidgid-uid-without-account", ["setuidgid", "4294967294", "true"],
        111, ["4294967294", "No account has this user id", "4294967294:GID"]),
    Row("setuidgid-groups-unknown", ["setuidgid", "--groups", "0,no-such-group-chainload",
                                     "nobody", "true"],
        111, ["no-such-group-chainload", "No such group"]),
    Row("setuidgid-groups-empty-name", ["setuidgid", "--groups", "0,,1", "nobody", "true"],
        111, ["--groups: 0,,1", "Empty group name"]),
    Row("setuidgid-groups-out-of-range", ["setuidgid", "--groups", "4294967295", "0:0", "true"],
        111, ["4294967295", "Group id out of range"]),
    Row("setuidgid-unknown-group", ["setuidgid", "-g", "no-such-group-chainload", "nobody", "true"],
        111, ["no-such-group-chainload", "No such group"]),
    # pwd says "not found" when it could not open the database either.
    Row("setuidgid-lookup-without-descriptors",
        ["softlimit", "-o", "3", "setuidgid", "nobody", "true"],
        111, ["nobody", "Cannot look up the user", "Too many open files"], prog="setuidgid"),
    Row("setuidgid-no-operands", ["setuidgid"], 100, ["Missing operand"]),
    Row("setuidgid-missing-next-program", ["setuidgid", "nobody"], 100, ["Missing next program"]),
    Row("setuidgid-option-needs-value", ["setuidgid", "--primary-group"],
        100, ["--primary-group", "requires argument"]),
    Row("setuidgid-unknown-option", ["setuidgid", "-x", "nobody", "true"],
        100, ["-x", "Unrecognized option"]),
    Row("setuidgid-next-program-not-found", ["setuidgid", "root", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"], root=True),
    Row("setuidgid-as-non-root", ["setuidgid", "root", "true"],
        111, ["root", "Operation not permitted"], user="nobody"),
    # --- envdir (every entry failure names the entry; nothing is changed) ---------
    Row("envdir-missing-dir", ["envdir", "nodir", "true"],
        111, ["nodir", "No such file or directory"]),
    Row("envdir-dir-is-a-file", ["envdir", "file", "true"],
        111, ["file", "Not a directory"], setup=("file",)),
    Row("envdir-dangling-symlink", ["envdir", "env", "true"],
        111, ["env/Z", "No such file or directory"], setup=("env-dangling",)),
    Row("envdir-subdirectory", ["envdir", "env", "true"],
        111, ["env/sub", "Is a directory"], setup=("env-subdir",)),
    Row("envdir-fifo", ["envdir", "--full", "env", "true"],
        111, ["env/fifo", "Not a regular file"], setup=("env-fifo",)),
    Row("envdir-name-with-equals", ["envdir", "env", "true"],
        111, ["env/X=Y", "Not a valid variable name"], setup=("env-equals",)),
    Row("envdir-unreadable-entry", ["envdir", "env", "true"],
        111, ["env/secret", "Permission denied"], setup=("env-unreadable",), user="nobody"),
    Row("envdir-unreadable-dir", ["envdir", "env", "true"],
        111, ["env", "Permission denied"], setup=("env-closed",), user="nobody"),
    Row("envdir-no-operands", ["envdir"], 100, ["Missing operand"]),
    Row("envdir-missing-next-program", ["envdir", "env"], 100, ["Missing next program"]),
    Row("envdir-unknown-option", ["envdir", "-i", "env", "true"],
        100, ["-i", "Unrecognized option"]),
    Row("envdir-next-program-not-found", ["envdir", "env", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"], setup=("env",)),
    # --- setenv, unsetenv ------------------------------------------------------------
    Row("setenv-name-with-equals", ["setenv", "A=B", "x", "true"],
        100, ["A=B", "Not a valid variable name"]),
    Row("setenv-empty-name", ["setenv", "", "x", "true"], 100, ["Not a valid variable name"]),
    Row("setenv-missing-value", ["setenv", "A"], 100, ["Missing operand"]),
    Row("setenv-name-value-in-one", ["setenv", "FOO=bar", "prog"], 100,
        ["FOO=bar: Not a valid variable name; write setenv FOO bar"]),
    Row("setenv-missing-next-program", ["setenv", "A", "x"], 100, ["Missing next program"]),
    Row("unsetenv-name-with-equals", ["unsetenv", "A=", "true"],
        100, ["A=", "Not a valid variable name"]),
    Row("unsetenv-empty-name", ["unsetenv", "", "true"], 100, ["Not a valid variable name"]),
    Row("unsetenv-missing-next-program", ["unsetenv", "A"], 100, ["Missing next program"]),
    # --- umask -------------------------------------------------------------------------
    Row("umask-decimal-22", ["umask", "22", "true"],
        100, ["mask: 22", "Ambiguous", "octal", "(022)"]),
    Row("umask-decimal-8", ["umask", "8", "true"], 100, ["mask: 8", "Ambiguous", "octal"]),
    Row("umask-decimal-plus-22", ["umask", "+22", "true"], 100, ["Ambiguous", "(022)"]),
    Row("umask-decimal-99", ["umask", "99", "true"], 100, ["mask: 99", "Ambiguous"]),
    Row("umask-bad-octal", ["umask", "0999", "true"], 100, ["mask: 0999", "Not a number"]),
    Row("umask-too-big", ["umask", "01000", "true"], 100, ["mask: 01000", "Out of range"]),
    Row("umask-hex-too-big", ["umask", "0x200", "true"], 100, ["Out of range"]),
    Row("umask-negative", ["umask", "-1", "true"], 100, ["mask: -1", "Out of range"]),
    Row("umask-empty", ["umask", "", "true"], 100, ["Not a number"]),
    Row("umask-symbolic", ["umask", "u=rwx", "true"], 100, ["u=rwx", "Not a number"]),
    Row("umask-missing-next-program", ["umask", "022"], 100, ["Missing next program"]),
    # --- chdir, cd -----------------------------------------------------------------------
    Row("chdir-missing", ["chdir", "nodir", "true"], 111, ["nodir", "No such file or directory"]),
    Row("chdir-empty", ["chdir", "", "true"], 111, ["No such file or directory"]),
    Row("chdir-to-a-file", ["chdir", "file", "true"], 111, ["file", "Not a directory"],
        setup=("file",)),
    Row("chdir-not-allowed", ["chdir", "env", "true"], 111, ["env", "Permission denied"],
        setup=("env-closed",), user="nobody"),
    Row("cd-missing", ["chainload", "cd", "nodir", "true"],
        111, ["nodir", "No such file or directory"], prog="cd"),
    Row("chdir-missing-next-program", ["chdir", "/"], 100, ["Missing next program"]),
    Row("chdir-next-program-not-found", ["chdir", "/", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    # --- softlimit -----------------------------------------------------------------------
    Row("softlimit-suffix", ["softlimit", "-o", "1k", "true"], 100, ["-o: 1k", "Not a number"]),
    Row("softlimit-negative", ["softlimit", "-c", "-1", "true"], 100, ["-c", "Out of range"]),
    Row("softlimit-too-big", ["softlimit", "-t", "9223372036854775808", "true"],
        100, ["-t", "Out of range"]),
    Row("softlimit-empty", ["softlimit", "-d", "", "true"], 100, ["-d", "Not a number"]),
    Row("softlimit-unlimited-misspelt", ["softlimit", "-s", "unlimted", "true"],
        100, ["-s: unlimted", "Not a number"]),
    Row("softlimit-needs-value", ["softlimit", "-o"], 100, ["-o", "requires argument"]),
    Row("softlimit-twice", ["softlimit", "-o", "1", "-o", "2", "true"],
        100, ["-o", "more than once"]),
    Row("softlimit-unknown-option", ["softlimit", "-x", "1", "true"],
        100, ["-x", "Unrecognized option"]),
    Row("softlimit-missing-next-program", ["softlimit", "-o", "64"],
        100, ["Missing next program"]),
    Row("softlimit-next-program-not-found", ["softlimit", "-o", "=", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    Row("softlimit-long-option-bad-value", ["softlimit", "--nice", "-1", "true"],
        100, ["--nice", "Out of range"]),
    # --- hardlimit (issue 19) ----------------------------------------------------------
    Row("hardlimit-suffix", ["hardlimit", "-o", "1k", "true"], 100, ["-o: 1k", "Not a number"]),
    Row("hardlimit-negative", ["hardlimit", "--locks", "-1", "true"],
        100, ["--locks", "Out of range"]),
    Row("hardlimit-too-big", ["hardlimit", "-c", "9223372036854775808", "true"],
        100, ["-c", "Out of range"]),
    Row("hardlimit-unlimited-misspelt", ["hardlimit", "-c", "infinite", "true"],
        100, ["-c: infinite", "Not a number"]),
    Row("hardlimit-twice", ["hardlimit", "--rtprio", "1", "--rtprio", "2", "true"],
        100, ["--rtprio", "more than once"]),
    Row("hardlimit-unknown-option", ["hardlimit", "-H", "1", "true"],
        100, ["-H", "Unrecognized option"]),
    Row("hardlimit-missing-next-program", ["hardlimit", "-o", "64"],
        100, ["Missing next program"]),
    # The kernel's EPERM, named: nobody lacks CAP_SYS_RESOURCE.
    Row("hardlimit-raise-unprivileged", ["hardlimit", "-o", "1048577", "true"],
        111, ["-o: RLIMIT_NOFILE: Operation not permitted", "raising a hard limit"],
        user="nobody"),
    Row("hardlimit-next-program-not-found", ["hardlimit", "-c", "=", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    # --- install-dir (issue 19): nothing is made or changed ------------------------------
    Row("install-dir-mode-ambiguous-decimal", ["install-dir", "-m", "755", "d", "true"],
        100, ["--mode: 755", "Ambiguous", "(0755)"]),
    Row("install-dir-mode-decimal-8", ["install-dir", "--mode", "8", "d", "true"],
        100, ["--mode: 8", "Ambiguous"]),
    Row("install-dir-mode-too-big", ["install-dir", "-m", "010000", "d", "true"],
        100, ["--mode", "Out of range"]),
    Row("install-dir-mode-not-octal", ["install-dir", "-m", "0789", "d", "true"],
        100, ["--mode: 0789", "Not a number"]),
    Row("install-dir-mode-symbolic", ["install-dir", "-m", "u=rwx", "d", "true"],
        100, ["--mode: u=rwx", "Not a number"]),
    Row("install-dir-unknown-user", ["install-dir", "-o", "no-such-user-chainload", "d", "true"],
        111, ["no-such-user-chainload", "No such user"]),
    Row("install-dir-unknown-group", ["install-dir", "-g", "no-such-group-chainload", "d", "true"],
        111, ["no-such-group-chainload", "No such group"]),
    Row("install-dir-uid-too-big", ["install-dir", "-o", "4294967295", "d", "true"],
        111, ["4294967295", "User id out of range"]),
    Row("install-dir-empty", ["install-dir", "", "true"], 111, ["No such file or directory"]),
    Row("install-dir-file-at-dir", ["install-dir", "file", "true"],
        111, ["file: Exists and is not a directory"], setup=("file",)),
    Row("install-dir-file-at-dir-if-missing", ["install-dir", "--if-missing", "file", "true"],
        111, ["file: Exists and is not a directory"], setup=("file",)),
    Row("install-dir-fifo-at-dir", ["install-dir", "fifo", "true"],
        111, ["fifo: Exists and is not a directory"], setup=("fifo",)),
    Row("install-dir-file-at-parent", ["install-dir", "file/d", "true"],
        111, ["file: Not a directory"], setup=("file",)),
    Row("install-dir-symlink-at-dir", ["install-dir", "symlink", "true"],
        111, ["symlink: Is a symbolic link; not following it"], setup=("symlink",)),
    Row("install-dir-dangling-symlink-at-dir", ["install-dir", "--if-missing", "dangling", "true"],
        111, ["dangling: Is a symbolic link"], setup=("dangling",)),
    Row("install-dir-symlink-to-file-at-parent", ["install-dir", "symlink/d", "true"],
        111, ["file: Not a directory"], setup=("symlink",)),
    Row("install-dir-missing-next-program", ["install-dir", "d"], 100, ["Missing next program"]),
    Row("install-dir-option-needs-value", ["install-dir", "--owner"],
        100, ["--owner", "requires argument"]),
    Row("install-dir-unknown-option", ["install-dir", "-p", "d", "true"],
        100, ["-p", "Unrecognized option"]),
    # Made, then removed again when the exec fails.
    Row("install-dir-next-program-not-found", ["install-dir", "new/deeper", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    Row("install-dir-chown-as-non-root", ["install-dir", "-o", "root", "public/new/d", "true"],
        111, ["public/new/d", "Operation not permitted"], setup=("public",), user="nobody"),
    Row("install-dir-chmod-another-users-dir", ["install-dir", "-m", "0700", "dir", "true"],
        111, ["dir", "Operation not permitted"], setup=("dir",), user="nobody"),
    Row("install-dir-in-unwritable-dir", ["install-dir", "env/d", "true"],
        111, ["env/d", "Permission denied"], setup=("env",), user="nobody"),
    # --- fdredir (issue 19) --------------------------------------------------------------
    Row("fdredir-missing-file", ["fdredir", "0", "nofile", "true"],
        111, ["fd 0: nofile: No such file or directory"]),
    Row("fdredir-write-into-missing-dir", ["fdredir", "-w", "1", "nodir/f", "true"],
        111, ["fd 1: nodir/f: No such file or directory"]),
    Row("fdredir-write-a-directory", ["fdredir", "--write", "1", "dir", "true"],
        111, ["fd 1: dir: Is a directory"], setup=("dir",)),
    Row("fdredir-fd-beyond-limit", ["fdredir", "2147483647", "file", "true"],
        111, ["fd 2147483647: file: Bad file descriptor"], setup=("file",)),
    Row("fdredir-fd-too-big", ["fdredir", "2147483648", "file", "true"],
        100, ["fd", "Out of range"]),
    Row("fdredir-fd-negative", ["fdredir", "-1", "file", "true"], 100, ["fd: -1", "Out of range"]),
    Row("fdredir-fd-not-a-number", ["fdredir", "x", "file", "true"], 100, ["fd: x", "Not a number"]),
    Row("fdredir-two-modes", ["fdredir", "-w", "-a", "1", "f", "true"],
        100, ["--write and --append", "only one"]),
    Row("fdredir-read-and-update", ["fdredir", "--read", "--update", "1", "f", "true"],
        100, ["--read and --update", "only one"]),
    Row("fdredir-non-blocking-fifo-no-reader", ["fdredir", "-n", "-w", "1", "fifo", "true"],
        111, ["fd 1: fifo: No such device or address"], setup=("fifo",)),
    Row("fdredir-unreadable", ["fdredir", "0", "env/secret", "true"],
        111, ["fd 0: env/secret: Permission denied"], setup=("env-unreadable",), user="nobody"),
    Row("fdredir-missing-file-operand", ["fdredir", "1"], 100, ["Missing operand"]),
    Row("fdredir-missing-next-program", ["fdredir", "1", "file"], 100, ["Missing next program"]),
    # The file this run made is removed again; an existing one is kept (as it
    # was: --append does not change it).
    Row("fdredir-next-program-not-found", ["fdredir", "-w", "1", "new", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    Row("fdredir-append-next-program-not-found",
        ["fdredir", "-a", "1", "file", "no-such-program-chainload"],
        127, ["no-such-program-chainload"], setup=("file",)),
    # --- setsid (installed as chainload-setsid) ------------------------------------------
    Row("setsid-process-group-leader", ["chainload", "setsid", "true"],
        111, ["process group", "chain never forks"], prog="setsid", group_leader=True),
    Row("chainload-setsid-process-group-leader", ["chainload-setsid", "true"],
        111, ["process group", "chain never forks"], group_leader=True),
    Row("setsid-missing-next-program", ["chainload", "setsid"],
        100, ["Missing next program"], prog="setsid"),
    Row("chainload-setsid-unknown-option", ["chainload-setsid", "-w", "true"],
        100, ["-w", "Unrecognized option"]),
    Row("setsid-next-program-not-found", ["chainload", "setsid", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"], prog="setsid"),
    # --- envfile (nothing is set unless the whole file was read) ---------------------
    Row("envfile-missing-file", ["envfile", "nofile", "true"],
        111, ["nofile", "No such file or directory"]),
    Row("envfile-ignore-missing-directory", ["envfile", "--ignore-missing", "dir", "true"],
        111, ["dir", "Is a directory"], setup=("dir",)),
    Row("envfile-fifo", ["envfile", "--ignore-missing", "fifo", "true"],
        111, ["fifo", "Not a regular file"], setup=("fifo",)),
    Row("envfile-unreadable", ["envfile", "--ignore-missing", "env/secret", "true"],
        111, ["env/secret", "Permission denied"], setup=("env-unreadable",), user="nobody"),
    Row("envfile-nul-byte", ["envfile", "nul.env", "true"],
        111, ["nul.env", "NUL byte"], setup=("envfile-nul",)),
    Row("envfile-too-large", ["envfile", "huge.env", "true"],
        111, ["huge.env", "File too large", "67108863"], setup=("envfile-huge",)),
    Row("envfile-no-operands", ["envfile"], 100, ["Missing operand"]),
    Row("envfile-missing-next-program", ["envfile", "file"], 100, ["Missing next program"]),
    # execline's -i/-I are not taken (execline's -i means the opposite of ours)
    Row("envfile-execline-option", ["envfile", "-I", "file", "true"],
        100, ["-I", "Unrecognized option"]),
    Row("envfile-next-program-not-found",
        ["envfile", "--ignore-missing", "nofile", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    # --- substitute ------------------------------------------------------------------
    Row("substitute-expands-to-nothing", ["substitute", "$NO_SUCH_VARIABLE_CHAINLOAD"],
        100, ["expanded to nothing"]),
    Row("substitute-missing-next-program", ["substitute"], 100, ["Missing next program"]),
    Row("substitute-unknown-option", ["substitute", "-x", "true"],
        100, ["-x", "Unrecognized option"]),
    Row("substitute-next-program-not-found", ["substitute", "no-such-program-chainload${X}"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    Row("substitute-made-a-builtin-that-refuses",
        ["setenv", "C", "envdir", "substitute", "${C}", "nodir", "true"],
        111, ["nodir", "No such file or directory"], prog="envdir"),
    # --- clearenv -----------------------------------------------------------------------
    Row("clearenv-missing-next-program", ["clearenv", "-p"], 100, ["Missing next program"]),
    Row("clearenv-unknown-option", ["clearenv", "-l", "true"], 100, ["-l", "Unrecognized option"]),
    Row("clearenv-next-program-not-found", ["clearenv", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    # --- userenv ------------------------------------------------------------------------
    Row("userenv-unknown-user", ["userenv", "no-such-user-chainload", "true"],
        111, ["no-such-user-chainload", "No such user"]),
    Row("userenv-unknown-uid", ["userenv", "4294967294", "true"], 111, ["4294967294", "No such user"]),
    Row("userenv-huge-uid", ["userenv", "9" * 5000, "true"], 111, ["No such user"]),
    Row("userenv-empty-account", ["userenv", "", "true"], 111, ["No such user"]),
    Row("userenv-lookup-without-descriptors",
        ["softlimit", "-o", "3", "userenv", "nobody", "true"],
        111, ["nobody", "Cannot look up the user", "Too many open files"], prog="userenv"),
    Row("userenv-no-operands", ["userenv"], 100, ["Missing operand"]),
    Row("userenv-missing-next-program", ["userenv", "nobody"], 100, ["Missing next program"]),
    Row("userenv-set-path-is-not-offered", ["userenv", "--set-path", "nobody", "true"],
        100, ["--set-path", "Unrecognized option"]),
    Row("userenv-next-program-not-found", ["userenv", "nobody", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    # --- foreground and if -----------------------------------------------------------------
    Row("foreground-no-semicolon", ["foreground", "touch", "x"],
        100, ['No ";" ends the program']),
    Row("if-no-semicolon", ["if", "touch", "x"], 100, ['No ";" ends the program']),
    Row("foreground-empty-program", ["foreground", ";", "touch", "x"],
        100, ['Missing program before ";"']),
    Row("if-missing-next-program", ["if", "touch", "x", ";"], 100, ["Missing next program"]),
    Row("if-nothing", ["if"], 100, ["Missing next program"]),
    Row("foreground-unknown-option", ["foreground", "-x", "touch", "x", ";", "true"],
        100, ["-x", "Unrecognized option"]),
    Row("foreground-next-program-not-found",
        ["foreground", "true", ";", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    Row("if-program-not-found", ["chainload", "if", "no-such-program-chainload", ";", "touch", "x"],
        127, ["no-such-program-chainload", "No such file or directory"], prog="if"),
    # --- the accept servers: descriptor 3 must be a listening socket of their kind ------------
    Row("accept-tcp-fd3-closed", ["accept-tcp", "true"],
        111, ["Descriptor 3 is not open", "listening TCP socket"], prog="accept-tcp"),
    Row("accept-stream-fd3-unix-for-tcp", ["listen-stream", "sock", "accept-tcp", "true"],
        111, ["Descriptor 3 is a listening AF_UNIX SOCK_STREAM socket", "not a listening TCP"],
        prog="accept-tcp"),
    Row("accept-stream-fd3-seqpacket", ["listen-seqpacket", "sock", "accept-stream", "true"],
        111, ["AF_UNIX SOCK_SEQPACKET", "not a listening AF_UNIX SOCK_STREAM"],
        prog="accept-stream"),
    Row("accept-seqpacket-fd3-datagram",
        ["listen-datagram", "sock", "local-seqpacket-socket-accept", "true"],
        111, ["non-listening AF_UNIX SOCK_DGRAM", "not a listening AF_UNIX SOCK_SEQPACKET"],
        prog="local-seqpacket-socket-accept"),
    Row("accept-stream-limit-zero", ["listen-stream", "sock", "accept-stream", "-c", "0", "true"],
        100, ["--connection-limit", "Out of range"], prog="accept-stream"),
    Row("accept-tcp-limit-not-a-number", ["accept-tcp", "--connection-limit", "x", "true"],
        100, ["--connection-limit", "Not a number"]),
    Row("accept-stream-missing-next-program", ["accept-stream", "-v"],
        100, ["Missing next program"]),
    Row("accept-seqpacket-unknown-option", ["accept-seqpacket", "--no-delay", "true"],
        100, ["--no-delay", "Unrecognized option"]),
    # --- only chainload has --version ------------------------------------------------
    Row("fdmove-version", ["fdmove", "--version"], 100, ["--version", "Unrecognized option"]),
    Row("setuidgid-version", ["setuidgid", "--version"],
        100, ["--version", "Unrecognized option"]),
    Row("listen-version", [LS, "--version"], 100, ["--version", "Unrecognized option"]),
    Row("chainload-link-version", ["chainload", "fdmove", "--version", "1", "1", "true"],
        100, ["--version", "Unrecognized option"], prog="fdmove"),
    # --- chainload, the umbrella -------------------------------------------------------
    Row("chainload-no-command", ["chainload"], 100, ["Missing command"]),
    Row("chainload-only-double-dash", ["chainload", "--"], 100, ["Missing operand"]),
    Row("chainload-unknown-command", ["chainload", "bogus", "true"],
        100, ["bogus", "Unknown command"]),
    Row("chainload-command-with-slash", ["chainload", "/bin/true"],
        100, ["/bin/true", "Unknown command"]),
    Row("chainload-unknown-option", ["chainload", "--bogus", "fdmove", "1", "1", "true"],
        100, ["--bogus", "Unrecognized option"]),
    Row("chainload-link-missing-operand", ["chainload", "fdmove", "1", "1", "setuidgid"],
        100, ["Missing operand"], prog="setuidgid"),
    Row("chainload-link-refuses",
        ["chainload", "fdmove", "1", "1", "listen-seqpacket", "file", "true"],
        111, ["file", "not a socket"], setup=("file",), prog="listen-seqpacket"),
]


def test_rows_are_unique():
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))


# --- running a row ----------------------------------------------------------------------

def run_installed(argv, cwd, close=None, group_leader=False):
    """Run the installed command; CLOSE (1 or 2) starts it with that fd closed;
    GROUP_LEADER starts it as the leader of a new process group."""
    preexec = (lambda: os.close(close)) if close is not None else None
    proc = subprocess.run([command(argv[0]), *argv[1:]], cwd=cwd, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=30, preexec_fn=preexec,
                          process_group=0 if group_leader else None)
    return (proc.returncode, proc.stdout.decode("utf-8", "backslashreplace"),
            proc.stderr.decode("utf-8", "backslashreplace"))


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_refusal(row, tmp_path):
    if row.root and os.geteuid() != 0:
        pytest.skip("needs root: only root can become an account")
    workdir = tmp_path / "w"
    workdir.mkdir()
    os.chmod(workdir, 0o755)  # so an unprivileged run can enter it
    keep = [SETUP[name](str(workdir)) for name in row.setup]
    before = snapshot(str(workdir))
    try:
        if row.user is not None:
            if os.geteuid() != 0:
                pytest.skip("needs root to drop to another user")
            status, out, err = main_as_user(row.argv, row.user, cwd=str(workdir))
        else:
            status, out, err = run_installed(row.argv, str(workdir),
                                             group_leader=row.group_leader)
    finally:
        for thing in keep:
            if thing is not None:
                thing.close()
    where = f"argv={row.argv!r}\nstatus={status}\nstdout={out!r}\nstderr={err!r}"
    assert status == row.status, where
    assert out == "", where
    assert "Traceback" not in err and "Internal error" not in err, where
    assert err.endswith("\n"), where
    lines = err[:-1].split("\n")
    assert [ln for ln in lines if "FATAL" in ln] == lines[:1], where
    prog = row.prog or row.argv[0]
    assert lines[0].startswith(f"{prog}: FATAL: "), where
    for word in row.words:
        assert word in lines[0], where
    if status == 100:
        assert lines[1].startswith("Usage:"), where
        assert all(ln.startswith(("Usage:", " ")) for ln in lines[1:]), where
    else:
        assert len(lines) == 1, where
    assert snapshot(str(workdir)) == before, where


@root_only
def test_setuidgid_as_non_root_really_was_non_root(tmp_path):
    """The non-root row's failure is the drop itself, not a lookup."""
    status, _, err = main_as_user(["setuidgid", "nobody", "true"], "nobody", cwd=str(tmp_path))
    assert status == 111 and "setuidgid: FATAL: nobody: Operation not permitted" in err, err


# --- with stdout or stderr closed at start-up ---------------------------------------------

CLOSED_STDERR = ["listen-path-too-long", "listen-file-at-path", "listen-unknown-user",
                 "envdir-dangling-symlink", "umask-decimal-22", "softlimit-suffix",
                 "install-dir-symlink-at-dir", "fdredir-missing-file", "hardlimit-suffix",
                 "setsid-process-group-leader",
                 "fdmove-from-closed", "fdmove-next-program-not-found",
                 "fdmove-next-program-not-executable", "setuidgid-unknown-user",
                 "chainload-unknown-command", "chainload-no-command",
                 "envfile-missing-file", "substitute-expands-to-nothing", "userenv-unknown-user"]


@pytest.mark.parametrize("row", [r for r in ROWS if r.id in CLOSED_STDERR],
                         ids=[r.id for r in ROWS if r.id in CLOSED_STDERR])
def test_refusal_with_stderr_closed(row, tmp_path):
    """With fd 2 closed there is nowhere to say why, but the status is the
    same (never Python's 1 from an exception escaping main)."""
    for name in row.setup:
        SETUP[name](str(tmp_path))
    before = snapshot(str(tmp_path))
    status, out, err = run_installed(row.argv, str(tmp_path), close=2,
                                     group_leader=row.group_leader)
    assert (status, out, err) == (row.status, "", ""), (row.argv, status, out, err)
    assert snapshot(str(tmp_path)) == before


@pytest.mark.parametrize("argv", [["chainload", "--version"], ["chainload", "--help"],
                                  ["fdmove", "-h"], [LS, "--help"], ["setuidgid", "--help"]])
def test_help_with_stdout_closed(argv, tmp_path):
    """--help/--version with fd 1 closed: no internal error. (Printing
    nothing and exiting 0, as for EPIPE, or one FATAL line and 111.)"""
    status, out, err = run_installed(argv, str(tmp_path), close=1)
    assert "Internal error" not in err and "Traceback" not in err, (argv, status, err)
    if status == 0:
        assert err == "", (argv, err)
    else:
        assert status == 111 and len(err.splitlines()) == 1 \
            and err.startswith(f"{argv[0]}: FATAL: "), (argv, status, err)
