"""`make install` and the Makefile itself.

One `make install PREFIX=<tmp>` per run of this module (it needs the
package index, or pip's cache, for pip and docopt-ng), then:

  * the launcher: `#!PREFIX/lib/chainload/bin/python -I`, with
    PREFIX/bin/chainload and every command name linked to it, and no
    pip console script (without -I) left beside it;
  * the command names come from the command table, none shadows a
    program of the system, and every one has its page;
  * PYTHONPATH (a sitecustomize.py and a docopt.py that leave a marker),
    PYTHONHOME, PYTHONINSPECT and PYTHONSTARTUP change nothing in the
    chain, yet reach the final program unchanged;
  * DESTDIR is refused, a half-made venv is made again, and
    `make bench ARGS=...` passes ARGS on.
"""

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chainload import chain

from conftest import _probe_python, _public_dir, command, root_only, run

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
SYSTEM_BIN = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args, timeout=900):
    argv = ["make", "--no-print-directory", "-C", str(ROOT), *args]
    if shutil.which("flock"):
        # pip builds in the checkout; others may be running `make venv`.
        argv = ["flock", "-w", "600", "/tmp/chainload-venv.lock", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


# Why the install of this module could not be one every user can run, if so.
NOT_FOR_EVERY_USER = []


@pytest.fixture(scope="module")
def prefix():
    """A fresh `make install` (made once for this module), where every user
    can reach it (nobody runs the installed chain in tests below). As root,
    make picks the interpreter as for a user (one every user can run);
    where it finds none, the install is made with ROOT_ONLY=1 and the tests
    that need every user to run it skip."""
    base = _public_dir("chainload-install-", 0o755)
    prefix = base / "prefix"
    args = ["install", f"PREFIX={prefix}"]
    if os.geteuid() != 0:
        args.append(f"PYTHON={sys.executable}")
    proc = make(*args)
    if proc.returncode != 0 and os.geteuid() == 0 and "PYTHON=" in proc.stderr:
        NOT_FOR_EVERY_USER.append(proc.stderr.strip().splitlines()[0])
        proc = make(*args, f"PYTHON={sys.executable}", "ROOT_ONLY=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield prefix
    shutil.rmtree(base, ignore_errors=True)


def table_names():
    """Every name make install puts on PATH: the table's, less the names
    that work only inside a chain (setsid, cd: they would shadow others)."""
    return [n for n in [*chain.COMMANDS, *chain.ALIASES] if n not in chain.IN_CHAIN_ONLY]


# --- what is installed ----------------------------------------------------------

def test_the_launcher_runs_python_in_isolated_mode(prefix):
    libdir = prefix / "lib" / "chainload"
    launcher = libdir / "bin" / "chainload"
    first = launcher.read_text().splitlines()[0]
    # One argument after the interpreter: the kernel passes "-I -S" as one.
    # -I and -X utf8 (see test_boundary.py: Python starts in every locale).
    assert first == f"#!{libdir}/bin/python -IXutf8", first
    assert os.access(launcher, os.X_OK)
    assert os.readlink(prefix / "bin" / "chainload") == "../lib/chainload/bin/chainload"
    assert (prefix / "bin" / "chainload").resolve() == launcher.resolve()
    # pip's console scripts (no -I) are gone: only the launcher remains.
    left = sorted(p.name for p in (libdir / "bin").iterdir()
                  if p.name in table_names() or p.name == "chainload")
    assert left == ["chainload"], left


def test_every_name_of_the_table_is_a_link_to_chainload(prefix):
    bin_dir = prefix / "bin"
    installed = sorted(p.name for p in bin_dir.iterdir())
    assert installed == sorted(["chainload", "chainload-convert", *table_names()]), installed
    for name in table_names():
        assert os.readlink(bin_dir / name) == "chainload", name


def test_no_installed_name_shadows_a_system_program_or_page(prefix):
    """Never put a name on PATH that coreutils, util-linux or any other
    installed package already has (such a command is installed as
    chainload-NAME, NAME working only in a chain); the same for its page.
    The documented exceptions are the names daemontools, execline, runit
    or s6 share with us (the Makefile's CLASH, left out by NO_CLASH=1),
    whose packages may be installed here."""
    shared = set(next(line.split(":=", 1)[1] for line in
                      make("-s", "-p", "-n", "clean").stdout.splitlines()
                      if line.startswith("CLASH :=")).split())
    assert {"envdir", "softlimit", "fdmove", "setuidgid", "umask", "fdredir",
            "hardlimit"} <= shared  # fdredir and hardlimit: nosh's
    for p in (prefix / "bin").iterdir():
        if p.name in shared:
            continue
        clash = [d for d in SYSTEM_BIN if os.path.lexists(os.path.join(d, p.name))]
        assert not clash, f"{p.name} would shadow {clash}"
    for page in (prefix / "share" / "man" / "man1").iterdir():
        if page.stem in shared:
            continue
        system = [f"/usr/share/man/man1/{page.name}{z}" for z in ("", ".gz")]
        assert not [s for s in system if os.path.lexists(s)], page.name


def test_every_page_and_alias_page_is_installed(prefix):
    man1 = prefix / "share" / "man" / "man1"
    for page in sorted(MAN.glob("*.1")):
        installed = man1 / page.name
        assert installed.is_file() and not installed.is_symlink(), installed
        assert filecmp.cmp(installed, page, shallow=False), installed
        assert installed.stat().st_mode & 0o777 == 0o644
    for alias, name in chain.ALIASES.items():  # `man listen-seqpacket`
        alias_page = man1 / f"{alias}.1"
        if alias in chain.IN_CHAIN_ONLY:  # setsid(1) is util-linux's
            assert not alias_page.exists(), alias_page
            continue
        assert alias_page.read_text() == f".so man1/{name}.1\n"
        assert (man1 / f"{name}.1").is_file()
    for page in sorted(MAN.glob("*.3")):  # chainload.activation(3)
        installed = prefix / "share" / "man" / "man3" / page.name
        assert filecmp.cmp(installed, page, shallow=False), installed


def load_install_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("install_tool", ROOT / "tools" / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installed_names_and_skip():
    """The Makefile's rule: the table's names but the in-chain-only ones,
    less SKIP (NO_CLASH=1 skips the names daemontools, execline, runit,
    s6 and nosh also install)."""
    tool = load_install_tool()
    assert tool.installed_names() == table_names()
    assert tool.installed_names(["chdir", "setenv"]) == [
        n for n in table_names() if n not in ("chdir", "setenv")]
    dry = make("-s", "-n", "install", "PREFIX=/nonexistent/prefix", "NO_CLASH=1").stdout
    line = next(ln for ln in dry.splitlines() if "tools/install.py" in ln)
    assert line.split(" man ", 1)[1].split() == ["fdmove", "setuidgid", "envdir",
                                                 "softlimit", "umask", "fdredir", "hardlimit",
                                                 "foreground", "if"]


# --- what runs --------------------------------------------------------------------

def test_installed_chain_runs(prefix, tmp_path):
    clean_env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    bin_dir = prefix / "bin"
    proc = subprocess.run([str(bin_dir / "fdmove"), "--help"], capture_output=True,
                          text=True, timeout=60, env=clean_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: fdmove "), proc.stdout
    # A whole chain through a symlinked name: the socket, then fdmove, then exec.
    sock = tmp_path / "s.sock"
    proc = subprocess.run([str(bin_dir / "listen-seqpacket"), str(sock),
                           "fdmove", "-c", "7", "3", "/bin/sh", "-c",
                           'test -S "$1" && [ -e /proc/self/fd/7 ] && echo ok', "sh",
                           str(sock)],
                          capture_output=True, text=True, timeout=60, env=clean_env)
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr


def test_installed_converter_names_the_installed_chainload(prefix, tmp_path):
    unit = tmp_path / "t.service"
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    proc = subprocess.run([str(prefix / "bin" / "chainload-convert"), "-q", str(unit)],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert f"exec {prefix / 'bin' / 'chainload'} " in proc.stdout
    launcher = (prefix / "lib" / "chainload" / "bin" / "chainload").read_text()
    assert (prefix / "lib" / "chainload" / "bin" / "chainload-convert").read_text() == \
        launcher.replace("from chainload.chain import", "from chainload.convert.main import")


@pytest.fixture(params=["PYTHONHOME", "no-PYTHONHOME"])
def hostile(tmp_path, request):
    """An environment whose PYTHON* variables would run code in, break, or
    keep alive a non-isolated interpreter; and the marker that code leaves.
    (A bad PYTHONHOME stops such an interpreter before it gets to the code,
    so once without it.)"""
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "marker"
    leave = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    (evil / "sitecustomize.py").write_text(leave)
    (evil / "usercustomize.py").write_text(leave)
    (evil / "docopt.py").write_text(leave + "raise SystemExit(42)\n")
    (evil / "startup.py").write_text(leave)
    os.chmod(tmp_path, 0o755)
    for f in evil.iterdir():
        os.chmod(f, 0o644)
    os.chmod(evil, 0o755)
    python_env = {"PYTHONPATH": str(evil), "PYTHONHOME": "/nonexistent",
                  "PYTHONINSPECT": "1", "PYTHONSTARTUP": str(evil / "startup.py"),
                  "PYTHONUSERBASE": str(evil)}
    if request.param != "PYTHONHOME":
        del python_env["PYTHONHOME"]
    env = {"PATH": "/usr/bin:/bin", **python_env}
    return env, python_env, marker, evil


def check_unaffected(result, marker, status=0):
    assert result.returncode == status, result.stderr
    assert not marker.exists(), marker.read_text()
    assert "Traceback" not in result.stderr and ">>>" not in result.stderr


@pytest.mark.parametrize("how", ["symlink", "umbrella"])
def test_python_variables_change_nothing_but_reach_the_program(prefix, probe, hostile, how):
    env, python_env, marker, evil = hostile
    argv = [str(prefix / "bin" / "fdmove"), "-c", "5", "2", *probe]
    if how == "umbrella":
        argv = [str(prefix / "bin" / "chainload"), *[os.path.basename(argv[0])], *argv[1:]]
    result = run(argv, env=env, cwd=evil)
    check_unaffected(result, marker)
    assert result.stderr == ""
    assert result.report["python_env"] == python_env
    assert "5" in result.report["fds"]


def test_python_variables_change_no_refusal(prefix, hostile):
    env, _, marker, evil = hostile
    result = run([str(prefix / "bin" / "fdmove"), "1", "1", "no-such-program-chainload"],
                 env=env, cwd=evil)
    check_unaffected(result, marker, status=127)
    assert result.stderr == "fdmove: FATAL: no-such-program-chainload: No such file or directory\n"
    result = run([str(prefix / "bin" / "fdmove"), "--bogus"], env=env, cwd=evil)
    check_unaffected(result, marker, status=100)


def test_python_dash_i_dash_m_chainload_ignores_them_too(probe, hostile):
    """The README's advice for pip installs: python -I -m chainload."""
    env, python_env, marker, evil = hostile
    result = run([sys.executable, "-I", "-m", "chainload", "fdmove", "-c", "5", "2", *probe],
                 env=env, cwd=evil)
    check_unaffected(result, marker)
    assert result.report["python_env"] == python_env


@root_only
def test_python_variables_run_nothing_as_root(prefix, probe, hostile):
    """The attack of issue 10: an environment that someone else wrote in
    front of a chain that starts as root."""
    env, python_env, marker, evil = hostile
    result = run([str(prefix / "bin" / "setuidgid"), "nobody", *probe], env=env, cwd=evil)
    check_unaffected(result, marker)
    assert result.report["python_env"] == python_env
    nobody = __import__("pwd").getpwnam("nobody").pw_uid
    assert result.report["resuid"] == [nobody] * 3


# --- the Makefile ---------------------------------------------------------------

def test_destdir_is_refused(tmp_path):
    stage, prefix = tmp_path / "stage", tmp_path / "prefix"
    proc = make("install", f"DESTDIR={stage}", f"PREFIX={prefix}", timeout=60)
    assert proc.returncode != 0
    assert "DESTDIR is not supported" in proc.stderr, proc.stdout + proc.stderr
    assert not stage.exists() and not prefix.exists()
    assert sorted(os.listdir(tmp_path)) == []


def test_a_half_made_venv_is_made_again(tmp_path):
    """`python3 -m venv` without Debian's python3-venv leaves a venv with a
    python but no pip; running make again must recover."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    (venv / "half-made").touch()
    proc = make("venv-base", f"VENV={venv}", f"PYTHON={sys.executable}", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (venv / "half-made").exists()
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"],
                         capture_output=True, text=True, timeout=60)
    assert pip.returncode == 0, pip.stderr
    # A working venv is left alone.
    (venv / "kept").touch()
    proc = make("venv-base", f"VENV={venv}", f"PYTHON={sys.executable}", timeout=300)
    assert proc.returncode == 0 and (venv / "kept").exists(), proc.stderr


def test_make_bench_passes_args():
    proc = make("-n", "bench", "ARGS=--quick --runs 3", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "tests/bench.py --quick --runs 3\n" in proc.stdout, proc.stdout


def test_the_tests_import_the_installed_package():
    """In process and in a `python -c` started from the checkout, chainload
    is the venv's copy (tests/conftest.py), not the checkout's: a module
    the package leaves out fails here, not only for users."""
    import sysconfig

    import chainload

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert Path(chainload.__file__).resolve().is_relative_to(site), chainload.__file__
    out = subprocess.run([sys.executable, "-c", "import chainload; print(chainload.__file__)"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    assert Path(out).resolve().is_relative_to(site), out



# The launcher's -X utf8: Python starts where it has no codec for the locale's
# charset (issue 22 item 16); the chain passes the bytes on unchanged there.
from test_boundary import (NO_CODEC, check_passes_bytes_in,  # noqa: E402
                           no_codec_environment, no_codec_locales)  # noqa: F401 (a fixture)


@pytest.mark.parametrize("name", NO_CODEC)
def test_the_launcher_starts_where_python_has_no_codec(prefix, no_codec_locales, name):
    env = no_codec_environment(no_codec_locales, name)
    check_passes_bytes_in(bytes(prefix / "bin" / "chainload"), env)
    check_passes_bytes_in(bytes(prefix / "bin" / "fdmove"), env)


# --- who can run the install, and with which Python (issue 22, items 7, 8, 10) ------

def needs_every_user():
    if NOT_FOR_EVERY_USER:
        pytest.skip(f"no interpreter every user can run here: {NOT_FOR_EVERY_USER[0]}")


def private_python(tmp_path):
    """An interpreter root can run and nobody cannot: this one's base, by a
    symlink in a 0700 directory (as root's pyenv build under /root)."""
    real = os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "python3").symlink_to(real)
    return private / "python3"


@root_only
def test_every_user_can_run_a_root_install(prefix, probe):
    """`make install` as root, without PYTHON=: another user's chain runs
    (0.2 took root's pyenv python under the 0700 /root: Permission denied)."""
    needs_every_user()
    nobody = __import__("pwd").getpwnam("nobody").pw_uid
    result = run([str(prefix / "bin" / "fdmove"), "-c", "5", "1", *probe], user="nobody",
                 cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.report["resuid"] == [nobody] * 3
    assert "5" in result.report["fds"]


@root_only
def test_root_install_refuses_an_interpreter_others_cannot_run(tmp_path):
    python = private_python(tmp_path)
    target = tmp_path / "prefix"
    proc = make("install", f"PREFIX={target}", f"PYTHON={python}", timeout=120)
    assert proc.returncode != 0
    line = proc.stderr.splitlines()[0]
    assert line.startswith("make install: "), proc.stderr
    for words in (str(python), "nobody", "Permission denied", "PYTHON=", "ROOT_ONLY=1"):
        assert words in line, (words, line)
    assert not target.exists()  # nothing was made


@root_only
def test_install_venv_keeps_or_remakes_by_who_can_run_it(prefix, tmp_path):
    """tools/install_venv.sh on an earlier install whose interpreter nobody
    can run (a copy of this module's install, pointed at a private one):
    ROOT_ONLY=1 keeps it; without, it is made again with the first
    candidate every user can run, which is then kept."""
    libdir = tmp_path / "lib"
    shutil.copytree(prefix / "lib" / "chainload", libdir, symlinks=True)
    private = private_python(tmp_path)
    cfg = libdir / "pyvenv.cfg"
    cfg.write_text("".join(f"home = {private.parent}\n" if ln.startswith("home =") else ln
                           for ln in cfg.read_text().splitlines(keepends=True)))
    for name in ("python3", f"python3.{sys.version_info.minor}"):
        (libdir / "bin" / name).unlink(missing_ok=True)
    (libdir / "bin" / "python3").symlink_to(private)
    script = ["sh", str(ROOT / "tools" / "install_venv.sh"), str(libdir)]

    def install(root_only, *pythons):
        return subprocess.run([*script, root_only, *map(str, pythons)], capture_output=True,
                              text=True, timeout=300)

    public = _probe_python()
    (libdir / "marker").touch()
    proc = install("1", private, public)
    assert proc.returncode == 0, proc.stderr
    assert (libdir / "marker").exists()  # ROOT_ONLY=1: kept as it is
    proc = install("", private, public)
    if proc.returncode != 0:
        assert "PYTHON=" in proc.stderr, proc.stderr
        pytest.skip(f"no interpreter every user can run here: {proc.stderr.strip()}")
    assert not (libdir / "marker").exists()  # made again
    base = subprocess.run([public, "-I", "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert os.readlink(libdir / "bin" / "python3") == base
    (libdir / "marker").touch()
    proc = install("", private, public)
    assert proc.returncode == 0, proc.stderr
    assert (libdir / "marker").exists()  # every user can run it: kept


def test_python_daemons_run_with_the_installs_interpreter(prefix):
    """Item 8: the README names PREFIX/lib/chainload/bin/python for Python
    daemons after `make install`, and that interpreter imports
    chainload.activation from the install (as nobody too, after setuidgid,
    when run as root)."""
    readme = (ROOT / "README.md").read_text()
    assert "`PREFIX/lib/chainload/bin/python`" in readme
    assert "`/usr/bin/python3` cannot import `chainload.activation`" in readme
    python = prefix / "lib" / "chainload" / "bin" / "python"
    work = _public_dir("chainload-daemon-", 0o1777)
    try:
        daemon = work / "daemon.py"
        daemon.write_text("import json, os\n"
                          "from chainload import activation\n"
                          "print(json.dumps({'file': activation.__file__, 'uid': os.getuid(),\n"
                          "    'fds': [s.fileno() for s in activation.listen_sockets()]}))\n")
        os.chmod(daemon, 0o644)
        drop = []
        if os.geteuid() == 0 and not NOT_FOR_EVERY_USER:
            drop = ["setuidgid", "nobody"]
        proc = subprocess.run([str(prefix / "bin" / "listen-stream"), "--systemd-compatibility",
                               str(work / "app.sock"), *drop, str(python), str(daemon)],
                              cwd="/", capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert Path(report["file"]).is_relative_to(prefix / "lib" / "chainload"), report
        assert report["fds"] == [3]
        if drop:
            assert report["uid"] == __import__("pwd").getpwnam("nobody").pw_uid
    finally:
        shutil.rmtree(work, ignore_errors=True)
    system = Path("/usr/bin/python3")
    if system.exists():
        check = subprocess.run([str(system), "-I", "-c", "import chainload.activation"],
                               cwd="/", capture_output=True, text=True, timeout=30)
        if check.returncode == 0:
            pytest.skip("this system's /usr/bin/python3 has chainload installed")
        assert "No module named 'chainload'" in check.stderr


def test_no_clash_leaves_out_the_pages_of_the_names_it_leaves_out(prefix, tmp_path):
    """Item 10: with NO_CLASH=1 (or SKIP) a name left out of PREFIX/bin has
    no page either; run on a copy of the install's venv, with the words
    `make install NO_CLASH=1` gives tools/install.py."""
    dry = make("-s", "-n", "install", "PREFIX=/nonexistent/prefix", "NO_CLASH=1").stdout
    line = next(ln for ln in dry.splitlines() if "tools/install.py" in ln)
    skip = line.split(" man ", 1)[1].split()
    assert "setuidgid" in skip
    other = tmp_path / "other"
    shutil.copytree(prefix / "lib", other / "lib", symlinks=True)
    proc = subprocess.run([str(other / "lib" / "chainload" / "bin" / "python"), "-I",
                           str(ROOT / "tools" / "install.py"), str(other), str(MAN), *skip],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    kept = [n for n in table_names() if n not in skip] + ["chainload-convert"]
    assert sorted(p.name for p in (other / "bin").iterdir()) == sorted(["chainload", *kept])
    pages = sorted(p.name for p in (other / "share" / "man" / "man1").iterdir())
    assert pages == sorted(f"{name}.1" for name in ["chainload", *kept]), pages
