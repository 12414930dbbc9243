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


SETUP = {"file": _file, "symlink": _symlink, "dangling": _dangling, "dir": _dir,
         "fifo": _fifo, "held-abstract": _held_abstract, "live-stream": _live_stream}


@dataclass
class Row:
    id: str
    argv: list
    status: int
    words: list
    setup: tuple = ()
    prog: str = None  # the PROG of "PROG: FATAL:" (default: argv[0])
    user: str = None  # run unprivileged, in-process in a forked child


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
        111, ["127.0.0.1 x: ", "Servname not supported"]),
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
    Row("listen-tcp-missing-next-program", ["listen-tcp", "127.0.0.1", "80"],
        100, ["Missing next program"]),
    Row("listen-udp-fd-name-without-systemd",
        ["listen-udp", "--fd-name", "dns", "127.0.0.1", "53", "true"],
        100, ["--fd-name", "Needs --systemd-compatibility"]),
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
    Row("setuidgid-unknown-group", ["setuidgid", "-g", "no-such-group-chainload", "nobody", "true"],
        111, ["no-such-group-chainload", "No such group"]),
    Row("setuidgid-no-operands", ["setuidgid"], 100, ["Missing operand"]),
    Row("setuidgid-missing-next-program", ["setuidgid", "nobody"], 100, ["Missing next program"]),
    Row("setuidgid-option-needs-value", ["setuidgid", "--primary-group"],
        100, ["--primary-group", "requires argument"]),
    Row("setuidgid-unknown-option", ["setuidgid", "-x", "nobody", "true"],
        100, ["-x", "Unrecognized option"]),
    Row("setuidgid-next-program-not-found", ["setuidgid", "root", "no-such-program-chainload"],
        127, ["no-such-program-chainload", "No such file or directory"]),
    Row("setuidgid-as-non-root", ["setuidgid", "root", "true"],
        111, ["root", "Operation not permitted"], user="nobody"),
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

def run_installed(argv, cwd, close=None):
    """Run the installed command; CLOSE (1 or 2) starts it with that fd closed."""
    preexec = (lambda: os.close(close)) if close is not None else None
    proc = subprocess.run([command(argv[0]), *argv[1:]], cwd=cwd, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=30, preexec_fn=preexec)
    return (proc.returncode, proc.stdout.decode("utf-8", "backslashreplace"),
            proc.stderr.decode("utf-8", "backslashreplace"))


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_refusal(row, tmp_path):
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
            status, out, err = run_installed(row.argv, str(workdir))
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
                 "fdmove-from-closed", "fdmove-next-program-not-found",
                 "fdmove-next-program-not-executable", "setuidgid-unknown-user",
                 "chainload-unknown-command", "chainload-no-command"]


@pytest.mark.parametrize("row", [r for r in ROWS if r.id in CLOSED_STDERR],
                         ids=[i for i in CLOSED_STDERR])
def test_refusal_with_stderr_closed(row, tmp_path):
    """With fd 2 closed there is nowhere to say why, but the status is the
    same (never Python's 1 from an exception escaping main)."""
    for name in row.setup:
        SETUP[name](str(tmp_path))
    before = snapshot(str(tmp_path))
    status, out, err = run_installed(row.argv, str(tmp_path), close=2)
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
