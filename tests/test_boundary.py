"""The process boundary under conditions an attacker or an odd system makes
(issue 22): messages that cannot be written, operands miscounted, PATH
directories that cannot be searched, locales Python has no codec for, a
system without /proc, and resources that run out.

Everything runs the installed commands in a subprocess.
"""

import os
import subprocess

import pytest

from conftest import build_locales, command


def clean_env(**extra):
    """An environment with Python's stdio buffered as it is by default
    (PYTHONUNBUFFERED, set on many CI machines, hides lost-message bugs)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(extra)
    return env


def start(argv, **kw):
    argv = [command(argv[0]), *argv[1:]]
    kw.setdefault("env", clean_env())
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(argv, timeout=30, **kw)


# --- item 14: the status is the documented one whatever happens to the message --

FAILURES = [
    (["fdmove", "-c", "5", "1", "no-such-program-xyzzy"], 127),
    (["umask", "22", "true"], 100),
    (["chdir", "/no/such/dir", "true"], 111),
]


def start_into(argv, where, stream):
    """start(ARGV) with STREAM ("stdout" or "stderr") on /dev/full or on a
    pipe whose reader is gone."""
    if where == "dev-full":
        with open("/dev/full", "wb") as f:
            return start(argv, **{stream: f})
    r, w = os.pipe()
    os.close(r)
    try:
        return start(argv, **{stream: w})
    finally:
        os.close(w)


@pytest.mark.parametrize("argv,status", FAILURES, ids=[a[0] for a, _ in FAILURES])
@pytest.mark.parametrize("where", ["dev-full", "closed-pipe"])
def test_unwritable_stderr_keeps_the_status(argv, status, where):
    proc = start_into(argv, where, "stderr")
    assert proc.returncode == status


def test_stderr_closed_by_a_link_keeps_the_status():
    # fdmove 5 2 moves stderr away: the message has nowhere to go.
    proc = start(["fdmove", "5", "2", "no-such-program-xyzzy"])
    assert proc.returncode == 127
    assert proc.stderr == b""


@pytest.mark.parametrize("argv", [["chainload", "--help"], ["fdmove", "--help"],
                                  ["chainload", "--version"]])
@pytest.mark.parametrize("where", ["dev-full", "closed-pipe"])
def test_help_to_an_unwritable_stdout_is_status_0_and_silent(argv, where):
    proc = start_into(argv, where, "stdout")
    assert proc.returncode == 0
    assert proc.stderr == b""


# --- items 3, 4 and 17: the PATH search ---------------------------------------------

def test_an_option_after_the_operands_says_where_options_go(tmp_path):
    proc = start(["listen-stream", str(tmp_path / "s"), "--mode", "0666", "true"])
    assert proc.returncode == 127
    assert proc.stderr.decode().splitlines() == [
        "listen-stream: FATAL: --mode: No such file or directory "
        "(taken as the next program: options go before the operands)"]
    assert not (tmp_path / "s").exists()  # the failed exec undid the socket


def test_a_program_not_found_without_a_dash_has_no_hint():
    proc = start(["fdmove", "-c", "5", "1", "no-such-program-xyzzy"])
    assert proc.stderr.decode().splitlines() == [
        "fdmove: FATAL: no-such-program-xyzzy: No such file or directory"]


def test_a_path_directory_that_cannot_be_searched_is_named(world_tmp):
    """Found nowhere else: 126 as execvp(3) (the program may be in there),
    and the message names the directory, not the program, as denied."""
    locked = world_tmp / "locked"
    locked.mkdir()
    env = clean_env(PATH=f"{locked}:/usr/bin:/bin")
    if os.geteuid() == 0:  # root searches everything: drop to nobody first
        locked.chmod(0o700)
        argv = ["setuidgid", "nobody", "no-such-daemon-xyzzy"]
    else:
        locked.chmod(0o000)
        argv = ["fdmove", "-c", "5", "1", "no-such-daemon-xyzzy"]
    try:
        proc = start(argv, env=env)
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 126, proc.stderr
    assert proc.stderr.decode().splitlines() == [
        f"{argv[0]}: FATAL: no-such-daemon-xyzzy: Not found in the directories of PATH this "
        f"user can search; {locked}: Permission denied"]


def test_a_path_directory_that_cannot_be_searched_does_not_hide_a_later_one(world_tmp):
    locked = world_tmp / "locked"
    locked.mkdir()
    env = clean_env(PATH=f"{locked}:/usr/bin:/bin")
    argv = (["setuidgid", "nobody", "true"] if os.geteuid() == 0
            else ["fdmove", "-c", "5", "1", "true"])
    locked.chmod(0o700 if os.geteuid() == 0 else 0)
    try:
        proc = start(argv, env=env)
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 0, proc.stderr


def test_a_path_element_of_path_max_bytes_is_passed_over(tmp_path):
    """glibc's execvp(3) skips an element of PATH_MAX (4096) bytes or more;
    it used to end the search with ENAMETOOLONG (126)."""
    (tmp_path / "bin").mkdir()
    prog = tmp_path / "bin" / "say-hi"
    prog.write_text("#!/bin/sh\necho hi\n")
    prog.chmod(0o755)
    for length in (4096, 5000):
        long = "/" + "d" * (length - 1)
        proc = start(["fdmove", "-c", "5", "1", "say-hi"],
                     env=clean_env(PATH=f"{long}:{tmp_path / 'bin'}"))
        assert (proc.returncode, proc.stdout) == (0, b"hi\n"), proc.stderr


# --- item 2: miscounted operands -------------------------------------------------

MISCOUNTED = [
    (["listen-tcp", "8090", "prog"],
     "listen-tcp: FATAL: Missing next program, or operand SERVICE "
     "(got HOST=8090, and prog as SERVICE)."),
    (["chainload", "tcp-socket-listen", "--", "8090", "prog"],
     "tcp-socket-listen: FATAL: Missing next program, or operand SERVICE "
     "(got HOST=8090, and prog as SERVICE)."),
    (["fdmove", "3", "prog"],
     "fdmove: FATAL: Missing next program, or operand FROM (got TO=3, and prog as FROM)."),
    (["chdir", "/"], "chdir: FATAL: Missing next program, or operand DIR (got / as DIR)."),
    (["setenv", "FOO=bar", "prog"],
     "setenv: FATAL: FOO=bar: Not a valid variable name; write setenv FOO bar"),
    (["setenv", "FOO=bar"],
     "setenv: FATAL: FOO=bar: Not a valid variable name; write setenv FOO bar"),
    (["setenv", "FOO=bar", "prog", "arg"],
     "setenv: FATAL: FOO=bar: Not a valid variable name; write setenv FOO bar"),
    (["softlimit", "-o", "5"], "softlimit: FATAL: Missing next program."),
]


@pytest.mark.parametrize("argv,line", MISCOUNTED, ids=[" ".join(a) for a, _ in MISCOUNTED])
def test_miscounted_operands_say_what_each_operand_took(argv, line):
    proc = start(argv)
    assert proc.returncode == 100
    lines = proc.stderr.decode().splitlines()
    assert lines[0] == line
    assert lines[1].startswith("Usage:")


def test_every_command_names_its_operands_when_one_word_is_short():
    """Generic, in the adapter: every command of the table (and any added
    later) whose usage has operands before <next-prog> names them."""
    from chainload import chain, core

    for name, (module, _) in chain.COMMANDS.items():
        mod = chain.load(name)
        compiled = core._compile(mod.USAGE, getattr(mod, "PARSED", None))
        cut = compiled[2]
        if cut is None or not cut[1]:
            continue
        words = [f"w{i}" for i in range(cut[1])]
        argv = [name, *words]
        # the words must be acceptable to docopt as operands; a command's
        # own hint (setenv) may speak first
        proc = start(["chainload", *argv])
        line = proc.stderr.decode().splitlines()[0]
        assert proc.returncode == 100, line
        assert f"w{cut[1] - 1} as " in line or "write " in line, line


# --- item 17: resources that run out ------------------------------------------------

RAW_EXEC = """
import ctypes, resource, sys
limit = int(sys.argv[1])
argv = [a.encode() for a in sys.argv[2:]]
v = lambda xs: (ctypes.c_char_p * (len(xs) + 1))(*xs, None)
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
ctypes.CDLL(None).execve(argv[0], v(argv), v([b"NOEQUALS", b"A=1", b"PATH=/usr/bin:/bin"]))
sys.exit(99)
"""


@pytest.mark.forked
def test_running_out_of_memory_while_reporting_it_is_still_one_line(tmp_path, monkeypatch):
    """A MemoryError raised while guarded() reports one (seen once under a
    tiny RLIMIT_AS, with Debian's python3: the handler's own formatting ran
    out) ends in one FATAL line and 111, after the clean-up; it used to
    escape main() as a traceback."""
    import os

    from chainload import chain, core

    def out_of_memory(*args):
        raise MemoryError

    made = tmp_path / "made"
    made.touch()
    core.on_abort(os.unlink, str(made))
    monkeypatch.setattr(chain, "load", out_of_memory)
    monkeypatch.setattr(chain, "_fatal", out_of_memory)
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)
    try:
        status = chain.main(["fdmove", "1", "1", "/bin/true"])
    finally:
        os.dup2(saved, 2)
        os.close(write)
    assert status == 111
    assert os.read(read, 4096) == b"fdmove: FATAL: Cannot allocate memory\n"
    assert not made.exists()


def test_a_tiny_address_space_never_gives_a_traceback_from_chainload():
    """Swept through the sizes at which the interpreter starts but chainload
    runs out: reading the environment (an entry without "=" needs ctypes)
    and running the links must end in one FATAL line, never a traceback
    from chainload's own code nor "Internal error: MemoryError:" with no
    text. (Below that the interpreter itself cannot start: not ours.)"""
    import sys

    reached = 0
    for limit in range(8_000_000, 26_000_000, 500_000):
        try:
            proc = subprocess.run([sys.executable, "-c", RAW_EXEC, str(limit),
                                   command("chainload"), "fdmove", "1", "1", "umask", "022",
                                   "/bin/true"], capture_output=True, timeout=5)
        except subprocess.TimeoutExpired:  # the interpreter's own start-up can hang so
            continue
        err = proc.stderr.decode(errors="replace")
        for own in ("chain.py", "boundary.py", "core.py"):
            assert f"chainload/{own}" not in err, (limit, err)
        assert "Internal error: MemoryError" not in err, (limit, err)
        if ": FATAL: " in err:
            reached += 1
            assert proc.returncode == 111, (limit, err)
    assert reached, "no limit in the sweep reached chainload's code"


def test_out_of_descriptors_the_link_that_cannot_load_says_so():
    import resource

    limit = 16
    fill = [w for fd in range(3, limit) for w in ("fdmove", "-c", str(fd), "1")]

    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proc = start(["chainload", *fill, "umask", "022", "/bin/true"], preexec_fn=low)
    assert proc.returncode == 111
    assert proc.stderr.decode().splitlines() == [
        "umask: FATAL: Cannot load the command: Too many open files"]


def test_envdir_reads_only_the_first_line_of_a_huge_file(tmp_path):
    """A 1 GiB sparse file after its first line: under a 200 MB address
    space envdir still reads it (it used to read all of it, which took
    30 s and 5 GiB)."""
    import resource

    env = tmp_path / "env"
    env.mkdir()
    with open(env / "BIG", "wb") as f:
        f.write(b"first line\n")
        f.truncate(2**30)

    def small():
        resource.setrlimit(resource.RLIMIT_AS, (200_000_000, resource.RLIM_INFINITY))

    proc = start(["envdir", str(env), "/usr/bin/printenv", "BIG"], preexec_fn=small)
    assert (proc.returncode, proc.stdout) == (0, b"first line\n"), proc.stderr


def test_a_memory_error_names_what_ran_out(tmp_path):
    """envdir -f must read the whole file: under a small address space that
    is "Cannot allocate memory", not an empty "Internal error"."""
    import resource

    env = tmp_path / "env"
    env.mkdir()
    with open(env / "BIG", "wb") as f:
        f.truncate(2**30)
        f.write(b"x")

    def small():
        resource.setrlimit(resource.RLIMIT_AS, (200_000_000, resource.RLIM_INFINITY))

    proc = start(["envdir", "-f", str(env), "/bin/true"], preexec_fn=small)
    assert proc.returncode == 111
    assert proc.stderr.decode().splitlines() == ["envdir: FATAL: Cannot allocate memory"]
    # The same limit set by a link of the chain.
    proc = start(["chainload", "softlimit", "-a", "200000000", "envdir", "-f", str(env),
                  "/bin/true"])
    assert proc.returncode == 111
    assert proc.stderr.decode().splitlines() == ["envdir: FATAL: Cannot allocate memory"]


@pytest.mark.parametrize("word", ["0" * 41 + "22", "0x" + "0" * 60 + "12", "0" * 100 + "7"])
def test_leading_zeros_do_not_make_a_number_out_of_range(word):
    proc = start(["umask", word, "sh", "-c", "umask"])
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout, 8) == (int(word, 16) if word.startswith("0x") else int(word, 8))


# --- item 16: locales whose charset Python has no codec for ---------------------------

NO_CODEC = {"hy_AM.ARMSCII-8": ("hy_AM", "ARMSCII-8"), "zh_TW.EUC-TW": ("zh_TW", "EUC-TW")}


@pytest.fixture(scope="module")
def no_codec_locales(tmp_path_factory):
    """LOCPATH holding the locales, built with localedef(1)."""
    return build_locales(tmp_path_factory.mktemp("locales"), NO_CODEC)


def no_codec_environment(locpath, name):
    """The environment as raw entries, proved to stop a plain Python."""
    import sys

    env = {b"PATH": b"/usr/bin:/bin", b"LOCPATH": locpath.encode(), b"LC_ALL": name.encode(),
           b"ODD": b"\xa2\x7e\x80\xff"}
    plain = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True)
    assert plain.returncode != 0 and b"Fatal Python error" in plain.stderr, plain
    return env


def check_passes_bytes_in(launcher, env):
    """LAUNCHER (a path, as bytes) runs "fdmove 0 0 PROG" in ENV: PROG gets
    the argument bytes and exactly the environment ENV."""
    link = [launcher] if launcher.endswith(b"/fdmove") else [launcher, b"fdmove"]
    link += [b"0", b"0"]
    arg = b"\xa2\x7e\x80\xff\xe9"
    proc = subprocess.run([*link, b"/usr/bin/printf", b"%s", arg],
                          env=env, capture_output=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (0, arg), proc.stderr[-500:]
    proc = subprocess.run([*link, b"/bin/cat", b"/proc/self/environ"],
                          env=env, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.split(b"\0")[:-1] == [k + b"=" + v for k, v in env.items()]


@pytest.mark.parametrize("name", NO_CODEC)
def test_the_console_scripts_start_where_python_has_no_codec(no_codec_locales, name):
    env = no_codec_environment(no_codec_locales, name)
    check_passes_bytes_in(command("fdmove").encode(), env)
    check_passes_bytes_in(command("chainload").encode(), env)


# --- item 15: without /proc ---------------------------------------------------------

NO_PROC = """
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.mount(b"none", b"/proc", b"tmpfs", 0, None) != 0:
    sys.exit(77)
a, e = json.loads(sys.argv[1])
v = lambda xs: (ctypes.c_char_p * (len(xs) + 1))(*[x.encode("latin-1") for x in xs], None)
libc.execve(a[0].encode("latin-1"), v(a), v(e))
sys.exit(99)
"""


def without_proc(argv, environment):
    """Run ARGV (bytes) with ENVIRONMENT (raw entries) exactly, in a mount
    namespace whose /proc is an empty tmpfs, as in a bare chroot."""
    import json
    import shutil
    import sys

    if os.geteuid() != 0:
        pytest.skip("needs root to make a mount namespace without /proc")
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed (Debian: util-linux)")
    spec = json.dumps([[a.decode("latin-1") for a in argv],
                       [e.decode("latin-1") for e in environment]])
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c",
                           NO_PROC, spec], capture_output=True, timeout=30,
                          cwd="/")  # python -m must not find the checkout's package
    if proc.returncode == 77:
        pytest.skip("cannot mount a tmpfs over /proc here (no CAP_SYS_ADMIN?)")
    return proc


def test_the_namespace_really_has_no_proc():
    proc = without_proc([b"/bin/ls", b"/proc/self"], [b"PATH=/usr/bin:/bin"])
    assert proc.returncode != 0 and b"No such file" in proc.stderr


def env0(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(b"\0")[:-1]


@pytest.mark.parametrize("python_m", [False, True], ids=["console-script", "python-m"])
def test_without_proc_the_environment_passes_on_exactly(python_m):
    """Entries with an empty name or without "=", a repeated name, and no
    LC_CTYPE added by Python's locale coercion (the C locale)."""
    import sys

    start = ([sys.executable.encode(), b"-m", b"chainload"] if python_m
             else [command("chainload").encode()])
    environment = [b"=x", b"A=1", b"NOEQUALS", b"LANG=C", b"A=2", b"B=\xff\xa2\x7e"]
    got = env0(without_proc([*start, b"fdmove", b"0", b"0", b"/usr/bin/env", b"-0"],
                            environment))
    assert got == environment


def test_without_proc_envdir_lists_its_directory(tmp_path):
    (tmp_path / "FOO").write_bytes(b"bar\n")
    with open(bytes(tmp_path) + b"/N\xe9", "wb") as f:  # not UTF-8
        f.write(b"v\n")
    proc = without_proc([command("envdir").encode(), bytes(tmp_path), b"/usr/bin/env", b"-0"],
                        [b"PATH=/usr/bin:/bin"])
    assert set(env0(proc)) == {b"PATH=/usr/bin:/bin", b"FOO=bar", b"N\xe9=v"}


@pytest.fixture(scope="module")
def big5(tmp_path_factory):
    return build_locales(tmp_path_factory.mktemp("locales"),
                         {"zh_HK.BIG5HKSCS": ("zh_HK", "BIG5-HKSCS")})


@pytest.mark.parametrize("python_m", [False, True], ids=["console-script", "python-m"])
def test_without_proc_argument_bytes_pass_on_in_big5hkscs(big5, python_m):
    import sys

    start = ([sys.executable.encode(), b"-m", b"chainload"] if python_m
             else [command("chainload").encode()])
    environment = [b"PATH=/usr/bin:/bin", b"LOCPATH=" + big5.encode(),
                   b"LC_ALL=zh_HK.BIG5HKSCS"]
    for arg in (b"\xa2\x7e", b"a\xa2\x7eb", b"\x80", b"\xff\xfe"):
        proc = without_proc([*start, b"fdmove", b"0", b"0", b"/usr/bin/printf", b"%s", arg],
                            environment)
        assert (proc.returncode, proc.stdout) == (0, arg), proc.stderr


@pytest.mark.forked
def test_where_no_way_is_left_the_environment_says_so_naming_proc(monkeypatch):
    """If the exec strings could not be read either, an LC_CTYPE that
    Python's coercion may have set is not passed on as if it were given."""
    from chainload import boundary, core

    monkeypatch.setattr(boundary, "_read", lambda path: None)
    monkeypatch.setattr(boundary, "_exec_strings", lambda: None)
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.setenv("LC_CTYPE", "C.UTF-8")
    with pytest.raises(core.Fail) as e:
        boundary.start_environ()
    assert e.value.status == 111 and "/proc" in e.value.message
    monkeypatch.setenv("LC_CTYPE", "de_DE.UTF-8")  # not what coercion sets: exact
    assert boundary.start_environ()["LC_CTYPE"] == "de_DE.UTF-8"


@pytest.mark.forked
def test_where_no_way_is_left_the_arguments_say_so_naming_proc(monkeypatch):
    import sys

    from chainload import boundary, core

    if sys.flags.utf8_mode:
        pytest.skip("this interpreter is in UTF-8 mode: sys.argv is exact")
    monkeypatch.setattr(boundary, "_read", lambda path: None)
    monkeypatch.setattr(boundary, "_exec_strings", lambda: None)
    assert boundary.start_argv(["prog", "ascii", "only"]) == ["prog", "ascii", "only"]
    with pytest.raises(core.Fail) as e:
        boundary.start_argv(["prog", "caf\xe9"])
    assert e.value.status == 111 and "/proc" in e.value.message
