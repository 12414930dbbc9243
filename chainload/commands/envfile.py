"""envfile: set environment variables from a systemd EnvironmentFile=, then chain."""

import re

from chainload import core

USAGE = """Usage: envfile [options] [--] <file> <next-prog>...

Read FILE as systemd 252 reads an EnvironmentFile= (KEY=VALUE lines, "#" and
";" comments, quotes and backslashes), set every assignment in order (later
ones win) and chain to next-prog. A line that is not an assignment to a
valid name gets one warning and is skipped. Nothing is set unless the whole
file was read.

Options:
  --ignore-missing  A FILE that does not exist is skipped (systemd's "-").
  -h, --help        Show this help and exit.
"""

# systemd's limit for files it reads whole (READ_FULL_BYTES_MAX).
LIMIT = 64 * 1024 * 1024 - 1

_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*\Z")
_BLANKS = re.compile(rb"[ \t\n\r]*")  # systemd's WHITESPACE
_SPACES = re.compile(rb"[ \t]*")  # WHITESPACE less NEWLINE ("\n\r")
_KEY = re.compile(rb"[^\n\r=]*")
_VALUE = re.compile(rb"[^\n\r\\]*")  # also a comment
_DOUBLE = re.compile(rb'[^"\\]*')

(PRE_KEY, KEY, PRE_VALUE, VALUE, VALUE_ESCAPE, SINGLE, DOUBLE, DOUBLE_ESCAPE, COMMENT,
 COMMENT_ESCAPE) = range(10)
_PUSHED_AT_END = (PRE_VALUE, VALUE, VALUE_ESCAPE, SINGLE, DOUBLE, DOUBLE_ESCAPE)
NEWLINE = b"\n\r"


def run(args, env):
    path = args["<file>"]
    data = core.read_regular(path, path, limit=LIMIT, missing_ok=args["--ignore-missing"])
    if data is not None:
        if b"\0" in data:  # systemd refuses the file too (EBADMSG)
            raise core.Fail(core.EXIT_SYSTEM, f"{path}: Has a NUL byte, not an environment file.")
        assignments, warnings = parse(data)
        for line, text in warnings:
            core.warn("envfile", f"{path}:{line}: {text}")
        for key, value in assignments:
            env[core.decode(key)] = core.decode(value)
    return args["<next-prog>"]


def parse(data):
    """([(key, value)], [(line, warning)]) of the bytes DATA, as systemd
    252's parse_env_file_internal() and load_env_file() read them, less the
    assignments exec_context_load_environment() drops (invalid names)."""
    assignments, warnings = [], []
    lines = _Lines(data)
    state, i, n = PRE_KEY, 0, len(data)
    start = key = None
    value, floor = bytearray(), 0  # trailing blanks at or after floor go

    def push(chomp):
        name = key.rstrip(b" \t")
        if chomp:
            del value[floor + len(value[floor:].rstrip(b" \t")):]
        if _NAME.match(name):
            assignments.append((name, bytes(value)))
        else:
            warnings.append((lines.at(start), f"Ignoring {_quoted(name)}: "
                                              "not a valid variable name."))

    while i < n:
        if state == PRE_KEY:
            i = _BLANKS.match(data, i).end()
            if i == n:
                break
            if data[i] in b"#;":
                state, i = COMMENT, i + 1
                continue
            start = i  # the first character is the key's, even a "="
            i = _KEY.match(data, i + 1).end()
            key, state = data[start:i], KEY
            if i == n:
                break
            if data[i] == ord("="):
                state, value, floor = PRE_VALUE, bytearray(), 0
            else:
                warnings.append((lines.at(start), f"Ignoring {_quoted(key)}: not an assignment."))
                state = PRE_KEY
            i += 1
        elif state == PRE_VALUE:
            i = _SPACES.match(data, i).end()
            if i == n:
                break
            c = data[i]
            i += 1
            if c in NEWLINE:
                push(False)
                state = PRE_KEY
            elif c == ord("'"):
                state = SINGLE
            elif c == ord('"'):
                state = DOUBLE
            elif c == ord("\\"):
                state = VALUE_ESCAPE
            else:
                value.append(c)
                state, floor = VALUE, len(value)
        elif state == VALUE:
            j = _VALUE.match(data, i).end()
            value += data[i:j]
            if j == n:
                i = j
                break
            state = VALUE_ESCAPE if data[j] == ord("\\") else PRE_KEY
            if state == PRE_KEY:
                push(True)
            i = j + 1
        elif state == VALUE_ESCAPE:  # an escaped newline joins the lines
            if data[i] not in NEWLINE:
                value.append(data[i])
            state, floor, i = VALUE, len(value), i + 1
        elif state == SINGLE:
            j = data.find(b"'", i)
            j = n if j < 0 else j
            value += data[i:j]
            state, i = PRE_VALUE, j + 1
            if j == n:
                state = SINGLE
                break
        elif state == DOUBLE:
            j = _DOUBLE.match(data, i).end()
            value += data[i:j]
            if j == n:
                i = j
                break
            state = PRE_VALUE if data[j] == ord('"') else DOUBLE_ESCAPE
            i = j + 1
        elif state == DOUBLE_ESCAPE:  # kept before any other character
            c = data[i]
            if c in b'"\\`$':
                value.append(c)
            elif c != ord("\n"):
                value += b"\\" + bytes((c,))
            state, i = DOUBLE, i + 1
        elif state == COMMENT:  # a backslash continues it, even onto the next line
            i = _VALUE.match(data, i).end()
            if i < n:
                state = COMMENT_ESCAPE if data[i] == ord("\\") else PRE_KEY
                i += 1
        else:  # COMMENT_ESCAPE
            state, i = COMMENT, i + 1
    if state in _PUSHED_AT_END:
        push(state == VALUE)
    elif state == KEY:
        warnings.append((lines.at(start), f"Ignoring {_quoted(key)}: not an assignment."))
    return assignments, warnings


class _Lines:
    """Line numbers of positions met in increasing order (linear overall)."""

    def __init__(self, data):
        self.data, self.pos, self.line = data, 0, 1

    def at(self, pos):
        self.line += self.data.count(b"\n", self.pos, pos)
        self.pos = pos
        return self.line


def _quoted(raw, most=60):
    text = core.decode(raw)
    return '"' + (text if len(text) <= most else text[:most] + "...") + '"'


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((499, 595769271440774996),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0, 1)),)), ('NotRequired', (('Command', '--', False),)), ('Argument', '<file>', None), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', None, '--ignore-missing', 0, False), ('Option', '-h', '--help', 0, False)),
          (True, 1, '<next-prog>'), {'--ignore-missing': False, '--help': False, '--': False, '<file>': None, '<next-prog>': []})
