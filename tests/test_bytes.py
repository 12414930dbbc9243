"""Arguments and environment pass on byte for byte, in every locale (issue 10,
items 2 and 7).

CPython decodes argv with the C library and encodes it back with its own
codec; in legacy multibyte locales the two disagree (under
zh_HK.BIG5HKSCS the bytes a2 7e came out as f9 fa, under ja_JP.EUC-JP a
byte 0x80 broke the exec). And os.execve cannot pass an environment entry
with an empty name. The chain must hand on exactly what it got.

The legacy locales are built with localedef(1) into a temporary LOCPATH;
the tests skip, saying why, where the locales data is missing.
"""

import os
import subprocess
import sys

import pytest

from conftest import build_locales, command

LOCALES = {  # name -> (localedef -i, -f)
    "zh_HK.BIG5HKSCS": ("zh_HK", "BIG5-HKSCS"),
    "ja_JP.EUC-JP": ("ja_JP", "EUC-JP"),
}


@pytest.fixture(scope="module")
def locpath(tmp_path_factory):
    return build_locales(tmp_path_factory.mktemp("locales"), LOCALES)


def locale_env(locpath, name):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOCPATH": locpath, "LC_ALL": name}
    # Prove the locale took: the interpreter's own codec must be the legacy one.
    codec = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                           env=env, capture_output=True, text=True).stdout.strip()
    assert codec not in ("utf-8", "ascii"), (name, codec)
    return env


def run_bytes(argv, env, cwd=None):
    argv = [command(argv[0]).encode(), *argv[1:]]
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=30)


# Bytes that each locale's codec round-trips differently from the C library.
ARGS = {
    "zh_HK.BIG5HKSCS": [b"\xa2\x7e", b"a\xa2\x7eb", b"\x80", b"\xff\xfe", "é".encode()],
    "ja_JP.EUC-JP": [b"\x80", b"\x8e\xa1", b"\xa1\xa1", b"\xff", b"\x8f\xa2\xaf"],
}
CASES = [(name, arg) for name, args in ARGS.items() for arg in args]


@pytest.mark.parametrize("name,arg", CASES, ids=[f"{n}-{a.hex()}" for n, a in CASES])
def test_next_program_gets_the_argument_bytes(locpath, name, arg):
    env = locale_env(locpath, name)
    proc = run_bytes(["chainload", "fdmove", "-c", "5", "2", "/usr/bin/printf", b"%s", arg], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == arg


# Python's UTF-8 mode (PYTHONUTF8=1, or the C locale): argv is taken from
# sys.argv, not read back from /proc/self/cmdline. Bytes that are not UTF-8,
# UTF-8 for a surrogate, an overlong "/", a code point beyond U+10FFFF.
UTF8_MODE_ARGS = [b"\x80", b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80",
                  b"a\xe9b", "é€😀".encode()]


@pytest.mark.parametrize("mode", [{"PYTHONUTF8": "1", "LANG": "C.UTF-8"}, {"LC_ALL": "C"}],
                         ids=["PYTHONUTF8", "C-locale"])
@pytest.mark.parametrize("arg", UTF8_MODE_ARGS, ids=[a.hex() for a in UTF8_MODE_ARGS])
def test_utf8_mode_passes_the_argument_bytes(mode, arg):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **mode}
    proc = run_bytes(["chainload", "fdmove", "-c", "5", "2", "/usr/bin/printf", b"%s|", arg,
                      b"x" + arg], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == arg + b"|x" + arg + b"|"


def test_utf8_mode_does_not_read_proc_cmdline():
    """sys.argv is exact in UTF-8 mode: /proc/self/cmdline (~30 us: the
    kernel copies it out of our own memory) is left unread."""
    code = ("import sys; from chainload import boundary; read = [];"
            "boundary._read = lambda path: read.append(path) or b'python\\0a\\x80b\\0';"
            "argv = boundary.start_argv(['prog', 'a\\udc80b']);"
            " print(read, argv == ['prog', 'a\\udc80b'])")
    for utf8, expected in (("1", "[] True"), ("0", "['/proc/self/cmdline'] True")):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={"PYTHONUTF8": utf8, "LANG": "C.UTF-8"}, cwd="/")
        assert proc.stdout.strip() == expected, proc.stderr


@pytest.mark.parametrize("name", LOCALES)
def test_single_command_form_passes_bytes_too(locpath, name):
    env = locale_env(locpath, name)
    arg = ARGS[name][0]
    proc = run_bytes(["fdmove", "-c", "5", "2", b"/usr/bin/printf", b"%s|%s", arg, arg], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == arg + b"|" + arg


@pytest.mark.parametrize("name", LOCALES)
def test_socket_is_bound_under_the_exact_name(locpath, name, tmp_path):
    env = locale_env(locpath, name)
    sock = ARGS[name][0] + b".sock"
    proc = run_bytes(["listen-seqpacket", sock, "/bin/sh", "-c", 'ls -b "$0"', "."],
                     env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Removed by nobody (the chain exec'd), and bound under exactly these bytes.
    assert os.listdir(bytes(tmp_path)) == [sock]


@pytest.mark.parametrize("name", LOCALES)
def test_a_message_quotes_the_path_bytes(locpath, name, tmp_path):
    env = locale_env(locpath, name)
    arg = ARGS[name][0]
    proc = run_bytes(["listen-seqpacket", b"nodir/" + arg, "true"], env, cwd=tmp_path)
    assert proc.returncode == 111
    assert proc.stdout == b""
    line = proc.stderr.splitlines()[0]
    assert line.startswith(b"listen-seqpacket: FATAL: nodir/")
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize("name", LOCALES)
def test_environment_bytes_pass_on(locpath, name):
    env = {k.encode(): v.encode() for k, v in locale_env(locpath, name).items()}
    env[b"ODD"] = ARGS[name][0] + b"\xff"
    proc = run_bytes(["chainload", "fdmove", "0", "0", "/bin/cat", "/proc/self/environ"], env)
    assert proc.returncode == 0, proc.stderr
    assert b"ODD=" + env[b"ODD"] in proc.stdout.split(b"\0")


# --- environment entries os.execve cannot pass --------------------------------------

def exec_raw(argv, environment):
    """Run ARGV with ENVIRONMENT (a list of raw entries) exactly, as a C
    parent could; returns the CompletedProcess."""
    code = (
        "import ctypes, sys, json\n"
        "a, e = json.loads(sys.argv[1])\n"
        "v = lambda xs: (ctypes.c_char_p * (len(xs) + 1))(*[x.encode('latin-1') for x in xs], None)\n"
        "ctypes.CDLL(None).execve(a[0].encode('latin-1'), v(a), v(e))\n"
        "sys.exit(99)\n"
    )
    import json

    spec = json.dumps([[a.decode("latin-1") for a in argv],
                       [e.decode("latin-1") for e in environment]])
    return subprocess.run([sys.executable, "-c", code, spec], capture_output=True, timeout=30)


def environ_of(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(b"\0")[:-1]


def test_empty_name_and_no_equals_entries_pass_on():
    cat = [command("chainload").encode(), b"fdmove", b"0", b"0", b"/bin/cat", b"/proc/self/environ"]
    env = [b"=x", b"A=1", b"NOEQUALS", b"B=\xff"]
    assert environ_of(exec_raw(cat, env)) == env


def test_env_i_with_an_empty_name():
    # The case from the issue, with env(1) as the parent.
    proc = subprocess.run(["env", "-i", "=x", "A=1", command("fdmove"), "0", "0",
                           "/bin/cat", "/proc/self/environ"], capture_output=True, timeout=30)
    assert environ_of(proc) == [b"=x", b"A=1"]


def test_a_link_that_sets_a_variable_replaces_all_its_entries(tmp_path):
    # LISTEN_FDS appears twice; the listener sets it, so the stale second
    # entry goes; A, which no link touches, keeps both of its entries.
    chain = [command("chainload").encode(), b"listen-seqpacket", b"--systemd-compatibility",
             bytes(tmp_path / "s.sock"), b"/bin/cat", b"/proc/self/environ"]
    env = [b"A=1", b"LISTEN_FDS=7", b"=odd", b"A=2", b"LISTEN_FDS=8"]
    got = environ_of(exec_raw(chain, env))
    assert got[:4] == [b"A=1", b"LISTEN_FDS=1", b"=odd", b"A=2"]
    assert [e for e in got if e.startswith(b"LISTEN_FDS=")] == [b"LISTEN_FDS=1"]
    assert any(e.startswith(b"LISTEN_PID=") for e in got[4:])


def test_odd_entries_survive_a_privilege_drop(tmp_path):
    # ctypes, needed to pass them, is loaded before setuidgid drops privileges.
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    chain = [command("chainload").encode(), b"setuidgid", b"nobody", b"/bin/cat",
             b"/proc/self/environ"]
    env = [b"=x", b"PATH=/usr/bin:/bin"]
    assert environ_of(exec_raw(chain, env)) == env


def test_the_raw_exec_helper_passes_odd_entries():
    # The helper above really passes odd entries (else the tests prove nothing).
    proc = exec_raw([b"/bin/cat", b"/proc/self/environ"], [b"=x", b"Y"])
    assert proc.stdout == b"=x\0Y\0"
