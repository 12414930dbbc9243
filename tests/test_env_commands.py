"""envfile, substitute, clearenv and userenv (issue 18): the environment of
a systemd service, built by links of a chain.

Every chain runs the installed commands and ends in the probe (or in
/bin/cat /proc/self/environ where the environment must be seen raw); the
probe reports its argv and every environment entry as exact bytes. The
examples listed in the issue are tests here, each by its own name. Tests
that need no privilege run as whoever runs the suite; as root, the same
chains run again after `setuidgid nobody` (the installed command starts as
root and drops in-process, so the links run unprivileged).
"""

import glob
import os
import pwd
import subprocess
import sys

import pytest

from conftest import command, root_only, run
from test_bytes import exec_raw

PATH = os.environ["PATH"]
BASE = {"PATH": PATH}
NOBODY = pwd.getpwnam("nobody")
# A chain prefix that makes the rest run as nobody (root only).
AS_NOBODY = ["setuidgid", "nobody"]


def environ(result):
    """The probe's environment: [(name, value)] as bytes, in order."""
    assert result.returncode == 0, result.stderr
    entries = [bytes.fromhex(h) for h in result.report["environ_hex"]]
    return [tuple(e.split(b"=", 1)) for e in entries]


def variables(result):
    return dict(environ(result))


def chain(argv, probe, env=None, prefix=()):
    return run(["chainload", *prefix, *argv, *probe], env=BASE if env is None else env)


# --- envfile --------------------------------------------------------------------------

def envfile(tmp_path, probe, data, *options, prefix=(), name="env"):
    path = tmp_path / name
    path.write_bytes(data)
    os.chmod(path, 0o644)
    os.chmod(tmp_path, 0o755)
    return chain(["envfile", *options, str(path)], probe, prefix=prefix)


@pytest.fixture
def public_tmp(world_tmp):
    """A directory nobody can read too (pytest's own is 0700 under /tmp)."""
    return world_tmp


# (file contents, the variables it sets): every example the issue lists.
ISSUE_EXAMPLES = {
    "a=a": (b"a=a\n", {b"a": b"a"}),
    "backslash-newline-joins": (b"b=b\\\nc\n", {b"b": b"bc"}),
    "escaped-trailing-space-kept": (b"g=g\\ \n", {b"g": b"g "}),
    "backslash-at-end-of-file-dropped": (b"i=i\\", {b"i": b"i"}),
    "hwmon-after-a-blank-line": (b'\nHWMON_MODULES="coretemp f71882fg"\n',
                                 {b"HWMON_MODULES": b"coretemp f71882fg"}),
    "empty-value": (b"a=\n", {b"a": b""}),
    "quotes-in-the-middle": (b'a="b c"d\n', {b"a": b"b cd"}),
}


# The rest of the syntax, case by case (systemd 252's env-file.c).
SYNTAX = {
    "comments": (b"# a=1\n; b=2\n   # c=3\nd=4\n", {b"d": b"4"}),
    "no-comment-after-a-value": (b"a=b # c\n", {b"a": b"b # c"}),
    "comment-backslash-continues": (b"# x \\\nhidden=1\nshown=2\n", {b"shown": b"2"}),
    "blanks-trimmed": (b"  key \t=  value  \t\n", {b"key": b"value"}),
    "single-quotes-literal": (b"a='x\\y $z \"q\"'\n", {b"a": b'x\\y $z "q"'}),
    "single-quotes-span-lines": (b"a='x\ny'\n", {b"a": b"x\ny"}),
    "double-quote-escapes": (b'a="\\"\\\\\\`\\$"\n', {b"a": b'"\\`$'}),
    "double-quote-keeps-other-backslashes": (b'a="\\n\\t\\q"\n', {b"a": b"\\n\\t\\q"}),
    "double-quote-backslash-newline-joins": (b'a="x\\\ny"\n', {b"a": b"xy"}),
    "double-quoted-blanks-kept": (b'a="  x  "\n', {b"a": b"  x  "}),
    "quoted-parts-join": (b"a='x' \"y\" z  \n", {b"a": b"xyz"}),
    "quote-inside-a-value-is-literal": (b'a=x "y z"\n', {b"a": b'x "y z"'}),
    "unclosed-quote-runs-to-the-end": (b'a="x\ny=1\n', {b"a": b"x\ny=1\n"}),
    "backslash-escapes-outside-quotes": (b"a=\\'x\\\\\n", {b"a": b"'x\\"}),
    "continuation-keeps-blanks-before-it": (b"a=x \\\n  y\n", {b"a": b"x   y"}),
    "later-wins": (b"a=1\na=2\n", {b"a": b"2"}),
    "crlf": (b"a=1\r\nb=2\r\n", {b"a": b"1", b"b": b"2"}),
    "equals-in-value": (b"a=b=c\n", {b"a": b"b=c"}),
    "no-final-newline": (b"a=1\nb=2", {b"a": b"1", b"b": b"2"}),
    "not-utf8-bytes-pass": (b"a=\xff\xfe\xc3\n", {b"a": b"\xff\xfe\xc3"}),
    "opts-from-the-man-page": (b"OPTS=--verbose \\\n  --debug\n", {b"OPTS": b"--verbose   --debug"}),
}


CASES = {**{f"issue-{name}": case for name, case in ISSUE_EXAMPLES.items()}, **SYNTAX}


@pytest.mark.parametrize("case", CASES)
def test_envfile_syntax(case, public_tmp, probe):
    data, wanted = CASES[case]
    result = envfile(public_tmp, probe, data)
    assert result.stderr == ""
    got = variables(result)
    assert {k: got.get(k) for k in wanted} == wanted
    # Nothing else comes from the file.
    assert set(got) - {b"PATH", b"PROBE_OUT"} == set(wanted)


def test_envfile_warns_about_each_ignored_line_and_goes_on(public_tmp, probe):
    data = b"ok=1\na-b=x\n5x=y\n\nnoequals\n=x\nexport A=1\nlast=2\n"
    result = envfile(public_tmp, probe, data)
    path = public_tmp / "env"
    assert result.stderr.splitlines() == [
        f'envfile: WARNING: {path}:2: Ignoring "a-b": not a valid variable name.',
        f'envfile: WARNING: {path}:3: Ignoring "5x": not a valid variable name.',
        f'envfile: WARNING: {path}:5: Ignoring "noequals": not an assignment.',
        f'envfile: WARNING: {path}:6: Ignoring "=x": not an assignment.',
        f'envfile: WARNING: {path}:7: Ignoring "export A": not a valid variable name.',
    ]
    got = variables(result)
    assert got[b"ok"] == b"1" and got[b"last"] == b"2"
    assert not {b"a-b", b"5x", b"export A", b"A"} & set(got)


def test_envfile_warning_stays_one_line(public_tmp, probe):
    result = envfile(public_tmp, probe, b"a\x1bb\tc=1\n")
    line, = result.stderr.splitlines()
    assert line.endswith(':1: Ignoring "a\\x1bb\\tc": not a valid variable name.'), line


def test_envfile_sets_in_the_order_of_the_file_and_replaces(public_tmp, probe):
    os.chmod(public_tmp, 0o755)
    (public_tmp / "env").write_bytes(b"NEW=1\nA=file\n")
    result = run(["chainload", "envfile", str(public_tmp / "env"), *probe],
                 env={**BASE, "A": "before"})
    got = variables(result)
    assert got[b"A"] == b"file" and got[b"NEW"] == b"1"


def test_envfile_values_reach_a_later_link(public_tmp, probe):
    """The chain's environment changes in-process: a later setenv or
    substitute sees it."""
    result = envfile(public_tmp, probe, b"P=/usr/sbin\n")
    assert variables(result)[b"P"] == b"/usr/sbin"


def test_envfile_ignore_missing(public_tmp, probe):
    result = run(["chainload", "envfile", "--ignore-missing", str(public_tmp / "nope"),
                  "envfile", "--ignore-missing", str(public_tmp / "nodir" / "nope"), *probe],
                 env={**BASE, "A": "1"})
    assert result.stderr == ""
    assert variables(result)[b"A"] == b"1"


def test_envfile_missing_without_the_option(public_tmp, probe):
    result = chain(["envfile", str(public_tmp / "nope")], probe)
    assert result.returncode == 111
    assert result.stderr == f"envfile: FATAL: {public_tmp}/nope: No such file or directory\n"


def test_envfile_ignore_missing_still_refuses_a_directory(public_tmp, probe):
    result = chain(["envfile", "--ignore-missing", str(public_tmp)], probe)
    assert result.returncode == 111
    assert result.stderr == f"envfile: FATAL: {public_tmp}: Is a directory\n"


def test_envfile_with_a_nul_byte_sets_nothing(public_tmp, probe):
    result = envfile(public_tmp, probe, b"a=1\nb=\x00\n")
    assert result.returncode == 111
    assert "Has a NUL byte" in result.fatal_line()
    assert result.report is None


def test_envfile_refuses_a_file_over_systemds_limit(public_tmp, probe):
    """64 MiB less one byte is systemd's limit; a bigger file is refused
    from its size, before anything is read (a sparse file here)."""
    path = public_tmp / "big"
    with open(path, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    result = chain(["envfile", str(path)], probe)
    assert result.returncode == 111
    assert "File too large (more than 67108863 bytes)" in result.fatal_line()
    with open(path, "r+b") as f:
        f.truncate(64 * 1024 * 1024 - 1)
        f.write(b"A=1\n#")
    result = chain(["envfile", str(path)], probe)
    assert result.returncode == 111  # the zeros are NUL bytes, but it was read
    assert "Has a NUL byte" in result.fatal_line()


def test_envfile_a_big_ordinary_file(public_tmp, probe):
    """Thousands of lines, a long comment and long values parse quickly."""
    lines = [f"V{i}=value{i}" for i in range(20000)]
    data = ("# " + "x" * 1_000_000 + "\n" + "\n".join(lines) + "\n").encode()
    result = envfile(public_tmp, probe, data)
    got = variables(result)
    assert got[b"V0"] == b"value0" and got[b"V19999"] == b"value19999"


@root_only
def test_envfile_as_nobody(public_tmp, probe):
    data, wanted = ISSUE_EXAMPLES["quotes-in-the-middle"]
    result = envfile(public_tmp, probe, data, prefix=AS_NOBODY)
    assert variables(result)[b"a"] == b"b cd"
    assert result.report["resuid"] == [NOBODY.pw_uid] * 3


@root_only
def test_envfile_unreadable_as_nobody(public_tmp, probe):
    (public_tmp / "secret").write_bytes(b"a=1\n")
    os.chmod(public_tmp / "secret", 0o600)
    result = chain([*AS_NOBODY, "envfile", "--ignore-missing", str(public_tmp / "secret")],
                   probe)
    assert result.returncode == 111
    assert result.stderr == f"envfile: FATAL: {public_tmp}/secret: Permission denied\n"


# --- substitute ---------------------------------------------------------------------

FOO_BAR = ["setenv", "FOO", "BAR BAR", "setenv", "BAR", "waldo"]

# The issue's examples: word -> the words it becomes.
SUBSTITUTIONS = {
    "FOO$FOO": ["FOO$FOO"],
    "FOO${FOO}$FOO": ["FOOBAR BAR$FOO"],
    "${FOO}": ["BAR BAR"],
    "$FOO": ["BAR", "BAR"],
    "${FOO}${BAR}": ["BAR BARwaldo"],
    "${FOO": ["${FOO"],
    "FOO$$${FOO}": ["FOO$BAR BAR"],
    "$$FOO${FOO}": ["$FOOBAR BAR"],
}


@pytest.mark.parametrize("word", SUBSTITUTIONS)
def test_substitute_issue_example(word, probe):
    result = chain([*FOO_BAR, "substitute", *probe, "[", word, "]"], [])
    assert result.returncode == 0, result.stderr
    assert result.report["argv"] == ["[", *SUBSTITUTIONS[word], "]"]


MORE = {
    # an unset variable: no word at all / an empty string
    "$UNSET": [],
    "${UNSET}": [""],
    "x${UNSET}y": ["xy"],
    # ${NAME:-default} and the other shell forms are not systemd's
    "${FOO:-x}": ["${FOO:-x}"],
    "${FOO:-x}${BAR}": ["${FOO:-x}waldo"],
    "$": [],
    "${}": [""],
    "a$": ["a$"],
    "$$": ["$"],
    "$$$": ["$$"],
    "$FOO.conf": [],  # the name is all of the rest
    "$QUOTED": ["a b", "c", "", "d'e", "f"],
    "${QUOTED}": ["\"a b\" c '' d\\'e f\\"],
    "$BLANKS": [],
    "$EMPTY": [],
    "$A=B": ["c"],  # systemd's strv_env_get_n() finds A=B=c
}


@pytest.mark.parametrize("word", MORE)
def test_substitute_rules(word, probe):
    env = {**BASE, "FOO": "BAR BAR", "BAR": "waldo", "QUOTED": "\"a b\" c '' d\\'e f\\",
           "BLANKS": " \t\n ", "EMPTY": "", "A": "B=c"}
    result = run(["substitute", *probe, "[", word, "]"], env=env)
    assert result.returncode == 0, result.stderr
    assert result.report["argv"] == ["[", *MORE[word], "]"]


def test_substitute_expands_later_links_with_the_environment_here(probe):
    result = chain([*FOO_BAR, "substitute", "setenv", "X", "${BAR}", "setenv", "BAR", "new",
                    *probe, "${BAR}", "$FOO"], [])
    assert result.report["argv"] == ["waldo", "BAR", "BAR"]
    got = variables(result)
    assert got[b"X"] == b"waldo" and got[b"BAR"] == b"new"


def test_substitute_can_make_the_program_name(probe):
    env = {**BASE, "PROG": "env"}
    result = run(["substitute", "/usr/bin/${PROG}"], env=env)
    assert result.returncode == 0, result.stderr
    assert "PROG=env" in result.stdout.splitlines()


def test_substitute_passes_bytes(probe):
    """A value that is not UTF-8, from the environment the chain got."""
    argv = [command("substitute").encode(), b"/usr/bin/printf", b"%s|", b"$V", b"x${V}"]
    proc = exec_raw(argv, [b"V=\xff\xfe a\x80", b"PATH=" + PATH.encode()])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"\xff\xfe|a\x80|x\xff\xfe a\x80|"


def test_substitute_to_nothing():
    result = run(["substitute", "$UNSET_CHAINLOAD"], env=BASE)
    assert result.returncode == 100
    assert result.fatal_line() == ("substitute: FATAL: No next program: "
                                   "the command line expanded to nothing.")


def test_pcscd_example(public_tmp, probe):
    """EnvironmentFile=-/etc/default/pcscd with
    ExecStart=/usr/sbin/pcscd --foreground --auto-exit $PCSCD_ARGS."""
    defaults = public_tmp / "pcscd"
    line = ["substitute", *probe, "--foreground", "--auto-exit", "$PCSCD_ARGS"]
    result = chain(["envfile", "--ignore-missing", str(defaults), *line], [])
    assert result.report["argv"] == ["--foreground", "--auto-exit"]
    defaults.write_text('# Options for pcscd\nPCSCD_ARGS="--debug --apdu"\n')
    result = chain(["envfile", "--ignore-missing", str(defaults), *line], [])
    assert result.report["argv"] == ["--foreground", "--auto-exit", "--debug", "--apdu"]


@root_only
def test_substitute_as_nobody(probe):
    result = chain([*AS_NOBODY, *FOO_BAR, "substitute", *probe, "$FOO"], [])
    assert result.report["argv"] == ["BAR", "BAR"]
    assert result.report["resuid"] == [NOBODY.pw_uid] * 3


# --- clearenv -----------------------------------------------------------------------

ODD = [b"=x", b"A=1", b"NOEQUALS", b"PATH=/usr/bin:/bin", b"A=2", b"B=\xff", b"PATH=/x"]
CAT = [b"/bin/cat", b"/proc/self/environ"]


def entries(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(b"\0")[:-1]


def test_clearenv_removes_every_entry_even_odd_ones():
    chainload = command("chainload").encode()
    assert entries(exec_raw([chainload, b"fdmove", b"0", b"0", *CAT], ODD)) == ODD
    assert entries(exec_raw([chainload, b"clearenv", *CAT], ODD)) == []


def test_clearenv_keep_path():
    chainload = command("chainload").encode()
    for option in (b"-p", b"--keep-path"):
        got = entries(exec_raw([chainload, b"clearenv", option, *CAT], ODD))
        assert got == [b"PATH=/usr/bin:/bin"]


def test_clearenv_then_setenv_and_envfile(public_tmp):
    (public_tmp / "env").write_bytes(b"C=3\n")
    os.chmod(public_tmp / "env", 0o644)
    argv = [command("clearenv").encode(), b"setenv", b"B", b"2", b"envfile",
            str(public_tmp / "env").encode(), *CAT]
    assert entries(exec_raw(argv, ODD)) == [b"B=2", b"C=3"]


def test_clearenv_finds_the_program_on_the_default_path():
    result = run(["clearenv", "env"], env={"PATH": "/nonexistent", "A": "1"})
    assert (result.returncode, result.stdout) == (0, ""), result.stderr


@root_only
def test_clearenv_as_nobody():
    argv = [command("chainload").encode(), b"setuidgid", b"nobody", b"clearenv", *CAT]
    assert entries(exec_raw(argv, ODD)) == []


# --- userenv ------------------------------------------------------------------------

def account_variables(entry, user=None):
    return {b"HOME": os.fsencode(entry.pw_dir), b"USER": (user or entry.pw_name).encode(),
            b"LOGNAME": (user or entry.pw_name).encode(),
            b"SHELL": os.fsencode(entry.pw_shell or "/bin/sh")}


def test_userenv_by_name(probe):
    me = pwd.getpwuid(os.geteuid())
    result = run(["userenv", me.pw_name, *probe], env={**BASE, "HOME": "/x", "USER": "y"})
    got = variables(result)
    assert {k: got[k] for k in (b"HOME", b"USER", b"LOGNAME", b"SHELL")} == account_variables(me)
    assert result.report["resuid"] == [os.geteuid()] * 3  # nothing else changes


def test_userenv_by_uid(probe):
    result = chain(["userenv", str(NOBODY.pw_uid)], probe)
    got = variables(result)
    assert got[b"USER"] == got[b"LOGNAME"] == NOBODY.pw_name.encode()
    assert got[b"HOME"] == NOBODY.pw_dir.encode()


def test_userenv_unknown_account(probe):
    for account in ("no-such-user-chainload", "4294967294", "9" * 50):
        result = chain(["userenv", account], probe)
        assert result.returncode == 111
        assert result.fatal_line() == f"userenv: FATAL: {account}: No such user."


@root_only
def test_userenv_looks_up_before_a_later_setuidgid(probe):
    root = pwd.getpwnam("root")
    result = chain(["userenv", "root", "setuidgid", "nobody"], probe)
    got = variables(result)
    assert result.report["resuid"] == [NOBODY.pw_uid] * 3
    assert {k: got[k] for k in (b"HOME", b"USER", b"LOGNAME", b"SHELL")} == \
        account_variables(root)


@root_only
def test_userenv_after_setuidgid(probe):
    result = chain([*AS_NOBODY, "userenv", "nobody"], probe)
    got = variables(result)
    assert {k: got[k] for k in (b"HOME", b"USER", b"LOGNAME", b"SHELL")} == \
        account_variables(NOBODY)


NSS_WRAPPER = next(iter(sorted(glob.glob("/usr/lib/*/libnss_wrapper.so"))), "/nonexistent")


def test_userenv_empty_shell_is_bin_sh(tmp_path, probe):
    """An account whose shell field is empty, from a real passwd file read
    through the C library (nss_wrapper: Debian's libnss-wrapper)."""
    if not os.path.exists(NSS_WRAPPER):
        pytest.skip("libnss-wrapper is not installed (make tools installs it as root)")
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text("svc:x:4321:4321:A service:/var/lib/svc:\n"
                      "odd:x:4322:4321::/srv/\xe9t\xe9:/bin/zsh\n")
    group.write_text("svc:x:4321:\n")
    env = {**BASE, "LD_PRELOAD": NSS_WRAPPER, "NSS_WRAPPER_PASSWD": str(passwd),
           "NSS_WRAPPER_GROUP": str(group), "LANG": "C.UTF-8"}
    result = run(["userenv", "svc", *probe], env=env)
    got = variables(result)
    assert (got[b"HOME"], got[b"USER"], got[b"LOGNAME"], got[b"SHELL"]) == \
        (b"/var/lib/svc", b"svc", b"svc", b"/bin/sh")
    result = run(["userenv", "4322", *probe], env=env)
    got = variables(result)
    assert (got[b"HOME"], got[b"USER"], got[b"SHELL"]) == \
        ("/srv/\xe9t\xe9".encode(), b"odd", b"/bin/zsh")


def test_unit_environment_as_a_chain(public_tmp, probe):
    """clearenv, setenv, userenv, envfile, substitute: what a converted
    unit's run script does."""
    me = pwd.getpwuid(os.geteuid())
    (public_tmp / "defaults").write_bytes(b"ARGS='-a -b'\nHOME=/override\n")
    os.chmod(public_tmp / "defaults", 0o644)
    result = run(["clearenv", "setenv", "PATH", PATH, "userenv", me.pw_name,
                  "envfile", "--ignore-missing", str(public_tmp / "defaults"),
                  "substitute", *probe, "$ARGS"], env={**BASE, "JUNK": "1"})
    got = environ(result)
    names = [k for k, _ in got if k != b"PROBE_OUT"]
    assert names == [b"PATH", b"HOME", b"USER", b"LOGNAME", b"SHELL", b"ARGS"]
    assert dict(got)[b"HOME"] == b"/override"
    assert result.report["argv"] == ["-a", "-b"]


def test_the_new_commands_need_no_module_a_dropped_user_cannot_read():
    """userenv's pwd is imported before a setuidgid earlier in the chain."""
    code = ("import sys; from chainload import chain; chain.preload(['userenv']);"
            "print('pwd' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd="/")
    assert proc.stdout.strip() == "True", proc.stderr
