"""Property-based fuzzing of every command line (issue 7, part 1).

Command lines are built from the real option names (read from the USAGE
texts, so a new option is fuzzed without touching this file) mixed with odd
values: empty strings, "-", "--", huge and negative numbers, "0x", "09",
non-ASCII and lone surrogates (as os.fsdecode makes them from undecodable
bytes), "@", overlong paths and paths inside the example's temporary
directory.

Each example runs chainload.chain.main() in-process in a forked child whose
cwd is a fresh temporary directory, with os.execve (the one exec, in
chainload.boundary.execute) replaced by a recorder that fails the way execve
would (ENOENT, EACCES) or records the argv. The child reports through a pipe
and leaves with os._exit, so dup2, setuid and umask never touch pytest.

Properties:
  * the run reaches the final exec, or main() returns a status;
  * no exception escapes main(), and stderr never has "Traceback" or
    "Internal error";
  * the status is 100, 111, 126 or 127, or 0 only after --help/--version;
  * a failure writes exactly one line with FATAL, the first one, starting
    with "PROG: FATAL: " for a command of the chain;
  * the exec'd argv is the tail of the command line, unchanged;
  * nothing appears outside the example's directory, and everything that was
    in it is still there, same type, mode, owner and contents (a listener may
    only add sockets; one that fails adds nothing).

Fixed seed (derandomize) and few examples by default, so `make test` stays
fast; CHAINLOAD_FUZZ_EXAMPLES raises the count (`make fuzz` sets 5000).
"""

import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
import traceback

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import chainload.chain
from conftest import snapshot
import chainload.core
from chainload.commands import fdmove as fdmove_mod
from chainload.commands import local_seqpacket_socket_listen as listen_mod
from chainload.commands import setuidgid as setuidgid_mod

EXAMPLES = int(os.environ.get("CHAINLOAD_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)

LISTENERS = ("local-seqpacket-socket-listen", "listen-seqpacket",
             "local-stream-socket-listen", "listen-stream",
             "local-datagram-socket-listen", "listen-datagram")
# tcp- and udp-socket-listen are not fuzzed: a random host would be looked
# up in the DNS, or ("0", "*", "::") bind every address; tests may only use
# the loopback addresses. Their refusals are rows of test_matrix.py.
IP_LISTENERS = ("tcp-socket-listen", "listen-tcp", "udp-socket-listen", "listen-udp")
# foreground and if: "prog... ; next-prog..." (their child runs main's
# chain in a grandchild of the example, whose exec the recorder also
# stops). Fuzzed as the first command only, their prog and next-prog made
# of the other builtins. The accept servers loop forever once they have a
# listener: only their refusals are fuzzed (fd 3 is never one here).
SEQUENCES = ("foreground", "if")
ACCEPTERS = ("tcp-socket-accept", "accept-tcp", "local-stream-socket-accept", "accept-stream",
             "local-seqpacket-socket-accept", "accept-seqpacket")
BUILTINS = tuple(n for n in (*chainload.chain.COMMANDS, *chainload.chain.ALIASES)
                 if n not in IP_LISTENERS and n not in SEQUENCES and n not in ACCEPTERS)
STATUSES = {chainload.core.EXIT_USAGE, chainload.core.EXIT_SYSTEM,
            chainload.core.EXIT_CANNOT_EXECUTE, chainload.core.EXIT_NOT_FOUND}

# The child's own descriptors live here, out of reach of the fuzzed numbers
# (fdmove, LISTEN_FDS), which never name 700..799.
RESULT_FD, OUT_FD, ERR_FD = 771, 772, 773
CONTROLS = re.compile("[\x00-\x1f\x7f]")
T = "\0T\0"  # placeholder for the example's directory (argv never has NUL)


# --- options, read from the USAGE texts ------------------------------------

def options_of(usage):
    """[(names, takes_argument)] from a docopt Options: section."""
    found = []
    for line in usage.split("Options:", 1)[1].splitlines():
        m = re.match(r"\s+((?:-\w, )?--[\w-]+|-\w)(?:[ =](\w+))?\s{2,}", line)
        if m:
            names = [n.strip() for n in m.group(1).split(",")]
            found.append((names, m.group(2) is not None))
    assert found, usage
    return found


UMBRELLA_OPTIONS = options_of(chainload.chain._umbrella_usage())
COMMAND_OPTIONS = {
    "local-seqpacket-socket-listen": options_of(listen_mod.USAGE),
    "fdmove": options_of(fdmove_mod.USAGE),
    "setuidgid": options_of(setuidgid_mod.USAGE),
}
COMMAND_OPTIONS["listen-seqpacket"] = COMMAND_OPTIONS["local-seqpacket-socket-listen"]
for _name in (*BUILTINS, *SEQUENCES, *ACCEPTERS):  # every other one, from its usage
    if _name not in COMMAND_OPTIONS:
        COMMAND_OPTIONS[_name] = options_of(chainload.chain.load(_name).USAGE)


def test_options_are_read_from_usage():
    flat = {n for opts in COMMAND_OPTIONS.values() for names, _ in opts for n in names}
    for name in ("--uid", "-m", "--fd-name", "--systemd-compatibility", "--copy",
                 "--primary-group", "-s", "--help"):
        assert name in flat
    assert (["--version"], False) in UMBRELLA_OPTIONS


# --- odd values ---------------------------------------------------------------

NUMBERS = ["0", "1", "2", "3", "7", "8", "9", "10", "00", "08", "09", "0x", "0X",
           "0x0", "0xF", "0xg", "0777", "0666", "07777", "010000", "0999",
           "0x10000", "-0", "-1", "+1", "+", "-", "1e3", "1.0", " 1", "1 ", "1_0",
           "\u0661", "\uff11", "255", "256", "1023", "1024", "4096", "65534",
           "65535", "4294967294", "4294967295", "4294967296", "4294967297",
           "2147483646", "2147483647", "2147483648", "-2147483648",
           "99999999999", "9" * 40, "9" * 41, "9" * 5000, "0x" + "f" * 50, "0" * 60]
WORDS = ["", "-", "--", "---", "@", "@x", "@" + "a" * 107, "@" + "a" * 108, "=",
         ":", "a:b", "a\x01", "\x7f", "x" * 255, "x" * 256, "nobody", "root",
         "nogroup", "no-such-user-chainload", "#0", "0", "\n", "a\nb",
         "caf\u00e9", "\u00e9t\u00e9", "\U0001f600", "\udcff", "a\udc80b",
         "\udcc3\udca9", "-h", "--help", "--version", "-x", "--bogus", "--uid",
         "-c", "-ch", "--c", "--co", "--s", "--u", "--p", "-u0", "-m0600",
         "--mode=0600", "--uid=", "--fd-name=", "true"]
PATHS = ["sock", "s", "./sock", "dir/sock", "nodir/sock", "file", "link",
         "dangling", "dir", "fifo", "stale.sock", "dir/", "file/sock",
         "link/sock", "a" * 107, "a" * 108, "a" * 4096, "d/" * 60 + "s",
         T + "/sock", T + "/file", T + "/stale.sock", T + "/" + "b" * 110,
         "/nonexistent-chainload/sock", "/proc/nonexistent/sock",
         "\udcffsock", "caf\u00e9.sock", "@", "@abstract", "@\udcff"]
PROGRAMS = ["true", "/bin/true", "./file", "./dir", "dir", "file",
            "no-such-program-chainload", "/nonexistent-chainload/prog", "",
            "-", "--", "@", "\udcff", "exe", "./exe", T + "/exe", "sh"]

odd_text = st.one_of(
    st.sampled_from(NUMBERS + WORDS + PATHS),
    # What os.fsdecode makes of arbitrary bytes (never a NUL in argv).
    st.binary(max_size=12).map(lambda b: os.fsdecode(b.replace(b"\0", b"x"))),
    st.text(max_size=8).map(lambda s: s.replace("\0", "x")),
    st.integers(-2**70, 2**70).map(str),
)
a_path = st.one_of(st.sampled_from(PATHS + ["/", ".", "..", "/proc", "/dev"]), odd_text)
a_number = st.one_of(st.sampled_from(NUMBERS), odd_text)
# The operands of the process-state commands (chdir never leaves the
# example's directory: see child()).
STATE_OPERANDS = {"envdir": (a_path,), "chdir": (a_path,), "cd": (a_path,),
                  "umask": (a_number,), "setenv": (odd_text, odd_text),
                  "unsetenv": (odd_text,), "softlimit": (), "chainload-setsid": (),
                  "setsid": (), "envfile": (a_path,), "substitute": (), "clearenv": (),
                  "hardlimit": (), "install-dir": (a_path,)}
# Commands that may make or change files in the example's directory (only
# what their operands name; see check()).
MAKERS = ("install-dir", "fdredir")
small_fd = st.sampled_from(["0", "1", "2", "3", "4", "5", "9", "63", "64"])


@st.composite
def option_words(draw, options, values):
    """Some of OPTIONS, each with a value (attached or not) when it takes one."""
    words = []
    for _ in range(draw(st.integers(0, 4))):
        names, takes = draw(st.sampled_from(options))
        name = draw(st.sampled_from(names))
        if takes:
            value = draw(values)
            how = draw(st.sampled_from(["sep", "sep", "attached", "missing"]))
            if how == "sep":
                words += [name, value]
            elif how == "attached":
                words.append(f"{name}={value}" if name.startswith("--") else name + value)
            else:
                words.append(name)
        else:
            words.append(name)
    return words


def _not_a_small_number(text):
    """A softlimit value that cannot starve the forked child: not a number
    (a usage error) or at least 2**32 (above any limit it needs)."""
    try:
        return chainload.core.parse_number(text, "n", 2**63 - 1) >= 2**32
    except chainload.core.Fail:
        return True


def values_for(command):
    if command in ("softlimit", "hardlimit"):
        return st.one_of(st.sampled_from(["=", "==", "", "1k", "-1", "0x", "unlimited",
                                          "9223372036854775807", "9223372036854775808",
                                          "0x7fffffffffffffff", "99999999999"]),
                         odd_text.filter(_not_a_small_number))
    if command == "install-dir":
        return st.one_of(odd_text, st.sampled_from(["0700", "0755", "755", "02775", "07777",
                                                    "010000", "0x1ff", "nobody", "root",
                                                    "nogroup", "0", "65534", "4294967295"]))
    if command in LISTENERS:
        return st.one_of(odd_text, st.sampled_from(["0", "0600", "0660", "0666", "04755",
                                                    "65534", "nobody", "nogroup", "root",
                                                    "name", "a:b"]))
    return odd_text


@st.composite
def link(draw, command, depth):
    """One command of a chain, its options, operands and the rest of it."""
    words = draw(option_words(COMMAND_OPTIONS[command], values_for(command)))
    if draw(st.integers(0, 5)) == 0:
        words.append("--")
    if command in LISTENERS:
        operands = [draw(st.one_of(st.sampled_from(PATHS), odd_text))]
    elif command == "fdmove":
        number = st.one_of(small_fd, st.sampled_from(NUMBERS), odd_text)
        operands = [draw(number), draw(number)]
    elif command == "adopt-socket":
        operands = [draw(st.one_of(small_fd, st.sampled_from(NUMBERS), odd_text))]
    elif command == "fdredir":
        operands = [draw(st.one_of(small_fd, st.sampled_from(NUMBERS), odd_text)),
                    draw(st.one_of(a_path, st.sampled_from(["out", "dir/out", "new.log"])))]
    elif command in STATE_OPERANDS:
        operands = [draw(kind) for kind in STATE_OPERANDS[command]]
    elif command in SEQUENCES:
        # prog... ; next-prog...: the child is a chain too (the tail below
        # may start with a builtin), and the separator may be missing,
        # doubled (a literal ";") or first.
        operands = [draw(st.one_of(st.sampled_from([";", ";;", ";;;", "true", "false"]),
                                   odd_text)) for _ in range(draw(st.integers(0, 3)))]
        operands += draw(tail(depth + 1))
        operands.append(draw(st.sampled_from([";", ";", ";;", "true"])))
    else:
        operands = [draw(st.one_of(st.sampled_from(["nobody", "root", "daemon",
                                                    "no-such-user-chainload"]),
                                   odd_text))]
    # Sometimes drop an operand, sometimes add a stray word.
    if draw(st.integers(0, 6)) == 0 and operands:
        operands.pop(draw(st.integers(0, len(operands) - 1)))
    if draw(st.integers(0, 6)) == 0:
        operands.insert(draw(st.integers(0, len(operands))), draw(odd_text))
    words += operands
    words += draw(tail(depth))
    return words


@st.composite
def tail(draw, depth):
    """The next program: nothing, a program, or another builtin."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return []
    if kind <= 3 and depth < 3:
        command = draw(st.sampled_from(BUILTINS))
        return [command, *draw(link(command, depth + 1))]
    program = draw(st.one_of(st.sampled_from(PROGRAMS), odd_text)) if kind <= 5 \
        else draw(st.sampled_from(["true", "/bin/true", "exe"]))
    return [program, *draw(st.lists(odd_text, max_size=3))]


@st.composite
def command_line(draw, command):
    if command == "chainload":
        argv0 = draw(st.sampled_from(["chainload", "/usr/bin/chainload", "chainload.py",
                                      "", "python3", "/nonexistent/x"]))
        words = draw(option_words(UMBRELLA_OPTIONS, odd_text))
        if draw(st.booleans()):
            words.append("--")
        if draw(st.integers(0, 7)):
            name = draw(st.one_of(st.sampled_from(BUILTINS), odd_text))
            words += [name, *(draw(link(name, 1)) if name in BUILTINS else draw(tail(1)))]
        argv = [argv0, *words]
    else:
        argv0 = draw(st.sampled_from([command, "/usr/local/bin/" + command,
                                      "./" + command, command + ".py"]))
        argv = [argv0, *draw(link(command, 0))]
    # Occasionally a random mutation anywhere.
    if draw(st.integers(0, 4)) == 0 and len(argv) > 1:
        i = draw(st.integers(1, len(argv) - 1))
        argv[i] = draw(st.one_of(odd_text, st.sampled_from(BUILTINS)))
    return argv


environments = st.fixed_dictionaries({}, optional={
    "LISTEN_FDS": st.sampled_from(["", "0", "1", "2", "-1", "x", "0x1", "\u0661",
                                   "2147483643", "2147483644", "99999999999"]),
    "LISTEN_PID": st.sampled_from(["self", "self", "0", "", "1", "-1", "x"]),
    "LISTEN_FDNAMES": st.sampled_from(["", "a", "a:b", "a::b", ":", "\udcff", "a\x01"]),
    "PATH": st.sampled_from(["", ":", "/nonexistent", "/usr/bin:/bin", T, "."]),
})


# --- running one example in a forked child -------------------------------------

class _Exec(BaseException):
    """Raised by the exec recorder: the chain reached its final exec."""


def fake_execve(path, args, env):
    """execve(2)'s checks and errors, without replacing the process."""
    import errno

    st_ = os.stat(path)  # ENOENT, ENOTDIR, ELOOP, ... as execve gives them
    if stat.S_ISDIR(st_.st_mode) or not os.access(path, os.X_OK) \
            or not st_.st_mode & 0o111 or not stat.S_ISREG(st_.st_mode):
        raise PermissionError(errno.EACCES, "Permission denied")
    raise _Exec([a.decode("utf-8", "surrogateescape") for a in args])


def sandbox(inside):
    """install-dir and fdredir may make, open for writing, chmod and chown
    only inside the example's directory (a fuzzed "/" or "/x" must not
    touch the machine); an open that would wait for a FIFO's other end
    fails as if a signal interrupted it."""
    import errno

    def within(path):
        real = os.path.realpath(path)
        return real == inside or real.startswith(inside + "/")

    def full(path, dir_fd):
        path = os.fsdecode(path)
        if dir_fd is None:
            return os.path.abspath(path)
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)

    def refuse():
        raise PermissionError(errno.EACCES, "Permission denied (fuzz sandbox)")

    real_open, real_mkdir = os.open, os.mkdir
    real_fchmod, real_fchown = os.fchmod, os.fchown
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC

    def open_inside(path, flags, mode=0o777, *, dir_fd=None):
        if isinstance(path, (str, bytes)) and "\0" not in os.fsdecode(path):
            where = full(path, dir_fd)
            if flags & writes and not within(where):
                refuse()
            if not flags & os.O_NONBLOCK:
                try:
                    fifo = stat.S_ISFIFO(os.stat(where).st_mode)
                except OSError:
                    fifo = False
                if fifo:
                    raise InterruptedError(errno.EINTR, "Interrupted system call")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def mkdir_inside(path, mode=0o777, *, dir_fd=None):
        if not within(os.path.dirname(full(path, dir_fd).rstrip("/")) or "/"):
            refuse()
        return real_mkdir(path, mode, dir_fd=dir_fd)

    def descriptor_inside(change):
        def changed(fd, *args):
            if not within(os.readlink(f"/proc/self/fd/{fd}")):
                refuse()
            return change(fd, *args)
        return changed

    os.open, os.mkdir = open_inside, mkdir_inside
    os.fchmod, os.fchown = descriptor_inside(real_fchmod), descriptor_inside(real_fchown)


def child(argv, env, workdir, result_fd, streams, capture):
    """Run main(ARGV) in this (forked) process; report JSON on RESULT_FD.

    STREAMS "stdout-closed" or "stderr-closed" starts the program as Python
    does when that descriptor is closed at start-up: sys.stdout or
    sys.stderr is None.
    """
    report = {}
    try:
        signal.alarm(30)
        # A fuzzed softlimit -t may still reach a small CPU limit.
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        os.chdir(workdir)
        inside = os.getcwd()
        real_chdir = os.chdir

        def chdir_inside(path):
            """chdir, but never out of the example's directory: a later
            listener would make its socket there."""
            here = os.getcwd()
            real_chdir(path)
            if not (os.getcwd() + "/").startswith(inside + "/"):
                real_chdir(here)
                raise PermissionError(13, "Permission denied")

        os.chdir = chdir_inside
        sandbox(inside)
        os.umask(0o022)
        os.environ.clear()
        os.environ.update({k: (str(os.getpid()) if v == "self" else v.replace(T, workdir))
                           for k, v in env.items()})
        os.environ.setdefault("PATH", "/usr/bin:/bin")
        os.environ["LANG"] = "C.UTF-8"
        # The program writes through sys.stdout/sys.stderr: capture those on
        # high descriptors (fdmove may move anything onto 1 and 2).
        os.dup2(capture[0].fileno(), OUT_FD)
        os.dup2(capture[1].fileno(), ERR_FD)
        for f in capture:
            os.close(f.fileno())
        sys.stdout = io.TextIOWrapper(io.FileIO(OUT_FD, "w", closefd=False),
                                      encoding="utf-8", errors="strict", write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(ERR_FD, "w", closefd=False),
                                      encoding="utf-8", errors="backslashreplace",
                                      write_through=True)
        if streams == "stdout-closed":
            sys.stdout = None
        elif streams == "stderr-closed":
            sys.stderr = None
        # A socket on fd 9 (a small_fd), for adopt-socket to take.
        held = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        os.dup2(held.fileno(), 9)
        held.close()
        os.execve = fake_execve
        try:
            status = chainload.chain.main(argv)
            report = {"status": status}
        except _Exec as e:
            report = {"exec": e.args[0]}
        except BaseException:  # noqa: B036  (that is the property under test)
            report = {"escaped": traceback.format_exc()}
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BaseException:  # noqa: B036
        report = {"harness": traceback.format_exc()}
    finally:
        try:
            os.write(result_fd, json.dumps(report, ensure_ascii=True,
                                           default=repr).encode("ascii", "backslashreplace"))
        finally:
            os._exit(0)


def run_forked(argv, env, workdir, streams, capture):
    """main(ARGV) in a forked child; the report, with its stdout and stderr."""
    for f in capture:
        f.seek(0)
        f.truncate()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.dup2(w, RESULT_FD)
            os.close(w)
            child(argv, env, workdir, RESULT_FD, streams, capture)
        finally:
            os._exit(99)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, wstatus = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wstatus) == 0, (argv, wstatus)
    report = json.loads(b"".join(chunks) or b"{}")
    for key, f in zip(("stdout", "stderr"), capture):
        f.seek(0)
        report[key] = f.read().decode("utf-8", "backslashreplace")
    return report


# --- the example's directory -------------------------------------------------------

def populate(d):
    """Things the fuzzed paths may hit; all must survive (sockets may be renewed)."""
    with open(os.path.join(d, "file"), "w") as f:
        f.write("precious\n")
    os.chmod(os.path.join(d, "file"), 0o640)
    with open(os.path.join(d, "exe"), "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(os.path.join(d, "exe"), 0o755)
    os.mkdir(os.path.join(d, "dir"), 0o750)
    os.mkdir(os.path.join(d, "d"), 0o700)
    os.symlink("file", os.path.join(d, "link"))
    os.symlink("nowhere", os.path.join(d, "dangling"))
    os.mkfifo(os.path.join(d, "fifo"), 0o600)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(os.path.join(d, "stale.sock"))
    s.close()


# --- the properties ------------------------------------------------------------------

def check(argv, report, before, after, outside_before, outside_after, workdir, streams):
    argv = [a.replace(T, workdir) for a in argv]
    where = f"argv={argv!r}\nreport={report!r}"
    assert "harness" not in report, where
    assert "escaped" not in report, where
    stderr, stdout = report["stderr"], report["stdout"]
    # envfile warns, one line each, about lines of a file it skips.
    warnings = [ln for ln in stderr.splitlines(True) if ln.startswith("envfile: WARNING: ")]
    assert all(ln.endswith("\n") and not CONTROLS.search(ln[:-1]) for ln in warnings), where
    stderr = "".join(ln for ln in stderr.splitlines(True) if ln not in warnings)
    assert "Traceback" not in stderr, where
    assert "Internal error" not in stderr, where
    assert outside_after == outside_before, where

    # Everything that was there is still there, unchanged; a stale socket
    # may be replaced by a new one, and only sockets may appear. With
    # install-dir or fdredir in the chain, what a word of the command line
    # names may change (mode, owner, contents; never its type), and
    # directories and files may appear, but only if the chain reached its
    # exec (a failure removes what it made) or dropped privileges with
    # setuidgid (after which removing may not be permitted).
    def is_socket(entry):
        return entry[0].startswith("s")  # stat.filemode

    makes = any(w in MAKERS for w in [os.path.basename(argv[0]).removesuffix(".py"), *argv])
    named = set()
    if makes:
        for word in argv[1:]:
            try:
                real = os.path.realpath(os.path.join(workdir, word))
            except ValueError:  # a NUL
                continue
            if real == workdir or real.startswith(workdir + "/"):
                named.add(os.path.relpath(real, workdir))
    for name, entry in before.items():
        if is_socket(entry):
            # A stale socket may be replaced, and the replacement removed
            # again when the chain then fails.
            assert name not in after or is_socket(after[name]), where
            continue
        assert name in after, where
        if name in named:
            assert after[name][0][0] == entry[0][0], where
        else:
            assert after[name] == entry, where
    new = set(after) - set(before)
    kinds = "s-d" if makes and ("exec" in report or "setuidgid" in argv) else "s"
    for name in new:
        assert after[name][0][0] in kinds, where

    if os.path.basename(argv[0]).removesuffix(".py") in SEQUENCES:
        # The child's own messages come first on stderr, and `if` stops
        # with whatever the child's status was: each line is still one of
        # ours, and the parent ends in its exec or in one of its statuses.
        assert all(": FATAL: " in ln or ln.startswith(("Usage:", " ")) or not ln
                   for ln in stderr.splitlines()), where
        if "exec" in report:
            executed = report["exec"]
            assert executed and argv[-len(executed):] == executed, where
        else:
            assert 0 <= report["status"] <= 255, where
        return
    if "exec" in report:
        assert stderr == "", where
        executed = report["exec"]
        assert executed, where
        if "substitute" not in argv:  # which changes the words after it
            assert argv[-len(executed):] == executed, where
        return
    status = report["status"]
    if status == 0:
        assert stderr == "", where
        if streams != "stdout-closed":
            assert stdout.startswith(("Usage:", "chainload ")), where
        assert any(w.startswith("-") for w in argv[1:]), where
        return
    assert status in STATUSES, where
    if streams == "stderr-closed":
        assert stderr == "", where
        return
    assert stderr.endswith("\n"), where
    lines = stderr[:-1].split("\n")
    fatal = [ln for ln in lines if "FATAL" in ln]
    assert len(fatal) == 1, where
    assert lines[0] == fatal[0], where
    # One line: no newline, carriage return or other terminal control from
    # the command line gets into the message unescaped.
    assert not CONTROLS.search(lines[0]), where
    progs = {"chainload", *(os.path.basename(argv[0]).removesuffix(".py"),),
             *(w for w in argv if w in BUILTINS)}
    prog = lines[0].split(": FATAL: ", 1)[0]
    assert ": FATAL: " in lines[0] and prog in progs, where
    assert lines[0].split(": FATAL: ", 1)[1].strip(), where
    if status == chainload.core.EXIT_USAGE:
        assert all(ln.startswith(("Usage:", " ")) for ln in lines[1:]), where
    else:
        assert len(lines) == 1, where
    # A listener that fails leaves nothing behind (when it is the only one).
    named = [os.path.basename(argv[0]).removesuffix(".py"), *argv[1:]]
    if status in (100, 111) and prog in LISTENERS \
            and sum(w in LISTENERS for w in named) == 1:
        assert not new, where


class Workspace:
    """The examples' directory, reused while it stays as populated.

    BASE holds only WORKDIR (the children's cwd), so anything else appearing
    in BASE was created outside. The capture files live elsewhere.
    """

    def __init__(self, top):
        self.base = os.path.join(top, "base")
        self.workdir = os.path.join(self.base, "w")
        os.makedirs(self.workdir, 0o700)
        populate(self.workdir)
        self.before = snapshot(self.workdir)
        self.capture = [open(os.path.join(top, name), "w+b") for name in ("out", "err")]

    def run(self, argv, env, streams="open"):
        workdir = self.workdir
        real_argv = [a.replace(T, workdir) for a in argv]
        report = run_forked(real_argv, env, workdir, streams, self.capture)
        after = snapshot(workdir)
        outside = sorted(os.listdir(self.base))
        try:
            check(argv, report, self.before, after, ["w"], outside, workdir, streams)
        except BaseException:
            self.reset()
            raise
        changed = [name for name, entry in after.items()
                   if not entry[0].startswith("s") and self.before.get(name) != entry]
        if changed:  # install-dir or fdredir made or changed something
            self.reset()
            return
        for name in set(after) - set(self.before):  # new sockets
            os.unlink(os.path.join(workdir, name))
        if set(self.before) - set(after):  # the stale socket went
            self.reset()

    def reset(self):
        """Start again from a freshly populated directory (after a failure)."""
        shutil.rmtree(self.base)
        os.makedirs(self.workdir, 0o700)
        populate(self.workdir)

    def close(self):
        for f in self.capture:
            f.close()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def space(tmp_path):
    ws = Workspace(str(tmp_path))
    yield ws
    ws.close()


def fuzz_one(argv, env, streams="open"):
    """One example in a throw-away workspace (for the fixed cases)."""
    top = tempfile.mkdtemp(prefix="chainload-fuzz-")
    ws = Workspace(top)
    try:
        ws.run(argv, env, streams)
    finally:
        ws.close()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _preimport():
    """Import everything once in the parent so each forked child is quick."""
    import docopt  # noqa: F401

    for name in BUILTINS:
        module = chainload.chain.load(name)
        if hasattr(module, "preload"):
            module.preload()
    chainload.chain.preload([])
    for name in BUILTINS:  # docopt's parsed usage texts, cached in core
        chainload.core.parse_args(chainload.chain.load(name).USAGE, ["--", "0", "0", "0"])
    chainload.core.parse_args(chainload.chain._umbrella_usage(), ["fdmove"])


@pytest.mark.parametrize("command", ["chainload", "local-seqpacket-socket-listen",
                                     "local-stream-socket-listen", "local-datagram-socket-listen",
                                     "fdmove", "setuidgid", "envdir", "umask", "softlimit",
                                     "adopt-socket", "envfile", "substitute", "clearenv",
                                     "userenv", "install-dir", "fdredir", "hardlimit",
                                     *SEQUENCES, "accept-tcp", "local-stream-socket-accept",
                                     "accept-seqpacket"])
def test_fuzz_command_line(command, space):
    @FUZZ
    @given(argv=command_line(command), env=environments,
           streams=st.sampled_from(["open"] * 8 + ["stdout-closed", "stderr-closed"]))
    def prop(argv, env, streams):
        if os.environ.get("CHAINLOAD_FUZZ_NO_NEWLINES"):  # to look past that bug
            assume(not any("\n" in word for word in argv))
        space.run(argv, env, streams)

    prop()


@pytest.mark.parametrize("argv", [
    ["fdmove", "1", "1", "true"],
    ["fdmove", "0", "1"],
    ["listen-seqpacket", "--mode", "0999", "sock", "true"],
    ["listen-seqpacket", "sock", "true"],
    ["listen-seqpacket", "stale.sock", "true"],
    ["listen-seqpacket", "file", "true"],
    ["listen-stream", "stale.sock", "true"],
    ["listen-datagram", "-m", "0600", "sock", "true"],
    ["chainload", "--version"],
    ["chainload", "fdmove", "-h"],
    ["setuidgid", "no-such-user-chainload", "true"],
    ["fdmove", "1", "1", "./file"],
    ["fdmove", "1", "1", "no-such-program-chainload"],
    ["chdir", "dir", "listen-seqpacket", "sock", "true"],
    ["chdir", "..", "listen-seqpacket", "sock", "true"],  # the sandbox refuses: 111
    ["envdir", "/dev", "true"],
    ["chainload", "setsid", "softlimit", "-o", "=", "umask", "077", "true"],
    ["envfile", "file", "true"],  # a warning, then the exec
    ["envfile", "fifo", "true"],  # refused, never opened
    ["envfile", "--ignore-missing", "nodir/x", "true"],
    ["substitute", "$NO_SUCH_VARIABLE_CHAINLOAD"],
    ["chainload", "setenv", "P", "tr${X}ue", "substitute", "${P}"],
    ["clearenv", "-p", "true"],
    ["userenv", "nobody", "true"],
    ["userenv", "no-such-user-chainload", "true"],
    ["install-dir", "-m", "0700", "new/deeper", "true"],
    ["install-dir", "new/deeper", "no-such-program-chainload"],
    ["install-dir", "-m", "0700", "/", "true"],  # the sandbox refuses: 111
    ["install-dir", "--if-missing", "/", "true"],
    ["install-dir", "link", "true"],
    ["fdredir", "-w", "1", "out", "true"],
    ["fdredir", "-w", "1", "file", "true"],
    ["fdredir", "-w", "1", "/nonexistent-chainload/x", "true"],
    ["fdredir", "0", "fifo", "true"],  # would wait: the sandbox interrupts it
    ["fdredir", "-n", "0", "fifo", "true"],
    ["fdredir", "-a", "1", "new.log", "no-such-program-chainload"],
    ["hardlimit", "-o", "=", "-c", "unlimited", "true"],
    ["foreground", "listen-seqpacket", "sock", "true", ";", "true"],
    ["if", "false", ";", "true"],
    ["if", "envdir", "/dev", "true", ";", "true"],
    ["accept-stream", "-c", "0", "true"],
    ["accept-tcp", "true"],
])
def test_harness_sees_each_outcome(argv):
    """The harness itself: exec, each status and the file checks all work."""
    fuzz_one(argv, {})


@pytest.mark.parametrize("streams", ["stdout-closed", "stderr-closed"])
@pytest.mark.parametrize("argv", [
    ["chainload", "--version"],
    ["fdmove", "--help"],
    ["fdmove", "x", "1", "true"],
    ["setuidgid", "no-such-user-chainload", "true"],
])
def test_closed_standard_streams(argv, streams):
    """Started with fd 1 or fd 2 closed: still the documented statuses."""
    fuzz_one(argv, {}, streams)


@pytest.mark.parametrize("word", ["\n", "a\nb", "x\r", "\x1b[2J", "\x7f", "\t"])
def test_fatal_message_stays_one_line(word):
    """Command-line words with newlines or terminal controls do not break
    the one-line FATAL message (nor forge a second one)."""
    fuzz_one(["fdmove", word, "1", "true"], {})
    fuzz_one(["setuidgid", word + "FATAL: forged", "true"], {})
    fuzz_one(["fdmove", "1", "1", word], {})
