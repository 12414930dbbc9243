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


# --- numeric accounts (issue 22, item 6) -----------------------------------------

def free_id(taken, start=4242):
    """An id no entry of TAKEN has (so no database lookup can find it)."""
    while start in taken:
        start += 1
    return start


FREE_UID = free_id({e.pw_uid for e in pwd.getpwall()} | {e.gr_gid for e in grp.getgrall()})
FREE_GID = free_id({e.gr_gid for e in grp.getgrall()} | {FREE_UID}, FREE_UID + 1)


def started_with_groups(argv, groups=(0, 1, 2)):
    """Run ARGV (an installed command first) with extra supplementary groups,
    which a setgid alone would leave in place; the probe's report."""
    proc = subprocess.run([command(argv[0]), *argv[1:]], extra_groups=list(groups),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return json.loads(proc.stdout)


def test_uid_colon_gid_sets_exactly_those_ids(probe):
    """As s6-setuidgid UID:GID, chpst -u :UID:GID and a container's --user:
    no account needed, no lookup, no other group."""
    report = started_with_groups(["setuidgid", f"{FREE_UID}:{FREE_GID}", *probe])
    assert report["resuid"] == [FREE_UID] * 3
    assert report["resgid"] == [FREE_GID] * 3
    assert report["groups"] == [FREE_GID]
    # Also the ids of an account, given as numbers: still no group of its own.
    report = started_with_groups(["setuidgid", f"{NOBODY.pw_uid}:0", *probe])
    assert report["resuid"] == IDS and report["resgid"] == [0, 0, 0]
    assert report["groups"] == [0]


def test_numeric_uid_of_an_account_is_that_account(account_with_groups, probe):
    """`setuidgid 1000` where uid 1000 has an account: that account, its
    primary group, and with -s its groups."""
    entry = pwd.getpwnam(account_with_groups)
    assert pwd.getpwuid(entry.pw_uid).pw_name == entry.pw_name  # the first with that uid
    report = started_with_groups(["setuidgid", str(entry.pw_uid), *probe])
    assert report["resuid"] == [entry.pw_uid] * 3
    assert report["resgid"] == [entry.pw_gid] * 3
    assert report["groups"] == [entry.pw_gid]
    report = started_with_groups(["setuidgid", "-s", str(entry.pw_uid), *probe])
    assert report["groups"] == sorted(member_groups(entry.pw_name) | {entry.pw_gid})


def test_numeric_uid_without_an_account_needs_its_group(world_tmp, probe):
    marker = world_tmp / "ran"
    for argv in ([str(FREE_UID)], ["-s", str(FREE_UID)]):
        fatal(go(["setuidgid", *argv, "/bin/sh", "-c", f"touch {marker}"]), 111,
              f"setuidgid: FATAL: {FREE_UID}: No account has this user id; give its group "
              f"too, as {FREE_UID}:GID (or -g GROUP).")
    # -s needs an account to take the groups of.
    fatal(go(["setuidgid", "-s", "-g", "0", str(FREE_UID), "/bin/sh", "-c", f"touch {marker}"]),
          111, f"setuidgid: FATAL: {FREE_UID}: No account has this user id, so -s has no "
          "groups to add; list them with --groups.")
    assert not marker.exists()
    # With -g (a name or a number) it is given.
    for group, gid in (("daemon", grp.getgrnam("daemon").gr_gid), (str(FREE_GID), FREE_GID)):
        report = ok(go(["setuidgid", "-g", group, str(FREE_UID), *probe]))
        assert report["resuid"] == [FREE_UID] * 3
        assert report["resgid"] == [gid] * 3 and report["groups"] == [gid]


def test_colon_forms_that_are_not_uid_gid(world_tmp):
    marker = world_tmp / "ran"
    cmd = ["/bin/sh", "-c", f"touch {marker}"]
    fatal(go(["setuidgid", "nobody:nogroup", *cmd]), 100,
          "setuidgid: FATAL: nobody:nogroup: Not UID:GID (two decimal numbers); for a user "
          "and a group, write -g GROUP USER.")
    for account in (":", "1:", ":1", "1:2:3", "0x10:1", "-1:1", "1 :1"):
        result = go(["setuidgid", "--", account, *cmd])
        assert result.returncode == 100, (account, result.stderr)
        assert "Not UID:GID" in result.stderr
    fatal(go(["setuidgid", "-g", "daemon", "1:1", *cmd]), 100,
          "setuidgid: FATAL: 1:1: UID:GID gives the group already; drop -g.")
    fatal(go(["setuidgid", "-s", "1:1", *cmd]), 100,
          "setuidgid: FATAL: -s: 1:1 is no account to take groups from; list them with "
          "--groups.")
    fatal(go(["setuidgid", "4294967295:0", *cmd]), 111,
          "setuidgid: FATAL: 4294967295: User id out of range (must be 0 to 4294967294).")
    fatal(go(["setuidgid", "0:4294967295", *cmd]), 111,
          "setuidgid: FATAL: 4294967295: Group id out of range (must be 0 to 4294967294).")
    fatal(go(["setuidgid", "4294967295", *cmd]), 111,
          "setuidgid: FATAL: 4294967295: User id out of range (must be 0 to 4294967294).")
    assert not marker.exists()


def test_ids_are_decimal(probe):
    """A leading zero does not make octal: 0100 is 100, as id(1) would print it."""
    report = ok(go(["setuidgid", f"0{FREE_UID}:010", *probe]))
    assert report["resuid"] == [FREE_UID] * 3 and report["resgid"] == [10] * 3


def databases(tmp_path, passwd="", group=""):
    """A shell command that bind-mounts copies of /etc/passwd and /etc/group
    with PASSWD and GROUP appended (in a private mount namespace: nothing
    outside this test sees them), then runs "$@"."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    files = {}
    for name, extra in (("passwd", passwd), ("group", group)):
        copy = tmp_path / name
        copy.write_text(open(f"/etc/{name}").read() + extra)
        os.chmod(copy, 0o644)
        files[name] = copy
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    script = (f"mount --bind {files['passwd']} /etc/passwd && "
              f"mount --bind {files['group']} /etc/group && exec \"$@\"")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"], files


def test_a_name_wins_over_a_number(tmp_path, probe):
    """An account (or group) whose name is all digits is that account, not
    that user id: every command line that worked before still does."""
    uid, gid = FREE_UID, FREE_GID
    name = str(FREE_UID + 1000)  # a numeric name; its id differs from it
    wrap, _ = databases(tmp_path, passwd=f"{name}:x:{uid}:{gid}::/:/bin/sh\n",
                        group=f"{name}:x:{gid}:\n")
    proc = subprocess.run([*wrap, command("setuidgid"), "--groups", name, name, *probe],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["resuid"] == [uid] * 3 and report["resgid"] == [gid] * 3
    assert report["groups"] == [gid]


# --- --groups (issue 19) ------------------------------------------------------------

def test_groups_are_exactly_the_list(probe):
    daemon = grp.getgrnam("daemon").gr_gid
    for argv in (["--groups", f"daemon,{FREE_GID},0"], [f"--groups=daemon,{FREE_GID},0"],
                 ["--groups", f"daemon,{FREE_GID},0,daemon,{daemon}"]):
        report = started_with_groups(["setuidgid", *argv, "nobody", *probe], groups=(1, 2))
        assert report["resuid"] == IDS and report["resgid"] == GIDS
        # Exactly the list: not the primary group, not the starting groups.
        assert report["groups"] == sorted({daemon, FREE_GID, 0})
    # An empty list: no supplementary group at all.
    report = started_with_groups(["setuidgid", "--groups=", "nobody", *probe])
    assert report["resgid"] == GIDS and report["groups"] == []
    # With UID:GID, and with -g: the list is still exactly the list.
    report = started_with_groups(["setuidgid", "--groups", "daemon", f"{FREE_UID}:{FREE_GID}",
                                  *probe])
    assert report["resuid"] == [FREE_UID] * 3 and report["resgid"] == [FREE_GID] * 3
    assert report["groups"] == [daemon]
    report = ok(go(["setuidgid", "-g", "daemon", "--groups", "0", "nobody", *probe]))
    assert report["resgid"] == [daemon] * 3 and report["groups"] == [0]


def test_groups_with_supplementary_uses_both(account_with_groups, probe):
    entry = pwd.getpwnam(account_with_groups)
    member = member_groups(entry.pw_name) | {entry.pw_gid}
    report = started_with_groups(["setuidgid", "-s", "--groups", f"0,{FREE_GID}",
                                  entry.pw_name, *probe], groups=(1, 2))
    assert report["resuid"] == [entry.pw_uid] * 3
    assert report["resgid"] == [entry.pw_gid] * 3
    assert report["groups"] == sorted(member | {0, FREE_GID})


def test_groups_refusals_name_the_group(world_tmp):
    marker = world_tmp / "ran"
    cmd = ["/bin/sh", "-c", f"touch {marker}"]
    for groups, line in (
            ("daemon,no-such-group-xyzzy", "no-such-group-xyzzy: No such group."),
            ("daemon,,0", "--groups: daemon,,0: Empty group name."),
            ("daemon,", "--groups: daemon,: Empty group name."),
            (",", "--groups: ,: Empty group name."),
            ("4294967295", "4294967295: Group id out of range (must be 0 to 4294967294)."),
            ("0x10", "0x10: No such group."),
            ("-1", "-1: No such group.")):
        for account in ("nobody", "1:1"):
            fatal(go(["setuidgid", "--groups", groups, account, *cmd]), 111,
                  f"setuidgid: FATAL: {line}")
    assert not marker.exists()


@pytest.mark.forked
def test_too_many_groups_are_refused_before_any_change():
    """More groups than the kernel takes (one argument cannot hold so many:
    run() in-process, in a forked child)."""
    from chainload import core
    from chainload.commands import setuidgid

    limit = os.sysconf("SC_NGROUPS_MAX")
    args = {"<account>": "nobody", "<next-prog>": ["true"], "--supplementary": False,
            "--primary-group": None,
            "--groups": ",".join(str(10000 + i) for i in range(limit + 1))}
    before = (os.getresuid(), os.getresgid(), os.getgroups())
    with pytest.raises(core.Fail) as failed:
        setuidgid.run(args, {})
    assert failed.value.status == 111
    assert str(failed.value) == f"nobody: Too many groups ({limit + 1}; at most {limit})."
    assert (os.getresuid(), os.getresgid(), os.getgroups()) == before
    # The control: the limit itself is taken (root stays root here).
    args.update({"<account>": "0:0", "--groups": ",".join(str(10000 + i) for i in range(limit))})
    assert setuidgid.run(args, {}) == ["true"]
    assert len(os.getgroups()) == limit


def test_groups_are_looked_up_before_the_drop(tmp_path, probe):
    """A group database that only root can read: the names resolve because
    they are looked up before the ids change (and the probe, a later
    program, sees the groups)."""
    name = f"chainload-{uuid.uuid4().hex[:8]}"
    wrap, files = databases(tmp_path, group=f"{name}:x:{FREE_GID}:\n")
    os.chmod(files["group"], 0o600)
    proc = subprocess.run([*wrap, command("setuidgid"), "--groups", f"{name},daemon", "nobody",
                           "fdmove", "-c", "5", "1", *probe],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["resuid"] == IDS
    assert report["groups"] == sorted({FREE_GID, grp.getgrnam("daemon").gr_gid})
    # The control: as nobody, that database cannot be read.
    proc = subprocess.run([*wrap, "setpriv", "--reuid", "nobody", "--regid", "nogroup",
                           "--clear-groups", "getent", "group", name],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and proc.stdout == "", proc.stdout
