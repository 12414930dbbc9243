"""The resource limits of softlimit and hardlimit: one table of options, one
way to read a value, one way to set it. The two commands differ only in
which of the two limits they set.

A value is a number (core.parse_number: decimal, 0-octal, 0x-hex), "=" or
"unlimited" (also spelled "infinity", as systemd's Limit*= does).

    softlimit: the soft limit; above the hard limit means the hard limit,
               "=" means the hard limit.
    hardlimit: the hard limit; a soft limit above it is lowered to it,
               "=" means the soft limit (either way, "=" makes them equal).

This module imports only core; resource is imported when limits are set.
"""

from chainload import core

# (option, RLIMIT_* names, summary), in the order the limits are set: -m
# first, so that an explicit -a, -d, -l or -s given with it wins. The long
# options are the limits of systemd's Limit*= that daemontools' letters lack
# (LimitRTPRIO= is --rtprio, and so on).
TABLE = (
    ("-m", ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_MEMLOCK", "RLIMIT_STACK"),
     "Sets -a, -d, -l and -s at once (before them: they win)."),
    ("-a", ("RLIMIT_AS",), "Address space (RLIMIT_AS), bytes."),
    ("-c", ("RLIMIT_CORE",), "Core file size (RLIMIT_CORE), bytes."),
    ("-d", ("RLIMIT_DATA",), "Data segment (RLIMIT_DATA), bytes."),
    ("-f", ("RLIMIT_FSIZE",), "Size of a written file (RLIMIT_FSIZE), bytes."),
    ("-l", ("RLIMIT_MEMLOCK",), "Locked memory (RLIMIT_MEMLOCK), bytes."),
    ("-o", ("RLIMIT_NOFILE",), "Open file descriptors (RLIMIT_NOFILE)."),
    ("-p", ("RLIMIT_NPROC",), "Processes of the real user (RLIMIT_NPROC)."),
    ("-r", ("RLIMIT_RSS",), "Resident set size (RLIMIT_RSS), bytes."),
    ("-s", ("RLIMIT_STACK",), "Stack (RLIMIT_STACK), bytes."),
    ("-t", ("RLIMIT_CPU",), "CPU time (RLIMIT_CPU), seconds."),
    ("--rtprio", ("RLIMIT_RTPRIO",), "Real-time priority (RLIMIT_RTPRIO), 0 to 99."),
    ("--rttime", ("RLIMIT_RTTIME",), "Real-time CPU time (RLIMIT_RTTIME), microseconds."),
    ("--sigpending", ("RLIMIT_SIGPENDING",), "Queued signals (RLIMIT_SIGPENDING)."),
    ("--msgqueue", ("RLIMIT_MSGQUEUE",), "POSIX message queues (RLIMIT_MSGQUEUE), bytes."),
    ("--nice", ("RLIMIT_NICE",), "Nice ceiling (RLIMIT_NICE), 20 - nice: 0 to 40."),
    ("--locks", ("RLIMIT_LOCKS",), "File locks (RLIMIT_LOCKS; Linux ignores it)."),
)
# Linux's numbers of the resources Python's resource module has no name for.
MISSING = {"RLIMIT_LOCKS": 10}
LIMIT_MAX = 2**63 - 1  # rlim_t values Python's resource module takes
UNLIMITED = ("unlimited", "infinity")

# The Options: lines of both usage texts.
OPTIONS = "\n".join(f"  {option + ' N':<18}{summary}" for option, _, summary in TABLE)


def preload():
    import resource  # noqa: F401  (an extension module, read from disk)


def _value(text, option):
    """None for "=", -1 (RLIM_INFINITY) for "unlimited", else the number."""
    if text == "=":
        return None
    if text in UNLIMITED:
        return -1
    return core.parse_number(text, option, LIMIT_MAX)


def _above(a, b):
    """A limit A above B (-1 is infinity)."""
    return a != b and (a == -1 or (b != -1 and a > b))


def apply(args, hard):
    """Set the limits that ARGS (a docopt dict) names: the hard ones if HARD,
    else the soft ones. Every value is read before any limit is set."""
    import resource

    wanted = [(option, names, _value(args[option], option))
              for option, names, _ in TABLE if args[option] is not None]
    for option, names, value in wanted:
        for name in names:
            which = getattr(resource, name, None)
            if which is None:
                which = MISSING[name]
            new = hard_now = None
            try:
                soft_now, hard_now = resource.getrlimit(which)
                if hard:
                    new_hard = soft_now if value is None else value
                    new = (new_hard if _above(soft_now, new_hard) else soft_now, new_hard)
                else:
                    new = (hard_now if value is None or _above(value, hard_now) else value,
                           hard_now)
                resource.setrlimit(which, new)
            except (OSError, ValueError) as e:
                raising = hard and new is not None and _above(new[1], hard_now)
                raise _failed(option, name, raising, _errno(e)) from None


def _errno(err):
    """ERR as an OSError: resource.setrlimit raises ValueError for the
    kernel's EPERM ("not allowed to raise maximum limit") and EINVAL."""
    if isinstance(err, OSError):
        return err
    import errno

    return OSError(errno.EPERM if "not allowed" in str(err) else errno.EINVAL, str(err))


def _failed(option, name, raising, err):
    """The Fail for a setrlimit() of NAME that failed with ERR; RAISING: it
    raised a hard limit, which is what EPERM is about."""
    fail = core.system_error(f"{option}: {name}", err)
    if raising and err.errno == 1:  # EPERM
        note = "raising a hard limit needs privilege (CAP_SYS_RESOURCE)"
        if name == "RLIMIT_NOFILE":
            note += ", and open files stop at /proc/sys/fs/nr_open"
        fail = core.Fail(fail.status, f"{fail.message}; {note}.")
    return fail
