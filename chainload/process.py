"""Forking: the one place that knows what a child of a chain must be.

foreground, if and the accept servers run the rest of a chain in a child,
in-process, where it ends in its own exec. The driver does the forking
(spawn, given the driver's runner); the child's rules are here:

* the parent's clean-up is not the child's: core.forget() drops it before
  the child can receive a signal, so whatever the child does (fails, is
  killed) never removes the parent's socket file;
* the child starts with the signal dispositions and mask the chain
  inherited, not the server's own: every disposition a parent changed
  through this module (SIGCHLD) goes back, the caught signals keep the
  chain's own handler (boundary._die, which then undoes only what the child makes),
  the wakeup descriptor of a server is closed;
* nothing is imported after the fork: the driver preloaded the rest of
  the chain (chain.preload), so a child costs a fork, the links' own
  system calls and one exec;
* the parent reaps every child (wait, reap): no zombie is left.

Spawning. When nothing but a program follows a server (no builtin left to
run in the child), the driver may start the program with posix_spawn(3)
instead (spawn_program): glibc's is a clone(CLONE_VM|CLONE_VFORK), with
no copy of the server's page tables and no copy-on-write fault after it,
where a fork of the Python server costs about 1 ms and a few hundred
faults. The program gets what a forked child would give it: descriptors
set by file actions, the signal mask the chain inherited (the server's
own, read at the call), caught signals at their defaults (glibc resets
every handler in its child, as exec would), SIGPIPE and SIGXFSZ at their
defaults (boundary.for_exec), an ignored signal left ignored. It is used
only while no disposition the chain inherited has been changed for the
server's own use (direct_ok: a SIGCHLD inherited ignored must be ignored
in the child, which posix_spawn cannot do); otherwise, and whenever it
fails, the forked child does it and says why.

The signal state a child gets back (the caught signals, the dispositions
the chain inherited) is recorded by chainload.boundary, which the final
exec uses too. Only os and built-in modules; this module is imported only
when a chain forks (by foreground, if and the accept servers).
"""

import os

from chainload import boundary, core

# --- signals while children run ---------------------------------------------

# The read and write ends of a server's wakeup pipe (watch_children).
_wakeup = []


def _stopping():
    import _signal as signal

    return {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD}


# --- forking ------------------------------------------------------------------


def exit_code(wstatus):
    """A wait status as a shell reports it: the exit status, or 128 plus
    the number of the signal that killed the process."""
    if os.WIFSIGNALED(wstatus):
        return 128 + os.WTERMSIG(wstatus)
    return os.waitstatus_to_exitcode(wstatus)


def spawn(run, argv, env, prepare=None):
    """Fork. The child calls RUN(ARGV, ENV, PREPARE), which calls
    PREPARE(ENV) (if given), runs the chain in-process and returns a status
    only if it does not exec; the child exits with it. Returns the child's pid; a failed
    fork raises OSError.

    SIGINT, SIGTERM, SIGHUP and SIGCHLD wait (blocked) from before the fork
    until the child has dropped the parent's clean-up and taken back the
    dispositions the chain inherited; the child then gets the mask the
    chain had."""
    import _signal as signal
    import sys

    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _stopping())
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return pid
    status = core.EXIT_SYSTEM
    try:
        _become_child()
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        status = run(argv, env, prepare)
    finally:
        # Whatever happened, the child never returns into the parent's code.
        os._exit(status)


def _become_child():
    """The child's side of spawn(), with the stopping signals blocked."""
    import _signal as signal

    core.forget()
    for signum, disposition in boundary._inherited.items():
        signal.signal(signum, disposition)
    boundary._inherited.clear()
    if _wakeup:
        signal.set_wakeup_fd(-1)
        for fd in _wakeup:
            os.close(fd)
        _wakeup.clear()


def direct_ok():
    """Whether spawn_program() gives a child the signal state the chain
    inherited: every disposition changed for the server's use (SIGCHLD)
    was inherited at its default, which the spawned child gets."""
    import _signal as signal

    return all(d == signal.SIG_DFL for d in boundary._inherited.values())


def spawn_program(path, args, environment, file_actions):
    """posix_spawn(3) of PATH with ARGS and ENVIRONMENT (a dict of bytes)
    and FILE_ACTIONS (os.posix_spawn's), with the signal state a child of
    the chain gets (see the module's docstring); the pid. OSError when the
    program could not be started (glibc passes on the errno of its exec)."""
    import _signal as signal

    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    return os.posix_spawn(path, args, environment, file_actions=file_actions,
                          setsigmask=mask, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))


def wait(pid):
    """Wait for child PID and reap it; its exit_code().

    SIGINT, SIGTERM or SIGHUP (those the chain catches) arriving meanwhile
    is sent on to the child; then the chain dies of it as it would without
    a child (clean-up, then the signal), leaving the child to its own
    handling of the signal and to init for reaping."""
    import _signal as signal

    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except OSError:
            pass
        boundary._die(signum, frame)

    old = signal.pthread_sigmask(signal.SIG_BLOCK, _stopping())
    for signum in boundary._caught:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    try:
        _, wstatus = os.waitpid(pid, 0)
    finally:
        for signum in boundary._caught:
            signal.signal(signum, boundary._die)
    return exit_code(wstatus)


def sequence(words, env, stop_on_failure):
    """foreground (and, with STOP_ON_FAILURE, if): the core.Request that
    runs "prog..." of WORDS = "prog... ; next-prog..." in a child, waits
    for it, and goes on with next-prog (if: only after status 0; else
    core.Stop with the child's exit_code())."""
    prog, rest = core.split_program(words)

    def carry_out(spawn):
        start_children()
        try:
            pid = spawn(prog, env)
        except OSError as e:
            raise core.system_error("fork", e) from None
        status = wait(pid)
        boundary.end_children()
        if status and stop_on_failure:
            raise core.Stop(status)
        return rest
    return core.Request(carry_out)


def start_children():
    """Make sure the children spawned from now on can be waited for: a
    SIGCHLD the chain inherited ignored would have the kernel reap them
    at once. The children get the inherited disposition back."""
    import _signal as signal

    old = signal.getsignal(signal.SIGCHLD)
    if old == signal.SIG_IGN and signal.SIGCHLD not in boundary._inherited:
        boundary._inherited[signal.SIGCHLD] = old
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def watch_children():
    """For a server: a descriptor that becomes readable when a child
    exits (the SIGCHLD wakeup pipe; drain() it, then reap()). The children
    lose the pipe and get SIGCHLD back as the chain inherited it."""
    import _signal as signal

    read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    _wakeup.extend((read, write))
    old = signal.signal(signal.SIGCHLD, _nothing)
    boundary._inherited.setdefault(signal.SIGCHLD, old)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    return read


def _nothing(signum, frame):
    """SIGCHLD's handler in a server: its work is done by the wakeup pipe."""


def drain(fd):
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def reap():
    """[(pid, wait status)] of every child that has exited, not waiting."""
    done = []
    while True:
        try:
            pid, wstatus = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append((pid, wstatus))
