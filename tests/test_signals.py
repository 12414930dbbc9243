"""The next program must not inherit the signal dispositions Python sets.

CPython ignores SIGPIPE and SIGXFSZ at start-up, and an ignored signal stays
ignored across exec. A C chain loader passes them on at their defaults, so
must we: otherwise `chainload ... daemon | head` leaves the daemon unable to
die of SIGPIPE.
"""

import signal

from conftest import command, run


def ignored_signals(stdout):
    for line in stdout.splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {sig for sig in signal.Signals if mask & (1 << (sig - 1))}
    raise AssertionError(f"no SigIgn line in {stdout!r}")


SHOW = ["sh", "-c", "grep SigIgn /proc/$$/status"]


def test_final_program_gets_default_sigpipe_and_sigxfsz():
    result = run(["chainload", "fdmove", "-c", "5", "2", *SHOW])
    assert result.returncode == 0, result.stderr
    ignored = ignored_signals(result.stdout)
    assert signal.SIGPIPE not in ignored
    assert signal.SIGXFSZ not in ignored


def test_single_command_form_too():
    result = run([command("fdmove"), "-c", "5", "2", *SHOW])
    assert result.returncode == 0, result.stderr
    assert signal.SIGPIPE not in ignored_signals(result.stdout)
