"""install-dir, fdredir and hardlimit (issue 19), end to end.

Every chain runs the installed commands and ends in tests/probe.py, which
reports what the next program inherited (its descriptors with their open
flags, its resource limits, its umask). What needs no privilege also runs
as nobody (in a forked child, main_as_user, when the tests run as root);
what needs root (a chown, raising a hard limit) skips with the reason.
The refusals are rows of tests/test_matrix.py.
"""

import json
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import time

import pytest

from conftest import command, main_as_user, root_only, run

PYTHON_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
NOBODY = pwd.getpwnam("nobody")


def ok(result):
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.report["pid"] == result.pid  # one process, one exec
    return result.report


def unprivileged(argv, cwd):
    """(status, probe report or None, stderr) of ARGV run as a user without
    privileges: nobody if the tests run as root, else this user."""
    if os.geteuid() == 0:
        status, out, err = main_as_user(argv, "nobody", cwd=str(cwd))
    else:
        r = run(argv, cwd=str(cwd))
        status, out, err = r.returncode, r.stdout, r.stderr
    report = json.loads(out) if out.strip().startswith("{") else None
    return status, report, err


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def has_cap_sys_resource():
    with open("/proc/self/status") as f:
        caps = next(line for line in f if line.startswith("CapEff:"))
    return bool(int(caps.split()[1], 16) >> 24 & 1)  # CAP_SYS_RESOURCE is 24


# --- install-dir -------------------------------------------------------------------

def test_install_dir_makes_parents_0755_and_dir_with_its_mode(tmp_path, probe):
    target = tmp_path / "a" / "b" / "c"
    report = ok(run(["umask", "077", "install-dir", "-m", "02750", str(target), *probe],
                    env=PYTHON_ENV))
    assert report["umask"] == 0o077  # passed on as it was
    assert mode_of(tmp_path / "a") == mode_of(tmp_path / "a" / "b") == 0o755
    assert mode_of(target) == 0o2750
    for d in (tmp_path / "a", target):
        assert (os.stat(d).st_uid, os.stat(d).st_gid) == (os.geteuid(), os.getegid())


def test_install_dir_default_mode_and_existing_directory(tmp_path, probe):
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o1777)
    (d / "inside").write_text("kept")
    ok(run(["install-dir", str(d), *probe]))
    assert mode_of(d) == 0o755  # as install -d: an existing directory gets the mode
    assert (d / "inside").read_text() == "kept"


def test_install_dir_if_missing_leaves_an_existing_directory_alone(tmp_path, probe):
    d = tmp_path / "d"
    d.mkdir()
    os.chmod(d, 0o1777)
    before = os.stat(d)
    ok(run(["install-dir", "--if-missing", "-m", "0700", str(d), *probe]))
    after = os.stat(d)
    assert (after.st_ino, after.st_mode, after.st_ctime_ns) == \
        (before.st_ino, before.st_mode, before.st_ctime_ns)
    new = tmp_path / "new"
    ok(run(["install-dir", "--if-missing", "-m", "0700", str(new), *probe]))
    assert mode_of(new) == 0o700  # a missing one is made as asked


def test_install_dir_if_missing_takes_a_link_to_a_directory_and_changes_nothing(
        tmp_path, probe):
    real = tmp_path / "real"
    real.mkdir()
    os.chmod(real, 0o1777)
    (tmp_path / "link").symlink_to("real")
    ok(run(["install-dir", "--if-missing", str(tmp_path / "link"), *probe]))
    assert mode_of(real) == 0o1777


def test_install_dir_never_follows_a_link_at_dir(tmp_path, probe):
    victim = tmp_path / "victim"
    victim.mkdir()
    os.chmod(victim, 0o700)
    (tmp_path / "planted").symlink_to(victim)
    r = run(["install-dir", "-m", "0777", str(tmp_path / "planted"), *probe])
    assert r.returncode == 111, r.stderr
    assert r.fatal_line() == (f"install-dir: FATAL: {tmp_path}/planted: "
                              "Is a symbolic link; not following it.")
    assert mode_of(victim) == 0o700


def test_install_dir_follows_a_parent_link_of_its_own_user(tmp_path, probe):
    """/var/run -> /run: a link that root (or the chain's user) made."""
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to("../run")
    ok(run(["install-dir", "-m", "0750", str(tmp_path / "var" / "run" / "foo"), *probe]))
    assert mode_of(tmp_path / "run" / "foo") == 0o750


@root_only
def test_install_dir_refuses_a_parent_link_of_another_user(tmp_path, probe):
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "theirs"
    link.symlink_to(tmp_path / "elsewhere")
    os.lchown(link, NOBODY.pw_uid, NOBODY.pw_gid)
    r = run(["install-dir", "-o", "root", str(link / "x"), *probe])
    assert r.returncode == 111, r.stderr
    assert f"{link}: Symbolic link owned by uid {NOBODY.pw_uid}" in r.fatal_line()
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("where", ["dir", "parent"])
def test_install_dir_refuses_a_file_naming_it(tmp_path, probe, where):
    f = tmp_path / "f"
    f.write_text("keep")
    target = f if where == "dir" else f / "sub"
    r = run(["install-dir", str(target), *probe])
    assert r.returncode == 111
    why = "Exists and is not a directory." if where == "dir" else "Not a directory"
    assert r.fatal_line() == f"install-dir: FATAL: {f}: {why}"
    assert f.read_text() == "keep"


@root_only
def test_install_dir_owner_and_group_by_name_and_number(tmp_path, probe):
    ok(run(["install-dir", "-o", "nobody", "-g", "nogroup", "-m", "0700",
            str(tmp_path / "named"), *probe]))
    st = os.stat(tmp_path / "named")
    assert (st.st_uid, st.st_gid, mode_of(tmp_path / "named")) == \
        (NOBODY.pw_uid, NOBODY.pw_gid, 0o700)
    ok(run(["install-dir", "-o", "54321", "-g", "54322", str(tmp_path / "numbered"), *probe]))
    st = os.stat(tmp_path / "numbered")
    assert (st.st_uid, st.st_gid) == (54321, 54322)
    assert (os.stat(tmp_path).st_uid) == 0  # the parent is the chain's


@root_only
def test_install_dir_looks_up_before_a_later_setuidgid(world_tmp, probe):
    d = world_tmp / "run" / "svc"
    r = run(["install-dir", "-o", "nobody", "-m", "0700", str(d),
             "setuidgid", "nobody", *probe])
    report = ok(r)
    assert report["resuid"] == [NOBODY.pw_uid] * 3
    assert os.stat(d).st_uid == NOBODY.pw_uid and os.stat(d.parent).st_uid == 0


@root_only
def test_install_dir_changes_only_through_descriptors(tmp_path, probe):
    """strace: the directory is made with at most the asked mode, then
    changed with fchown and fchmod (never chmod or chown by path)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (make tools installs it)")
    log = tmp_path / "strace.log"
    target = tmp_path / "d"
    proc = subprocess.run([strace, "-f", "-o", str(log), "-e",
                           "trace=mkdir,mkdirat,chmod,fchmod,fchmodat,chown,fchown,lchown,"
                           "fchownat", command("install-dir"), "-m", "0750", "-o", "nobody",
                           str(target), "/bin/true"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = [ln.split(None, 1)[1] for ln in log.read_text().splitlines()
             if not ln.split(None, 1)[1].startswith(("+++", "---"))]
    names = [c.split("(")[0] for c in calls]
    assert names == ["mkdirat", "fchown", "fchmod"], calls
    assert '"d", 0750)' in calls[0]


def test_install_dir_as_non_root(world_tmp, probe):
    """No privilege needed to make one's own directories; giving one away
    is refused before anything is left behind."""
    top = world_tmp / "mine"
    status, report, err = unprivileged(["install-dir", "-m", "0700", str(top / "x"), *probe],
                                       world_tmp)
    assert status == 0, err
    assert mode_of(top) == 0o755 and mode_of(top / "x") == 0o700
    uid = os.stat(top / "x").st_uid
    assert uid == (NOBODY.pw_uid if os.geteuid() == 0 else os.geteuid())
    status, report, err = unprivileged(["install-dir", "-o", "0", str(world_tmp / "given" / "y"),
                                        *probe], world_tmp)
    assert status == 111 and "Operation not permitted" in err, err
    assert not (world_tmp / "given").exists()  # what it made is removed again


def test_install_dir_removes_what_it_made_when_the_chain_fails(tmp_path):
    (tmp_path / "old").mkdir()
    r = run(["install-dir", str(tmp_path / "old" / "new" / "deeper"),
             "no-such-program-chainload"])
    assert r.returncode == 127
    assert list((tmp_path / "old").iterdir()) == []


def test_mkdir_and_install_are_not_captured(world_tmp):
    """The first word that is not a builtin is the program: coreutils'
    mkdir and install run, not a builtin of that name."""
    for program in (["mkdir", "-p"], ["install", "-d"]):
        target = world_tmp / program[0] / "x"
        if os.geteuid() == 0:
            r = run(["chainload", "setuidgid", "nobody", *program, str(target)])
            owner = NOBODY.pw_uid
        else:
            r = run(["chainload", "umask", "022", *program, str(target)])
            owner = os.geteuid()
        assert r.returncode == 0, r.stderr
        assert target.is_dir() and os.stat(target).st_uid == owner


# --- fdredir -----------------------------------------------------------------------

@pytest.mark.parametrize("option,access,append", [
    ("--write", "w", False), ("-w", "w", False), ("--append", "w", True),
    ("--update", "rw", False), ("--read", "r", False), (None, "r", False)])
def test_fdredir_modes(tmp_path, probe, option, access, append):
    f = tmp_path / "f"
    f.write_bytes(b"0123456789")
    argv = ["fdredir", *([option] if option else []), "1", str(f), *probe]
    report = ok(run(argv, out=tmp_path / "report.json"))
    fd1 = report["fds"]["1"]
    assert fd1["target"] == str(f) and fd1["access"] == access and fd1["append"] == append
    assert not fd1["cloexec"] and fd1["blocking"]
    assert f.read_bytes() == (b"" if option in ("--write", "-w") else b"0123456789")


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640), (0, 0o666)])
def test_fdredir_creates_0666_less_the_umask(tmp_path, probe, mask, mode):
    f = tmp_path / "new.log"
    report = ok(run(["umask", "0%o" % mask, "fdredir", "--append", "5", str(f), *probe],
                    env=PYTHON_ENV))
    assert mode_of(f) == mode and report["fds"]["5"]["target"] == str(f)


def test_fdredir_replaces_what_was_on_the_descriptor(tmp_path, probe):
    r, w = os.pipe()
    try:
        report = ok(run(["fdredir", "-w", str(r), "/dev/null", *probe], pass_fds=(r,)))
    finally:
        os.close(r)
        os.close(w)
    assert report["fds"][str(r)]["target"] == "/dev/null"


def test_fdredir_append_really_appends(tmp_path):
    f = tmp_path / "log"
    f.write_text("one\n")
    for word in ("two", "three"):
        r = run(["fdredir", "--append", "1", str(f), "/bin/echo", word])
        assert r.returncode == 0, r.stderr
    assert f.read_text() == "one\ntwo\nthree\n"


def test_fdredir_non_blocking_opens_a_fifo_without_a_writer(tmp_path, probe):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    report = ok(run(["fdredir", "--non-blocking", "0", str(fifo), *probe], timeout=20))
    fd0 = report["fds"]["0"]
    assert fd0["mode"].startswith("p") and fd0["blocking"]  # blocking again


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
@pytest.mark.parametrize("option", ["--read", "--write"])
def test_fdredir_waiting_for_a_fifo_dies_of_a_signal(tmp_path, option, signum):
    """Opening a FIFO waits for its other end; a supervisor's SIGTERM (or
    SIGINT, SIGHUP) must still stop the chain then, and what it made goes.
    (The signal starts at its default: an ignored one is passed on as is.)"""
    fifo, made = tmp_path / "fifo", tmp_path / "made"
    os.mkfifo(fifo)
    proc = subprocess.Popen([command("fdredir"), "-w", "7", str(made),
                             "fdredir", option, "0", str(fifo), "true"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))
    try:
        # made exists: the first link ran; then the only wait is the FIFO's.
        for _ in range(3000):
            if made.exists() and _state(proc.pid) == "S":
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read()
        os.kill(proc.pid, signum)
        status = proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert status == -signum
    assert not made.exists()


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_fdredir_as_non_root(world_tmp, probe):
    f = world_tmp / "out"
    status, report, err = unprivileged(["fdredir", "-w", "7", str(f), *probe], world_tmp)
    assert status == 0, err
    assert report["fds"]["7"]["target"] == str(f)
    status, report, err = unprivileged(["fdredir", "-w", "1", "/proc/1/mem", *probe],
                                       world_tmp)
    assert status == 111 and "fdredir: FATAL: fd 1: /proc/1/mem: " in err, err


def test_fdredir_removes_a_file_it_made_when_the_chain_fails(tmp_path):
    made, old = tmp_path / "made", tmp_path / "old"
    old.write_text("x")
    for f in (made, old):
        r = run(["fdredir", "-a", "1", str(f), "no-such-program-chainload"])
        assert r.returncode == 127
    assert not made.exists() and old.read_text() == "x"


@pytest.mark.forked
def test_fdredir_leaves_nothing_half_open(tmp_path):
    """dup2 fails (FD above the limit): the opened descriptor is closed
    again, and nothing was created."""
    from chainload import chain, core

    before = sorted(os.listdir("/proc/self/fd"))
    args = core.parse_args(chain.load("fdredir").USAGE, ["-w", "99999999", str(tmp_path / "f"),
                                                         "true"])
    with pytest.raises(core.Fail) as failed:
        chain.load("fdredir").run(args, {})
    core.abort()
    assert failed.value.status == 111
    assert failed.value.message == f"fd 99999999: {tmp_path}/f: Bad file descriptor"
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert not (tmp_path / "f").exists()


# --- hardlimit (and softlimit's long options) ----------------------------------------

def _now(name):
    return list(resource.getrlimit(getattr(resource, "RLIMIT_" + name, 10)))


def test_hardlimit_lowers_hard_and_a_soft_limit_above_it(probe):
    soft, hard = _now("NOFILE")
    assert soft > 64
    report = ok(run(["hardlimit", "-o", "64", "-c", "0", "-t", "=", *probe], env=PYTHON_ENV))
    limits = report["rlimits"]
    assert limits["NOFILE"] == [64, 64]
    assert limits["CORE"] == [0, 0]
    assert limits["CPU"] == [_now("CPU")[0]] * 2  # "=": the hard limit becomes the soft one


def test_hardlimit_keeps_a_soft_limit_below_it(probe):
    report = ok(run(["softlimit", "-o", "50", "hardlimit", "-o", "100", *probe],
                    env=PYTHON_ENV))
    assert report["rlimits"]["NOFILE"] == [50, 100]


def test_the_systemd_limits_letters_lack(probe):
    """--rtprio, --rttime, --sigpending, --msgqueue, --nice, --locks: one
    table for softlimit and hardlimit."""
    options = {"--rttime": ("RTTIME", 5000), "--sigpending": ("SIGPENDING", 77),
               "--msgqueue": ("MSGQUEUE", 4096), "--locks": ("LOCKS", 9),
               "--rtprio": ("RTPRIO", 0), "--nice": ("NICE", 0)}
    argv = [w for o, (_, n) in options.items() for w in (o, str(n))]
    report = ok(run(["hardlimit", *argv, "softlimit", "--locks", "3", *probe],
                    env=PYTHON_ENV))
    for option, (name, n) in options.items():
        want = [3 if name == "LOCKS" else min(n, _now(name)[0]) if _now(name)[0] != -1 else n, n]
        assert report["rlimits"][name] == want, option


def test_hardlimit_unlimited_and_infinity(probe):
    soft, hard = _now("FSIZE")
    if hard != resource.RLIM_INFINITY:
        pytest.skip("the file size hard limit is not unlimited here")
    report = ok(run(["hardlimit", "-f", "unlimited", "softlimit", "-f", "infinity", *probe],
                    env=PYTHON_ENV))
    assert report["rlimits"]["FSIZE"] == [-1, -1]


def test_hardlimit_raising_without_privilege_names_the_resource(world_tmp):
    soft, hard = _now("NOFILE")
    argv = ["hardlimit", "-o", str(hard + 1), "/bin/true"]
    if os.geteuid() != 0 or not has_cap_sys_resource():
        r = run(argv)
        status, err = r.returncode, r.stderr
    else:
        status, _, err = unprivileged(argv, world_tmp)
    assert status == 111
    assert err.startswith("hardlimit: FATAL: -o: RLIMIT_NOFILE: Operation not permitted; "
                          "raising a hard limit needs privilege"), err


def test_hardlimit_raises_with_privilege(probe):
    if not has_cap_sys_resource():
        pytest.skip("needs CAP_SYS_RESOURCE (root with it) to raise a hard limit")
    soft, hard = _now("NOFILE")
    with open("/proc/sys/fs/nr_open") as f:
        ceiling = int(f.read())
    want = min(hard + 1000, ceiling)
    report = ok(run(["hardlimit", "-o", str(want), "softlimit", "-o", str(want), *probe],
                    env=PYTHON_ENV))
    assert report["rlimits"]["NOFILE"] == [want, want]


def test_hardlimit_imports_the_later_links_before_the_limits(tmp_path):
    path = tmp_path / "s.sock"
    r = run(["chainload", "hardlimit", "-o", "3", "listen-stream", str(path), "true"])
    assert r.returncode == 111, r.stderr
    assert r.fatal_line() == f"listen-stream: FATAL: {path}: Too many open files"
