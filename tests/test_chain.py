"""The chain core: argv[0] dispatch, one process and one exec, exit statuses,
PATH lookup, --help/--version, and lazy imports.

Everything runs the installed commands; chains end in the probe, which
reports its pid, argv and fds.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, command, run

COMMAND_NAMES = ["chainload", "local-seqpacket-socket-listen", "listen-seqpacket",
                 "fdmove", "setuidgid"]


def go(argv, **kw):
    """run(), and no input may ever give a traceback."""
    result = run(argv, **kw)
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout
    return result


def fatal(result, status, line):
    """Exit STATUS, and stderr starts with exactly LINE."""
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert lines and lines[0] == line, result.stderr
    if status == 100:  # the docopt synopsis follows a usage error
        assert len(lines) >= 2 and lines[1].startswith("Usage:"), result.stderr
        assert all(": FATAL: " not in ln for ln in lines[1:])
    else:
        assert len(lines) == 1, result.stderr


def script(path, body):
    """An executable shell script at PATH."""
    Path(path).write_text("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return str(path)


# --- dispatch ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fdmove", "setuidgid", "listen-seqpacket",
                                  "local-seqpacket-socket-listen"])
def test_symlink_named_after_a_command_runs_it(tmp_path, name, probe):
    link = tmp_path / name
    link.symlink_to(command("chainload"))
    if "listen" in name:
        argv = [str(link), str(tmp_path / "s.sock"), *probe]
    elif name == "setuidgid":
        argv = [str(link), "--help"]
    else:
        argv = [str(link), "-c", "7", "1", *probe]
    result = go(argv)
    assert result.returncode == 0, result.stderr
    if name == "setuidgid":
        assert result.stdout.startswith("Usage: setuidgid ")
    elif name == "fdmove":
        assert result.report["fds"]["7"]["target"] == result.report["fds"]["1"]["target"]
    else:
        sock = result.report["fds"]["3"]
        assert sock["type"] == "SOCK_SEQPACKET" and sock["listening"]


def test_symlink_under_another_name_is_the_umbrella(tmp_path):
    link = tmp_path / "something-else"
    link.symlink_to(command("chainload"))
    result = go([str(link), "fdmove", "--help"])
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: fdmove ")


def test_umbrella_dispatch(probe):
    result = go(["chainload", "fdmove", "-c", "9", "1", *probe])
    assert result.returncode == 0, result.stderr
    assert "9" in result.report["fds"]


def test_umbrella_double_dash(probe):
    result = go(["chainload", "--", "fdmove", "-c", "9", "1", *probe])
    assert result.returncode == 0, result.stderr
    assert "9" in result.report["fds"]


def test_python_dash_m(probe):
    result = go([sys.executable, "-m", "chainload", "fdmove", "-c", "9", "1", *probe])
    assert result.returncode == 0, result.stderr
    assert "9" in result.report["fds"]


def test_alias_in_a_chain(tmp_path, probe):
    result = go(["chainload", "listen-seqpacket", str(tmp_path / "s.sock"),
                 "fdmove", "-c", "0", "3", *probe])
    assert result.returncode == 0, result.stderr
    for fd in "03":
        assert result.report["fds"][fd]["type"] == "SOCK_SEQPACKET"
        assert result.report["fds"][fd]["listening"]


@pytest.mark.parametrize("argv", [
    ["listen-seqpacket", "--bogus", "s", "true"],
    ["chainload", "fdmove", "1", "1", "listen-seqpacket"],
    ["local-seqpacket-socket-listen", "--bogus", "s", "true"],
])
def test_usage_names_the_command_as_called(argv, tmp_path):
    """Under an alias, the FATAL line, the usage synopsis after it and
    --help all name the alias; under the full name, the full name."""
    name = next(w for w in argv if w.endswith("-seqpacket") or w.endswith("-listen"))
    result = go(argv, cwd=tmp_path)
    assert result.returncode == 100, result.stderr
    first, usage = result.stderr.splitlines()[:2]
    assert first.startswith(f"{name}: FATAL: "), result.stderr
    assert usage == f"Usage: {name} [options] [--] <path> <next-prog>...", result.stderr
    result = go([*argv[:argv.index(name) + 1], "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: {name} [options] "), result.stdout


# --- one process, one exec ----------------------------------------------------

def test_chain_is_one_process(tmp_path, probe):
    result = go(["chainload", "listen-seqpacket", "--systemd-compatibility",
                 str(tmp_path / "s.sock"), "fdmove", "0", "3", "fdmove", "-c", "5", "0",
                 *probe, "--last"])
    assert result.returncode == 0, result.stderr
    assert result.report["pid"] == result.pid
    assert result.report["env"]["LISTEN_PID"] == str(result.pid)
    assert result.report["argv"] == ["--last"]


def test_strace_one_final_execve_and_no_fork(tmp_path, probe):
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (make tools installs it)")
    log = tmp_path / "strace.log"
    # Words that look like the calls looked for, in a path and an argument
    # (as in a checkout under ~/clone): only the syscall names count.
    sock = tmp_path / "clone(fork()" / "s.sock"
    sock.parent.mkdir()
    argv = [strace, "-f", "-qq", "-s", "4096", "-o", str(log), "-e", "signal=none",
            "-e", "trace=execve,execveat,fork,vfork,clone,clone3",
            command("chainload"), "listen-seqpacket", str(sock),
            "fdmove", "0", "3", "fdmove", "-c", "4", "0", *probe, "vfork(clone3("]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 and "ptrace" in proc.stderr.lower():
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    execs = [ln for ln in lines if "execve(" in ln and ln.rstrip().endswith("= 0")]
    # The kernel runs the #! console script (one execve), and the chain's
    # final exec of the probe is the second; nothing else.
    assert len(execs) == 2, lines
    assert f'execve("{command("chainload")}"' in execs[0]
    assert f'execve("{probe[0]}"' in execs[1]
    # By syscall name: a path or an argument may well contain "clone(".
    calls = [re.match(r"\d+ +(\w+)\(", ln) for ln in lines]
    assert all(calls), lines
    assert not [m[1] for m in calls if m[1] not in ("execve", "execveat")], lines
    assert len({ln.split()[0] for ln in lines}) == 1, lines  # one pid throughout
    assert json.loads(proc.stdout)["fds"]["4"]["listening"]


# --- exit statuses ------------------------------------------------------------

def test_unknown_command():
    fatal(go(["chainload", "bogus", "1", "2"]), 100, "chainload: FATAL: bogus: Unknown command.")


def test_unknown_command_with_a_slash():
    # Only bare names are builtins, so chainload ./fdmove is not a command.
    fatal(go(["chainload", "./fdmove"]), 100, "chainload: FATAL: ./fdmove: Unknown command.")


def test_umbrella_without_command():
    result = go(["chainload"])
    assert result.returncode == 100
    assert result.stderr.startswith("chainload: FATAL: ")


def test_missing_next_program():
    fatal(go(["fdmove", "1", "2"]), 100,
          "fdmove: FATAL: Missing next program, or operand FROM (got TO=1, and 2 as FROM).")


def test_missing_next_program_later_in_chain():
    fatal(go(["chainload", "fdmove", "-c", "5", "1", "fdmove", "-c", "6", "1"]), 100,
          "fdmove: FATAL: Missing next program, or operand FROM (got TO=6, and 1 as FROM).")


def test_bad_option_names_it_and_the_command():
    fatal(go(["fdmove", "-x", "1", "2", "true"]), 100, "fdmove: FATAL: -x: Unrecognized option.")
    fatal(go(["chainload", "fdmove", "-c", "5", "1", "setuidgid", "--bogus", "nobody", "true"]),
          100, "setuidgid: FATAL: --bogus: Unrecognized option.")


def test_next_program_is_a_directory(tmp_path):
    fatal(go(["fdmove", "-c", "5", "1", str(tmp_path)]), 126,
          f"fdmove: FATAL: {tmp_path}: Permission denied")


def test_next_program_not_executable(tmp_path):
    path = tmp_path / "plain"
    path.write_text("#!/bin/sh\necho ran\n")
    os.chmod(path, 0o644)
    result = go(["chainload", "fdmove", "-c", "5", "1", str(path)])
    fatal(result, 126, f"fdmove: FATAL: {path}: Permission denied")
    assert result.stdout == ""


def test_next_program_not_found(tmp_path):
    fatal(go(["fdmove", "-c", "5", "1", "no-such-program-xyzzy"]), 127,
          "fdmove: FATAL: no-such-program-xyzzy: No such file or directory")
    fatal(go(["fdmove", "-c", "5", "1", str(tmp_path / "nope")]), 127,
          f"fdmove: FATAL: {tmp_path / 'nope'}: No such file or directory")


def test_empty_next_program_name():
    result = go(["fdmove", "-c", "5", "1", ""])
    assert result.returncode == 127
    assert result.stderr.startswith("fdmove: FATAL: ")


def test_prog_is_the_command_as_invoked_through_a_symlink(tmp_path):
    link = tmp_path / "fdmove"
    link.symlink_to(command("chainload"))
    fatal(go([str(link), "1", "2"]), 100,
          "fdmove: FATAL: Missing next program, or operand FROM (got TO=1, and 2 as FROM).")


# --- PATH ---------------------------------------------------------------------

def env_with(**changes):
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_path_comes_from_the_chain_environment(tmp_path):
    script(tmp_path / "hello-chain", 'echo "hello $*"')
    result = go(["fdmove", "-c", "5", "1", "hello-chain", "a", "b"],
                env=env_with(PATH=f"/nonexistent:{tmp_path}"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello a b\n"
    # ... and only from there.
    fatal(go(["fdmove", "-c", "5", "1", "hello-chain"]), 127,
          "fdmove: FATAL: hello-chain: No such file or directory")


def test_empty_path_element_is_the_current_directory(tmp_path):
    # As execvp(3) treats it.
    script(tmp_path / "hello-chain", "echo here")
    result = go(["fdmove", "-c", "5", "1", "hello-chain"], cwd=tmp_path,
                env=env_with(PATH="/nonexistent::/bin"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "here\n"


def test_missing_path_uses_the_default(tmp_path):
    # os.defpath (/bin:/usr/bin): sh is found; the current directory is not searched.
    script(tmp_path / "hello-chain", "echo here")
    result = go(["fdmove", "-c", "5", "1", "sh", "-c", "echo $0"], cwd=tmp_path,
                env=env_with(PATH=None))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sh\n"
    fatal(go(["fdmove", "-c", "5", "1", "hello-chain"], cwd=tmp_path, env=env_with(PATH=None)),
          127, "fdmove: FATAL: hello-chain: No such file or directory")


def test_non_executable_on_path_is_126_even_if_found_later(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "hello-chain").write_text("#!/bin/sh\necho first\n")
    script(second / "hello-chain", "echo second")
    result = go(["fdmove", "-c", "5", "1", "hello-chain"],
                env=env_with(PATH=f"{first}:{second}"))
    # execvp(3) goes on past EACCES and runs the later one.
    assert result.returncode == 0, result.stderr
    assert result.stdout == "second\n"


def test_name_with_a_slash_is_always_execd(tmp_path):
    script(tmp_path / "fdmove", 'echo "script $*"')
    result = go(["chainload", "fdmove", "-c", "5", "1", "./fdmove", "x"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "script x\n"


def test_bare_builtin_name_is_not_looked_up_on_path(tmp_path, probe):
    script(tmp_path / "fdmove", "echo script")
    result = go(["chainload", "fdmove", "-c", "5", "1", "fdmove", "-c", "6", "1", *probe],
                env=env_with(PATH=f"{tmp_path}:{os.environ.get('PATH', '')}"))
    assert result.returncode == 0, result.stderr
    assert {"5", "6"} <= set(result.report["fds"])


# --- --help and --version -----------------------------------------------------

@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_help(name, probe, tmp_path):
    out = tmp_path / "probe.json"
    result = go([name, "--help", "1", "2", *probe], out=out)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.startswith(f"Usage: {name} ")  # an alias as called
    assert not out.exists()  # nothing was chained


@pytest.mark.parametrize("name", COMMAND_NAMES[1:])
def test_help_through_the_umbrella_and_mid_chain(name, probe, tmp_path):
    out = tmp_path / "probe.json"
    result = go(["chainload", "fdmove", "-c", "5", "1", name, "-h", *probe], out=out)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.startswith("Usage: ")
    assert not out.exists()


def test_umbrella_help_lists_every_command():
    result = go(["chainload", "-h"])
    assert result.returncode == 0 and result.stderr == ""
    for name in COMMAND_NAMES[1:]:
        assert re.search(rf"\n  {name}[ \n]", result.stdout), name


def test_help_after_the_operands_belongs_to_the_next_program(probe):
    result = go(["fdmove", "-c", "5", "1", *probe, "--help", "-c"])
    assert result.returncode == 0, result.stderr
    assert result.report["argv"] == ["--help", "-c"]


def test_version():
    from chainload import __version__

    result = go(["chainload", "--version"])
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout == f"chainload {__version__}\n"


# --- lazy imports -------------------------------------------------------------

IMPORT_CHECK = r"""
import gc, json, os, sys
SOCKET = ("socket", "_socket")  # the listener uses the C module directly
before = any(m in sys.modules for m in SOCKET)
import chainload.chain
class Exec(BaseException):
    pass
def record(path, argv, env):
    global collecting
    collecting = gc.isenabled()
    raise Exec([a.decode() for a in argv])
collecting = None
os.execve = record
try:
    status = chainload.chain.main(json.loads(sys.argv[1]))
    argv = None
except Exec as e:
    status, argv = None, e.args[0]
print(json.dumps({"before": before, "after": any(m in sys.modules for m in SOCKET),
                  "status": status, "argv": argv, "modules": sorted(sys.modules),
                  "collecting": collecting}))
"""


def modules_after(chain):
    proc = subprocess.run([str(BIN / "python"), "-c", IMPORT_CHECK, json.dumps(chain)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_chain_without_a_socket_does_not_import_socket():
    got = modules_after(["chainload", "fdmove", "-c", "5", "2", "fdmove", "6", "5",
                         "true", "arg"])
    assert got["argv"] == ["true", "arg"], got  # it reached the final exec
    assert got["before"] is False
    assert got["after"] is False


def test_chain_that_does_not_fork_does_not_import_the_forking_module(tmp_path):
    """chainload.process is imported by foreground, if and the accept
    servers; a chain without them crosses the process boundary only."""
    got = modules_after(["listen-seqpacket", str(tmp_path / "s.sock"), "fdmove", "0", "3",
                         "umask", "022", "true"])
    assert got["argv"] == ["true"], got
    assert "chainload.boundary" in got["modules"]
    assert "chainload.process" not in got["modules"]


def test_listener_chain_does_import_socket(tmp_path):
    got = modules_after(["listen-seqpacket", str(tmp_path / "s.sock"), "fdmove", "0", "3",
                         "true"])
    assert got["argv"] == ["true"], got
    assert got["after"] is True
    # The LISTEN_FDS helpers shared with the receiving side only when the
    # protocol is asked for.
    assert "chainload.listenfds" not in got["modules"]


def test_systemd_listener_chain_imports_the_shared_helpers(tmp_path):
    got = modules_after(["listen-seqpacket", "--systemd-compatibility",
                         str(tmp_path / "s.sock"), "true"])
    assert got["argv"] == ["true"], got
    assert "chainload.listenfds" in got["modules"]


def test_the_chain_runs_without_the_cyclic_collector():
    # gc.disable() at start-up: its passes over docopt's objects cost ~1 ms
    # (make bench), and a chain ends in exec before they could matter.
    got = modules_after(["chainload", "fdmove", "-c", "5", "2", "true"])
    assert got["argv"] == ["true"], got
    assert got["collecting"] is False


def test_listener_first_fd_agrees_with_listenfds():
    from chainload import listen, listenfds

    assert listen.FIRST_FD == listenfds.LISTEN_FDS_START == 3


# --- the environment passes through -------------------------------------------

def test_environment_is_passed_on_exactly():
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nowhere", "X_CHAIN": "a=b c"}
    result = go(["fdmove", "-c", "5", "1", "/usr/bin/env"], env=env)
    assert result.returncode == 0, result.stderr
    assert dict(ln.split("=", 1) for ln in result.stdout.splitlines()) == env


def test_environment_keeps_a_c_locale():
    # CPython coerces a C locale to C.UTF-8 in its own environment at
    # start-up; the next program must still see what the chain was given.
    env = {"PATH": "/usr/bin:/bin", "LC_CTYPE": "C"}
    result = go(["chainload", "fdmove", "-c", "5", "1", "/usr/bin/env"], env=env)
    assert dict(ln.split("=", 1) for ln in result.stdout.splitlines()) == env


@pytest.mark.parametrize("argv", [
    ["fdmove", "1\n2", "3", "true"],
    ["setuidgid", "no\nsuch\tuser", "true"],
    ["chainload", "bad\rcommand"],
    ["local-seqpacket-socket-listen", "--fd-name", "a\nb", "--systemd-compatibility", "p", "true"],
])
def test_messages_quoting_input_stay_one_line(argv):
    result = run(argv)
    assert result.returncode in (100, 111)
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{argv[0]}: FATAL: ")
    assert "\\n" in first or "\\t" in first or "\\r" in first
    assert result.stderr.count("FATAL") == 1



def test_no_command_imports_the_driver():
    """A command is its usage and its run(); what the chain around it needs
    (such as importing the rest of the chain before setuidgid or softlimit,
    PRELOAD_REST) is the driver's job, not an import of it."""
    import ast

    from chainload import chain

    for name in chain.COMMANDS:
        path = Path(chain.load(name).__file__)
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        assert "chainload.chain" not in imported, f"{path.name} imports the driver"
