"""setuidgid: drop to an account's ids, then chain (root only: real setuid).

The probe and any files it needs live under /tmp (probe, world_tmp):
pytest's own temporary directories cannot be entered by nobody.
"""

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import uuid

import pytest

from conftest import command, main_as_user, root_only, run

pytestmark = root_only

NOBODY = pwd.getpwnam("nobody")
IDS = [NOBODY.pw_uid] * 3
GIDS = [NOBODY.pw_gid] * 3


def go(argv, **kw):
    result = run(argv, **kw)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(result):
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.report


def test_drops_to_nobody(probe):
    report = ok(go(["setuidgid", "nobody", *probe, "-x"]))
    assert report["resuid"] == IDS
    assert report["resgid"] == GIDS
    assert report["groups"] == [NOBODY.pw_gid]
    assert report["argv"] == ["-x"]


def test_drops_root_supplementary_groups(probe):
    # Start with extra groups, which setgid alone would leave in place.
    proc = subprocess.run([command("setuidgid"), "nobody", *probe], extra_groups=[0, 1, 2],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["groups"] == [NOBODY.pw_gid]


def test_primary_group(probe):
    try:
        other = grp.getgrnam("daemon")
    except KeyError:
        pytest.skip("no group named daemon")
    for flag in ("-g", "--primary-group"):
        report = ok(go(["setuidgid", flag, "daemon", "nobody", *probe]))
        assert report["resuid"] == IDS
        assert report["resgid"] == [other.gr_gid] * 3
        assert report["groups"] == [other.gr_gid]


def member_groups(name):
    return {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}


@pytest.fixture
def account_with_groups():
    """A non-root account listed as a member of some group in the group
    database: an existing one if there is one, otherwise nobody added to a
    temporary group."""
    for entry in pwd.getpwall():
        if entry.pw_uid != 0 and member_groups(entry.pw_name) - {entry.pw_gid}:
            yield entry.pw_name
            return
    if not (shutil.which("groupadd") and shutil.which("gpasswd") and shutil.which("groupdel")):
        pytest.skip("no account has supplementary groups, and groupadd/gpasswd are missing")
    group = "chainload-" + uuid.uuid4().hex[:8]
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    try:
        subprocess.run(["gpasswd", "-a", "nobody", group], check=True, capture_output=True)
        yield "nobody"
    finally:
        subprocess.run(["groupdel", group], capture_output=True)


def test_supplementary(account_with_groups, probe):
    entry = pwd.getpwnam(account_with_groups)
    expected = sorted(member_groups(entry.pw_name) | {entry.pw_gid})
    assert len(expected) > 1
    for flag in ("-s", "--supplementary"):
        report = ok(go(["setuidgid", flag, entry.pw_name, *probe]))
        assert report["resuid"] == [entry.pw_uid] * 3
        assert report["resgid"] == [entry.pw_gid] * 3
        assert report["groups"] == expected
    # Without the option: only the primary group.
    report = ok(go(["setuidgid", entry.pw_name, *probe]))
    assert report["groups"] == [entry.pw_gid]


def test_supplementary_with_primary_group(account_with_groups, probe):
    entry = pwd.getpwnam(account_with_groups)
    other = grp.getgrgid(0)  # a group the account is surely not a member of
    report = ok(go(["setuidgid", "-s", "-g", other.gr_name, entry.pw_name, *probe]))
    assert report["resgid"] == [0, 0, 0]
    # initgroups(account, gid): the group database's groups plus GID.
    assert report["groups"] == sorted(member_groups(entry.pw_name) | {0})


def fatal(result, status, line):
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == line, result.stderr
    if status == 100:
        assert lines[1].startswith("Usage: setuidgid ")
    else:
        assert len(lines) == 1
    assert result.stdout == ""


def test_unknown_user(world_tmp):
    marker = world_tmp / "ran"
    fatal(go(["setuidgid", "no-such-user-xyzzy", "/bin/sh", "-c", f"touch {marker}"]), 111,
          "setuidgid: FATAL: no-such-user-xyzzy: No such user.")
    assert not marker.exists()


def test_unknown_group(world_tmp):
    marker = world_tmp / "ran"
    fatal(go(["setuidgid", "-g", "no-such-group-xyzzy", "nobody", "/bin/sh", "-c",
              f"touch {marker}"]), 111,
          "setuidgid: FATAL: no-such-group-xyzzy: No such group.")
    assert not marker.exists()


def test_missing_account_or_next_program():
    fatal(go(["setuidgid"]), 100, "setuidgid: FATAL: Missing operand.")
    fatal(go(["setuidgid", "-s"]), 100, "setuidgid: FATAL: Missing operand.")
    fatal(go(["setuidgid", "nobody"]), 100,
          "setuidgid: FATAL: Missing next program, or operand ACCOUNT (got nobody as ACCOUNT).")
    fatal(go(["setuidgid", "-g"]), 100, "setuidgid: FATAL: -g requires argument.")


def test_environment_is_left_alone():
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root", "USER": "root", "LOGNAME": "root",
           "SHELL": "/bin/bash"}
    result = go(["setuidgid", "nobody", "/usr/bin/env"], env=env)
    assert result.returncode == 0, result.stderr
    assert dict(line.split("=", 1) for line in result.stdout.splitlines()) == env


# --- as a user that cannot change ids ----------------------------------------

def test_not_permitted_as_non_root(world_tmp):
    marker = world_tmp / "ran"
    status, _, err = main_as_user(["setuidgid", "nobody", "/bin/sh", "-c", f"touch {marker}"],
                                  "nobody")
    assert status == 111, err
    assert err == "setuidgid: FATAL: nobody: Operation not permitted\n"
    assert not marker.exists()
    # The control: the same next program does run when nothing is refused.
    status, _, err = main_as_user(["fdmove", "-c", "5", "1", "/bin/sh", "-c", f"touch {marker}"],
                                  "nobody")
    assert status == 0, err
    assert marker.exists()


def test_second_setuidgid_after_the_drop_is_refused(world_tmp):
    marker = world_tmp / "ran"
    fatal(go(["setuidgid", "nobody", "setuidgid", "root", "/bin/sh", "-c", f"touch {marker}"]),
          111, "setuidgid: FATAL: root: Operation not permitted")
    assert not marker.exists()


# --- builtins after the drop -------------------------------------------------

def test_builtin_after_the_drop(probe):
    report = ok(go(["setuidgid", "nobody", "fdmove", "-c", "4", "1", *probe]))
    assert report["resuid"] == IDS
    assert report["fds"]["4"]["target"] == report["fds"]["1"]["target"]


def test_builtin_after_the_drop_errors_cleanly():
    # fdmove's error path runs as nobody too: a message, not a traceback.
    result = go(["setuidgid", "nobody", "fdmove", "x", "1", "true"])
    assert result.returncode == 100
    assert result.stderr.splitlines()[0] == "fdmove: FATAL: to: x: Not a number."
    # (With a PATH dir nobody cannot search, e.g. /root/..., it would be 126
    # "Permission denied", as execvp(3) reports.)
    result = go(["setuidgid", "nobody", "fdmove", "-c", "4", "1", "no-such-program-xyzzy"],
                env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 127
    assert result.stderr == "fdmove: FATAL: no-such-program-xyzzy: No such file or directory\n"


def test_listener_after_the_drop(world_tmp, probe):
    path = world_tmp / "s.sock"
    report = ok(go(["setuidgid", "nobody", "local-seqpacket-socket-listen", "--mode", "0600",
                    str(path), "fdmove", "-c", "0", "3", *probe]))
    assert report["resuid"] == IDS
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o600
    for fd in "03":
        sock = report["fds"][fd]
        assert sock["family"] == "AF_UNIX" and sock["type"] == "SOCK_SEQPACKET"
        assert sock["listening"] and sock["name"] == str(path)


def test_design_card_chain(world_tmp, probe):
    path = world_tmp / "s.sock"
    result = go(["chainload", "listen-seqpacket", "--systemd-compatibility", str(path),
                 "fdmove", "0", "3", "setuidgid", "nobody", *probe])
    report = ok(result)
    sock = report["fds"]["0"]
    assert sock["type"] == "SOCK_SEQPACKET" and sock["listening"]
    assert sock["name"] == str(path)
    assert "3" not in report["fds"]
    assert report["resuid"] == IDS and report["resgid"] == GIDS
    assert report["groups"] == [NOBODY.pw_gid]
    assert report["env"]["LISTEN_FDS"] == "1"
    assert report["env"]["LISTEN_PID"] == str(report["pid"]) == str(result.pid)
    st = os.lstat(path)
    assert st.st_uid == 0  # made before the drop
