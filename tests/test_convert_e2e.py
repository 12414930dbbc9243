"""Real Debian units, converted, serving their real clients (as root).

The unit files are the ones the installed packages ship in
/lib/systemd/system; a drop-in in a private --unit-path directory moves
each socket to a private path or a free port, exactly as a local
administrator would. The daemons and clients are Debian's: uuidd and
`uuidd -t`, dbus-daemon and dbus-send, sshd and ssh-keyscan, saned (an
Accept=yes unit) and the first exchange of its protocol; and one script
under s6-supervise, killed and restarted ten times.

Each test skips, saying why, when a package is missing or when the chain
needs a command this chainload does not have yet."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import BIN, root_only

pytestmark = root_only
UNITS = "/lib/systemd/system"


def free_port():
    with socket.socket(socket.AF_INET6) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return s.getsockname()[1]


def convert(tmp_path, unit, dropins, *programs):
    """The run script of /lib/systemd/system/UNIT with DROPINS ({unit
    name: drop-in text}), or a skip naming what is missing."""
    for program in programs:
        if not shutil.which(program) and not os.path.exists(program):
            pytest.skip(f"{program} is not installed")
    if not os.path.exists(f"{UNITS}/{unit}"):
        pytest.skip(f"{UNITS}/{unit} is not installed")
    local = tmp_path / "units"
    for name, text in dropins.items():
        (local / f"{name}.d").mkdir(parents=True, exist_ok=True)
        (local / f"{name}.d" / "test.conf").write_text(text)
    proc = subprocess.run([str(BIN / "chainload-convert"), "--unit-path", str(local),
                           f"{UNITS}/{unit}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    missing = [line.split(": ")[1] for line in proc.stderr.splitlines()
               if "this chainload has no such command" in line]
    if missing:
        pytest.skip(f"the chain needs {', '.join(missing)}, not in this chainload yet")
    script = tmp_path / "run"
    script.write_text(proc.stdout)
    script.chmod(0o755)
    return script


class Started:
    """A run script started as a supervisor would start it."""

    def __init__(self, script, tmp_path):
        self.log = open(tmp_path / "log", "w+")
        self.proc = subprocess.Popen([str(script)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env={"PATH": "/usr/bin:/bin", "JUNK": "x"},
                                     start_new_session=True)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture
def started():
    made = []

    def start(script, tmp_path):
        s = Started(script, tmp_path)
        made.append(s)
        return s
    yield start
    for s in made:
        s.stop()


def until(check, what, server, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if server is not None and server.proc.poll() is not None:
            pytest.fail(f"the service exited ({server.proc.returncode}) before {what}: "
                        f"{server.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}: "
                        f"{server.output() if server else ''}")
        time.sleep(0.1)


def uuid_from(path):
    proc = subprocess.run(["uuidd", "-t", "-s", str(path)], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def uuidd_script(tmp_path):
    sock = tmp_path / "uuidd" / "request"
    script = convert(tmp_path, "uuidd.socket",
                     {"uuidd.socket": f"[Socket]\nListenStream=\nListenStream={sock}\n"},
                     "/usr/sbin/uuidd")
    return script, sock


def test_uuidd(tmp_path, started):
    script, sock = uuidd_script(tmp_path)
    server = started(script, tmp_path)
    first = until(lambda: uuid_from(sock), "a UUID from uuidd -t", server)
    second = uuid_from(sock)
    assert len(first) == 36 and first != second
    assert oct(os.stat(sock).st_mode & 0o777) == oct(0o666)
    assert oct(os.stat(sock.parent).st_mode & 0o777) == oct(0o755)
    with open(f"/proc/{server.proc.pid}/status") as f:
        uid = [line.split()[1] for line in f if line.startswith("Uid:")][0]
    import pwd

    assert int(uid) == pwd.getpwnam("uuidd").pw_uid


def may_lower_oom_score():
    """Whether this machine lets root lower oom_score_adj (a container
    without CAP_SYS_RESOURCE does not)."""
    proc = subprocess.run(["sh", "-c", "echo -900 > /proc/self/oom_score_adj"],
                          capture_output=True)
    return proc.returncode == 0


def test_dbus_system_bus(tmp_path, started):
    sock = tmp_path / "dbus" / "system_bus_socket"
    oom = may_lower_oom_score()
    dropins = {"dbus.socket": f"[Socket]\nListenStream=\nListenStream={sock}\n"}
    if not oom:  # dbus.service's OOMScoreAdjust=-900 would fail here
        dropins["dbus.service"] = "[Service]\nOOMScoreAdjust=\n"
    script = convert(tmp_path, "dbus.socket", dropins, "dbus-daemon", "dbus-send")
    server = started(script, tmp_path)
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={sock}"}

    def get_id():
        proc = subprocess.run(["dbus-send", "--system", "--print-reply",
                               "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus.GetId"], env=env, capture_output=True,
                              text=True, timeout=10)
        return proc.stdout if proc.returncode == 0 else None
    reply = until(get_id, "dbus-send GetId", server)
    assert "string" in reply
    if oom:
        with open(f"/proc/{server.proc.pid}/oom_score_adj") as f:
            assert f.read().strip() == "-900"


def test_sshd_from_ssh_socket(tmp_path, started):
    port = free_port()
    script = convert(tmp_path, "ssh.socket",
                     {"ssh.socket": f"[Socket]\nListenStream=\nListenStream={port}\n"},
                     "/usr/sbin/sshd", "ssh-keyscan")
    server = started(script, tmp_path)

    def scan(host):
        proc = subprocess.run(["ssh-keyscan", "-T", "5", "-p", str(port), host],
                              capture_output=True, text=True, timeout=20)
        return proc.stdout if "ssh-" in proc.stdout or "ecdsa-" in proc.stdout else None
    assert until(lambda: scan("127.0.0.1"), "ssh-keyscan 127.0.0.1", server)
    assert scan("::1")


SANE_NET_INIT = 0
SANE_VERSION = (1 << 24) | (0 << 16) | 3


def sane_init(port):
    """saned's first exchange (SANE_NET_INIT): (status, version) or None.
    (scanimage's net backend takes saned's port only from /etc/services,
    so the client side of the protocol's first call is spoken here.)"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            user = b"chainload\0"
            s.sendall(struct.pack(">III", SANE_NET_INIT, SANE_VERSION, len(user)) + user)
            reply = b""
            while len(reply) < 8:
                chunk = s.recv(8 - len(reply))
                if not chunk:
                    return None
                reply += chunk
            return struct.unpack(">II", reply)
    except OSError:
        return None


def test_saned_accept_yes(tmp_path, started):
    port = free_port()
    log = tmp_path / "saned.log"
    script = convert(tmp_path, "saned.socket", {
        "saned.socket": f"[Socket]\nListenStream=\nListenStream={port}\n",
        "saned@.service": f"[Service]\nStandardOutput=append:{log}\nStandardError=append:{log}\n"},
        "/usr/sbin/saned")
    server = started(script, tmp_path)
    status, version = until(lambda: sane_init(port), "saned's SANE_NET_INIT reply", server)
    assert status == 0 and version >> 24 == 1
    again = sane_init(port)  # a second connection, a second saned
    assert again and again[0] == 0


def test_under_s6_supervise_restarted_ten_times(tmp_path):
    for program in ("s6-supervise", "s6-svc", "s6-svstat"):
        if not shutil.which(program):
            pytest.skip(f"{program} is not installed (Debian package s6)")
    script, sock = uuidd_script(tmp_path)
    service = tmp_path / "service"
    service.mkdir()
    shutil.copy(script, service / "run")
    supervise = subprocess.Popen(["s6-supervise", str(service)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)

    def pid():
        proc = subprocess.run(["s6-svstat", "-o", "up,pid", str(service)],
                              capture_output=True, text=True)
        fields = proc.stdout.split()
        return int(fields[1]) if proc.returncode == 0 and fields[:1] == ["true"] \
            and fields[1] != "-1" else None
    try:
        seen = set()
        for _ in range(11):
            until(lambda: uuid_from(sock), "a UUID through the supervised script", None)
            current = until(pid, "s6-svstat's pid", None)
            assert current not in seen
            seen.add(current)
            subprocess.run(["s6-svc", "-k", str(service)], check=True)  # socket left stale
            until(lambda: pid() not in (None, current), "the restart", None)
        assert len(seen) == 11
    finally:
        subprocess.run(["s6-svc", "-dx", str(service)])
        try:
            supervise.wait(15)
        except subprocess.TimeoutExpired:
            supervise.kill()
            supervise.wait()
