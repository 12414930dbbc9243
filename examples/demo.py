#!/usr/bin/env python3
"""`make demo`: socket activation of a SEQPACKET echo daemon with chainload.

Starts, in a temporary directory,

    chainload listen-seqpacket --systemd-compatibility --fd-name echo \\
        DIR/demo.sock PYTHON examples/echo_server.py --max-connections 1

(one process: chainload binds and listens, sets LISTEN_FDS/LISTEN_PID/
LISTEN_FDNAMES, and execs the daemon, which finds its socket on fd 3),
connects as a client, sends messages of different sizes back to back, and
shows that each recv returns exactly one whole reply. The daemon exits after
that one connection; the demo checks its status and cleans up.

Run with the interpreter whose bin/ holds chainload (make demo uses
.venv/bin/python). Exits 0 on success, 1 if anything went wrong.
"""

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
MESSAGES = [
    b"hello",
    b"three\nlines\nhere\n",
    b"0123456789" * 1000,  # 10 000 bytes: still one message, one reply
    b"\x00binary\xff",
    b"!",
]


class Failed(Exception):
    pass


def say(text=""):
    print(text, flush=True)


def show(data, limit=40):
    text = repr(data[:limit]) + ("..." if len(data) > limit else "")
    return f"{len(data):6d} bytes  {text}"


def chainload():
    path = Path(sys.executable).parent / "chainload"
    if not path.exists():
        raise Failed(f"{path} not found: run this with the venv's python (make demo)")
    return str(path)


def connect(path, daemon, timeout=10.0):
    """Connect to PATH, retrying until the listener has created it."""
    deadline = time.monotonic() + timeout
    while True:
        if daemon.poll() is not None:
            raise Failed(f"the chain exited with status {daemon.returncode} before listening")
        client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        client.settimeout(5.0)
        try:
            client.connect(path)
            return client
        except (FileNotFoundError, ConnectionRefusedError):
            client.close()
            if time.monotonic() > deadline:
                raise Failed(f"{path}: nobody listening after {timeout:.0f} s") from None
            time.sleep(0.02)


def talk(client):
    """Send every message, then read the replies: one recv, one reply."""
    for message in MESSAGES:
        if client.send(message) != len(message):  # one send: one message, all or nothing
            raise Failed("short send")
    say(f"client: sent {len(MESSAGES)} messages back to back "
        f"({', '.join(str(len(m)) for m in MESSAGES)} bytes)")
    for i, message in enumerate(MESSAGES, 1):
        reply, _, flags, _ = client.recvmsg(64 * 1024)
        say(f"client: recv {i}: {show(reply)}")
        if flags & socket.MSG_TRUNC:
            raise Failed(f"reply {i} was truncated")
        if reply != b"echo: " + message:
            raise Failed(f"reply {i} is not b'echo: ' + message {i}")
    client.close()
    say("client: every recv returned exactly one whole reply; closed the connection")


def main():
    tmp = Path(tempfile.mkdtemp(prefix="chainload-demo-"))
    daemon = None
    try:
        sock = tmp / "demo.sock"
        argv = [chainload(), "listen-seqpacket", "--systemd-compatibility",
                "--fd-name", "echo", str(sock),
                sys.executable, str(EXAMPLES / "echo_server.py"), "--max-connections", "1"]
        say("$ " + shlex.join(argv))
        # The daemon's log (stderr) goes straight to ours.
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        client = connect(str(sock), daemon)
        say(f"client: connected to {sock} (mode {oct(sock.stat().st_mode & 0o7777)})")
        with client:
            talk(client)
        try:
            status = daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise Failed("the daemon did not exit after its one connection") from None
        if status != 0:
            raise Failed(f"the daemon exited with status {status}")
        say(f"daemon (pid {daemon.pid}, the same process that bound the socket) "
            "exited with status 0")
    except (Failed, OSError) as e:
        if isinstance(e, TimeoutError):
            e = "no reply within 5 s"
        elif isinstance(e, OSError):
            e = f"client: {e.strerror or e}"
        if daemon is not None and daemon.poll() is not None and daemon.returncode != 0:
            e = f"{e} (the daemon exited with status {daemon.returncode})"
        say(f"demo: FAILED: {e}")
        return 1
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    say()
    say(f"demo OK: one process (listener -> daemon), {len(MESSAGES)} messages, "
        f"{len(MESSAGES)} replies, boundaries kept; {tmp} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
