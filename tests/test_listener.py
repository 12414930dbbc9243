"""local-seqpacket-socket-listen (issue 3), end to end.

Every test runs the installed command with the probe (or a small echo
server) as the next program, so what is checked is what a real next
program inherits: its fds, its environment and the node on disk. The
refusal tests snapshot the directory before and after, down to content,
mode, owner, mtime and ctime, to show that nothing was created, changed or
removed.
"""

import fcntl
import grp
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import sys

import pytest

from conftest import command, root_only, run, snapshot

LISTEN = "listen-seqpacket"
OLD_MTIME = 1_000_000_000  # 2001: any write by the command would move it


def clean_env(**extra):
    """os.environ without any socket-passing variables, plus EXTRA."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LISTEN_", "UPSTART_"))}
    env.update(extra)
    return env


def listen(*args, probe, env=None, **kw):
    """Run LISTEN ARGS... probe; assert success; return the probe report."""
    r = run([LISTEN, *args, *probe], env=env or clean_env(), **kw)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return r.report


def sock(report, fd):
    info = report["fds"].get(str(fd))
    assert info is not None, f"fd {fd} not open in {report['fds']}"
    return info


def assert_listener(info, name):
    assert info["family"] == "AF_UNIX"
    assert info["type"] == "SOCK_SEQPACKET"
    assert info["listening"] is True
    assert info["name"] == name
    assert info["cloexec"] is False  # it survived the exec anyway
    assert info["blocking"] is True


def assert_one_fatal(r, status, text, prog=LISTEN):
    """Exit STATUS, one "PROG: FATAL: ...TEXT..." line, the usage after a 100."""
    assert r.returncode == status, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines, "no message"
    assert lines[0].startswith(f"{prog}: FATAL: "), lines
    assert text in lines[0], lines
    if status == 100:
        assert lines[1].startswith(f"Usage: {prog} "), lines  # as called
        assert not any("FATAL" in ln for ln in lines[1:])
    else:
        assert len(lines) == 1, lines


def passsec_works():
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSSEC, 1)
        except OSError:
            return False
    return True


def pidfd_inode(pid):
    """The pidfs inode of PID, or None when pidfds are anonymous inodes."""
    fd, ev = os.pidfd_open(pid), os.eventfd(0)
    try:
        a, b = os.fstat(fd), os.fstat(ev)
    finally:
        os.close(fd)
        os.close(ev)
    return None if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) else a.st_ino


# --- the descriptor -------------------------------------------------------------

def test_listening_socket_on_fd3(tmp_path, probe):
    path = str(tmp_path / "s")
    r = run([LISTEN, path, *probe, "--uid", "5", "-m", "x", "--", "y"], env=clean_env())
    assert r.returncode == 0, r.stderr
    assert_listener(sock(r.report, 3), path)
    # The next program's options are its own.
    assert r.report["argv"] == ["--uid", "5", "-m", "x", "--", "y"]
    # Without --systemd/--upstart-compatibility no variable is set.
    assert r.report["env"] == {}
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    # Nothing else was left open for the next program.
    assert sorted(r.report["fds"]) == ["0", "1", "2", "3"]


def test_all_names_and_double_dash(tmp_path, probe):
    for argv in (["local-seqpacket-socket-listen"], ["chainload", "listen-seqpacket"],
                 ["chainload", "local-seqpacket-socket-listen"]):
        path = str(tmp_path / f"s{len(argv[-1])}")
        r = run([*argv, "--", path, *probe], env=clean_env())
        assert r.returncode == 0, r.stderr
        assert_listener(sock(r.report, 3), path)


def test_fd3_already_open_is_replaced(tmp_path, probe):
    held = tmp_path / "held"
    held.write_text("x")
    path = str(tmp_path / "s")
    r = run(["/bin/sh", "-c", 'exec "$@" 3<"$HELD"', "sh", command(LISTEN), path, *probe],
            env=clean_env(HELD=str(held)))
    assert r.returncode == 0, r.stderr
    assert_listener(sock(r.report, 3), path)
    assert not any(i.get("target") == str(held) for i in r.report["fds"].values())


@pytest.mark.parametrize("closed", [0, 1])
def test_low_fd_closed_in_parent(tmp_path, probe, closed):
    """With fd 0 (or 1) closed, socket() returns it; the socket still ends on 3."""
    path, out = str(tmp_path / "s"), tmp_path / "report.json"
    r = run(["/bin/sh", "-c", f'exec "$@" {closed}>&-', "sh", command(LISTEN), path, *probe],
            env=clean_env(), out=out)
    assert r.returncode == 0, r.stderr
    assert_listener(sock(r.report, 3), path)
    assert str(closed) not in r.report["fds"]


def test_without_systemd_compatibility_fd3_is_reused(tmp_path, probe):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    rep = listen(a, LISTEN, b, probe=probe)
    assert_listener(sock(rep, 3), b)
    assert "4" not in rep["fds"]
    assert rep["env"] == {}


def test_stale_socket_is_replaced(tmp_path, probe):
    path = str(tmp_path / "s")
    old = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old.bind(path)
    old.close()
    with pytest.raises(ConnectionRefusedError):
        socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).connect(path)
    rep = listen(path, probe=probe)
    assert_listener(sock(rep, 3), path)


# --- a real round trip ------------------------------------------------------------

ECHO_SERVER = r"""
import json, os, socket, sys
keys = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID")
listener = socket.socket(fileno=3)
print(json.dumps({"pid": os.getpid(), "blocking": listener.getblocking(),
                  "env": {k: os.environ[k] for k in keys if k in os.environ}}),
      flush=True)
conn, _ = listener.accept()
while True:
    msg = conn.recv(1 << 20)
    if not msg:
        break
    assert conn.send(b"echo:" + msg) == len(msg) + 5
print("done", flush=True)
"""


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "over-stale-socket"])
def test_round_trip_keeps_message_boundaries(tmp_path, stale):
    path = str(tmp_path / "echo.sock")
    if stale:
        old = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        old.bind(path)
        old.listen()
        old.close()  # a dead server's socket is replaced (a live one is not)
    server = subprocess.Popen(
        [command(LISTEN), "--systemd-compatibility", path,
         sys.executable, "-I", "-S", "-c", ECHO_SERVER],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        hello = json.loads(server.stdout.readline())
        assert hello["pid"] == server.pid  # the chain exec'd; it never forked
        assert hello["blocking"] is True
        assert hello["env"]["LISTEN_FDS"] == "1"
        assert hello["env"]["LISTEN_PID"] == str(server.pid)
        ident = pidfd_inode(server.pid)
        if ident is None:
            assert "LISTEN_PIDFDID" not in hello["env"]
        else:
            assert hello["env"]["LISTEN_PIDFDID"] == str(ident)

        messages = [b"a", b"\0two\0", b"x" * 4096, os.urandom(50_000), b"last"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
            client.settimeout(10)
            client.connect(path)
            for m in messages:  # all queued before any is read
                client.sendall(m)
            for m in messages:
                assert client.recv(1 << 20) == b"echo:" + m
        out, err = server.communicate(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert (server.returncode, out, err) == (0, "done\n", "")


# --- systemd and upstart compatibility -----------------------------------------------

def test_three_systemd_listeners_stack(tmp_path, probe):
    paths = [str(tmp_path / n) for n in "abc"]
    rep = listen("--systemd-compatibility", "--fd-name", "a", paths[0],
                 LISTEN, "--systemd-compatibility", paths[1],
                 LISTEN, "--systemd-compatibility", "--fd-name", "c", paths[2],
                 probe=probe, env=clean_env(LISTEN_PIDFDID="12345"))
    for fd, path in zip((3, 4, 5), paths):
        assert_listener(sock(rep, fd), path)
    assert "6" not in rep["fds"]
    env = rep["env"]
    assert env["LISTEN_FDS"] == "3"
    assert env["LISTEN_PID"] == str(rep["pid"])
    assert env["LISTEN_FDNAMES"] == "a:unknown:c"
    # The stale incoming value never survives: a fresh one, or none.
    assert env.get("LISTEN_PIDFDID") != "12345"


def test_systemd_without_names_sets_unknown_for_each(tmp_path, probe):
    """Issue 22 item 11: LISTEN_FDNAMES is always set with --systemd-compatibility,
    one name per descriptor, "unknown" where no --fd-name was given (what
    sd_listen_fds_with_names(3) reports without names; Twisted's systemd:
    endpoints see no descriptor at all without the variable)."""
    rep = listen("--systemd-compatibility", str(tmp_path / "a"),
                 LISTEN, "--systemd-compatibility", str(tmp_path / "b"), probe=probe)
    assert rep["env"]["LISTEN_FDS"] == "2"
    assert rep["env"]["LISTEN_FDNAMES"] == "unknown:unknown"
    assert set(rep["env"]) <= {"LISTEN_FDS", "LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDNAMES"}
    rep = listen("--systemd-compatibility", str(tmp_path / "a"),
                 LISTEN, "--systemd-compatibility", "--fd-name", "b", str(tmp_path / "b"),
                 LISTEN, "--systemd-compatibility", str(tmp_path / "c"), probe=probe)
    assert rep["env"]["LISTEN_FDNAMES"] == "unknown:b:unknown"


@pytest.mark.parametrize("stale_pid", ["1", "", "x", "0"])
def test_stale_listen_pid_resets_the_count(tmp_path, probe, stale_pid):
    path = str(tmp_path / "s")
    env = clean_env(LISTEN_PID=stale_pid, LISTEN_FDS="2", LISTEN_FDNAMES="old:names")
    rep = listen("--systemd-compatibility", path, probe=probe, env=env)
    assert_listener(sock(rep, 3), path)
    assert rep["env"]["LISTEN_FDS"] == "1"
    assert rep["env"]["LISTEN_PID"] == str(rep["pid"])
    assert rep["env"]["LISTEN_FDNAMES"] == "unknown"  # the stale names are gone
    rep = listen("--systemd-compatibility", "--fd-name", "new", path, probe=probe, env=env)
    assert rep["env"]["LISTEN_FDNAMES"] == "new"


@pytest.mark.parametrize("incoming, expected", [
    ("keep", "keep:z"),        # one valid name per inherited fd: kept
    ("a:b", "unknown:z"),      # wrong count: dropped
    ("a\x01", "unknown:z"),    # not a valid name: dropped
])
def test_valid_inherited_listen_fds(tmp_path, probe, incoming, expected):
    """A parent that really passed one fd (LISTEN_PID = our pid): we go on fd 4."""
    held = tmp_path / "held"
    held.write_text("x")
    path = str(tmp_path / "s")
    r = run(["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@" 3<"$HELD"', "sh", command(LISTEN),
             "--systemd-compatibility", "--fd-name", "z", path, *probe],
            env=clean_env(HELD=str(held), LISTEN_FDS="1", LISTEN_FDNAMES=incoming))
    assert r.returncode == 0, r.stderr
    assert sock(r.report, 3)["target"] == str(held)  # the inherited fd is kept
    assert_listener(sock(r.report, 4), path)
    assert r.report["env"]["LISTEN_FDS"] == "2"
    assert r.report["env"]["LISTEN_FDNAMES"] == expected


def test_upstart_alone(tmp_path, probe):
    rep = listen("--upstart-compatibility", str(tmp_path / "s"), probe=probe)
    assert rep["env"] == {"UPSTART_FDS": "3", "UPSTART_EVENTS": "socket"}


def test_upstart_as_second_systemd_listener(tmp_path, probe):
    rep = listen("--systemd-compatibility", str(tmp_path / "a"),
                 LISTEN, "--systemd-compatibility", "--upstart-compatibility",
                 str(tmp_path / "b"), probe=probe)
    assert rep["env"]["UPSTART_FDS"] == "4"
    assert rep["env"]["UPSTART_EVENTS"] == "socket"
    assert rep["env"]["LISTEN_FDS"] == "2"
    assert_listener(sock(rep, 4), str(tmp_path / "b"))


# --- mode, owner, socket options, backlog ----------------------------------------------

@pytest.mark.parametrize("text, mode", [
    ("0600", 0o600), ("0x1b6", 0o666), ("7", 0o7), ("0", 0), ("0777", 0o777),
    ("01600", 0o1600), ("02770", 0o2770), ("0X1ff", 0o777),
])
def test_mode(tmp_path, probe, text, mode):
    path = str(tmp_path / "s")
    # Under umask 0 as well as 077: --mode alone decides.
    for umask in ("0", "077"):
        r = run(["/bin/sh", "-c", f'umask {umask}; exec "$@"', "sh", command(LISTEN),
                 "-m", text, path, *probe], env=clean_env())
        assert r.returncode == 0, r.stderr
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == mode, oct(st.st_mode)
        # The chain exec'd, so the file stays; the next round starts afresh
        # (a stale socket of mode 0 cannot be proven stale by a non-root
        # user: see test_unconnectable_stale_socket_is_refused).
        os.unlink(path)


def test_unconnectable_stale_socket_is_refused(tmp_path):
    """A socket file this user may not connect to (mode 0) cannot be shown
    to be stale: only root, who may connect anyway, replaces it."""
    path = tmp_path / "s"
    held = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    held.bind(str(path))
    held.close()  # stale: nobody listens
    os.chmod(path, 0)
    r = run([command(LISTEN), str(path), "true"], env=clean_env())
    if os.geteuid() == 0:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 111
        assert r.fatal_line() == (f"{LISTEN}: FATAL: {path}: Permission denied; "
                                  "not replacing it.")
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0  # left alone


def default_acl(directory, user, group, other):
    """Give DIRECTORY a default ACL (the xattr setfacl -d writes), or skip."""
    import struct

    entries = [(0x01, user), (0x04, group), (0x20, other)]  # USER_OBJ, GROUP_OBJ, OTHER
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xFFFFFFFF)
                                            for tag, perm in entries)
    try:
        os.setxattr(directory, "system.posix_acl_default", value)
    except OSError as e:
        pytest.skip(f"no POSIX ACLs on {directory}: {e.strerror}")


def test_mode_holds_under_a_default_acl(tmp_path, probe):
    """A default ACL on the directory replaces the umask; bind(2) then makes
    the node narrower than asked (rw------- for 0666): --mode still decides."""
    default_acl(tmp_path, 6, 0, 0)
    path = str(tmp_path / "s")
    r = run([LISTEN, "-m", "0666", path, *probe], env=clean_env())
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o666


def test_mode_leaves_the_umask_of_the_next_program_alone(tmp_path):
    r = run(["/bin/sh", "-c", 'umask 027; exec "$@"', "sh", command(LISTEN),
             "--mode", "0600", str(tmp_path / "s"), "/bin/sh", "-c", "umask"])
    assert (r.returncode, r.stdout.strip()) == (0, "0027"), r.stderr


def test_default_mode_follows_umask(tmp_path, probe):
    path = str(tmp_path / "s")
    r = run(["/bin/sh", "-c", 'umask 027; exec "$@"', "sh", command(LISTEN), path, *probe],
            env=clean_env())
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o750


def nobody():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid, grp.getgrgid(pw.pw_gid).gr_name


@root_only
@pytest.mark.parametrize("args, owner", [
    (["--uid", "65534"], (65534, 0)),
    (["-g", "0x10"], (0, 16)),
    (["-u", "1", "-g", "02"], (1, 2)),
    (["--user", "nobody"], "nobody-uid"),
    (["--group", "@nobody-group"], "nobody-gid"),
    (["--user", "nobody", "--group", "@nobody-group"], "nobody-both"),
    (["--uid", "1", "--user", "nobody"], (1, 0)),         # the number wins
    (["--gid", "2", "--group", "@nobody-group"], (0, 2)),  # the number wins
])
def test_owner(tmp_path, probe, args, owner):
    uid, gid, group = nobody()
    args = [group if a == "@nobody-group" else a for a in args]
    owner = {"nobody-uid": (uid, 0), "nobody-gid": (0, gid),
             "nobody-both": (uid, gid)}.get(owner, owner)
    path = str(tmp_path / "s")
    rep = listen(*args, "-m", "0660", path, probe=probe)
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid) == owner
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert_listener(sock(rep, 3), path)


@root_only
def test_setgid_mode_survives_chown(tmp_path, probe):
    """chown(2) clears set-id bits, so the mode must come after the owner."""
    path = str(tmp_path / "s")
    listen("-u", "1", "-g", "1", "-m", "06770", path, probe=probe)
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1, 1, 0o6770)


@pytest.mark.parametrize("flags, cred, sec", [
    ([], 0, 0),
    (["--pass-credentials"], 1, 0),
    (["--pass-security"], 0, 1),
    (["--pass-credentials", "--pass-security"], 1, 1),
])
def test_socket_options(tmp_path, probe, flags, cred, sec):
    path = str(tmp_path / "s")
    r = run([LISTEN, *flags, path, *probe], env=clean_env())
    if sec and not passsec_works():
        assert_one_fatal(r, 111, "--pass-security")
        assert not os.path.lexists(path)
        return
    assert r.returncode == 0, r.stderr
    info = sock(r.report, 3)
    assert (info["passcred"], info["passsec"]) == (cred, sec)


@pytest.mark.parametrize("backlog", ["7", "0", "0x7fffffff", "-b4"])
def test_backlog_accepted(tmp_path, probe, backlog):
    path = str(tmp_path / "s")
    args = [backlog] if backlog.startswith("-b") else ["--backlog", backlog]
    assert_listener(sock(listen(*args, path, probe=probe), 3), path)


def test_abstract_socket(tmp_path, probe):
    name = "chainload-test-" + secrets.token_hex(8)
    before = snapshot(tmp_path, exact=True)
    r = run([LISTEN, "--systemd-compatibility", "@" + name, *probe],
            env=clean_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_listener(sock(r.report, 3), "\0" + name)
    assert snapshot(tmp_path, exact=True) == before


def test_abstract_name_of_107_bytes(probe):
    name = "chainload-" + secrets.token_hex(4)
    name += "x" * (107 - len(name))
    assert_listener(sock(listen("@" + name, probe=probe), 3), "\0" + name)


def test_abstract_name_in_use(probe):
    name = "chainload-test-" + secrets.token_hex(8)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as held:
        held.bind(b"\0" + name.encode())
        r = run([LISTEN, "@" + name, *probe], env=clean_env())
    assert_one_fatal(r, 111, "Address already in use")


def test_path_of_107_bytes(tmp_path, probe):
    path = str(tmp_path) + "/"
    path += "p" * (107 - len(path))
    assert len(os.fsencode(path)) == 107
    assert_listener(sock(listen(path, probe=probe), 3), path)


# --- refusals: status, one line, and the directory untouched ------------------------------

def _file(d):
    f = d / "file"
    f.write_text("precious\n")
    os.chmod(f, 0o640)
    os.utime(f, (OLD_MTIME, OLD_MTIME))


def _symlink(d):
    _file(d)
    os.symlink("file", d / "link")


def _dangling(d):
    os.symlink("nowhere", d / "dangling")


def _directory(d):
    (d / "dir").mkdir()
    _file(d / "dir")
    os.utime(d / "dir", (OLD_MTIME, OLD_MTIME))


def _fifo(d):
    os.mkfifo(d / "fifo", 0o600)


def _link_to_socket(d):
    """A symlink to a stale socket: the link is refused, not followed."""
    (d / "elsewhere").mkdir()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(str(d / "elsewhere" / "stale"))
    s.close()
    os.symlink("elsewhere/stale", d / "sock-link")


def _long(d):
    return str(d) + "/" + "p" * (108 - len(str(d)) - 1)


NOT_A_SOCKET = "Exists and is not a socket"
REFUSALS = {
    # name: (setup, argv after the command with {d} for the directory, status, text)
    "path-108-bytes": (None, ["{long}", "PROBE"], 100, "Socket path too long"),
    "abstract-109-bytes": (None, ["@" + "a" * 108, "PROBE"], 100, "Socket path too long"),
    "empty-path": (None, ["", "PROBE"], 100, "Empty socket path"),
    "empty-abstract": (None, ["@", "PROBE"], 100, "Empty abstract socket name"),
    "missing-directory": (None, ["{d}/nodir/s", "PROBE"], 111,
                          "{d}/nodir/s: No such file or directory"),
    "regular-file": (_file, ["{d}/file", "PROBE"], 111, NOT_A_SOCKET),
    "symlink": (_symlink, ["{d}/link", "PROBE"], 111, NOT_A_SOCKET),
    "dangling-symlink": (_dangling, ["{d}/dangling", "PROBE"], 111, NOT_A_SOCKET),
    "directory": (_directory, ["{d}/dir", "PROBE"], 111, NOT_A_SOCKET),
    "fifo": (_fifo, ["{d}/fifo", "PROBE"], 111, NOT_A_SOCKET),
    "symlink-to-socket": (_link_to_socket, ["{d}/sock-link", "PROBE"], 111, NOT_A_SOCKET),
    "unknown-user": (None, ["--user", "no-such-user-xyz", "{d}/s", "PROBE"], 111,
                     "no-such-user-xyz: No such user."),
    "unknown-group": (None, ["--group", "no-such-group-xyz", "{d}/s", "PROBE"], 111,
                      "no-such-group-xyz: No such group."),
    "unknown-group-with-uid": (None, ["-u", "0", "--group", "nogrp-xyz", "{d}/s", "PROBE"],
                               111, "nogrp-xyz: No such group."),
    "mode-0999": (None, ["--mode", "0999", "{d}/s", "PROBE"], 100, "--mode: 0999: Not a number"),
    "mode-8192": (None, ["--mode", "8192", "{d}/s", "PROBE"], 100,
                  "--mode: 8192: Ambiguous decimal number; write the mode in octal"),
    "mode-0x2000": (None, ["--mode", "0x2000", "{d}/s", "PROBE"], 100, "Out of range"),
    # Issue 22 item 1: as umask 22 is, with the octal spelling as a hint.
    "mode-666": (None, ["--mode", "666", "{d}/s", "PROBE"], 100,
                 "--mode: 666: Ambiguous decimal number; write the mode in octal with a "
                 "leading 0 (0666)."),
    "mode-8": (None, ["--mode", "8", "{d}/s", "PROBE"], 100,
               "--mode: 8: Ambiguous decimal number; write the mode in octal with a "
               "leading 0."),
    "mode-long-decimal": (None, ["--mode", "6" * 5000, "{d}/s", "PROBE"], 100,
                          "Ambiguous decimal number"),
    "mode-010000": (None, ["-m", "010000", "{d}/s", "PROBE"], 100, "Out of range"),
    "mode-0o600": (None, ["-m", "0o600", "{d}/s", "PROBE"], 100, "Not a number"),
    "mode-blank": (None, ["-m", " 0600", "{d}/s", "PROBE"], 100, "Not a number"),
    "mode-empty": (None, ["-m", "", "{d}/s", "PROBE"], 100, "Not a number"),
    "uid-2**32+1": (None, ["--uid", "4294967297", "{d}/s", "PROBE"], 100, "Out of range"),
    "uid-2**32-1": (None, ["--uid", "4294967295", "{d}/s", "PROBE"], 100, "Out of range"),
    "uid-minus-1": (None, ["--uid", "-1", "{d}/s", "PROBE"], 100, "--uid: -1: Out of range"),
    "gid-x": (None, ["--gid", "x", "{d}/s", "PROBE"], 100, "--gid: x: Not a number"),
    "backlog-minus-1": (None, ["--backlog", "-1", "{d}/s", "PROBE"], 100, "Out of range"),
    "backlog-2**31": (None, ["--backlog", "0x80000000", "{d}/s", "PROBE"], 100, "Out of range"),
    "fd-name-colon": (None, ["--systemd-compatibility", "--fd-name", "a:b", "{d}/s", "PROBE"],
                      100, "Not a valid name"),
    "fd-name-control": (None, ["--systemd-compatibility", "--fd-name", "a\x01", "{d}/s",
                               "PROBE"], 100, "Not a valid name"),
    "fd-name-newline": (None, ["--systemd-compatibility", "--fd-name", "a\nb", "{d}/s",
                               "PROBE"], 100, "Not a valid name"),
    "fd-name-256": (None, ["--systemd-compatibility", "--fd-name", "n" * 256, "{d}/s",
                           "PROBE"], 100, "Not a valid name"),
    "fd-name-empty": (None, ["--systemd-compatibility", "--fd-name", "", "{d}/s", "PROBE"],
                      100, "Not a valid name"),
    "fd-name-non-ascii": (None, ["--systemd-compatibility", "--fd-name", "\u00e9", "{d}/s",
                                 "PROBE"], 100, "Not a valid name"),
    "fd-name-alone": (None, ["--fd-name", "a", "{d}/s", "PROBE"], 100,
                      "Needs --systemd-compatibility"),
    "mode-abstract": (None, ["--mode", "0600", "@x", "PROBE"], 100, "--mode: Not possible"),
    "uid-abstract": (None, ["-u", "0", "@x", "PROBE"], 100, "--uid: Not possible"),
    "user-abstract": (None, ["--user", "root", "@x", "PROBE"], 100, "--user: Not possible"),
    "group-abstract": (None, ["--group", "root", "@x", "PROBE"], 100, "--group: Not possible"),
    "unknown-option": (None, ["--frobnicate", "{d}/s", "PROBE"], 100, "--frobnicate"),
    "missing-operand": (None, [], 100, "Missing operand"),
    "missing-next-program": (None, ["{d}/s"], 100, "Missing next program"),
    "missing-next-after-options": (None, ["-m", "0600", "{d}/s"], 100, "Missing next program"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusal_changes_nothing(tmp_path, probe, case):
    setup, argv, status, text = REFUSALS[case]
    d = tmp_path / "run"
    d.mkdir()
    if setup:
        setup(d)
    os.utime(d, (OLD_MTIME, OLD_MTIME))
    fill = {"{d}": str(d), "{long}": _long(d)}

    def expand(word):
        for key, value in fill.items():
            word = word.replace(key, value)
        return word

    argv = [w for a in argv for w in (probe if a == "PROBE" else [expand(a)])]
    before = snapshot(d, exact=True)
    r = run([LISTEN, *argv], env=clean_env(), cwd=d)
    assert_one_fatal(r, status, expand(text))
    assert r.stdout == ""
    # Nothing created and removed again either: the directory's own mtime
    # and ctime are in the snapshot.
    assert snapshot(d, exact=True) == before


def test_fatal_names_the_command_as_invoked(tmp_path, probe):
    r = run(["local-seqpacket-socket-listen", str(tmp_path / "no" / "s"), *probe])
    assert_one_fatal(r, 111, "No such file or directory",
                     prog="local-seqpacket-socket-listen")
    r = run(["chainload", "listen-seqpacket", "-m", "9x", str(tmp_path / "s"), *probe])
    assert_one_fatal(r, 100, "--mode: 9x: Not a number")


# --- failures after the bind: the socket this run made is removed ----------------------------

@pytest.mark.parametrize("next_prog, status, text", [
    (["no-such-program-xyz"], 127, "no-such-program-xyz: No such file or directory"),
    (["{d}/../bin/noexec"], 126, "Permission denied"),
    (["{d}/../bin/noexec/x"], 127, "Not a directory"),
])
def test_next_program_cannot_run(tmp_path, next_prog, status, text):
    """The chain already bound the socket; when the exec fails nothing runs to
    use it, so it is removed again and the directory holds what it held."""
    d = tmp_path / "run"
    d.mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "noexec").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "bin" / "noexec", 0o644)
    _file(d)
    before = snapshot(d, exact=True)
    argv = [w.replace("{d}", str(d)) for w in next_prog]
    r = run([LISTEN, "--mode", "0600", str(d / "s"), *argv], env=clean_env())
    assert_one_fatal(r, status, text)
    after = snapshot(d, exact=True)
    del before["."], after["."]  # the directory itself changed: bind, unlink
    assert after == before


def test_later_link_failing_removes_earlier_sockets(tmp_path, probe):
    d = tmp_path / "run"
    d.mkdir()
    r = run([LISTEN, "--systemd-compatibility", str(d / "a"),
             LISTEN, "--systemd-compatibility", str(d / "b"),
             LISTEN, str(d / "missing" / "c"), *probe], env=clean_env())
    assert_one_fatal(r, 111, "No such file or directory")
    assert os.listdir(d) == []


def test_help_later_in_the_chain_leaves_no_socket(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    r = run([LISTEN, str(d / "s"), "fdmove", "--help"], env=clean_env())
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.startswith("Usage: fdmove ")
    assert os.listdir(d) == []


def test_help_creates_nothing(tmp_path):
    before = snapshot(tmp_path, exact=True)
    r = run([LISTEN, "--help"], cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.startswith(f"Usage: {LISTEN} ")  # the alias, as called
    assert "--systemd-compatibility" in r.stdout
    assert snapshot(tmp_path, exact=True) == before


def test_stale_socket_is_not_restored_but_new_one_removed(tmp_path):
    """Replacing a stale socket is part of binding; a failed exec then
    removes the new socket (the stale one was dead anyway)."""
    path = tmp_path / "s"
    old = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old.bind(str(path))
    old.close()
    r = run([LISTEN, str(path), "no-such-program-xyz"], env=clean_env())
    assert_one_fatal(r, 127, "No such file or directory")
    assert not os.path.lexists(path)



# --- how the node is made: never wider than --mode, never touched by name ------------------

STRACE = "/usr/bin/strace"


@root_only
@pytest.mark.skipif(not os.access(STRACE, os.X_OK), reason="strace not installed (make tools)")
@pytest.mark.parametrize("mode", ["0640", "01640"])
def test_node_is_created_narrow_and_changed_by_handle(tmp_path, probe, mode):
    """bind(2) runs under umask ~mode, so the node never has a wider mode;
    owner (and special bits) go through /proc/self/fd/N of an O_PATH handle,
    never through the name, which someone could have swapped."""
    path, log = str(tmp_path / "s"), tmp_path / "strace.log"
    calls = "umask,bind,listen,chmod,fchmodat,chown,lchown,fchownat,unlink,unlinkat"
    r = run([STRACE, "-qq", "-o", str(log), "-e", f"trace={calls}", "-e", "signal=none",
             command(LISTEN), "-u", "1", "-m", mode, path, *probe], env=clean_env())
    if r.returncode != 0 and "PTRACE" in r.stderr:
        pytest.skip(f"strace cannot trace here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    trace = [ln for ln in log.read_text().splitlines() if "(" in ln]
    narrow = f"umask({0o777 & ~int(mode, 8):#o})".replace("0o", "0")
    i = next(n for n, ln in enumerate(trace) if ln.startswith("bind("))
    assert trace[i - 1].startswith(narrow), trace
    assert f'sun_path="{path}"' in trace[i] and trace[i].endswith("= 0"), trace
    assert trace[i + 1].startswith("umask("), trace  # restored at once
    # chown/chmod, or fchownat/fchmodat on architectures without the former
    assert trace[i + 2].startswith(('chown("/proc/self/fd/',
                                    'fchownat(AT_FDCWD, "/proc/self/fd/')), trace
    rest = trace[i + 3:]
    if int(mode, 8) & 0o7000:
        assert rest[0].startswith(('chmod("/proc/self/fd/',
                                   'fchmodat(AT_FDCWD, "/proc/self/fd/')), trace
        rest = rest[1:]
    assert rest[0].startswith("listen(3, "), trace
    assert not any(path in ln for ln in trace[i + 1:]), trace  # nothing by name
    st = os.lstat(path)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (1, int(mode, 8))


def test_bad_number_is_reported_before_any_name_lookup(tmp_path):
    # Usage errors (100) come before system ones (111), whatever the order
    # of the options: the numbers are checked before --user is looked up.
    result = run(["local-seqpacket-socket-listen", "--user", "no-such-user-x", "--gid", "x",
                  str(tmp_path / "s.sock"), "true"])
    assert result.returncode == 100, result.stderr
    assert "--gid: x: Not a number." in result.fatal_line()
    assert not (tmp_path / "s.sock").exists()


@pytest.mark.parametrize("pidfdid, stacks", [("1", False), ("x", False), ("mine", True)])
def test_inherited_listen_pidfdid_must_name_this_process(tmp_path, probe, pidfdid, stacks):
    """LISTEN_PID is ours but LISTEN_PIDFDID names another process (a pid
    reused after the sender died): the variables are stale, as
    chainload.activation and sd_listen_fds(3) would judge them."""
    from chainload.listenfds import pidfd_id

    if pidfd_id() is None:
        pytest.skip("this kernel has no pidfs: LISTEN_PIDFDID cannot be checked")
    held = tmp_path / "held"
    held.write_text("x")
    path = str(tmp_path / "s")
    # "mine": the probe's own pidfd inode, read by a one-line Python in the
    # shell's process before it execs the chain (same pid, same pidfd).
    ident = ('"$(python3 -c "import os; print(os.fstat(os.pidfd_open($$)).st_ino)")"'
             if pidfdid == "mine" else pidfdid)
    r = run(["/bin/sh", "-c", f'LISTEN_PID=$$ LISTEN_PIDFDID={ident} exec "$@" 3<"$HELD"',
             "sh", command(LISTEN), "--systemd-compatibility", path, *probe],
            env=clean_env(HELD=str(held), LISTEN_FDS="1"))
    assert r.returncode == 0, r.stderr
    if stacks:
        assert sock(r.report, 3)["target"] == str(held)
        assert_listener(sock(r.report, 4), path)
        assert r.report["env"]["LISTEN_FDS"] == "2"
    else:
        assert_listener(sock(r.report, 3), path)
        assert r.report["env"]["LISTEN_FDS"] == "1"


# --- issue 22: relative paths, simultaneous starts, no /proc --------------------------------

def test_relative_path_is_bound_by_its_absolute_name(tmp_path, probe):
    """Item 12: getsockname() shows the full path, which daemons that match
    their configured path against the passed sockets need."""
    (tmp_path / "run").mkdir()
    rep = listen("--systemd-compatibility", "./run//s", probe=probe, cwd=tmp_path)
    assert_listener(sock(rep, 3), str(tmp_path / "run" / "s"))
    # A failure after a later chdir still removes it (by that name).
    r = run([LISTEN, "run/t", "chdir", "/", "no-such-program-xyz"], env=clean_env(),
            cwd=tmp_path)
    assert_one_fatal(r, 127, "no-such-program-xyz", prog="chdir")
    assert os.listdir(tmp_path / "run") == ["s"]


def test_relative_path_too_long_from_the_root(tmp_path, probe):
    """Item 12: a relative name that fits sun_path but not with the working
    directory in front is a usage error that says why; nothing is made."""
    name = "r" * (107 - len(str(tmp_path)))  # one byte too many with the "/"
    before = snapshot(tmp_path, exact=True)
    r = run([LISTEN, name, *probe], env=clean_env(), cwd=tmp_path)
    assert_one_fatal(r, 100, f"{name}: Socket path too long from the root (108 bytes")
    assert "absolute name" in r.fatal_line()
    assert snapshot(tmp_path, exact=True) == before


def test_working_directory_longer_than_path_max_leaves_no_socket(tmp_path):
    """Item 17: in a working directory whose absolute name is longer than
    PATH_MAX, 0.2 bound the relative name and could not remove it again (its
    absolute name is too long to unlink). Now the start is refused before
    anything is made."""
    step = "d" * 200
    script = ("import os, sys\n"
              "for _ in range(24):\n"
              f"    os.mkdir('{step}'); os.chdir('{step}')\n"
              "os.execv(sys.argv[1], sys.argv[1:])\n")
    r = run([sys.executable, "-c", script, command(LISTEN), "s", "no-such-program-xyz"],
            env=clean_env(), cwd=tmp_path)
    try:
        assert_one_fatal(r, 100, "s: ")
        left = subprocess.run(["find", str(tmp_path), "-type", "s"], capture_output=True,
                              text=True, check=True).stdout
        assert left == ""
    finally:
        subprocess.run(["rm", "-rf", str(tmp_path / step)], check=True)


def _start_all(argvs, command_module):
    """Fork one child per argv in ARGVS, start them all at the same moment
    (a shared pipe closing), each running COMMAND_MODULE in-process on its
    argv. Returns the one-line results ("OK" or "STATUS message"), with the
    winners still holding their sockets; then let them go."""
    from chainload import core

    def high(fd):  # clear of 3+n, where a listener puts its socket
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(fd)
        return moved

    go_r, go_w = map(high, os.pipe())
    res_r, res_w = map(high, os.pipe())
    hold_r, hold_w = map(high, os.pipe())
    pids = []
    for i, argv in enumerate(argvs):
        pid = os.fork()
        if pid == 0:
            try:
                os.close(go_w)
                os.close(hold_w)
                os.read(go_r, 1)  # EOF: everyone goes
                try:
                    args = core.parse_args(command_module.USAGE, argv,
                                           frozen=command_module.PARSED)
                    command_module.run(args, {})
                    msg = "OK"
                except core.Fail as e:
                    msg = f"{e.status} {e.message}"
                os.write(res_w, f"{i} {msg}\n".encode())
                if msg == "OK":
                    os.read(hold_r, 1)  # listen until the parent has looked
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(go_w)
    os.close(hold_r)
    results, data = {}, b""
    while len(results) < len(argvs):
        chunk = os.read(res_r, 65536)
        assert chunk, "a child died without a result"
        data += chunk
        *lines, data = data.split(b"\n")
        for line in lines:
            i, msg = line.decode().split(" ", 1)
            results[int(i)] = msg

    def release():
        os.close(hold_w)
        for pid in pids:
            os.waitpid(pid, 0)
        os.close(go_r)
        os.close(res_r)
        os.close(res_w)
    return [results[i] for i in range(len(argvs))], release


@pytest.mark.forked
@pytest.mark.parametrize("variant", ["plain", "stale", "mode", "uid"])
def test_simultaneous_starts_exactly_one_wins(tmp_path, variant):
    """Item 13: two starts at the same moment on one path (40 pairs per
    variant, ten pairs at a time, in one directory): exactly one listens,
    the other is refused as "In use by a running server" (111), and the
    path reaches the winner's socket. 0.2 let both succeed now and then:
    the second found the first one's socket bound but not yet listening,
    took it for stale and replaced it."""
    from chainload.commands import local_stream_socket_listen as command_module

    if variant == "uid" and os.geteuid() != 0:
        pytest.skip("--uid needs root")
    options = {"plain": [], "stale": [], "mode": ["--mode", "0660"],
               "uid": ["--uid", "1", "--mode", "0660"]}[variant]
    wins = 0
    for batch in range(4):
        paths = [str(tmp_path / f"s{batch}.{k}") for k in range(10)]
        if variant == "stale":
            for path in paths:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
                    dead.bind(path)
        argvs = [[*options, path, "true"] for path in paths for _ in (0, 1)]
        results, release = _start_all(argvs, command_module)
        try:
            for k, path in enumerate(paths):
                pair = sorted(results[2 * k:2 * k + 2], key=lambda m: m != "OK")
                assert pair[0] == "OK", (path, pair)
                assert pair[1] == f"111 {path}: In use by a running server; not replacing it.", \
                    (path, pair)
                wins += 1
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                    client.connect(path)  # the winner's socket, still listening
        finally:
            release()
    assert wins == 40
    # The lock is the directory's flock: nothing but the sockets was made.
    assert sorted(os.listdir(tmp_path)) == sorted(f"s{b}.{k}" for b in range(4)
                                                   for k in range(10))


def test_locked_directory_waits_then_says_so(tmp_path, probe):
    """The mechanism: a start takes an exclusive flock(2) on the socket's
    directory around probe, replacement, bind and listen; a lock held
    elsewhere (flock(1) on the directory) is waited for, not broken."""
    import time

    d = tmp_path / "run"
    d.mkdir()
    holder = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        child = subprocess.Popen([command(LISTEN), str(d / "s"), *probe],
                                 env=clean_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        time.sleep(0.5)
        assert child.poll() is None  # waiting for the lock
        assert not (d / "s").exists()
    finally:
        os.close(holder)  # released: the start goes on
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert_listener(sock(json.loads(out.splitlines()[-1]), 3), str(d / "s"))


def test_a_lock_held_by_another_user_does_not_stop_the_start(world_tmp, probe):
    """Anyone who can read the directory can flock(2) it: a user holding
    the lock on /run must not make every listener there fail. After the
    wait the start goes on without the lock, with one warning line."""
    d = world_tmp / "run"
    d.mkdir()
    os.chmod(d, 0o755)
    holder = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # held for the whole start
        r = run([LISTEN, str(d / "s"), *probe], env=clean_env())
    finally:
        os.close(holder)
    assert r.returncode == 0, r.stderr
    assert r.stderr == (f"local-seqpacket-socket-listen: WARNING: {d}: Locked (flock) by another process for "
                        "5 seconds; going on without the lock.\n")
    assert_listener(sock(r.report, 3), str(d / "s"))


NO_PROC = 'mount -t tmpfs none /proc || exit 99; exec "$@"'


@root_only
@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) not installed")
@pytest.mark.parametrize("options", [
    ["-u", "1", "-g", "2", "-m", "01640"],
    ["--user", "daemon", "--group", "bin", "-m", "0660"],
])
def test_owner_and_mode_without_proc(tmp_path, options):
    """Item 15: with no /proc (a bare mount namespace, a chroot) the owner
    and mode are still set on the O_PATH handle itself, never "No such
    file or directory"."""
    path = tmp_path / "s"
    r = run([shutil.which("unshare"), "-m", "/bin/sh", "-c", NO_PROC, "sh", command(LISTEN), *options,
             str(path), "/bin/sh", "-c", "test -e /proc/self || echo no-proc"],
            env=clean_env())
    if r.returncode == 99 or "unshare failed" in r.stderr:
        pytest.skip(f"cannot mount over /proc in a new mount namespace: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "no-proc\n"
    st = os.lstat(path)
    uid = 1 if "-u" in options else pwd.getpwnam("daemon").pw_uid
    gid = 2 if "-g" in options else grp.getgrnam("bin").gr_gid
    mode = int(options[-1], 8)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode)
