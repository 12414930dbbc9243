"""What every chain command shares: exit statuses, the error type, C-style
number parsing and the docopt adapter.

Exit statuses (the skarnet/daemontools convention, written down once here):

    0    --help or --version was printed; nothing was chained.
    100  usage error: bad option, bad number, missing operand or next program.
    111  system failure: a system call failed, or a user/group is unknown.
    126  the next program was found but could not be executed.
    127  the next program was not found.

This module imports nothing beyond the interpreter's start-up set; docopt is
imported on first use.
"""

EXIT_USAGE = 100
EXIT_SYSTEM = 111
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127

INT_MAX = 2**31 - 1
ID_MAX = 2**32 - 2  # (uid_t)-1 means "unchanged" to chown(2), so it is not an id


# --- bytes -----------------------------------------------------------------------
# Every argument, environment entry and path crosses the OS boundary through
# this one codec, never the locale's: decode() then encode() gives back
# exactly the bytes the chain was given, in every locale.

def encode(text):
    """TEXT (from argv, the environment or a file) as the original bytes."""
    return text.encode("utf-8", "surrogateescape")


def decode(raw):
    """Bytes from the OS as text that encode() turns back into RAW."""
    return raw.decode("utf-8", "surrogateescape")


# --- undoing what this run made -----------------------------------------------------

_undo = []


def on_abort(function, *args):
    """Call FUNCTION(*ARGS) if the chain ends without exec'ing its program:
    a usage or system error in a later link, a failed exec, an internal
    error, or SIGINT/SIGTERM/SIGHUP. Most recent first; never on success."""
    _undo.append((function, args))


def abort():
    """Run (once) everything on_abort() registered."""
    while _undo:
        function, args = _undo.pop()
        try:
            function(*args)
        except Exception:
            pass


def forget():
    """Drop everything on_abort() registered, undone by nobody: in a child
    of the chain (chainload.process.spawn), what the parent made is the
    parent's to undo."""
    _undo.clear()


class signals_deferred:
    """A block during which SIGINT, SIGTERM and SIGHUP wait (blocked) and are
    handled on leaving it: for making something and registering it with
    on_abort() as one step."""

    def __enter__(self):
        import _signal as signal

        self.old = signal.pthread_sigmask(
            signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})

    def __exit__(self, *exc):
        import _signal as signal

        signal.pthread_sigmask(signal.SIG_SETMASK, self.old)


class Fail(Exception):
    """Stop the chain: the driver prints "PROG: FATAL: message" and exits."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class Done(Exception):
    """Stop the chain without an error (after --help or --version)."""


class Stop(Exception):
    """Stop the chain with STATUS and no message (`if` after a failed
    program: the program said why)."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Request:
    """What a link's run() returns instead of the next argv when the rest
    needs a child process (foreground, if, the accept servers): the driver
    calls CARRY_OUT(spawn) and goes on with the argv it returns (it may
    never return). spawn(argv, env, prepare=None, program=None) forks a child that calls
    PREPARE(env), then runs the chain ARGV in-process and execs, and gives
    the parent the child's pid; chainload.process says what a child gets.
    A server, which spawns a child of the same ARGV again and again, also
    passes PROGRAM: called in the parent, it returns (the child's
    environment, os.posix_spawn file actions) that give a program the
    same start as PREPARE would, or None; when ARGV is a program with no
    builtin before it the driver may then start it with posix_spawn
    (chainload.process.spawn_program) instead of forking. Commands never
    fork themselves."""

    def __init__(self, carry_out):
        self.carry_out = carry_out


def split_program(words):
    """(prog, next-prog) of foreground and if: WORDS up to the first word
    that is exactly ";", and the words after it. In PROG a word made only
    of two or more ";" stands for one ";" fewer (";;" passes ";", and a
    nested foreground's own ";" is written ";;"); next-prog is left as it
    is. Usage errors (100) for an empty PROG, no ";" or nothing after it."""
    if ";" not in words:
        raise usage_error('No ";" ends the program to run first.')
    end = words.index(";")
    prog = [w[1:] if len(w) > 1 and w.strip(";") == "" else w for w in words[:end]]
    if not prog:
        raise usage_error('Missing program before ";".')
    rest = words[end + 1:]
    if not rest:
        raise usage_error("Missing next program.")
    return prog, rest


def usage_error(message):
    return Fail(EXIT_USAGE, message)


def system_error(what, err):
    """A failed system call, as "WHAT: strerror". ERR may also be the
    ValueError of os refusing a path with a NUL in it (only an in-process
    caller can pass one): no such file can exist."""
    import errno
    import os

    if isinstance(err, ValueError):
        return Fail(EXIT_SYSTEM, f"{what}: {os.strerror(errno.ENOENT)}")
    text = os.strerror(err.errno) if err.errno else str(err)
    return Fail(EXIT_SYSTEM, f"{what}: {text}")


def user_entry(name):
    """The password-database entry of account NAME (111 if there is none)."""
    import pwd

    try:
        return pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise _not_found(name, "user") from None


def is_uid(account):
    """Whether ACCOUNT names a user by uid: decimal digits only (systemd)."""
    return account.isascii() and account.isdigit()


def account_entry(account):
    """The password-database entry of ACCOUNT, a name or a numeric uid
    (111 if there is none). As systemd's User= reads it: a word of decimal
    digits only is a uid, anything else a name."""
    if not is_uid(account):
        return user_entry(account)
    import pwd

    try:
        return pwd.getpwuid(int(account))  # ValueError beyond 4300 digits
    except (KeyError, ValueError, OverflowError):
        raise _not_found(account, "user") from None


def group_id(name):
    """The gid of group NAME (111 if there is none)."""
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except (KeyError, ValueError):
        raise _not_found(name, "group") from None


def numeric_id(text, what):
    """The id that TEXT writes in decimal (ASCII digits only, as id(1) and
    the databases print ids), or None when TEXT is not such a number. WHAT
    ("User" or "Group") names it in the message (111) for a number above
    ID_MAX: 4294967295 is (uid_t)-1, which the set*id calls take as
    "unchanged"."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text) if len(text) <= 40 else ID_MAX + 1
    if value > ID_MAX:
        raise Fail(EXIT_SYSTEM, f"{text}: {what} id out of range (must be 0 to {ID_MAX}).")
    return value


def account_of(text):
    """(name, uid, gid) of the account TEXT: a user name, or else a user
    id in decimal. A name in the password database wins over a number; a
    number is looked up by id, and when no account has it the result is
    (None, uid, None): the caller must get the group elsewhere. 111 for
    an unknown name."""
    import pwd

    try:
        entry = pwd.getpwnam(text)
    except (KeyError, ValueError):
        uid = numeric_id(text, "User")
        if uid is None:
            raise _not_found(text, "user") from None
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            if (failed := _lookup_failed(text, "user")) is not None:
                raise failed from None
            return None, uid, None
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def group_of(text):
    """The gid of TEXT, a group name or else a group id in decimal (a name
    in the group database wins over a number; a number needs no group of
    that id). 111 for an unknown name or an empty one."""
    import grp

    try:
        return grp.getgrnam(text).gr_gid
    except (KeyError, ValueError):
        gid = numeric_id(text, "Group")
        if gid is None:
            raise _not_found(text, "group") from None
        return gid


def _lookup_failed(name, what):
    """pwd and grp say "not found" also when the database could not be
    read at all (they hide the errno); the usual cause, no descriptor left
    to open it with (a softlimit -o, a full table), shows when no
    descriptor can be opened now either: then the Fail that says so, else
    None."""
    import os

    try:
        os.close(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))
    except OSError as e:
        return system_error(f"{name}: Cannot look up the {what}", e)
    return None


def _not_found(name, what):
    """The Fail for a lookup of NAME that found nothing (see _lookup_failed)."""
    return _lookup_failed(name, what) or Fail(EXIT_SYSTEM, f"{name}: No such {what}.")


def variable_name(name):
    """NAME, if it can name an environment variable: not empty, no "=" and
    no NUL (a usage error, 100, otherwise)."""
    if not name or "=" in name or "\0" in name:
        raise usage_error(f"{name}: Not a valid variable name (empty, or has \"=\").")
    return name


_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def parse_number(text, what, maximum, minimum=0):
    """Parse TEXT as strtoul(3) does with base 0, but strictly.

    Decimal, a leading 0 for octal, 0x or 0X for hexadecimal; an optional
    sign. The whole string must be the number (no blanks, no underscores, no
    Unicode digits), and the value must lie in [minimum, maximum]: nothing
    is ever truncated or wrapped. WHAT names the value in messages.
    """
    body = text[1:] if text[:1] in ("+", "-") else text
    if body[:2] in ("0x", "0X"):
        base, digits = 16, body[2:]
    elif body[:1] == "0" and len(body) > 1:
        base, digits = 8, body[1:]
    else:
        base, digits = 10, body
    allowed = _DIGITS[base]
    if not digits or not all(c in allowed for c in digits):
        raise usage_error(f"{what}: {text}: Not a number.")
    # A bound on the length keeps int() away from huge inputs; anything
    # this long (less leading zeros) is out of every range we use.
    value = int(digits, base) if len(digits.lstrip("0")) <= 40 else maximum + 1
    if text[:1] == "-":
        value = -value
    if not minimum <= value <= maximum:
        raise usage_error(
            f"{what}: {text}: Out of range (must be {minimum} to {maximum})."
        )
    return value


def parse_octal(text, what, noun, maximum):
    """A mode or mask, TEXT, as parse_number() reads it, except that a bare
    decimal number of 8 or more is refused: 22 or 666 was almost surely
    meant as octal (chmod(1), umask(1)), and reading it as decimal would
    quietly give 026 or 01232. The message spells the octal (0666) when
    the digits allow it. NOUN names the value in the hint ("mask", "mode")."""
    body = text[1:] if text[:1] in ("+", "-") else text
    # 8 or more: two digits or more without a leading 0, or one 8 or 9
    # (no int(): a 5000-digit number would exceed its conversion limit).
    if (body and body[0] != "0" and all(c in "0123456789" for c in body)
            and (len(body) > 1 or body in "89")):
        # nosh would read 22 as decimal (0026), execline as octal (022).
        hint = f" (0{body})" if all(c in "01234567" for c in body) else ""
        raise usage_error(
            f"{what}: {text}: Ambiguous decimal number; write the {noun} in octal with "
            f"a leading 0{hint}.")
    return parse_number(text, what, maximum)


# --- the docopt adapter --------------------------------------------------------
# docopt() parses its usage text on every call and tokenizes the whole
# command line; in a chain, a link's command line is the rest of the chain.
# The adapter keeps docopt's own parser and matcher and changes three
# things: the usage texts, which are constant, are parsed at build time
# (chainload.usage; each command module keeps the result as PARSED, so a
# start imports no extra module for it), their lint runs in the tests, and
# a link's words are found without tokenizing the words after them (see
# _match). tests/test_adapter.py holds the result to
# docopt.docopt(usage, argv, options_first=True) on random command lines,
# for the usage text of every command in the table.

# usage text -> what _compile returns for it.
_patterns = {}

_PRIME = 2**61 - 1


def fingerprint(text):
    """(length, hash) of TEXT: a frozen parse names the text it was made
    from, so an edited usage text is never matched against a stale parse.
    A polynomial hash over the bytes, modulo a prime: built-ins only."""
    data = encode(text)
    return len(data), int.from_bytes(data, "little") % _PRIME


def _compile(usage, frozen=None):
    """(pattern, options, cut, defaults, known) of USAGE, once per process.

    FROZEN is chainload.usage.frozen(USAGE) as a command module stores it
    (PARSED): docopt's parse of the text, what chainload.usage.cut() makes
    of it, and the
    value docopt() gives each name when it is not on the command line.
    Without it (or if it was made from another text), the text is parsed
    now, by docopt, at the cost of ~1 ms. KNOWN: the names of the options.
    """
    cached = _patterns.get(usage)
    if cached is None:
        import docopt as d

        if frozen is None or frozen[0] != fingerprint(usage):
            from chainload import usage as build

            frozen = build.frozen(usage)
        _, pattern, options, cut, defaults = frozen
        options = [_thaw(d, o, None) for o in options]
        pattern = _thaw(d, pattern, options)
        known = {o.name for o in options}
        cached = _patterns[usage] = (pattern, options, cut, defaults, known)
    return cached


def _thaw(d, node, options):
    """The docopt pattern that chainload.usage.freeze() made NODE from;
    OPTIONS: the thawed options, which an [options] shortcut holds."""
    name = node[0]
    if name == "OptionsShortcut":
        return d.OptionsShortcut(*[options[i] for i in node[1]])
    cls = getattr(d, name)
    if issubclass(cls, d.BranchPattern):
        return cls(*[_thaw(d, c, options) for c in node[1]])
    return cls(*node[1:])


def _leading_options(d, options, argv):
    """docopt's tokens for the options that start ARGV, and the index of its
    first operand (len(ARGV) if it has none).

    With options_first, parse_argv reads each word and at most the one
    after it, and turns everything from the first operand (or "--") on into
    operands. So parsing a prefix of ARGV that contains the first operand
    gives the same option tokens as parsing all of it: parse a window that
    grows fourfold until it does (or is all of ARGV). A link's options
    cost the same however long the chain after it.
    """
    size = 8
    while True:
        window = argv[:size]
        try:
            tokens = d.parse_argv(d.Tokens(window), list(options), True)
        except d.DocoptExit:  # e.g. an option whose argument lies past the window
            if size >= len(argv):
                raise
        else:
            operands = sum(type(t) is d.Argument for t in tokens)
            if operands or size >= len(argv):
                return tokens[:len(tokens) - operands], len(window) - operands
        size *= 4


def _match(usage, argv, frozen=None):
    """Return (parsed dict or None, one-line complaint or None)."""
    import docopt as d

    pattern, options, cut, defaults, known = _compile(usage, frozen)
    if cut is None:
        tokens = d.parse_argv(d.Tokens(argv), list(options), True)
        given = [t for t in tokens if type(t) is d.Option]
    else:
        # Only this link's words go to docopt: its options, "--", its
        # single operands and the first word of the repeated last operand,
        # which takes the rest of ARGV whatever it is.
        dashdash, singles, last = cut
        given, first = _leading_options(d, options, argv)
        keep = first + (dashdash and argv[first:first + 1] == ["--"]) + singles + 1
        tokens = given + [d.Argument(None, word) for word in argv[first:keep]]
    for o in given:
        if o.value and o.name in ("-h", "--help"):
            raise _Help
    for o in given:
        if o.name not in known:
            return None, f"{o.name}: Unrecognized option."
    matched, left, collected = pattern.match(tokens)
    if matched and not left:
        args = dict(defaults)
        for a in collected:
            args[a.name] = a.value
        if cut is not None:
            args[last] = argv[keep - 1:]
        return args, None
    if matched:
        return None, f"{left[0].name if isinstance(left[0], d.Option) else left[0].value}: " \
                     "Given more than once, or unexpected."
    return None, "Missing operand."


class _Help(Exception):
    pass


# (usage, tuple of words) -> the parse of a link a server's children will
# run (preparse). Filled in the server before it forks; each child is a
# copy of it, so a child's link may change what it got.
_preparsed = {}


def preparse(usage, argv, frozen=None):
    """Parse ARGV against USAGE now, for parse_args to find: nothing is
    kept (nor printed) when ARGV does not parse or asks for --help, and
    parse_args then parses it and says why."""
    import docopt as d

    try:
        args, _ = _match(usage, argv, frozen)
    except (_Help, d.DocoptExit, Fail):
        return
    if args is not None:
        _preparsed[(usage, tuple(argv))] = args


def parse_args(usage, argv, shown=None, frozen=None, hint=None):
    """Parse ARGV (without the program name) against the docopt USAGE text
    (FROZEN: its parse as the command module stores it, see _compile).

    Options end at the first operand (options_first), as in the C tools, so
    the next program's own options are never parsed. --help prints SHOWN
    (default USAGE: the same text, perhaps naming the program as called)
    on stdout and stops the chain (status 0). A usage error raises Fail(100)
    with a one-line message; the driver prints the usage synopsis after it.
    HINT, if given, is called with the operand words of a command line that
    does not parse, and may return a better message (a command's own
    advice). A usage that ends in <next-prog>... and would parse with one
    more word gets "Missing next program", naming what each operand took.
    """
    if _preparsed:
        args = _preparsed.get((usage, tuple(argv)))
        if args is not None:
            return args
    import docopt as d

    try:
        args, complaint = _match(usage, argv, frozen)
        if args is None:
            raise usage_error(_complaint(usage, argv, frozen, hint) or complaint)
    except _Help:
        print_out((shown or usage).strip("\n"))
        raise Done from None
    except d.DocoptExit as e:
        # parse_argv's own complaints: "--uid requires argument", ...
        raise usage_error(str(e).splitlines()[0].rstrip(".") + ".") from None
    return args


def _complaint(usage, argv, frozen, hint):
    """A better message than docopt's for ARGV, which does not parse, or None.

    When one more word would make it parse, an operand may be missing as
    well as the next program: "listen-tcp 8090 prog" read 8090 as the host
    and prog as the service. Say which word each operand took."""
    import docopt as d

    _, options, cut, _, _ = _compile(usage, frozen)
    if hint is not None:
        _, first = _leading_options(d, options, argv)
        words = argv[first:]
        if cut is not None and cut[0] and words[:1] == ["--"]:
            words = words[1:]
        message = hint(words)
        if message:
            return message
    if "<next-prog>..." not in usage:
        return None
    more = _match(usage, argv + ["next-prog"], frozen)[0]
    if more is None:
        return None
    names = [k for k in more if k[:1] == "<" and k != "<next-prog>"]
    if not names:
        return "Missing next program."
    shown = [name.strip("<>").upper() for name in names]
    got = [f"{n}={one_line(more[k])}" for n, k in zip(shown[:-1], names)]
    got.append(f"{'and ' if got else ''}{one_line(more[names[-1]])} as {shown[-1]}")
    return f"Missing next program, or operand {shown[-1]} (got {', '.join(got)})."


def synopsis(usage):
    """The "Usage:" block of a docopt text, for printing after an error."""
    lines = []
    for line in usage.strip("\n").splitlines():
        if not line.strip():
            break
        lines.append(line)
    return "\n".join(lines)


def read_regular(path, what, dir_fd=None, limit=None, missing_ok=False, first_line=False):
    """The bytes of regular file PATH (text or bytes, relative to DIR_FD if
    given; symbolic links followed); WHAT names it in messages (111).

    The type is checked before the open, so a FIFO or a device is never
    opened (opening one can block or act), and again on the open file.
    More than LIMIT bytes is an error, found without reading them. With
    MISSING_OK, a file that does not exist (ENOENT, ENOTDIR) gives None.
    With FIRST_LINE, reading stops at the end of the chunk that holds the
    first newline (a file of gigabytes costs no more than its first line).
    """
    import errno
    import os

    where = encode(path) if isinstance(path, str) else path
    try:
        _regular(os.stat(where, dir_fd=dir_fd), what)
        fd = os.open(where, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK,
                     dir_fd=dir_fd)
    except (OSError, ValueError) as e:
        # (A path with a NUL, which only an in-process caller can give,
        # names no file either: see system_error.)
        if missing_ok and getattr(e, "errno", errno.ENOENT) in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise system_error(what, e) from None
    try:
        st = os.fstat(fd)
        _regular(st, what)
        chunks, size = [], 0
        if limit is None or st.st_size <= limit:
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
                size += len(chunk)
                if limit is not None and size > limit:
                    break
                if first_line and b"\n" in chunk:
                    break
        if limit is not None and max(size, st.st_size) > limit:
            raise Fail(EXIT_SYSTEM, f"{what}: File too large (more than {limit} bytes)")
        return b"".join(chunks)
    except OSError as e:
        raise system_error(what, e) from None
    finally:
        os.close(fd)


def _regular(st, what):
    import stat

    if stat.S_ISDIR(st.st_mode):
        raise Fail(EXIT_SYSTEM, f"{what}: Is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise Fail(EXIT_SYSTEM, f"{what}: Not a regular file")


# --- messages --------------------------------------------------------------------

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(c):
    code = ord(c)
    if c in _ESCAPES:
        return _ESCAPES[c]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(text):
    """TEXT with control and unprintable characters escaped: a message
    quotes user input (paths, names, numbers), and must stay one line.
    Built-ins only: after setuidgid no codec may be loadable."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def warn(prog, message):
    """One line "PROG: WARNING: message" on stderr; the chain goes on."""
    import sys

    write_out(sys.stderr, f"{one_line(prog)}: WARNING: {one_line(message)}\n")


def print_out(text):
    import sys

    write_out(sys.stdout, text + "\n")


def write_out(stream, text):
    """Write TEXT to STREAM (sys.stdout or sys.stderr) as the bytes it came
    from: with write(2) on the stream's descriptor, never through its codec
    (which would change the bytes of a path in a legacy locale, and may need
    a codec module that setuidgid's new user cannot read) nor its buffer. A
    write that fails (a full disk, a pipe whose reader is gone, a descriptor
    a link closed) is given up: left in a buffer, it would fail again when
    Python flushes at exit, which prints "Exception ignored" and turns the
    documented exit status into 120."""
    if stream is None:  # started with that descriptor closed
        return
    import os

    data = encode(text)
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):  # not a file (a test's capture)
        try:
            stream.flush()
            stream.buffer.write(data)
            stream.buffer.flush()
        except (OSError, ValueError, AttributeError):
            pass
        return
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass
