"""The examples of the README and the man pages run as pasted (issue 22,
items 9 and 10).

Each test takes the example's text from the document itself, so a change
to the document is tested as it stands. The only edits: a free port for
8080, a temporary path for /tmp/hello.sock, and PATH with the venv's bin
first, as `. .venv/bin/activate` (the README's Quick start) leaves it.
Pasted means bash, as at a prompt.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def activated_env():
    """The environment after `. .venv/bin/activate`: the venv's bin first."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "VIRTUAL_ENV": sys.prefix}


def code_blocks(markdown):
    """The indented code blocks of MARKDOWN, dedented."""
    blocks, current = [], []
    previous_blank = True
    for line in markdown.splitlines():
        if line.startswith("    ") and (current or previous_blank):
            current.append(line[4:])
        elif current and not line.strip():
            current.append("")
        else:
            if current:
                blocks.append("\n".join(current).rstrip("\n") + "\n")
            current = []
        previous_blank = not line.strip()
    if current:
        blocks.append("\n".join(current).rstrip("\n") + "\n")
    return blocks


def readme_block(marker):
    found = [b for b in code_blocks(README) if marker in b]
    assert len(found) == 1, f"{len(found)} README code blocks hold {marker!r}"
    return found[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bash(script, **kw):
    return subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=activated_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def split_background(block):
    """(the server command ending in " &", the client lines after it, the rest)."""
    lines = block.splitlines(keepends=True)
    end = next(i for i, ln in enumerate(lines) if ln.rstrip().endswith("&"))
    server = "".join(lines[:end + 1]).rstrip().rstrip("&")
    rest = lines[end + 1:]
    client = [ln for ln in rest if not ln.startswith("kill ")]
    return server, "".join(client), "".join(ln for ln in rest if ln.startswith("kill "))


# --- Quick start: the commands on PATH (item 9) ---------------------------------

def test_quick_start_says_how_to_get_the_commands_on_path():
    start = README.index("## Quick start")
    quick = README[start:README.index("\n## ", start + 1)]
    assert ". .venv/bin/activate" in quick and "make install" in quick
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("the tests do not run from the checkout's .venv")
    proc = subprocess.run(["bash", "-c", ". .venv/bin/activate && command -v chainload && "
                           "chainload --version && command -v python3"],
                          cwd=ROOT, env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    found, version, python = proc.stdout.splitlines()
    assert Path(found) == ROOT / ".venv" / "bin" / "chainload"
    assert version.startswith("chainload ")
    assert Path(python).parent == ROOT / ".venv" / "bin"


# --- the README's client/server examples wait for the server (item 10) ------------

def hello_block(tmp_path):
    sock = str(tmp_path / "hello.sock")
    return readme_block("/tmp/hello.sock").replace("/tmp/hello.sock", sock)


def echo_block():
    return readme_block("examples/stream_echo.py &").replace("8080", str(free_port()))


def test_hello_example_runs_as_pasted(tmp_path):
    proc = bash(hello_block(tmp_path))
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, "hello\n"), err


def test_stream_echo_example_runs_as_pasted():
    proc = bash(echo_block())
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, "b'hi'\n"), err


@pytest.mark.parametrize("which", ["hello", "stream_echo"])
def test_the_client_waits_for_a_server_that_starts_late(tmp_path, which):
    """The race of the old examples, made certain: the server starts 1.5 s
    after the client (a loaded machine, a slow first import)."""
    block = hello_block(tmp_path) if which == "hello" else echo_block()
    server, client, kill = split_background(block)
    if which == "stream_echo":
        assert kill.startswith("kill %1 ")
    client_proc = bash(client)
    time.sleep(1.5)
    server_proc = bash(f"exec {server}")
    try:
        out, err = client_proc.communicate(timeout=60)
        assert (client_proc.returncode, out) == (0, "hello\n" if which == "hello" else "b'hi'\n"), err
    finally:
        if which == "stream_echo":
            server_proc.send_signal(signal.SIGTERM)  # the example's kill %1
        server_proc.communicate(timeout=30)
    assert server_proc.returncode == 0  # the daemon stopped cleanly


# --- man page examples ---------------------------------------------------------

def man_examples(page):
    """The .EX blocks of the EXAMPLES section of man/PAGE.1, as plain text."""
    source = (ROOT / "man" / f"{page}.1").read_text()
    section = source.split("\n.SH EXAMPLES\n", 1)[1].split("\n.SH ", 1)[0]
    blocks = re.findall(r"^\.EX\n(.*?)^\.EE$", section, flags=re.M | re.S)
    return [b.replace("\\-", "-").replace("\\e", "\\") for b in blocks], section


def test_listen_stream_hello_example_waits_for_the_server(tmp_path):
    """local-stream-socket-listen(1)'s first example is the README's: the
    client retries until the server listens (it used to `sleep 1`), also
    when the server starts 1.5 s late."""
    blocks, _ = man_examples("local-stream-socket-listen")
    block = blocks[0].replace("/tmp/hello.sock", str(tmp_path / "hello.sock"))
    assert "sleep 1;" not in block
    server, client, _ = split_background(block + "\n")
    client_proc = bash(client)
    time.sleep(1.5)
    server_proc = bash(f"exec {server}")
    try:
        out, err = client_proc.communicate(timeout=60)
        assert (client_proc.returncode, out) == (0, "hello\n"), err
    finally:
        server_proc.communicate(timeout=30)
    assert server_proc.returncode == 0


def test_unsetenv_example_runs_as_pasted():
    blocks, _ = man_examples("unsetenv")
    first = blocks[0].splitlines()
    assert first[0].startswith("$ ")
    proc = subprocess.run(["bash", "-c", first[0][2:]], env=activated_env(),
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (0, first[1] + "\n"), proc.stderr


def test_setsid_examples_say_where_it_works_and_the_script_does(tmp_path):
    blocks, text = man_examples("chainload-setsid")
    assert "for supervisors and scripts" in text
    assert "prompt it fails" in text
    script = next(b for b in blocks if "ps -o" in b)
    (tmp_path / "show-session").write_text(script)
    # Run it as a prompt runs a command: as the leader of its own process
    # group (job control), which is what makes chainload-setsid alone fail.
    proc = subprocess.run(["sh", str(tmp_path / "show-session")], env=activated_env(),
                          preexec_fn=os.setpgrp, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    pid, pgid, sid, tty = proc.stdout.split()
    assert pid == pgid == sid and tty == "?", proc.stdout
    # The control: the same command typed at the prompt (a group leader) fails.
    command = script.splitlines()[-1]
    proc = subprocess.run(["bash", "-c", f"exec {command}"], env=activated_env(),
                          preexec_fn=os.setpgrp, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 111, proc.stderr
    assert "Leads a process group but not a session" in proc.stderr
