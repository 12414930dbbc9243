"""Start-up benchmark of whole chainload commands, as a user runs them.

Run it as `make bench` (that is, `.venv/bin/python tests/bench.py`; `make
bench ARGS=--quick` passes the arguments on): every command is taken from
the venv of the interpreter running this script.

    .venv/bin/python tests/bench.py [--runs N] [--quick] [--json FILE]

Method. Each case is a complete command line started with os.posix_spawn
and reaped with os.wait4; a run's time is time.perf_counter() around the
spawn and the wait. The cases are interleaved: every round runs each case
once, in a freshly shuffled order, so drift of the machine hits all cases
alike. Reported are the median over rounds of each case, and each ratio or
difference as the median of the per-round ratios or differences. The
environment of every run is just PATH (and LANG when set), so a PYTHON*
variable of the caller (such as PYTHONDONTWRITEBYTECODE) changes nothing;
stdin is /dev/null, stdout and stderr go to /dev/null once a first, checked
run of each case has succeeded. Warm-up rounds come first (and write any
missing .pyc files).

Beside wall time, each run's CPU time (user + system, from the same
wait4) is reported, with the same ratios: on a busy machine wall time
also counts the time a run waited for a CPU, CPU time much less so. The
load average before and after is printed, with a warning when it is high.
The PASS/MISS verdicts are on wall time; the CPU-time verdict is shown
beside each.

Peak RSS. Linux keeps a process's RSS high-water mark across exec (so it
covers the Python part of a chain that ends in exec), but it also counts
the memory the process had before its exec: glibc's posix_spawn (vfork)
and subprocess both hand the child this benchmark's own memory first, so
the child's ru_maxrss from os.wait4 is never below this script's RSS (about
14 MiB: every case then reads the same). RSS is therefore measured in
separate interleaved rounds, each run under GNU time (/usr/bin/time -f %M),
which forks the command from its own small process and reports the
command's ru_maxrss from its wait4. Without GNU time, RSS is skipped with a
note.

The floor is the bare interpreter plus exactly the modules chain3 imports
that are not chainload's own (FLOOR_IMPORTS), imported as chainload imports
them: with the cyclic garbage collector off (chainload's main() turns it
off first). The script checks the module sets with `python -X importtime`
on chain3 and says so when they differ. Beside it, floor-gc makes the same
imports with the collector on (the floor before chainload turned it off),
to show how much of chain3's lead over that is the collector.

Cases:
  bare       python -c "import os; os.execv('/bin/true', ['true'])"
  floor      the same after gc.disable() and importing FLOOR_IMPORTS
  floor-gc   the same imports with the collector on (no target)
  chain3     chainload local-seqpacket-socket-listen PATH fdmove 0 3
             setuidgid nobody /bin/true   (no setuidgid unless root),
             through the venv's console script
  installed  the same through the launcher of `make install`: the script
             runs `make install PREFIX=<temporary directory>` once first
             (skipped with a note if that fails)
  help       chainload --help
  linksN     chainload with N "fdmove -c 5 2" links, then /bin/true, for N
             in 1, 10, 100 and 1000
  s6         s6-ipcserver-socketbinder PATH /usr/lib/execline/bin/fdmove 0 0
             s6-setuidgid nobody /bin/true
  c-linksN   execline's fdmove -c 5 2, N times (one exec per link), for N
             in 1 and 10   (s6 and c-links are skipped when s6 or execline
             is not installed: apt-get install s6 execline)

The cost of a link: (linksN - links1) / (N - 1) at every N, a least-squares
line through the medians of links1..links1000 (its slope is the per-link
cost) and a parabola through them (its n^2 term shows whether a link's cost
grows with the chain).

Instruction counts: where valgrind is installed, bare, floor, chain3 and
links1 also run once each under cachegrind, up to their exec; chain3 /
floor in instructions is a third verdict on the first target, one that
does not move with the machine's load.

Targets: chain3 (both ways) <= 1.10 x floor; per-link cost <= 0.05 ms at
every length and on the line; links1000 <= links1 + 60 ms; peak RSS of
chain3 <= bare + 3 MiB and of links1000 <= chain3 + 2 MiB.

This is a script, not a test: it has no test functions and asserts nothing
about time. Its exit status is 0 whether targets pass or miss, 1 if a case
could not run at all.
"""

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python")
CHAINLOAD = str(BIN / "chainload")
TRUE = "/bin/true"
EXECLINE_FDMOVE = "/usr/lib/execline/bin/fdmove"

GNU_TIME = "/usr/bin/time"
RSS_ROUNDS = 10  # peak RSS barely varies; at most this many rounds

LINKS = (1, 10, 100, 1000)
C_LINKS = (1, 10)
LINK = ["fdmove", "-c", "5", "2"]

TARGET_RATIO = 1.10  # chain3 / floor
TARGET_LINK_MS = 0.05  # per link, at every length
TARGET_GROWTH_MS = 60.0  # links1000 - links1
TARGET_RSS_MIB = 3.0  # chain3 - bare
TARGET_LINKS_RSS_MIB = 2.0  # links1000 - chain3

# What chain3 imports beyond the interpreter's start-up set and chainload's
# own modules (checked at every run, see floor_check).
FLOOR_IMPORTS = "docopt, _socket, pwd, errno, fcntl"
# chainload.chain.main() turns the cyclic collector off before its imports.
FLOOR_PRELUDE = "import gc; gc.disable(); "


class Case:
    def __init__(self, name, argv, sockets=(), note=""):
        self.name = name
        self.argv = argv
        self.sockets = list(sockets)  # files to remove before each run
        self.note = note
        self.ms = []
        self.cpu = []  # user + system CPU ms of the same runs
        self.rss = []  # KiB, from the RSS rounds
        self.failures = 0

    def clean(self):
        for path in self.sockets:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _env():
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
    if "LANG" in os.environ:
        env["LANG"] = os.environ["LANG"]
    return env


def check(case, env):
    """One run with output kept; None if it exits 0, else its complaint."""
    case.clean()
    try:
        proc = subprocess.run(case.argv, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        case.clean()
        return "did not finish within 60 s"
    case.clean()
    if proc.returncode == 0:
        return None
    text = (proc.stderr or proc.stdout).strip().replace("\n", " | ")
    return f"exit status {proc.returncode}: {text}"


_QUIET = [
    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
]


def run_once(case, env):
    """Time one run of CASE; record its milliseconds."""
    case.clean()
    t0 = time.perf_counter()
    pid = os.posix_spawn(case.argv[0], case.argv, env, file_actions=_QUIET)
    _, status, usage = os.wait4(pid, 0)
    t1 = time.perf_counter()
    if os.waitstatus_to_exitcode(status) != 0:
        case.failures += 1
    case.ms.append((t1 - t0) * 1000.0)
    case.cpu.append((usage.ru_utime + usage.ru_stime) * 1000.0)


def gnu_time():
    """GNU time, if it is the one at GNU_TIME (-f %M = peak RSS in KiB)."""
    if not os.access(GNU_TIME, os.X_OK):
        return None
    try:
        proc = subprocess.run([GNU_TIME, "-f", "%M", TRUE], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    last = proc.stderr.strip().splitlines()[-1:] or [""]
    return GNU_TIME if proc.returncode == 0 and last[0].isdigit() else None


def rss_once(case, env, timer, out):
    """Peak RSS (KiB) of one run of CASE, as GNU time reports it."""
    case.clean()
    argv = [timer, "-f", "%M", "-o", out, *case.argv]
    pid = os.posix_spawn(timer, argv, env, file_actions=_QUIET)
    _, status, _ = os.wait4(pid, 0)
    with open(out) as f:
        lines = f.read().split()
    # On a non-zero exit GNU time writes "Command exited ..." first.
    if os.waitstatus_to_exitcode(status) != 0 or not lines or not lines[-1].isdigit():
        case.failures += 1
        return
    case.rss.append(int(lines[-1]))


def median_ratio(a, b):
    """Median over rounds of a[i] / b[i]."""
    return statistics.median(x / y for x, y in zip(a, b))


def pctl(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def chain3(chainload, sock, root):
    drop = ["setuidgid", "nobody"] if root else []
    return [chainload, "local-seqpacket-socket-listen", sock, "fdmove", "0", "3", *drop, TRUE]


def build_cases(tmp, installed):
    root = os.geteuid() == 0
    note = "" if root else "not root: without setuidgid nobody"
    cases = [
        Case("bare", [PYTHON, "-c", f"import os; os.execv({TRUE!r}, ['true'])"]),
        Case("floor", [PYTHON, "-c", f"{FLOOR_PRELUDE}import {FLOOR_IMPORTS}, os; "
                                     f"os.execv({TRUE!r}, ['true'])"]),
        Case("floor-gc", [PYTHON, "-c",
                          f"import {FLOOR_IMPORTS}, os; os.execv({TRUE!r}, ['true'])"]),
    ]
    sock = os.path.join(tmp, "chain3.sock")
    cases.append(Case("chain3", chain3(CHAINLOAD, sock, root), sockets=[sock], note=note))
    if installed:
        sock = os.path.join(tmp, "installed.sock")
        cases.append(Case("installed", chain3(installed, sock, root), sockets=[sock],
                          note=note))
    cases.append(Case("help", [CHAINLOAD, "--help"]))
    for n in LINKS:
        cases.append(Case(f"links{n}", [CHAINLOAD, *(LINK * n), TRUE]))

    binder = shutil.which("s6-ipcserver-socketbinder")
    s6_setuidgid = shutil.which("s6-setuidgid")
    if binder and s6_setuidgid and os.access(EXECLINE_FDMOVE, os.X_OK):
        sock = os.path.join(tmp, "s6.sock")
        cdrop = [s6_setuidgid, "nobody"] if root else []
        cases.append(Case("s6", [binder, sock, EXECLINE_FDMOVE, "0", "0", *cdrop, TRUE],
                          sockets=[sock],
                          note="" if root else "not root: without s6-setuidgid nobody"))
        for n in C_LINKS:
            cases.append(Case(f"c-links{n}", [*([EXECLINE_FDMOVE, *LINK[1:]] * n), TRUE]))
    else:
        print("note: s6 and/or execline not installed (s6-ipcserver-socketbinder, "
              f"s6-setuidgid, {EXECLINE_FDMOVE}); skipping the C chains "
              "(apt-get install s6 execline)")
    return cases


def make_install(prefix):
    """`make install PREFIX=prefix` from this checkout; its launcher or None."""
    make = shutil.which("make")
    if make is None:
        print("note: make not found: the installed launcher is not timed")
        return None
    print(f"installing into {prefix} (make install) ...", flush=True)
    try:
        # The venv's own interpreter, as the other cases use, even where
        # only root can run it (ROOT_ONLY=1): the same Python on both sides.
        proc = subprocess.run([make, "-C", str(ROOT), "install", f"PREFIX={prefix}",
                               f"PYTHON={sys.executable}", "ROOT_ONLY=1"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=900)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"note: make install failed ({e}): the installed launcher is not timed")
        return None
    launcher = os.path.join(prefix, "bin", "chainload")
    if proc.returncode != 0 or not os.access(launcher, os.X_OK):
        last = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        print(f"note: make install failed (status {proc.returncode}): "
              f"{' | '.join(last)}; the installed launcher is not timed")
        return None
    return launcher


# Instruction counts: deterministic where wall time on a shared VM is not
# (two quiet runs here gave chain3/floor 1.106 and 1.151 on wall time).
# Each case runs once under valgrind up to its exec: chainload with
# os.execve replaced by os._exit(0), the python cases with os._exit(0) for
# their execv. The exec itself is the same in every case.
VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
            "--cachegrind-out-file=/dev/null"]
UNTIL_EXEC = ("import os, sys; os.execve = lambda *a: os._exit(0); "
              "sys.argv = sys.argv[1:]; from chainload.chain import main; sys.exit(main())")


def instructions(by, env):
    """{case: millions of instructions} for bare, floor, chain3 and links1,
    or None without valgrind."""
    if shutil.which("valgrind") is None:
        print("note: valgrind not installed: no instruction counts (apt-get install valgrind)")
        return None
    argvs = {
        "bare": [PYTHON, "-c", "import os; os._exit(0)"],
        "floor": [PYTHON, "-c", f"{FLOOR_PRELUDE}import {FLOOR_IMPORTS}, os; os._exit(0)"],
    }
    for name in ("chain3", "links1"):
        argvs[name] = [PYTHON, "-c", UNTIL_EXEC, "chainload", *by[name].argv[1:]]
    counts = {}
    for name, argv in argvs.items():
        # Twice, the second one counted: as for the timed rounds, a warm-up
        # run first (a missing .pyc compiled once doubled a count).
        for _ in range(2):
            if name in by:
                by[name].clean()
            proc = subprocess.run([*VALGRIND, *argv], env={**env, "PYTHONHASHSEED": "0"},
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=300)
            if name in by:
                by[name].clean()
            refs = [ln for ln in proc.stderr.splitlines() if "I   refs:" in ln]
            if proc.returncode != 0 or not refs:
                print(f"note: valgrind could not count {name}: {proc.stderr.strip()[-200:]}")
                return None
        counts[name] = int(refs[-1].split(":")[1].replace(",", "")) / 1e6
    return counts


def imported(argv, env):
    """The modules `python -X importtime` reports for ARGV (argv[0] python)."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


def floor_check(by, env):
    """(chain3's own imports, the floor's) beyond bare, chainload's left out."""
    bare = imported(by["bare"].argv, env)
    by["chain3"].clean()
    chain = imported([PYTHON, *by["chain3"].argv], env)
    by["chain3"].clean()
    floor = imported(by["floor"].argv, env)
    chain = {m for m in chain - bare if m.split(".")[0] != "chainload"}
    return sorted(chain), sorted(floor - bare)


def fit(xs, ys, degree):
    """Least-squares polynomial coefficients [c0, c1, ...] of Y over X."""
    scale = max(xs)  # keeps the normal equations well conditioned
    us = [x / scale for x in xs]
    k = degree + 1
    a = [[sum(u ** (i + j) for u in us) for j in range(k)] for i in range(k)]
    b = [sum(y * u ** i for u, y in zip(us, ys)) for i in range(k)]
    for col in range(k):  # Gauss-Jordan with partial pivoting
        pivot = max(range(col, k), key=lambda r: abs(a[r][col]))
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for r in range(k):
            if r != col:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col])]
                b[r] -= f * b[col]
    return [b[i] / a[i][i] / scale ** i for i in range(k)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # 100: the 10-link cost is a difference of two ~20 ms runs divided by
    # 9, so a run's jitter reaches it ninefold; with 40 rounds on the
    # 2-vCPU VM it moved by +-0.03 ms between runs of the same code.
    parser.add_argument("--runs", type=int, default=100,
                        help="timed rounds; every case runs once per round (default 100)")
    parser.add_argument("--quick", action="store_true",
                        help="10 rounds, 1 warm-up: a smoke run, not a measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write the JSON line to FILE")
    parser.add_argument("--seed", type=int, default=None, help="seed of the round shuffle")
    opts = parser.parse_args(argv)
    runs, warmup = (10, 1) if opts.quick else (opts.runs, opts.warmup)
    if runs < 1:
        parser.error("--runs must be at least 1")

    if not os.access(CHAINLOAD, os.X_OK):
        sys.exit(f"{CHAINLOAD} is not installed: run the benchmark as `make bench`")

    env = _env()
    rng = random.Random(opts.seed)
    with tempfile.TemporaryDirectory(prefix="chainload-bench-") as tmp:
        os.chmod(tmp, 0o755)
        installed = make_install(os.path.join(tmp, "prefix"))
        load = os.getloadavg()
        cases = build_cases(tmp, installed)
        by_name = {c.name: c for c in cases}

        # A case that fails its checked run is reported, not timed; a chain3
        # that fails only because of setuidgid is timed without it, with a note.
        for case in list(cases):
            problem = check(case, env)
            if problem is None:
                continue
            print(f"note: {case.name} fails: {' '.join(case.argv)}\n      {problem}")
            if case.name in ("chain3", "installed") and "setuidgid" in case.argv:
                i = case.argv.index("setuidgid")
                case.argv[i:i + 2] = []
                case.note = "setuidgid nobody FAILS (see note): timed without it"
                if check(case, env) is None:
                    continue
            cases.remove(case)
            del by_name[case.name]

        floor = counts = None
        if {"bare", "floor", "chain3"} <= by_name.keys():
            floor = floor_check(by_name, env)
            counts = instructions(by_name, env)

        for _ in range(warmup):
            for case in cases:
                run_once(case, env)
        for case in cases:
            case.ms.clear()
            case.cpu.clear()
            case.failures = 0

        for _ in range(runs):
            order = cases[:]
            rng.shuffle(order)
            for case in order:
                run_once(case, env)

        timer = gnu_time()
        if timer is None:
            print(f"note: GNU time ({GNU_TIME}) not found: peak RSS not measured "
                  "(apt-get install time)")
        else:
            out = os.path.join(tmp, "rss")
            for _ in range(min(runs, RSS_ROUNDS)):
                order = cases[:]
                rng.shuffle(order)
                for case in order:
                    rss_once(case, env, timer, out)

    report(cases, by_name, runs, warmup, opts.json, load, floor, counts)
    needed = {"bare", "floor", "chain3", "help", *(f"links{n}" for n in LINKS)}
    return 0 if needed <= by_name.keys() else 1


def _links(by, metric):
    """Per-link costs on METRIC ("ms" wall or "cpu"): {N: (linksN - links1)
    / (N - 1)} as medians of per-round values, links1000 - links1, and the
    line's slope and the parabola's n^2 term through the medians."""
    get = lambda name: getattr(by[name], metric)  # noqa: E731
    have = [n for n in LINKS if f"links{n}" in by]
    if len(have) < 3 or have[0] != 1:
        return None
    per = {n: statistics.median((x - y) / (n - 1) for x, y in zip(get(f"links{n}"),
                                                                  get("links1")))
           for n in have[1:]}
    growth = statistics.median(x - y for x, y in zip(get(f"links{have[-1]}"), get("links1")))
    ys = [statistics.median(get(f"links{n}")) for n in have]
    return {"per_link_ms": per, "growth_ms": growth, "longest": have[-1],
            "fit_ms_per_link": fit(have, ys, 1)[1], "fit_n2_ms": fit(have, ys, 2)[2]}


def _ratios(by, metric):
    get = lambda name: getattr(by[name], metric)  # noqa: E731
    ratios = {}
    for a, b in (("floor", "bare"), ("chain3", "bare"), ("chain3", "floor"),
                 ("chain3", "floor-gc"),
                 ("installed", "floor"), ("links1", "floor"), ("chain3", "s6")):
        if a in by and b in by:
            ratios[f"{a}/{b}"] = median_ratio(get(a), get(b))
    return ratios


def report(cases, by, runs, warmup, json_path, load, floor, counts=None):
    med = {c.name: statistics.median(c.ms) for c in cases}
    cpu = {c.name: statistics.median(c.cpu) for c in cases}
    rss = {c.name: statistics.median(c.rss) for c in cases if c.rss}
    load = (load[0], os.getloadavg()[0])

    print(f"\nchainload start-up benchmark: {runs} interleaved rounds (+{warmup} warm-up), "
          f"Python {platform.python_version()} ({sys.executable}), "
          f"{os.cpu_count()} CPUs, {platform.machine()}, euid {os.geteuid()}, "
          f"load average {load[0]:.2f} before, {load[1]:.2f} after")
    print(f"{'case':<10} {'wall ms':>8} {'p10':>7} {'p90':>7} {'CPU ms':>7} "
          f"{'RSS MiB':>8} {'fail':>4}  command")
    for c in cases:
        cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(c.argv))
        if len(cmd) > 60:
            cmd = cmd[:57] + "..."
        mib = f"{rss[c.name] / 1024:>8.1f}" if c.name in rss else f"{'-':>8}"
        print(f"{c.name:<10} {med[c.name]:>8.2f} {pctl(c.ms, 10):>7.2f} {pctl(c.ms, 90):>7.2f} "
              f"{cpu[c.name]:>7.2f} {mib} {c.failures:>4}  {cmd}")
        if c.note:
            print(f"{'':<10} note: {c.note}")

    # The benchmark itself keeps about one CPU busy.
    if max(load) - 1 > 0.5 * (os.cpu_count() or 1):
        print(f"warning: the machine was busy (load average {max(load):.2f} on "
              f"{os.cpu_count()} CPUs): wall times include waiting for a CPU; "
              "the CPU-time columns are steadier")
    if floor is not None:
        chain, imports = floor
        if chain == imports:
            print(f"floor: chain3 imports exactly {FLOOR_IMPORTS} (and what they import) "
                  "beyond the bare interpreter and chainload")
        else:
            print(f"warning: the floor is not chain3's: chain3 also imports "
                  f"{sorted(set(chain) - set(imports)) or 'nothing'}, the floor also "
                  f"{sorted(set(imports) - set(chain)) or 'nothing'} (python -X importtime)")

    ratios, cpu_ratios = _ratios(by, "ms"), _ratios(by, "cpu")
    links, cpu_links = _links(by, "ms"), _links(by, "cpu")
    print(f"\n{'':<28} {'wall':>8} {'CPU':>8}   (medians of per-round values)")
    for key, value in ratios.items():
        print(f"ratio {key:<22} {value:8.3f} {cpu_ratios[key]:8.3f}")
    if links:
        for n, value in links["per_link_ms"].items():
            print(f"{f'ms per link at {n}':<28} {value:8.4f} {cpu_links['per_link_ms'][n]:8.4f}"
                  f"   (links{n} - links1) / {n - 1}")
        print(f"{'ms per link, line':<28} {links['fit_ms_per_link']:8.4f} "
              f"{cpu_links['fit_ms_per_link']:8.4f}   slope of the least-squares line")
        print(f"{'ms per link^2, parabola':<28} {links['fit_n2_ms']:8.2e} "
              f"{cpu_links['fit_n2_ms']:8.2e}   n^2 term (0 when a link's cost is constant)")
        print(f"{'links' + str(links['longest']) + ' - links1 ms':<28} "
              f"{links['growth_ms']:8.2f} {cpu_links['growth_ms']:8.2f}")
    c_link = None
    if "c-links1" in by and "c-links10" in by:
        c_link = statistics.median((x - y) / 9 for x, y in zip(by["c-links10"].ms,
                                                                by["c-links1"].ms))
        print(f"{'C ms per link (execline)':<28} {c_link:8.4f}"
              "            (c-links10 - c-links1) / 9, one exec per link")

    def rss_delta(a, b):
        if a in rss and b in rss:
            return statistics.median(x - y for x, y in zip(by[a].rss, by[b].rss)) / 1024
        return None

    if counts:
        print("instructions (valgrind, up to the exec): " + ", ".join(
            f"{k} {v:.2f} M" for k, v in counts.items()))
        print(f"ratio chain3/floor in instructions: {counts['chain3'] / counts['floor']:.3f}")

    rss_chain3, rss_links = rss_delta("chain3", "bare"), rss_delta("links1000", "chain3")
    if rss_chain3 is not None:
        print(f"peak RSS chain3 - bare: {rss_chain3:+.2f} MiB")
    if rss_links is not None:
        print(f"peak RSS links1000 - chain3: {rss_links:+.2f} MiB")

    # Verdicts are on wall time, as a user sees it; the CPU-time verdict is
    # shown beside it because on a busy machine wall time also counts the
    # time a run waited for a CPU.
    checks = []
    for name in ("chain3", "installed"):
        key = f"{name}/floor"
        if key in ratios:
            checks.append((f"{name}<={TARGET_RATIO:.2f}*floor", ratios[key], cpu_ratios[key],
                           TARGET_RATIO, "{:.3f}"))
    if counts:
        checks.append((f"chain3<={TARGET_RATIO:.2f}*floor (instr.)",
                       counts["chain3"] / counts["floor"], None, TARGET_RATIO, "{:.3f}"))
    if links:
        worst = max([*links["per_link_ms"].values(), links["fit_ms_per_link"]])
        cpu_worst = max([*cpu_links["per_link_ms"].values(), cpu_links["fit_ms_per_link"]])
        checks.append((f"link<={TARGET_LINK_MS}ms", worst, cpu_worst, TARGET_LINK_MS,
                       "{:.4f} ms (worst length)"))
        if links["longest"] == 1000:
            checks.append((f"links1000<=links1+{TARGET_GROWTH_MS:.0f}ms", links["growth_ms"],
                           cpu_links["growth_ms"], TARGET_GROWTH_MS, "+{:.2f} ms"))
    if rss_chain3 is not None:
        checks.append((f"rss chain3<=bare+{TARGET_RSS_MIB:.0f}MiB", rss_chain3, None,
                       TARGET_RSS_MIB, "{:+.2f} MiB"))
    if rss_links is not None:
        checks.append((f"rss links1000<=chain3+{TARGET_LINKS_RSS_MIB:.0f}MiB", rss_links, None,
                       TARGET_LINKS_RSS_MIB, "{:+.2f} MiB"))
    targets, cpu_targets = {}, {}
    print()
    for key, value, cpu_value, limit, fmt in checks:
        targets[key] = "PASS" if value <= limit else "MISS"
        text = f"{targets[key]}  {key:<30} {fmt.format(value)}"
        if cpu_value is not None:
            cpu_targets[key] = "PASS" if cpu_value <= limit else "MISS"
            text += f"   (on CPU time: {cpu_targets[key]}, {fmt.format(cpu_value)})"
        print(text)

    r = lambda d: {k: round(v, 4) for k, v in d.items()}  # noqa: E731

    def rl(d):
        return d and {**d, "per_link_ms": {str(k): round(v, 5)
                                           for k, v in d["per_link_ms"].items()},
                      "fit_ms_per_link": round(d["fit_ms_per_link"], 5),
                      "fit_n2_ms": float(f"{d['fit_n2_ms']:.3e}"),
                      "growth_ms": round(d["growth_ms"], 3)}

    line = json.dumps({
        "bench": "chainload-startup",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "runs": runs,
        "euid": os.geteuid(),
        "load": [round(x, 2) for x in load],
        "floor_imports": FLOOR_IMPORTS,
        "floor_matches_chain3": None if floor is None else floor[0] == floor[1],
        "median_ms": r(med),
        "cpu_ms": r(cpu),
        "maxrss_kib": {k: int(v) for k, v in rss.items()},
        "failures": {c.name: c.failures for c in cases if c.failures},
        "notes": {c.name: c.note for c in cases if c.note},
        "ratios": r(ratios),
        "cpu_ratios": r(cpu_ratios),
        "links": rl(links),
        "cpu_links": rl(cpu_links),
        "c_link_ms": None if c_link is None else round(c_link, 4),
        "rss_chain3_minus_bare_mib": None if rss_chain3 is None else round(rss_chain3, 3),
        "rss_links1000_minus_chain3_mib": None if rss_links is None else round(rss_links, 3),
        "instructions_m": counts and {k: round(v, 2) for k, v in counts.items()},
        "targets": targets,
        "cpu_targets": cpu_targets,
    })
    print()
    print(line)
    if json_path:
        with open(json_path, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())
