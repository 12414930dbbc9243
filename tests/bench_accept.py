"""Connections per second of tcp-socket-accept, side by side with ucspi-tcp's
tcpserver serving the same thing (issue 20). Part of `make bench`.

    .venv/bin/python tests/bench_accept.py [--runs N] [--quick] [--json FILE]

Method. Four servers listen on 127.0.0.1 at once, each on its own free port:

  tcpserver-a   tcpserver -H -R -l 0 127.0.0.1 PORT ./line
  chainload-a   chainload listen-tcp 127.0.0.1 PORT accept-tcp ./line
  tcpserver-b   tcpserver -H -R -l 0 127.0.0.1 PORT s6-setuidgid nobody
                s6-envdir DIR fdmove -c 2 1 ./line  (the C tools: one exec a link)
  chainload-b   chainload listen-tcp 127.0.0.1 PORT accept-tcp setuidgid nobody
                envdir DIR fdmove -c 2 1 ./line  (the links run in the child)

./line is a small C program that writes one line (compiled here with cc;
/bin/echo when there is no compiler). Without root, setuidgid nobody and
s6-setuidgid nobody are left out of both b cases (said in a note). Both
servers keep their default limit of 40 children.

A round measures each server once, in a freshly shuffled order: CLIENTS
client threads each connect, read the line to EOF and close, BATCH
connections in all; the rate is BATCH / wall time. Reported are the
median rate of each server and, per case, the median over rounds of the
per-round ratio chainload / tcpserver. Targets: b >= 1.5, a >= 0.5.

This is a script, not a test: it asserts nothing, prints the table, the
verdicts and a JSON line.
"""

import argparse
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.path.dirname(sys.executable)
CHAINLOAD = os.path.join(BIN, "chainload")
TARGETS = {"a": 0.5, "b": 1.5}
CLIENTS = 4
BATCH = 200

LINE_C = r"""
#include <unistd.h>
int main(void) { static const char m[] = "hello\n"; return write(1, m, sizeof m - 1) != sizeof m - 1; }
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def line_program(tmp):
    cc = shutil.which("cc")
    if cc:
        src, out = os.path.join(tmp, "line.c"), os.path.join(tmp, "line")
        with open(src, "w") as f:
            f.write(LINE_C)
        if subprocess.run([cc, "-O2", "-o", out, src]).returncode == 0:
            os.chmod(out, 0o755)
            return [out], "line (C, compiled with cc)"
    return ["/bin/echo", "hello"], "/bin/echo hello (no C compiler)"


def fetch(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        data = b""
        while chunk := s.recv(64):
            data += chunk
        return data
    finally:
        s.close()


def measure(port, batch, clients):
    """Connections per second for BATCH connections by CLIENTS threads."""
    left = [batch]
    lock = threading.Lock()
    bad = []

    def worker():
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            if fetch(port) != b"hello\n":
                bad.append(1)
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return batch / elapsed, len(bad)


def start(argv, port):
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if fetch(port) == b"hello\n":
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 50 connections")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--json", metavar="FILE", help="also write the JSON line to FILE")
    parser.add_argument("--seed", type=int, default=None, help="seed of the round shuffle")
    opts, _ = parser.parse_known_args(argv)  # make bench passes bench.py's ARGS too
    runs, batch = (3, 50) if opts.quick else (opts.runs, BATCH)
    tcpserver = shutil.which("tcpserver")
    if tcpserver is None:
        print("accept bench skipped: tcpserver not installed (apt-get install ucspi-tcp)")
        return 0
    c_tools = [shutil.which(n) for n in ("s6-setuidgid", "s6-envdir")]
    fdmove_c = "/usr/lib/execline/bin/fdmove"
    if not os.access(fdmove_c, os.X_OK):
        fdmove_c = shutil.which("fdmove")
    notes = []
    root = os.geteuid() == 0
    if not root:
        notes.append("not root: setuidgid nobody / s6-setuidgid nobody left out of b")
    with tempfile.TemporaryDirectory(prefix="chainload-bench-accept-") as tmp:
        os.chmod(tmp, 0o755)
        prog, what = line_program(tmp)
        envdir = os.path.join(tmp, "env")
        os.mkdir(envdir)
        with open(os.path.join(envdir, "GREETING"), "w") as f:
            f.write("hello\n")
        os.chmod(tmp, 0o755)
        suid_c = [c_tools[0], "nobody"] if root else []
        suid = ["setuidgid", "nobody"] if root else []
        cases = {
            "tcpserver-a": lambda p: [tcpserver, "-H", "-R", "-l", "0", "127.0.0.1", str(p),
                                      *prog],
            "chainload-a": lambda p: [CHAINLOAD, "listen-tcp", "127.0.0.1", str(p),
                                      "accept-tcp", *prog],
            "chainload-b": lambda p: [CHAINLOAD, "listen-tcp", "127.0.0.1", str(p),
                                      "accept-tcp", *suid, "envdir", envdir, "fdmove", "-c",
                                      "2", "1", *prog],
        }
        if all(c_tools) and fdmove_c:
            cases["tcpserver-b"] = lambda p: [tcpserver, "-H", "-R", "-l", "0", "127.0.0.1",
                                              str(p), *suid_c, c_tools[1], envdir, fdmove_c,
                                              "-c", "2", "1", *prog]
        else:
            notes.append("s6/execline C tools missing: case b not compared "
                         "(apt-get install s6 execline)")
        servers, ports = {}, {}
        try:
            for name, make in cases.items():
                port = free_port()
                proc = start(make(port), port)
                if proc is None:
                    notes.append(f"{name} did not serve: {' '.join(make(port))}")
                    continue
                servers[name], ports[name] = proc, port
            rates = {name: [] for name in servers}
            failures = {name: 0 for name in servers}
            rng = random.Random(opts.seed)
            load = os.getloadavg()
            for round_ in range(opts.warmup + runs):
                order = list(servers)
                rng.shuffle(order)
                for name in order:
                    rate, bad = measure(ports[name], batch, CLIENTS)
                    if round_ >= opts.warmup:
                        rates[name].append(rate)
                        failures[name] += bad
        finally:
            for proc in servers.values():
                try:
                    os.killpg(proc.pid, 15)
                except OSError:
                    pass
                proc.wait()

    print(f"\nconnections per second, {runs} rounds of {batch} connections, "
          f"{CLIENTS} clients; the program: {what}")
    for note in notes:
        print(f"note: {note}")
    med = {name: statistics.median(r) for name, r in rates.items() if r}
    for name in sorted(med):
        print(f"  {name:<13} {med[name]:8.0f}/s   (failed replies: {failures[name]})")
    ratios, verdicts = {}, {}
    for case, target in TARGETS.items():
        ours, theirs = rates.get(f"chainload-{case}"), rates.get(f"tcpserver-{case}")
        if not ours or not theirs:
            continue
        ratios[case] = statistics.median(o / t for o, t in zip(ours, theirs))
        verdicts[case] = "PASS" if ratios[case] >= target else "MISS"
        print(f"{verdicts[case]}  {case}: chainload / tcpserver = {ratios[case]:.2f}"
              f"   (target >= {target})")
    line = json.dumps({
        "bench": "chainload-accept", "python": platform.python_version(),
        "cpus": os.cpu_count(), "runs": runs, "batch": batch, "clients": CLIENTS,
        "euid": os.geteuid(), "load": [round(x, 2) for x in load], "program": what,
        "median_per_second": {k: round(v, 1) for k, v in med.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()}, "targets": verdicts,
        "failures": failures, "notes": notes,
    })
    print()
    print(line)
    if opts.json:
        with open(opts.json, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
