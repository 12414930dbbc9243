"""chainload-convert through the installed command: the mapping of each
directive, the order of the chain, warnings, refusals and options; and
the converted scripts run, ending in the probe."""

import filecmp
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, root_only, run
from test_convert_syntax import SERVICE, chain_of, convert, write


def text_of(result):
    return " ".join(chain_of(result))


# --- the mapping ------------------------------------------------------------------

def test_order_follows_systemd(tmp_path):
    service = ("[Service]\nExecStart=/bin/daemon $X\nExecStartPre=/bin/pre\nUser=root\n"
               "Group=daemon\nEnvironment=A=1\nLimitNOFILE=524288\nUMask=0027\n"
               "RuntimeDirectory=t\nWorkingDirectory=/srv\nStandardOutput=null\nNice=5\n")
    words = chain_of(convert(tmp_path, {"t.socket": "[Socket]\nListenStream=/run/t/s\n",
                                        "t.service": service}, "t.socket"))
    order = ["clearenv", "userenv", "hardlimit", "softlimit", "umask",
             "install-dir", "local-stream-socket-listen", "chdir", "fdredir", "nice", "if",
             "substitute"]
    positions = [words.index(w) for w in order]
    assert positions == sorted(positions), words
    assert words[-3:] == ["substitute", "/bin/daemon", "$X"]


def test_environment(tmp_path):
    service = SERVICE + ("Environment=\"A=a b\" 'B=c' C=d\\x20e\nEnvironment=A=again\n"
                         "EnvironmentFile=-/etc/default/t\nEnvironmentFile=/etc/t.env\n"
                         "UnsetEnvironment=LANG FOO=bar\nUser=nobody\n")
    result = convert(tmp_path, {"t.service": service}, "t.service")
    text = text_of(result)
    assert "userenv nobody setenv A again setenv B c setenv C d e envfile " \
           "--ignore-missing /etc/default/t envfile /etc/t.env unsetenv LANG" in text
    assert "UnsetEnvironment=LANG FOO=bar: not converted (not expressible" in result.stderr
    assert "clearenv" not in text_of(
        convert(tmp_path, {"t.service": service}, "t.service", "--keep-environment"))


def test_limits(tmp_path):
    service = SERVICE + ("LimitNOFILE=1024:524288\nLimitCORE=infinity\nLimitCPU=1h\n"
                         "LimitMEMLOCK=8M\nLimitRTPRIO=50\nLimitNICE=-5\n")
    text = text_of(convert(tmp_path, {"t.service": service}, "t.service"))
    assert ("hardlimit -o 524288 -a unlimited"[:0] + "hardlimit") in text
    hard = text[text.index("hardlimit"):text.index("softlimit")].split()
    soft = text[text.index("softlimit"):text.index("umask")].split()
    assert hard == ["hardlimit", "-o", "524288", "-l", "8388608", "-c", "unlimited",
                    "-t", "3600", "--rtprio", "50", "--nice", "25"] or sorted(hard) == sorted(
        ["hardlimit", "-o", "524288", "-l", "8388608", "-c", "unlimited", "-t", "3600",
         "--rtprio", "50", "--nice", "25"])
    pairs = dict(zip(soft[1::2], soft[2::2]))
    assert pairs == {"-o": "1024", "-l": "=", "-c": "=", "-t": "=", "--rtprio": "=",
                     "--nice": "="}


def test_directories(tmp_path):
    service = SERVICE + ("User=nobody\nGroup=nogroup\nRuntimeDirectory=a b/c\n"
                         "RuntimeDirectoryMode=0750\nStateDirectory=s\nLogsDirectory=l\n"
                         "ConfigurationDirectory=e\nCacheDirectory=../bad\n")
    result = convert(tmp_path, {"t.service": service}, "t.service")
    text = text_of(result)
    assert ("install-dir -m 0750 -o nobody -g nogroup /run/a install-dir -m 0750 -o nobody "
            "-g nogroup /run/b/c install-dir -m 0755 -o nobody -g nogroup /var/lib/s "
            "install-dir -m 0755 -o nobody -g nogroup /var/log/l install-dir -m 0755 /etc/e"
            ) in text
    assert "setenv RUNTIME_DIRECTORY /run/a:/run/b/c setenv STATE_DIRECTORY /var/lib/s" in text
    assert "CacheDirectory=../bad: not converted (../bad: not a relative path" in result.stderr


@pytest.mark.parametrize("pre,expect", [
    ("/bin/pre", "if setuidgid -s nobody /bin/pre ;"),
    ("-/bin/pre", "foreground setuidgid -s nobody /bin/pre ;"),
    ("+/bin/pre", "if /bin/pre ;"),
    ("!/bin/pre", "if /bin/pre ;"),
    ("!!/bin/pre", "if setuidgid -s nobody /bin/pre ;"),
    ("/bin/pre $A ; /bin/two", "if setuidgid -s nobody substitute /bin/pre $A ; "
                               "if setuidgid -s nobody /bin/two ;"),
    ("/bin/pre \\; ;; x", "if setuidgid -s nobody /bin/pre ;; ;;; x ;"),
])
def test_exec_start_pre(tmp_path, pre, expect):
    service = SERVICE + f"User=nobody\nExecStartPre={pre}\n"
    assert expect + " setuidgid -s nobody /bin/daemon" in text_of(
        convert(tmp_path, {"t.service": service}, "t.service"))


def test_permissions_start_only_and_condition(tmp_path):
    service = SERVICE + ("User=nobody\nExecStartPre=/bin/pre\nExecCondition=/bin/cond\n"
                         "PermissionsStartOnly=yes\n")
    assert "if /bin/cond ; if /bin/pre ; setuidgid -s nobody /bin/daemon" in text_of(
        convert(tmp_path, {"t.service": service}, "t.service"))


@pytest.mark.parametrize("start,expect,warning", [
    ("+/bin/d", "fdredir --read 0 /dev/null /bin/d", None),
    ("!/bin/d", "fdredir --read 0 /dev/null /bin/d", None),
    ("!!/bin/d", "setuidgid -s nobody /bin/d", None),
    (":/bin/d $A", "setuidgid -s nobody /bin/d $A", None),
    ("/bin/d ${A}x", "setuidgid -s nobody substitute /bin/d ${A}x", None),
    ("@/bin/d name a", "setuidgid -s nobody /bin/d a", "the @ prefix"),
    ("-/bin/d", "setuidgid -s nobody /bin/d", "the - prefix"),
])
def test_exec_start_prefixes(tmp_path, start, expect, warning):
    result = convert(tmp_path, {"t.service": f"[Service]\nExecStart={start}\nUser=nobody\n"},
                     "t.service")
    assert text_of(result).endswith(expect)
    if warning:
        assert warning in result.stderr


def test_scheduling_and_capabilities(tmp_path):
    service = SERVICE + ("User=nobody\nNice=-5\nIOSchedulingClass=best-effort\n"
                         "IOSchedulingPriority=2\nCPUSchedulingPolicy=rr\n"
                         "CPUSchedulingPriority=10\nOOMScoreAdjust=-900\n"
                         "AmbientCapabilities=CAP_NET_BIND_SERVICE\n")
    text = text_of(convert(tmp_path, {"t.service": service}, "t.service"))
    assert text.endswith(
        "nice -n -5 ionice -c 2 -n 2 chrt --rr 10 choom -n -900 -- "
        "setpriv --reuid=nobody --regid=nogroup --init-groups --securebits=+keep_caps "
        "--inh-caps=+net_bind_service --ambient-caps=+net_bind_service -- /bin/daemon")


@pytest.mark.parametrize("lines,expect", [
    ("StandardOutput=null\n", "fdredir --write 1 /dev/null fdmove -c 2 1"),
    ("StandardOutput=append:/var/log/t\nStandardError=null\n",
     "fdredir --append 1 /var/log/t fdredir --write 2 /dev/null"),
    ("StandardOutput=file:/f\nStandardError=truncate:/g\n",
     "fdredir --update 1 /f fdredir --write 2 /g"),
    ("StandardInput=file:/in\nStandardOutput=journal\n", "fdredir --read 0 /in /bin/daemon"),
])
def test_redirections(tmp_path, lines, expect):
    assert expect in text_of(convert(tmp_path, {"t.service": SERVICE + lines}, "t.service"))


def test_working_directory(tmp_path):
    result = convert(tmp_path, {"t.service": SERVICE + "WorkingDirectory=-~\nUser=root\n"},
                     "t.service")
    assert "chdir /root" in text_of(result)
    assert "the - prefix" in result.stderr


# --- warnings, refusals, options -----------------------------------------------------

def test_warnings_name_the_line_and_are_grouped(tmp_path):
    service = SERVICE + "PrivateTmp=yes\nRestart=always\nBogus=1\nPrivateDevices=no\n"
    result = convert(tmp_path, {"t.service": service}, "t.service")
    path = tmp_path / "units" / "t.service"
    lines = result.stderr.splitlines()
    assert lines[:3] == [
        f"{path}:4: Restart=always: not converted (the supervisor's job: restarting)",
        f"{path}:3: PrivateTmp=yes: not converted (not expressible in a chain: sandboxing)",
        f"{path}:5: Bogus=1: not converted (unknown directive)",
    ]
    assert "PrivateDevices" not in result.stderr  # =no changes nothing
    assert run(["chainload-convert", "--quiet", "--unit-path", str(tmp_path / "units"),
                "t.service"]).stderr == ""


def test_strict(tmp_path):
    write(tmp_path / "units", {"t.service": SERVICE + "Restart=always\n"})
    out = tmp_path / "svc"
    result = run(["chainload-convert", "--strict", "-q", "--unit-path",
                  str(tmp_path / "units"), "-o", str(out), "t.service"])
    assert result.returncode == 111
    assert "(--strict)" in result.fatal_line()
    assert not out.exists()


@pytest.mark.parametrize("lines,words", [
    ("Type=forking\nExecStart=/usr/sbin/sshd\n", ["Type=forking", "sshd's foreground option is -D"]),
    ("Type=oneshot\nExecStart=/bin/x\n", ["Type=oneshot", "not a long-running"]),
    ("DynamicUser=yes\nExecStart=/bin/x\n", ["DynamicUser=yes", "static account"]),
    ("ExecStart=/bin/x\nExecStart=/bin/y\n", ["More than one ExecStart="]),
])
def test_refusals_and_force(tmp_path, lines, words):
    files = {"t.service": "[Service]\n" + lines}
    result = convert(tmp_path, files, "t.service")
    assert result.returncode == 111
    assert result.stdout == ""
    line = result.fatal_line()
    assert line.startswith("chainload-convert: FATAL: ")
    assert all(w in line for w in words) and "--force" in line
    forced = convert(tmp_path, files, "t.service", "--force")
    assert forced.returncode == 0 and words[0] in forced.stderr
    chain_of(forced)


def test_unsupported_listen_is_refused(tmp_path):
    files = {"t.socket": "[Socket]\nListenFIFO=/run/t.fifo\n", "t.service": SERVICE}
    result = convert(tmp_path, files, "t.socket")
    assert result.returncode == 111 and "ListenFIFO" in result.fatal_line()


def test_usage_errors():
    result = run(["chainload-convert"])
    assert result.returncode == 100 and result.stderr.startswith("chainload-convert: FATAL:")
    assert "Usage:" in result.stderr
    assert run(["chainload-convert", "--bogus", "x.service"]).returncode == 100
    result = run(["chainload-convert", "--help"])
    assert result.returncode == 0 and "--unit-path" in result.stdout


def test_output_dir_is_atomic(tmp_path):
    write(tmp_path / "units", {"t.service": SERVICE})
    out = tmp_path / "svc"
    argv = ["chainload-convert", "-q", "--unit-path", str(tmp_path / "units"), "-o", str(out),
            "t.service"]
    result = run(argv)
    assert result.returncode == 0 and result.stdout == ""
    st = os.stat(out / "run")
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert (out / "run").read_text().startswith("#!/bin/sh\n")
    assert os.listdir(out) == ["run"]
    # A failure leaves what was there, and no temporary file.
    (out / "run").write_text("old")
    os.chmod(out, 0o555)
    try:
        if os.geteuid() != 0:
            failed = run(argv)
            assert failed.returncode == 111 and (out / "run").read_text() == "old"
            assert os.listdir(out) == ["run"]
    finally:
        os.chmod(out, 0o755)
    blocked = tmp_path / "file"
    blocked.write_text("")
    failed = run(argv[:-3] + ["-o", str(blocked / "x"), "t.service"])
    assert failed.returncode == 111 and "FATAL" in failed.stderr


def test_every_script_passes_sh_n(tmp_path):
    files = {"t.socket": "[Socket]\nListenStream=/run/t/s\n",
             "t.service": SERVICE + "Environment='Q=it'\\''s $HOME `x` \"y\"'\n"
                                    "ExecStartPre=/bin/echo ';' '$(rm -rf /)'\n"}
    result = convert(tmp_path, files, "t.socket")
    proc = subprocess.run(["sh", "-n"], input=result.stdout, text=True)
    assert proc.returncode == 0
    assert "'$(rm -rf /)'" in result.stdout


# --- converted scripts, run ------------------------------------------------------------

def run_script(script, tmp_path, timeout=30):
    path = tmp_path / "run"
    path.write_text(script)
    path.chmod(0o755)
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "JUNK": "from the supervisor"}
    return subprocess.run([str(path)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


def missing_commands(result):
    return [line.split(": ")[1] for line in result.stderr.splitlines()
            if "this chainload has no such command" in line]


def converted(tmp_path, files, unit, *options):
    result = convert(tmp_path, files, unit, "--chainload", str(BIN / "chainload"), *options)
    assert result.returncode == 0, result.stderr
    missing = missing_commands(result)
    if missing:
        pytest.skip(f"the chain needs {', '.join(missing)}, not in this chainload yet")
    return result.stdout


def report_of(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def environ(report):
    return dict(bytes.fromhex(e).decode().partition("=")[::2] for e in report["environ_hex"])


def test_run_socket_and_service(tmp_path, probe):
    sock = tmp_path / "sub" / "dir" / "s.sock"
    files = {
        "t.socket": f"[Socket]\nListenStream={sock}\nDirectoryMode=0711\n",
        "t.service": (f"[Service]\nExecStart={' '.join(probe)} ${{A}} $B\n"
                      "Environment=A=one B='two three'\nUMask=0027\n"
                      f"WorkingDirectory={tmp_path}\nLimitNOFILE=1000:2000\n"),
    }
    report = report_of(run_script(converted(tmp_path, files, "t.socket"), tmp_path))
    assert report["argv"] == ["one", "two", "three"]
    env = environ(report)
    assert "JUNK" not in env and env["A"] == "one"
    assert env["LISTEN_FDS"] == "1" and env["LISTEN_FDNAMES"] == "t.socket"
    assert report["umask"] == 0o027
    assert bytes.fromhex(report["cwd_hex"]).decode() == str(tmp_path)
    assert report["rlimits"]["NOFILE"] == [1000, 2000]
    assert report["fds"]["3"]["listening"] and report["fds"]["3"]["name"] == str(sock)
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o711
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o666
    assert report["fds"]["0"]["mode"].startswith("c")  # /dev/null


@root_only
def test_run_as_a_user_with_pre_steps(tmp_path, probe, probe_dir):
    os.chmod(tmp_path, 0o755)
    flag = tmp_path / "pre-ran"
    files = {"t.service": (
        f"[Service]\nExecStart={' '.join(probe)}\nUser=nobody\n"
        f"ExecStartPre=+/bin/touch {flag}\nExecStartPre=-/bin/false\n"
        f"RuntimeDirectory=chainload-convert-test-{os.getpid()}\n")}
    script = converted(tmp_path, files, "t.service")
    try:
        report = report_of(run_script(script, tmp_path))
    finally:
        rundir = f"/run/chainload-convert-test-{os.getpid()}"
        if os.path.isdir(rundir):
            st = os.stat(rundir)
            os.rmdir(rundir)
    assert flag.exists()
    import pwd

    nobody = pwd.getpwnam("nobody")
    assert report["resuid"] == [nobody.pw_uid] * 3
    assert environ(report)["HOME"] == nobody.pw_dir
    assert st.st_uid == nobody.pw_uid


def test_unbalanced_quote_in_a_dependency_is_a_warning(tmp_path):
    """Found by the fuzzer: Requires=" raised out of the converter."""
    result = convert(tmp_path, {"t.service": '[Unit]\nRequires="\n' + SERVICE}, "t.service")
    assert result.returncode == 0, result.stderr
    assert "Internal error" not in result.stderr


# --- golden scripts of real units (run by tests/test_convert_e2e.py) -----------------------

UNITS_DIR = Path(__file__).resolve().parent / "units"


@pytest.mark.parametrize("unit", ["uuidd.socket", "dbus.socket", "ssh.socket",
                                  "saned.socket"])
def test_golden_scripts_of_debian_units(unit):
    """tests/units holds Debian 12's uuid-runtime, dbus, openssh-server and
    sane-utils units as shipped, and the script each gives. The end-to-end
    tests run the same units (from /lib/systemd/system, with a drop-in that
    moves the socket) against the real daemons; where the packaged unit is
    installed and unchanged it gives the golden script too."""
    golden = (UNITS_DIR / f"{unit}.run").read_text()
    result = run(["chainload-convert", "-q", "--chainload", "chainload", "--unit-path",
                  str(UNITS_DIR), unit])
    assert result.returncode == 0, result.stderr
    assert result.stdout.replace(str(UNITS_DIR), "UNITS") == golden
    subprocess.run(["sh", "-n"], input=golden, text=True, check=True)
    names = [line.split()[-1].rpartition("/")[2] for line in golden.splitlines()
             if line.startswith("#   ")]
    if all(filecmp.cmp(UNITS_DIR / n, f"/lib/systemd/system/{n}", shallow=False)
           for n in names if os.path.exists(f"/lib/systemd/system/{n}")) and all(
            os.path.exists(f"/lib/systemd/system/{n}") for n in names):
        packaged = run(["chainload-convert", "-q", "--chainload", "chainload", "--unit-path",
                        "/lib/systemd/system", unit])
        assert packaged.stdout.replace("/lib/systemd/system", "UNITS") == golden


def test_environment_file_wildcard_is_warned_not_emitted(tmp_path):
    result = convert(tmp_path, {"t.service": SERVICE + "EnvironmentFile=-/etc/t/*.env\n"},
                     "t.service")
    assert "envfile" not in text_of(result)
    assert "EnvironmentFile=-/etc/t/*.env: not converted (not expressible in a chain: " \
           "a wildcard" in result.stderr


def test_standard_error_follows_only_a_redirected_standard_output(tmp_path):
    result = convert(tmp_path, {"t.service": SERVICE + "StandardOutput=tty\n"}, "t.service")
    assert "fdmove" not in text_of(result)
    assert "StandardOutput=tty: not converted (not expressible" in result.stderr


def test_unwritable_standard_output_is_one_fatal_line(tmp_path):
    write(tmp_path / "units", {"t.service": SERVICE})
    argv = [str(BIN / "chainload-convert"), "-q", "--unit-path", str(tmp_path / "units"),
            "t.service"]
    proc = subprocess.run(argv, stdout=open("/dev/full", "w"), stderr=subprocess.PIPE,
                          text=True)
    assert proc.returncode == 111
    assert proc.stderr == "chainload-convert: FATAL: Standard output: No space left on device.\n"
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          close_fds=True, preexec_fn=lambda: os.close(1))
    assert proc.returncode == 111 and "Traceback" not in proc.stderr, proc.stderr


def test_ignore_sigpipe_and_accept_instance_are_warned(tmp_path):
    result = convert(tmp_path, {"t.service": SERVICE + "IgnoreSIGPIPE=yes\n"}, "t.service")
    assert "IgnoreSIGPIPE=yes: not converted (not expressible" in result.stderr
    result = convert(tmp_path, {"t.service": SERVICE + "IgnoreSIGPIPE=no\n"}, "t.service")
    assert "IgnoreSIGPIPE" not in result.stderr
    files = {"b.socket": "[Socket]\nListenStream=/run/b\nAccept=yes\n",
             "b@.service": "[Service]\nExecStart=/bin/x %i\n"}
    result = convert(tmp_path, files, "b.socket")
    assert "ExecStart=/bin/x %i: not converted (not expressible in a chain: the instance" \
        in result.stderr
