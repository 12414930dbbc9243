"""fdmove: move or copy a descriptor, then chain (real fds, seen by the probe)."""

import json
import subprocess

import pytest

from conftest import BIN, command, run


def go(argv, **kw):
    result = run(argv, **kw)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def with_fd(fd, path, argv):
    """ARGV (an installed command first) run with PATH open on FD, via sh."""
    return ["/bin/sh", "-c", f'exec "$@" {fd}<"$0"', str(path), command(argv[0]), *argv[1:]]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data"
    path.write_text("x")
    return path


def usage_error(result, line):
    assert result.returncode == 100, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == line, result.stderr
    assert lines[1].startswith("Usage: fdmove "), result.stderr
    assert result.stdout == ""


def test_move(data, probe):
    result = go(with_fd(3, data, ["fdmove", "0", "3", *probe]))
    assert result.returncode == 0, result.stderr
    fds = result.report["fds"]
    assert fds["0"]["target"] == str(data)
    assert not fds["0"]["cloexec"]
    assert "3" not in fds  # FROM is closed


def test_copy(data, probe):
    for flag in ("-c", "--copy"):
        result = go(with_fd(3, data, ["fdmove", flag, "0", "3", *probe]))
        assert result.returncode == 0, result.stderr
        fds = result.report["fds"]
        assert fds["0"]["target"] == fds["3"]["target"] == str(data)


def test_move_onto_a_high_fd(data, probe):
    result = go(with_fd(3, data, ["fdmove", "40", "3", *probe]))
    assert result.returncode == 0, result.stderr
    assert result.report["fds"]["40"]["target"] == str(data)
    assert "3" not in result.report["fds"]


def test_octal_and_hex_operands(data, probe):
    result = go(with_fd(3, data, ["fdmove", "0x4", "03", *probe]))
    assert result.returncode == 0, result.stderr
    assert result.report["fds"]["4"]["target"] == str(data)
    assert "3" not in result.report["fds"]
    result = go(with_fd(8, data, ["fdmove", "-c", "0X0a", "010", *probe]))
    assert result.returncode == 0, result.stderr
    assert result.report["fds"]["10"]["target"] == str(data)
    assert result.report["fds"]["8"]["target"] == str(data)


def test_chained_moves_swap_two_fds(tmp_path, probe):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    argv = ["/bin/sh", "-c", 'b=$1; shift; exec "$@" 3<"$0" 4<"$b"', str(a), str(b), command("chainload"),
            "fdmove", "5", "3", "fdmove", "3", "4", "fdmove", "4", "5", *probe]
    result = go(argv)
    assert result.returncode == 0, result.stderr
    fds = result.report["fds"]
    assert fds["3"]["target"] == str(b) and fds["4"]["target"] == str(a)
    assert "5" not in fds


def test_next_program_options_are_untouched(probe):
    result = go(["fdmove", "-c", "5", "1", *probe, "--copy", "-c", "--", "--help"])
    assert result.returncode == 0, result.stderr
    assert result.report["argv"] == ["--copy", "-c", "--", "--help"]


def test_double_dash(probe):
    result = go(["fdmove", "-c", "--", "5", "1", *probe])
    assert result.returncode == 0, result.stderr
    assert "5" in result.report["fds"]


# fdmove N N: N must be made inheritable. Popen's pass_fds would already do
# that, so the chain runs in-process in a fresh interpreter where N was
# opened close-on-exec (Python's default) and the real exec happens.
SAME_FD = r"""
import os, sys
import chainload.chain
fd = os.open(sys.argv[1], os.O_RDONLY)
assert not os.get_inheritable(fd)
sys.stdout.flush()
args = [a.replace("FD", str(fd)) for a in sys.argv[2:]]
sys.exit(chainload.chain.main(args))
"""


def run_with_cloexec_fd(path, argv):
    proc = subprocess.run([str(BIN / "python"), "-c", SAME_FD, str(path), *argv],
                          capture_output=True, text=True, timeout=30)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_same_fd_makes_it_inheritable(data, probe):
    report = run_with_cloexec_fd(data, ["fdmove", "FD", "FD", *probe])
    opened = [fd for fd, d in report["fds"].items() if d.get("target") == str(data)]
    assert len(opened) == 1, report["fds"]


def test_close_on_exec_fd_is_not_inherited_otherwise(data, probe):
    # The control for the test above: without fdmove N N, N does not survive.
    report = run_with_cloexec_fd(data, ["fdmove", "-c", "60", "1", *probe])
    assert not [d for d in report["fds"].values() if d.get("target") == str(data)]


def test_copy_makes_to_inheritable_from_a_cloexec_fd(data, probe):
    report = run_with_cloexec_fd(data, ["fdmove", "-c", "50", "FD", *probe])
    assert report["fds"]["50"]["target"] == str(data)


@pytest.mark.parametrize("to, frm, field, shown, why", [
    ("-1", "1", "to", "-1", "Out of range (must be 0 to 2147483647)."),
    ("5", "-1", "from", "-1", "Out of range (must be 0 to 2147483647)."),
    ("99999999999", "1", "to", "99999999999", "Out of range (must be 0 to 2147483647)."),
    ("5", "2147483648", "from", "2147483648", "Out of range (must be 0 to 2147483647)."),
    ("x", "1", "to", "x", "Not a number."),
    ("5", "09", "from", "09", "Not a number."),
    ("0x", "1", "to", "0x", "Not a number."),
    ("5", "1x", "from", "1x", "Not a number."),
    ("5", " 1", "from", " 1", "Not a number."),
    ("5", "", "from", "", "Not a number."),
    ("\u0665", "1", "to", "\u0665", "Not a number."),
])
def test_bad_numbers(to, frm, field, shown, why, tmp_path):
    marker = tmp_path / "ran"
    result = go(["fdmove", "--", to, frm, "/bin/sh", "-c", f"touch {marker}"])
    usage_error(result, f"fdmove: FATAL: {field}: {shown}: {why}")
    assert not marker.exists()


def test_negative_operand_without_double_dash():
    result = go(["fdmove", "-1", "1", "true"])
    assert result.returncode == 100
    assert result.stderr.startswith("fdmove: FATAL: ")


def test_closed_from(tmp_path):
    marker = tmp_path / "ran"
    for argv in (["fdmove", "5", "50", "/bin/sh", "-c", f"touch {marker}"],
                 ["fdmove", "-c", "50", "50", "/bin/sh", "-c", f"touch {marker}"],
                 ["chainload", "fdmove", "-c", "5", "1", "fdmove", "6", "0x32", "true"]):
        result = go(argv)
        assert result.returncode == 111, result.stderr
        assert result.stderr == "fdmove: FATAL: 50: Bad file descriptor\n"
    assert not marker.exists()


def test_from_closed_by_an_earlier_move(probe):
    result = go(["chainload", "fdmove", "-c", "5", "1", "fdmove", "6", "5", "fdmove", "7", "5",
                 *probe])
    assert result.returncode == 111
    assert result.stderr == "fdmove: FATAL: 5: Bad file descriptor\n"


def test_missing_operands():
    for argv in (["fdmove"], ["fdmove", "1"], ["fdmove", "-c"]):
        result = go(argv)
        assert result.returncode == 100
        assert result.stderr.splitlines()[0] == "fdmove: FATAL: Missing operand."
    usage_error(go(["fdmove", "1", "2"]),
                "fdmove: FATAL: Missing next program, or operand FROM (got TO=1, and 2 as FROM).")
