"""fdredir: open a file on a file descriptor, then chain."""

import os

from chainload import core

USAGE = """Usage: fdredir [options] [--] <fd> <file> <next-prog>...

Open FILE on file descriptor FD, closing what was open there, and chain to
next-prog, which inherits it. FILE is opened for reading unless an option
says otherwise; a file opened for writing is created if it is missing, with
mode 0666 less the umask. FD is a number (decimal, 0-octal or 0x-hex).

Options:
  -r, --read          Open for reading (the default).
  -w, --write         Open for writing, truncating FILE.
  -a, --append        Open for writing, every write at the end (O_APPEND).
  -u, --update        Open for reading and writing, not truncating FILE.
  -n, --non-blocking  Open without waiting (FIFO), then make it blocking.
  -h, --help          Show this help and exit.
"""

MODES = {
    "--read": os.O_RDONLY,
    "--write": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "--append": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "--update": os.O_RDWR | os.O_CREAT,
}


def run(args, env):
    given = [mode for mode in MODES if args[mode]]
    if len(given) > 1:
        raise core.usage_error(f"{given[0]} and {given[1]}: Give only one of "
                               "--read, --write, --append and --update.")
    fd = core.parse_number(args["<fd>"], "fd", core.INT_MAX)
    path = args["<file>"]
    flags = MODES[given[0] if given else "--read"] | os.O_NOCTTY | os.O_CLOEXEC
    if args["--non-blocking"]:
        flags |= os.O_NONBLOCK
    where = f"fd {fd}: {path}"
    opened = _open(core.encode(path), flags, where)
    try:
        if args["--non-blocking"]:
            os.set_blocking(opened, True)
        if opened == fd:  # FD was closed: open() gave it
            os.set_inheritable(fd, True)
        else:
            os.dup2(opened, fd)  # closes what was on FD; inheritable
    except OSError as e:
        raise core.system_error(where, e) from None
    finally:
        if opened != fd:
            os.close(opened)
    return args["<next-prog>"]


def _open(raw, flags, where):
    """os.open(RAW, FLAGS, 0o666); a file that this call creates is removed
    if the chain fails (on_abort), as a listener removes its socket. Only
    the making waits for signals: opening a FIFO may wait for its other
    end, and a SIGTERM must stop the chain then."""
    try:
        if flags & os.O_CREAT:
            with core.signals_deferred():  # made and registered as one step
                opened = _create(raw, flags)
            if opened is not None:
                return opened
            flags &= ~os.O_CREAT  # it exists: open it as it is
        return os.open(raw, flags)
    except (OSError, ValueError) as e:  # ValueError: a NUL in FILE
        raise core.system_error(where, e) from None


def _create(raw, flags):
    """The descriptor of RAW made by this call with O_EXCL (registered for
    removal), or None if RAW exists."""
    try:
        opened = os.open(raw, flags | os.O_EXCL, 0o666)
    except FileExistsError:
        return None
    st = os.fstat(opened)
    try:  # by its full name: a later chdir must not change which file it is
        raw = os.path.join(os.getcwdb(), raw)
    except OSError:
        pass
    core.on_abort(_remove, raw, (st.st_dev, st.st_ino))
    return opened


def _remove(raw, made):
    """Unlink RAW if it is still the file MADE (st_dev, st_ino)."""
    st = os.lstat(raw)
    if (st.st_dev, st.st_ino) == made:
        os.unlink(raw)


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((744, 308895061750680350),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1, 2, 3, 4, 5)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<fd>', None), ('Argument', '<file>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-r', '--read', 0, False), ('Option', '-w', '--write', 0, False), ('Option', '-a', '--append', 0, False), ('Option', '-u', '--update', 0, False), ('Option', '-n', '--non-blocking', 0, False), ('Option', '-h', '--help', 0, False)),
          (True, 2, '<next-prog>'), {'--read': False, '--write': False, '--append': False, '--update': False, '--non-blocking': False, '--help': False, '--': False, '<fd>': None, '<file>': None, '<next-prog>': []})
