"""envdir: set and unset environment variables from a directory, then chain."""

import os
import sys

from chainload import core

USAGE = """Usage: envdir [options] [--] <dir> <next-prog>...

For every file in DIR whose name does not start with ".", set the variable
of that name to the file's first line, less trailing blanks (spaces, tabs,
carriage returns), with NUL bytes turned into newlines; an empty file unsets
it. Then chain to next-prog. Nothing is changed unless every entry reads.

Options:
  -f, --full  The whole file, less one final newline, is the value.
  -h, --help  Show this help and exit.
"""

def run(args, env):
    where = args["<dir>"]
    changes = read_directory(where, full=args["--full"])
    for name, value in changes:
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return args["<next-prog>"]


def read_directory(where, full=False):
    """[(name, value or None to unset)] for the entries of directory WHERE,
    sorted by name; a Fail (111) naming the entry if any of them cannot be
    used."""
    try:
        dirfd = os.open(core.encode(where), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (OSError, ValueError) as e:
        raise core.system_error(where, e) from None
    try:
        names = sorted(_names(dirfd, where))
        changes = []
        for raw in names:
            if raw.startswith(b"."):
                continue
            name = core.decode(raw)
            entry = os.path.join(where, name)
            if not raw or b"=" in raw:
                raise core.Fail(core.EXIT_SYSTEM,
                                f"{entry}: Not a valid variable name (empty, or has \"=\").")
            changes.append((name, _value(core.read_regular(raw, entry, dir_fd=dirfd,
                                                            first_line=not full), full)))
        return changes
    except OSError as e:
        raise core.system_error(where, e) from None
    finally:
        os.close(dirfd)


def _names(dirfd, where):
    """The names in the directory open on DIRFD, as bytes.

    By the descriptor, so every entry comes from this one directory.
    os.listdir(fd) decodes the names with the file system encoding: in
    UTF-8 with surrogateescape (Python's UTF-8 mode, which the installed
    commands start in, or a UTF-8 locale) os.fsencode gives back exactly
    the bytes. In another encoding the round trip may change bytes, and
    /proc/self/fd lists them as bytes."""
    if (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()) == ("utf-8",
                                                                         "surrogateescape"):
        return [os.fsencode(name) for name in os.listdir(dirfd)]
    try:
        return os.listdir(b"/proc/self/fd/%d" % dirfd)
    except FileNotFoundError:
        raise core.Fail(core.EXIT_SYSTEM, f"{where}: Cannot list it as bytes in this locale "
                        "without /proc (/proc/self/fd); Python's UTF-8 mode (-X utf8) "
                        "can.") from None


def _value(data, full):
    """The variable's value from file contents DATA; None unsets it."""
    if not data:
        return None
    if full:
        if data.endswith(b"\n"):
            data = data[:-1]
    else:
        data = data.split(b"\n", 1)[0].rstrip(b" \t\r")
    return core.decode(data.replace(b"\0", b"\n"))


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((469, 1575654111197690523),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<dir>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-f', '--full', 0, False), ('Option', '-h', '--help', 0, False)),
          (True, 1, '<next-prog>'), {'--full': False, '--help': False, '--': False, '<dir>': None, '<next-prog>': []})
