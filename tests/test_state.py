"""The process-state commands (issue 12): envdir, setenv, unsetenv, umask,
chdir (cd), softlimit and setsid, end to end.

Every chain runs the installed commands and ends in tests/probe.py, which
reports what the next program inherited: its umask, working directory,
resource limits, session and process group, and its environment as the
exact bytes of /proc/self/environ. The refusals are rows of
tests/test_matrix.py; the ones that need a particular process (a process
group leader) or a race are here.
"""

import os
import random
import resource
import stat
import subprocess
import sys

import pytest

from conftest import BIN, root_only, run

PYTHON_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


def go(argv, **kw):
    result = run(argv, **kw)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def environ(report):
    """The probe's environment: {name bytes: value bytes}, exactly."""
    items = [bytes.fromhex(h) for h in report["environ_hex"]]
    return dict(item.split(b"=", 1) for item in items)


def ok(result):
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.report["pid"] == result.pid  # one process, one exec
    return result.report


def write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


# --- envdir ---------------------------------------------------------------------

BIG = b" ".join(b"%05d" % i for i in range(1000))  # 5999 bytes, no newline

ENTRIES = {
    b"A": b"hello  \t\r\nsecond\n",
    b"B": b"",
    b"C": b"\n",
    b"D": b"x\0y\n",
    b"E": b"crlf\r\n",
    b"L": b"  lead",
    b"BIG": BIG,
    b"INVALID": b"caf\xe9 \xff\xfe\n",  # latin-1, not UTF-8
    b"N\xff\xfe": b"name not UTF-8\n",
    b"SPACES": b" \t \n",
}


def make_envdir(d):
    os.mkdir(d, 0o755)
    for name, data in ENTRIES.items():
        write(os.path.join(os.fsencode(d), name), data)
    write(os.path.join(d, ".hidden"), b"never\n")
    os.symlink("A", os.path.join(d, "LINK"))
    return d


@pytest.mark.parametrize("full", [False, True])
def test_envdir_values_reach_the_next_program_as_bytes(tmp_path, probe, full):
    d = make_envdir(str(tmp_path / "env"))
    env = {**PYTHON_ENV, "B": "set before", "KEEP": "\udcff kept", "A": "old"}
    argv = ["envdir", *(["--full"] if full else []), d, *probe]
    got = environ(ok(go(argv, env=env)))
    first_line = {
        b"A": b"hello", b"C": b"", b"D": b"x\ny", b"E": b"crlf", b"L": b"  lead",
        b"BIG": BIG, b"INVALID": b"caf\xe9 \xff\xfe", b"N\xff\xfe": b"name not UTF-8",
        b"SPACES": b"", b"LINK": b"hello",
    }
    whole = {
        b"A": b"hello  \t\r\nsecond", b"C": b"", b"D": b"x\ny", b"E": b"crlf\r",
        b"L": b"  lead", b"BIG": BIG, b"INVALID": b"caf\xe9 \xff\xfe",
        b"N\xff\xfe": b"name not UTF-8", b"SPACES": b" \t ", b"LINK": b"hello  \t\r\nsecond",
    }
    wanted = whole if full else first_line
    for name, value in wanted.items():
        assert got.get(name) == value, name
    assert b"B" not in got  # an empty file unsets
    assert b".hidden" not in got
    assert got[b"KEEP"] == b"\xff kept"  # the rest of the environment, exactly
    assert got[b"LC_ALL"] == b"C"
    assert len(got[b"BIG"]) == 5999  # no 4095-byte clamp


def test_envdir_unsets_only_with_an_empty_file(tmp_path, probe):
    d = tmp_path / "env"
    d.mkdir()
    write(d / "GONE", b"")
    write(d / "NEWLINE", b"\n")
    got = environ(ok(go(["envdir", str(d), *probe],
                        env={**PYTHON_ENV, "GONE": "x", "NEWLINE": "x"})))
    assert b"GONE" not in got and got[b"NEWLINE"] == b""


def test_envdir_empty_directory_changes_nothing(tmp_path, probe):
    (tmp_path / "env").mkdir()
    env = {**PYTHON_ENV, "X": "1"}
    got = environ(ok(go(["envdir", str(tmp_path / "env"), *probe], env=env)))
    assert {k: v for k, v in got.items() if k != b"PROBE_OUT"} == \
        {k.encode(): v.encode() for k, v in env.items()}


def test_envdir_directory_given_as_bytes(tmp_path, probe):
    d = os.path.join(os.fsencode(str(tmp_path)), b"env\xff")
    os.mkdir(d)
    write(os.path.join(d, b"V"), b"v\n")
    got = environ(ok(go(["envdir", os.fsdecode(d), *probe], env=PYTHON_ENV)))
    assert got[b"V"] == b"v"


@pytest.mark.forked
@pytest.mark.parametrize("command", ["chdir", "envdir"])
def test_a_nul_in_the_directory_is_no_such_file(command):
    """Only an in-process caller can pass a NUL (argv cannot hold one); os
    refuses such a path with ValueError, reported as the file not found."""
    from chainload import chain, core

    with pytest.raises(core.Fail) as failed:
        chain.run_chain([command, "/tmp\0x", "true"], {}, chain.Chain())
    assert failed.value.status == core.EXIT_SYSTEM
    assert failed.value.message == "/tmp\0x: No such file or directory"


@pytest.mark.forked
@pytest.mark.parametrize("bad", ["dangling", "subdir", "fifo", "equals", "vanished"])
def test_envdir_changes_nothing_unless_every_entry_reads(tmp_path, bad):
    """In-process: the first entries read fine, a later one fails, and the
    chain's environment is exactly as before."""
    from chainload import core
    from chainload.commands import envdir

    d = tmp_path / "env"
    d.mkdir()
    write(d / "A", b"a\n")
    write(d / "B", b"")
    target = {"dangling": "Z", "subdir": "Z", "fifo": "Z", "equals": "Z=Y",
              "vanished": "Z"}[bad]
    if bad == "dangling":
        os.symlink("nowhere", d / target)
    elif bad == "subdir":
        (d / target).mkdir()
    elif bad == "fifo":
        os.mkfifo(d / target)
    else:
        write(d / target, b"z\n")
    if bad == "vanished":
        # Really removed between the listing and the open.
        listdir = os.listdir

        def listdir_then_remove(path):
            names = listdir(path)
            os.unlink(d / target)
            return names

        os.listdir = listdir_then_remove
    env = {"A": "before", "B": "before", "PATH": "/bin"}
    before = dict(env)
    with pytest.raises(core.Fail) as failed:
        envdir.run({"<dir>": str(d), "--full": False, "<next-prog>": ["true"]}, env)
    assert failed.value.status == 111
    assert failed.value.message.startswith(f"{d}/{target}: ")
    assert env == before


# --- setenv, unsetenv ---------------------------------------------------------------

def test_setenv_and_unsetenv(probe):
    env = {**PYTHON_ENV, "OLD": "x", "REPLACED": "1"}
    got = environ(ok(go(["setenv", "NEW", "caf\udce9 =x", "setenv", "REPLACED", "2",
                         "setenv", "EMPTY", "", "unsetenv", "OLD",
                         "unsetenv", "NEVER_SET", *probe], env=env)))
    assert got[b"NEW"] == b"caf\xe9 =x"
    assert got[b"REPLACED"] == b"2"
    assert got[b"EMPTY"] == b""
    assert b"OLD" not in got and b"NEVER_SET" not in got


def test_a_later_listener_sees_setenv_and_unsetenv(tmp_path, probe):
    """The chain's environment is one dict: a listener after unsetenv
    LISTEN_FDS (or setenv LISTEN_FDS 0) counts no inherited sockets."""
    sd = "--systemd-compatibility"
    both = ok(go(["listen-seqpacket", sd, str(tmp_path / "a"),
                  "listen-seqpacket", sd, str(tmp_path / "b"), *probe]))
    assert both["env"]["LISTEN_FDS"] == "2" and "4" in both["fds"]
    for link in (["unsetenv", "LISTEN_FDS"], ["setenv", "LISTEN_FDS", "0"]):
        report = ok(go(["listen-seqpacket", sd, str(tmp_path / "c"), *link,
                        "listen-seqpacket", sd, str(tmp_path / "d"), *probe]))
        assert report["env"]["LISTEN_FDS"] == "1", link
        assert report["fds"]["3"]["name"] == str(tmp_path / "d"), link
        assert "4" not in report["fds"], link
        for s in "cd":
            (tmp_path / s).unlink()


# --- umask ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,mask", [("0", 0), ("7", 7), ("027", 0o27), ("0022", 0o22),
                                       ("0x12", 0o22), ("0777", 0o777), ("+5", 5)])
def test_umask(probe, text, mask):
    report = ok(go(["umask", text, *probe], env=PYTHON_ENV))
    assert report["umask"] == mask


def test_umask_applies_to_a_later_listener(tmp_path, probe):
    sock = tmp_path / "s.sock"
    ok(go(["chainload", "umask", "0077", "listen-seqpacket", str(sock), *probe]))
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o700


# --- chdir, cd -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["chdir", "cd"])
def test_chdir_absolute_sets_pwd(tmp_path, probe, name):
    report = ok(go(["chainload", name, str(tmp_path), *probe],
                   env={**PYTHON_ENV, "PWD": "/elsewhere"}))
    assert bytes.fromhex(report["cwd_hex"]) == os.fsencode(str(tmp_path))
    assert environ(report)[b"PWD"] == os.fsencode(str(tmp_path))


def test_chdir_relative_unsets_pwd(tmp_path, probe):
    sub = os.path.join(os.fsencode(str(tmp_path)), b"d\xff")
    os.mkdir(sub)
    report = ok(go(["chdir", "d\udcff", *probe], cwd=str(tmp_path),
                   env={**PYTHON_ENV, "PWD": str(tmp_path)}))
    assert bytes.fromhex(report["cwd_hex"]) == sub
    assert b"PWD" not in environ(report)


def test_cd_is_not_installed_and_neither_is_setsid():
    """In-chain names only: an installed setsid would shadow util-linux's."""
    from chainload import chain

    assert set(chain.IN_CHAIN_ONLY) <= set(chain.ALIASES)
    for name in chain.IN_CHAIN_ONLY:
        assert not (BIN / name).exists(), name
    assert (BIN / "chainload-setsid").exists() and (BIN / "chdir").exists()


# --- softlimit -----------------------------------------------------------------------

def _hard(name):
    return resource.getrlimit(getattr(resource, "RLIMIT_" + name))[1]


def test_softlimit_sets_soft_limits_and_keeps_hard_ones(probe):
    report = ok(go(["softlimit", "-o", "64", "-c", "0", "-t", "0x1000", "-p", "=",
                    "-f", "010000000", *probe], env=PYTHON_ENV))
    limits = report["rlimits"]
    assert limits["NOFILE"] == [64, _hard("NOFILE")]
    assert limits["CORE"] == [0, _hard("CORE")]
    assert limits["CPU"] == [0x1000, _hard("CPU")]
    assert limits["NPROC"] == [_hard("NPROC")] * 2
    assert limits["FSIZE"] == [0o10000000, _hard("FSIZE")]


def test_softlimit_above_the_hard_limit_is_lowered_to_it(probe):
    hard = _hard("NOFILE")
    assert hard != resource.RLIM_INFINITY  # Linux never allows that for NOFILE
    report = ok(go(["softlimit", "-o", str(hard + 1000), *probe], env=PYTHON_ENV))
    assert report["rlimits"]["NOFILE"] == [hard, hard]


def test_softlimit_m_sets_four_and_a_specific_letter_wins(probe):
    gib = 1 << 30
    report = ok(go(["softlimit", "-s", "0x100000", "-m", str(gib), *probe], env=PYTHON_ENV))
    limits = report["rlimits"]
    for name in ("AS", "DATA", "MEMLOCK"):
        hard = _hard(name)
        assert limits[name] == [gib if hard in (-1,) or hard > gib else hard, hard], name
    assert limits["STACK"][0] == 0x100000


def test_softlimit_imports_the_later_links_before_the_limits(tmp_path):
    """Under -o 3 nothing more can be opened: the listener after it must
    fail on its socket, naming the path, not on importing its own module."""
    path = tmp_path / "s.sock"
    r = go(["chainload", "softlimit", "-o", "3", "listen-stream", str(path), "true"])
    assert r.returncode == 111, r.stderr
    assert r.fatal_line() == f"listen-stream: FATAL: {path}: Too many open files"
    assert not path.exists()


def test_softlimit_and_resource_are_imported_only_when_used():
    from test_chain import modules_after

    quiet = modules_after(["chainload", "envdir", "/nonexistent-chainload", "true"])
    assert "resource" not in quiet["modules"], quiet
    chain = ["chainload", "setenv", "A", "1", "unsetenv", "B", "umask", "022", "chdir", "/",
             "setsid", "true"]
    got = modules_after(chain)
    assert got["argv"] == ["true"], got
    assert "resource" not in got["modules"] and not got["after"]
    got = modules_after(["chainload", "softlimit", "-o", "=", "true"])
    assert got["argv"] == ["true"] and "resource" in got["modules"], got


def test_setuidgid_preloads_what_softlimit_needs():
    code = ("import sys, chainload.chain as c; assert 'resource' not in sys.modules;"
            "c.preload(['x', 'softlimit', 'y']); print('resource' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert proc.stdout == "True\n", proc.stderr


# --- setsid --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["setsid", "chainload-setsid"])
def test_setsid_makes_a_new_session(probe, name):
    argv = ["chainload", name, *probe]
    proc_before = os.getsid(0), os.getpgrp()
    report = ok(go(argv, env=PYTHON_ENV))
    assert report["sid"] == report["pid"] and report["pgid"] == report["pid"]
    assert report["sid"] != proc_before[0]


def _run_started(argv, **popen):
    proc = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], env=PYTHON_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)
    out, err = proc.communicate(timeout=30)
    return proc, out, err


def test_setsid_when_already_session_leader_carries_on(probe):
    import json

    proc, out, err = _run_started(["chainload", "setsid", *probe], start_new_session=True)
    assert (proc.returncode, err) == (0, "")
    report = json.loads(out)
    assert report["pid"] == proc.pid == report["sid"] == report["pgid"]


def test_setsid_as_process_group_leader_fails_and_says_why(probe):
    proc, out, err = _run_started(["chainload", "setsid", *probe], process_group=0)
    assert proc.returncode == 111 and out == ""
    assert err == ("setsid: FATAL: Leads a process group but not a session: setsid(2) "
                   "would need a fork, and a chain never forks.\n")


# --- the whole run script, in one process -------------------------------------------------

@root_only
def test_design_chain_as_root_ends_in_one_exec(world_tmp, probe):
    """The issue's run script: envdir, umask, chdir, softlimit, a systemd-style
    listener and setuidgid, ending in the probe in the same process."""
    envd = world_tmp / "env"
    envd.mkdir(mode=0o755)
    write(envd / "FOO_MODE", b"production\n")
    write(envd / "DROP", b"")
    home = world_tmp / "lib"
    home.mkdir(mode=0o755)
    sock = world_tmp / "foo.sock"
    result = go(["chainload", "envdir", str(envd), "umask", "027", "chdir", str(home),
                 "softlimit", "-o", "64", "listen-seqpacket", "--systemd-compatibility",
                 str(sock), "setuidgid", "nobody", *probe],
                env={**PYTHON_ENV, "DROP": "x"})
    report = ok(result)
    nobody = int(subprocess.check_output(["id", "-u", "nobody"]))
    assert report["resuid"] == [nobody] * 3
    assert report["umask"] == 0o27
    assert bytes.fromhex(report["cwd_hex"]) == os.fsencode(str(home))
    assert report["rlimits"]["NOFILE"][0] == 64
    got = environ(report)
    assert got[b"FOO_MODE"] == b"production" and b"DROP" not in got
    assert got[b"PWD"] == os.fsencode(str(home))
    assert report["env"]["LISTEN_FDS"] == "1"
    assert report["env"]["LISTEN_PID"] == str(result.pid)
    assert report["fds"]["3"]["listening"]
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o750  # bound under umask 027


LINKS = {
    "envdir": lambda d: ["envdir", str(d / "env")],
    "setenv": lambda d: ["setenv", "SET", "s\udcff"],
    "unsetenv": lambda d: ["unsetenv", "UNSET"],
    "umask": lambda d: ["umask", "0067"],
    "chdir": lambda d: ["chdir", str(d)],
    "softlimit": lambda d: ["softlimit", "-o", "99", "-c", "0"],
    "setsid": lambda d: ["setsid"],
    "fdmove": lambda d: ["fdmove", "-c", "7", "1"],
}


@pytest.mark.parametrize("seed", range(4))
def test_every_order_of_the_links(world_tmp, probe, seed):
    """The commands in shuffled orders, with fdmove and (as root)
    setuidgid among them: each effect still reaches the next program."""
    names = list(LINKS) + (["setuidgid"] if os.geteuid() == 0 else [])
    random.Random(seed).shuffle(names)
    (world_tmp / "env").mkdir(mode=0o755)
    write(world_tmp / "env" / "FROM_DIR", b"d\n")
    argv = ["chainload"]
    for name in names:
        argv += ["setuidgid", "nobody"] if name == "setuidgid" else LINKS[name](world_tmp)
    report = ok(go([*argv, *probe], env={**PYTHON_ENV, "UNSET": "x"}))
    got = environ(report)
    assert got[b"FROM_DIR"] == b"d" and got[b"SET"] == b"s\xff" and b"UNSET" not in got
    assert report["umask"] == 0o67
    assert bytes.fromhex(report["cwd_hex"]) == os.fsencode(str(world_tmp))
    assert report["rlimits"]["NOFILE"][0] == 99 and report["rlimits"]["CORE"][0] == 0
    assert report["sid"] == report["pid"]
    assert report["fds"]["7"]["target"] == report["fds"]["1"]["target"]
    if "setuidgid" in names:
        assert report["resuid"][0] != 0
