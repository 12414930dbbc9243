"""The demo (examples/demo.py, `make demo`) and the example echo daemon."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import command

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVER = str(EXAMPLES / "echo_server.py")


def test_demo_runs_and_prints_the_replies():
    command("chainload")  # fails clearly if not run through `make test`
    proc = subprocess.run([sys.executable, str(EXAMPLES / "demo.py")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "listen-seqpacket --systemd-compatibility --fd-name echo" in out
    assert "b'echo: hello'" in out
    assert "b'echo: three\\nlines\\nhere\\n'" in out
    assert "10006 bytes" in out
    assert "demo OK" in out
    assert "FAILED" not in out
    # The daemon found its socket by name and exited after one connection.
    assert "listening on fd 3 (name echo," in proc.stderr
    assert "served 1 connection(s); exiting" in proc.stderr
    sock = [w for w in out.split() if w.endswith("/demo.sock")][0]
    assert not Path(sock).parent.exists()  # the temporary directory is gone


def _server(env, *args):
    full = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    full.update(env)
    return subprocess.run([sys.executable, SERVER, *args], env=full,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("env, words", [
    ({"LISTEN_PID": "1", "LISTEN_FDS": "1"}, "LISTEN_PID=1 is not this process"),
    ({"LISTEN_FDS": "1"}, "LISTEN_PID is not set"),
    ({}, "LISTEN_PID is not set"),
    ({"LISTEN_PID": "x", "LISTEN_FDS": "1"}, "LISTEN_PID=x is not this process"),
])
def test_server_refuses_sockets_not_for_it(env, words):
    proc = _server(env)
    assert proc.returncode == 100, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("echo_server: FATAL: ")
    assert words in lines[0]


def test_server_refuses_a_bad_option_with_100():
    proc = _server({}, "--max-connections", "lots")
    assert proc.returncode == 100
    assert proc.stderr.startswith("echo_server: FATAL: ")


@contextlib.contextmanager
def _chain(tmp_path, *extra, server_args=()):
    """Run listen-seqpacket ... echo_server.py; yield (process, socket path).
    The daemon is killed on the way out if a test left it running."""
    path = tmp_path / "echo.sock"
    proc = subprocess.Popen(
        [command("chainload"), "listen-seqpacket", "--systemd-compatibility", *extra,
         str(path), sys.executable, SERVER, *server_args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        assert proc.poll() is None, proc.communicate()
        client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        client.settimeout(10)
        try:
            client.connect(str(path))
            client.close()
            break
        except (FileNotFoundError, ConnectionRefusedError):
            client.close()
            assert time.monotonic() < deadline, "listener never came up"
            time.sleep(0.02)
    # That probe connection counts as one of --max-connections.
    try:
        yield proc, path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _talk(path, messages):
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
        client.settimeout(10)
        client.connect(str(path))
        for m in messages:
            client.send(m)
        return [client.recv(65536) for _ in messages]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_stops_cleanly_on_signal(tmp_path, sig):
    with _chain(tmp_path) as (proc, path):
        assert _talk(path, [b"a", b"bc"]) == [b"echo: a", b"echo: bc"]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"{sig.name}: exiting" in err
    assert "FATAL" not in err and "Traceback" not in err


def test_empty_message_is_echoed_when_credentials_are_passed(tmp_path):
    # With SO_PASSCRED every message carries credentials and EOF does not,
    # so an empty message is told apart from the end of the connection.
    with _chain(tmp_path, "--pass-credentials", server_args=["--max-connections", "2"]) as (proc, path):
        assert _talk(path, [b"x", b"", b"y"]) == [b"echo: x", b"echo: ", b"echo: y"]
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "connection 2 closed after 3 replies" in err


def test_empty_message_ends_the_connection_without_credentials(tmp_path):
    with _chain(tmp_path, server_args=["--max-connections", "2"]) as (proc, path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
            client.settimeout(10)
            client.connect(str(path))
            client.send(b"x")
            client.send(b"")
            assert client.recv(100) == b"echo: x"
            assert client.recv(100) == b""  # the daemon closed its end
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "connection 2 closed after 1 replies" in err


def test_server_selects_its_socket_by_name(tmp_path):
    with _chain(tmp_path, "--fd-name", "echo",
                        server_args=["--fd-name", "echo", "--max-connections", "2"]) as (proc, path):
        assert _talk(path, [b"named"]) == [b"echo: named"]
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_server_refuses_an_unknown_name(tmp_path):
    path = tmp_path / "echo.sock"
    proc = subprocess.run(
        [command("chainload"), "listen-seqpacket", "--systemd-compatibility",
         "--fd-name", "echo", str(path), sys.executable, SERVER, "--fd-name", "other"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 100
    assert "--fd-name: other: No such passed socket (have: echo)" in proc.stderr
