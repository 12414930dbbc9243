"""chainload-convert's reading of systemd units: file syntax, words,
command lines, specifiers, drop-ins, templates, pairing and defaults.

The parser is checked in-process (chainload.convert.syntax and .units);
what it makes of whole units is checked through the installed
chainload-convert, whose script is read back into the words of its chain."""

import os
import shlex

import pytest

from chainload.convert import syntax, units
from conftest import run


def entries(text):
    found, problems = syntax.parse_text(text, "x.service")
    return [(e.section, e.key, e.value, e.line) for e in found], problems


# --- file syntax ------------------------------------------------------------------

def test_sections_keys_comments_and_blanks():
    got, problems = entries(
        "# comment\n; also a comment\n\n[Unit]\nDescription = a  b  \n"
        "[Service]\n  ExecStart=/bin/x # not a comment\nEmpty=\n")
    assert got == [("Unit", "Description", "a  b", 5),
                   ("Service", "ExecStart", "/bin/x # not a comment", 7),
                   ("Service", "Empty", "", 8)]
    assert problems == []


def test_continuation_joins_with_a_space_and_skips_comments_and_blank_lines():
    got, _ = entries("[Service]\nExecStart=/bin/echo a\\\n# comment\n\n  b \\\nc\nX=1\n")
    assert got[0][2] == "/bin/echo a   b  c"
    assert got[0][3] == 2
    assert got[1][:3] == ("Service", "X", "1")


def test_escaped_backslash_at_the_end_does_not_continue():
    got, _ = entries("[Service]\nA=x\\\\\nB=y\n")
    assert [g[:3] for g in got] == [("Service", "A", "x\\\\"), ("Service", "B", "y")]


def test_continuation_at_end_of_file_is_kept():
    got, _ = entries("[Service]\nA=x \\")
    assert got[0][2] == "x"


def test_crlf_and_bom():
    got, _ = entries("\ufeff[Service]\r\nA=1\r\nB=2\rC=3")
    assert [g[1:3] for g in got] == [("A", "1"), ("B", "2"), ("C", "3")]


def test_lines_systemd_ignores_are_reported():
    got, problems = entries("A=outside\n[Service]\nnoequals\n=novalue\n[Broken\nB=1\n")
    assert got == []
    assert [line for line, _ in problems] == [1, 3, 4, 5, 6]


@pytest.mark.parametrize("text,value", [("yes", True), ("TRUE", True), ("on", True),
                                        ("1", True), ("y", True), ("t", True),
                                        ("no", False), ("Off", False), ("0", False),
                                        ("false", False), ("n", False), ("f", False)])
def test_booleans(text, value):
    assert syntax.parse_boolean(text) is value


def test_bad_boolean():
    with pytest.raises(syntax.SyntaxProblem):
        syntax.parse_boolean("maybe")


# --- words and command lines -----------------------------------------------------------

def words(text):
    return syntax.split_words(text)


def test_words_quotes_anywhere_and_escapes():
    assert words('a "b c" \'d e\' x"y z"w "" f\\x41 "\\n" \\s') == [
        "a", "b c", "d e", "xy zw", "", "fA", "\n", " "]
    assert words(r"\101\u00e9\U0001F600") == ["A\u00e9\U0001F600"]


def test_unknown_escape_is_kept_with_a_warning():
    said = []
    assert syntax.split_words(r"a\qb", said.append) == ["a\\qb"]
    assert said


def test_eight_bit_escapes_are_bytes():
    (word,) = words(r"\xff\303\251")
    assert word.encode("utf-8", "surrogateescape") == b"\xff\xc3\xa9"


@pytest.mark.parametrize("bad", ['"open', "trailing\\", r"\x00"])
def test_bad_words(bad):
    with pytest.raises(syntax.SyntaxProblem):
        syntax.extract_word(bad, 0)


def exec_of(value):
    entry = syntax.Entry("Service", "ExecStart", value, "x.service", 1)
    return [(sorted(c.prefixes), c.path, c.argv)
            for c in syntax.parse_exec(entry, lambda w: w)]


def test_exec_prefixes():
    assert exec_of("-+/bin/x a") == [(["+", "-"], "/bin/x", ["/bin/x", "a"])]
    assert exec_of("!!/bin/x") == [(["!!"], "/bin/x", ["/bin/x"])]
    assert exec_of("!/bin/x") == [(["!"], "/bin/x", ["/bin/x"])]
    assert exec_of(":/bin/x $A") == [([":"], "/bin/x", ["/bin/x", "$A"])]
    assert exec_of("@/bin/x name arg") == [(["@"], "/bin/x", ["name", "arg"])]


def test_exec_semicolons():
    assert exec_of("/bin/a x ; /bin/b y \\; z;") == [
        ([], "/bin/a", ["/bin/a", "x"]), ([], "/bin/b", ["/bin/b", "y", ";", "z;"])]


def test_exec_relative_name_and_simplified_path():
    assert exec_of("true") == [([], "true", ["true"])]
    assert exec_of("//usr/./bin//x") == [([], "/usr/bin/x", ["//usr/./bin//x"])]


@pytest.mark.parametrize("bad", ["-", "/usr/bin/", "bin/x", '/bin/x "open'])
def test_exec_refused(bad):
    with pytest.raises(syntax.SyntaxProblem):
        exec_of(bad)


def test_exec_specifiers_after_splitting():
    entry = syntax.Entry("Service", "ExecStart", "/bin/x %i 'a %i'", "x.service", 1)
    (c,) = syntax.parse_exec(entry, lambda w: w.replace("%i", "one two"))
    assert c.argv == ["/bin/x", "one two", "a one two"]


# --- specifiers and names -------------------------------------------------------------

class FakeUnit:
    def __init__(self, name):
        self.name, self.path = name, f"/lib/systemd/system/{name}"


def expand(name, text, user=False):
    return units.expand_specifiers(text, units.specifier_table(FakeUnit(name),
                                                               units.Host(user)))


def test_instance_specifiers():
    name = "my-daemon@a-b\\x2dc.service"
    assert expand(name, "%n|%N|%p|%i|%I|%j|%f|%%") == (
        "my-daemon@a-b\\x2dc.service|my-daemon@a-b\\x2dc|my-daemon|a-b\\x2dc|a/b-c|daemon"
        "|/a/b-c|%")


def test_system_specifiers():
    assert expand("x.service", "%t %S %C %L %E %h %u %U %T %V") == (
        "/run /var/lib /var/cache /var/log /etc /root root 0 /tmp /var/tmp")


def test_user_specifiers(monkeypatch):
    import pwd

    me = pwd.getpwuid(os.getuid())
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/4242")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert expand("x.service", "%t %h %u %U %E", user=True) == (
        f"/run/user/4242 {me.pw_dir} {me.pw_name} {me.pw_uid} {me.pw_dir}/.config")


@pytest.mark.parametrize("bad", ["%z", "trailing %"])
def test_unknown_specifier(bad):
    with pytest.raises(syntax.SyntaxProblem):
        expand("x.service", bad)


def test_dropin_names_in_systemds_order():
    assert units._dropin_names("foo-bar-baz@i.service") == [
        "foo-bar-baz@i.service", "foo-bar-baz@.service", "foo-bar-.service", "foo-.service"]


# --- whole units through the installed command -------------------------------------

def write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def convert(tmp_path, files, unit, *options, unit_path=True):
    write(tmp_path / "units", files)
    argv = ["chainload-convert", *options]
    if "--chainload" not in options:
        argv[1:1] = ["--chainload", "chainload"]
    if unit_path:
        argv += ["--unit-path", str(tmp_path / "units")]
    return run([*argv, unit])


def chain_of(result):
    """The words of the chain a script execs."""
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("#!/bin/sh\n")
    body = text[text.index("\nexec ") + 6:]
    return shlex.split(body.replace("\\\n", " "))


SOCKET = "[Socket]\nListenStream=/run/t/sock\n"
SERVICE = "[Service]\nExecStart=/bin/daemon\n"


def test_socket_defaults(tmp_path):
    words = chain_of(convert(tmp_path, {"t.socket": SOCKET, "t.service": SERVICE},
                             "t.socket"))
    assert words[:4] == ["chainload", "clearenv", "setenv", "PATH"]
    assert ["umask", "0022"] == words[words.index("umask"):words.index("umask") + 2]
    i = words.index("install-dir")
    assert words[i:i + 5] == ["install-dir", "--if-missing", "-m", "0755", "/run/t"]
    i = words.index("local-stream-socket-listen")
    assert words[i:i + 7] == ["local-stream-socket-listen", "--systemd-compatibility",
                              "--fd-name", "t.socket", "--mode", "0666", "/run/t/sock"]
    assert words[-1] == "/bin/daemon"
    assert ["chdir", "/"] == words[words.index("chdir"):words.index("chdir") + 2]
    assert words[words.index("fdredir"):words.index("fdredir") + 4] == [
        "fdredir", "--read", "0", "/dev/null"]


def test_socket_options(tmp_path):
    socket = ("[Socket]\nListenStream=/run/t/a\nListenSequentialPacket=@abs\n"
              "ListenDatagram=/run/t/d\nSocketMode=777\nDirectoryMode=0700\nSocketUser=root\n"
              "SocketGroup=daemon\nBacklog=5\nPassCredentials=yes\nPassSecurity=on\n"
              "FileDescriptorName=api\n")
    words = chain_of(convert(tmp_path, {"t.socket": socket, "t.service": SERVICE},
                             "t.socket"))
    text = " ".join(words)
    assert ("local-stream-socket-listen --systemd-compatibility --fd-name api --mode 0777 "
            "--user root --group daemon --backlog 5 --pass-credentials --pass-security "
            "/run/t/a") in text
    assert ("local-seqpacket-socket-listen --systemd-compatibility --fd-name api --backlog 5 "
            "--pass-credentials --pass-security @abs") in text
    assert ("local-datagram-socket-listen --systemd-compatibility --fd-name api --mode 0777 "
            "--user root --group daemon --pass-credentials --pass-security /run/t/d") in text
    assert text.count("install-dir --if-missing -m 0700 /run/t") == 2


@pytest.mark.parametrize("listen,only,expect", [
    ("22", None, "tcp-socket-listen --systemd-compatibility --fd-name t.socket "
                 "--combine4and6 -H :: 22"),
    ("22", "ipv6-only", "tcp-socket-listen --systemd-compatibility --fd-name t.socket "
                        "-H :: 22"),
    ("22", "both", "--combine4and6 -H :: 22"),
    ("127.0.0.1:80", None, "--fd-name t.socket -H 127.0.0.1 80"),
    ("[::1]:80", "ipv6-only", "--fd-name t.socket -H ::1 80"),
])
def test_ip_listeners(tmp_path, listen, only, expect):
    socket = f"[Socket]\nListenStream={listen}\n" + (f"BindIPv6Only={only}\n" if only else "")
    words = chain_of(convert(tmp_path, {"t.socket": socket, "t.service": SERVICE},
                             "t.socket"))
    assert expect in " ".join(words)


def test_empty_assignment_resets_a_list_in_a_dropin(tmp_path):
    files = {"t.socket": "[Socket]\nListenStream=22\n", "t.service": SERVICE,
             "t.socket.d/port.conf": "[Socket]\nListenStream=\nListenStream=2222\n"}
    text = " ".join(chain_of(convert(tmp_path, files, "t.socket")))
    assert "-H :: 2222" in text and " 22 " not in text


def test_dropins_in_systemds_order(tmp_path):
    """Same file name: the first directory of the unit path wins; then the
    files apply in the order of their names, whatever directory."""
    write(tmp_path / "high", {
        "t.service.d/20-b.conf": "[Service]\nEnvironment=B=high\n",
        "t.service.d/30-c.conf": "[Service]\nEnvironment=C=high A=c\n"})
    files = {"t.service": SERVICE + "Environment=A=unit B=unit\n",
             "t.service.d/20-b.conf": "[Service]\nEnvironment=B=low\n",
             "t.service.d/10-a.conf": "[Service]\nEnvironment=A=a\n",
             "service.d/05-all.conf": "[Service]\nEnvironment=ALL=1\n"}
    write(tmp_path / "units", files)
    result = run(["chainload-convert", "--chainload", "chainload",
                  "--unit-path", str(tmp_path / "high"), "--unit-path",
                  str(tmp_path / "units"), "t.service"])
    words = chain_of(result)
    env = {words[i + 1]: words[i + 2] for i, w in enumerate(words)
           if w == "setenv" and words[i + 1] != "PATH"}
    assert env == {"A": "c", "B": "high", "C": "high", "ALL": "1"}


def test_template_instance(tmp_path):
    files = {"getty@.service": "[Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' %I $TERM\n"}
    result = convert(tmp_path, files, "getty@tty1.service")
    words = chain_of(result)
    assert words[-6:] == ["substitute", "/sbin/agetty", "-o", "-p -- \\u", "tty1", "$TERM"]
    assert "ExecStart=-/sbin/agetty" in result.stderr  # the - prefix: the supervisor's


def test_service_of_a_socket(tmp_path):
    files = {"a.socket": "[Socket]\nListenStream=/run/a\nService=other.service\n",
             "other.service": "[Service]\nExecStart=/bin/other\n",
             "b.socket": "[Socket]\nListenStream=/run/b\nAccept=yes\n",
             "b@.service": "[Service]\nExecStart=/bin/per-connection\n"}
    assert chain_of(convert(tmp_path, files, "a.socket"))[-1] == "/bin/other"
    words = chain_of(convert(tmp_path, files, "b.socket"))
    assert words[-1] == "/bin/per-connection"
    i = words.index("local-stream-socket-accept")
    assert words[i:i + 4] == ["local-stream-socket-accept", "--systemd-compatibility",
                              "--connection-limit", "64"]
    assert "--systemd-compatibility" not in words[words.index("local-stream-socket-listen"):i]


def test_accept_with_standard_input_socket(tmp_path):
    files = {"b.socket": "[Socket]\nListenStream=7000\nAccept=yes\nMaxConnections=3\n",
             "b@.service": "[Service]\nExecStart=/bin/inetd-style\nStandardInput=socket\n"}
    words = chain_of(convert(tmp_path, files, "b.socket"))
    i = words.index("tcp-socket-accept")
    assert words[i:i + 3] == ["tcp-socket-accept", "--connection-limit", "3"]
    assert "fdredir" not in words
    assert words[-9:] == ["fdmove", "-c", "1", "0", "fdmove", "-c", "2", "1",
                          "/bin/inetd-style"]


def test_missing_unit_and_no_execstart_are_refused(tmp_path):
    result = convert(tmp_path, {"t.service": "[Service]\nUser=x\n"}, "nothere.service")
    assert result.returncode == 111 and "No such unit" in result.fatal_line()
    result = convert(tmp_path, {"t.service": "[Service]\nUser=x\n"}, "t.service")
    assert result.returncode == 111 and "No ExecStart=" in result.fatal_line()
    assert result.stdout == ""


# --- no input makes an internal error --------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("CHAINLOAD_FUZZ_EXAMPLES", "200"))
KEYS = ["ListenStream", "ListenDatagram", "ListenSequentialPacket", "ListenFIFO", "Accept",
        "SocketMode", "DirectoryMode", "SocketUser", "BindIPv6Only", "FileDescriptorName",
        "MaxConnections", "Backlog", "Service", "ExecStart", "ExecStartPre", "ExecCondition",
        "Environment", "EnvironmentFile", "UnsetEnvironment", "User", "Group",
        "SupplementaryGroups", "WorkingDirectory", "UMask", "LimitNOFILE", "LimitCPU",
        "LimitNICE", "RuntimeDirectory", "StateDirectoryMode", "StandardInput",
        "StandardOutput", "StandardError", "Nice", "IOSchedulingClass",
        "CPUSchedulingPolicy", "CPUSchedulingPriority", "OOMScoreAdjust",
        "AmbientCapabilities", "Type", "DynamicUser", "PermissionsStartOnly", "Sockets",
        "Requires", "PrivateTmp", "Bogus"]
PIECES = ["/run/x", "@a", "22", "[::1]:80", "1.2.3.4:5", "yes", "no", "0777", "root",
          "%i", "%I", "%t", "%z", "%", "$A", "${A}", "$$", ";", "\\;", "\\", "\"", "'",
          "-", "+", "!", "!!", "@", ":", "~", "infinity", "1:2", "8M", "file:/f",
          "append:/a", "socket", "null", "forking", "oneshot", "notify", "A=b", "a b",
          "\\x00", "\\xff", "\\u00e9", "rr", "idle", "-5", "CAP_NET_RAW", "x.socket", " "]
VALUES = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=5).map("".join)
LINES = st.lists(st.tuples(st.sampled_from(["Socket", "Service", "Unit", "X"]),
                           st.sampled_from(KEYS), VALUES), max_size=12)


def unit_text(lines, continuation):
    out = []
    for section, key, value in lines:
        out.append(f"[{section}]\n{key}={value}{continuation}\n")
    return "".join(out)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(socket=LINES, service=LINES, continuation=st.sampled_from(["", " \\", "\\\\"]),
       name=st.sampled_from(["t", "t@i-x", "t@"]))
def test_no_unit_makes_an_internal_error(tmp_path, socket, service, continuation, name):
    from chainload.convert import emit

    base = tmp_path / "fuzz"
    base.mkdir(exist_ok=True)
    for f in base.iterdir():
        f.unlink()
    (base / f"{name}.socket").write_text(unit_text(socket, continuation))
    (base / f"{name}.service").write_text(unit_text(service, continuation))
    (base / f"{name.partition('@')[0]}@.service").write_text(unit_text(service, ""))
    for unit in (f"{name}.socket", f"{name}.service"):
        converter = emit.Converter(units.Lookup([str(base)]), units.Host())
        try:
            script = converter.convert(unit, str(base / unit))
        except units.Refusal as e:
            assert str(e) and "\n" not in str(e)
            continue
        assert script.startswith("#!/bin/sh\n")
        for w in converter.warnings:
            assert "\n" not in w.line() or "\n" in w.directive


def test_an_alias_is_named_after_its_file_and_reads_both_dropins(tmp_path):
    write(tmp_path / "units", {"ssh.service": SERVICE + "Environment=A=unit\n",
                               "ssh.service.d/a.conf": "[Service]\nEnvironment=A=own\n",
                               "sshd.service.d/b.conf": "[Service]\nEnvironment=B=alias\n"})
    os.symlink("ssh.service", tmp_path / "units" / "sshd.service")
    result = run(["chainload-convert", "--unit-path", str(tmp_path / "units"), "sshd.service"])
    words = chain_of(result)
    env = {words[i + 1]: words[i + 2] for i, w in enumerate(words) if w == "setenv"}
    assert env["A"] == "own" and env["B"] == "alias"
