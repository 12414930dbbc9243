"""systemd's unit file syntax, as systemd 252 (Debian 12) reads it.

The file (src/shared/conf-parser.c): lines end at \\n, \\r\\n or \\r; a line
whose last character is an unescaped backslash continues on the next one
(the backslash becomes a space), and while a line continues, comment lines
and empty lines are skipped; "#" and ";" start comment lines; "[Name]"
starts a section; "Key=Value" with the blanks around both removed.

Words (src/basic/extract-word.c, src/basic/escape.c): blanks separate words;
'...' and "..." may start anywhere in a word; a backslash escapes C-style
(\\n, \\x41, \\101, \\u00e9, \\s for a space) or, unknown, stays as written
(systemd warns and keeps it).

Command lines (config_parse_exec in src/core/load-fragment.c): prefixes
"-", "@", ":", "+", "!", "!!" before the path; a lone ";" separates
commands and "\\;" is a literal ";"; specifiers are resolved in each word
after it was split.
"""

import re

WHITESPACE = " \t\n\r"
COMMENTS = "#;"


class SyntaxProblem(Exception):
    """A value systemd would refuse (it ignores the line, or, for a command
    line, fails to load the unit)."""


class Entry:
    """One assignment: KEY=VALUE at FILE:LINE in SECTION."""

    __slots__ = ("section", "key", "value", "file", "line")

    def __init__(self, section, key, value, file, line):
        self.section, self.key, self.value = section, key, value
        self.file, self.line = file, line

    @property
    def where(self):
        return f"{self.file}:{self.line}"

    def __repr__(self):
        return f"Entry({self.where} [{self.section}] {self.key}={self.value!r})"


def parse_text(text, file):
    """The entries of unit file TEXT, in order, and the complaints about
    lines systemd ignores, as (entries, [(line, message)])."""
    entries, problems = [], []
    if text.startswith("\ufeff"):
        text = text[1:]
    section = None
    continuation, first = None, 0
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()

    def parse_line(line, number):
        nonlocal section
        line = line.strip(WHITESPACE)
        if not line or line[0] in COMMENTS:
            return
        if line[0] == "[":
            if line[-1] != "]" or len(line) < 3:
                problems.append((number, f"Invalid section header: {line}"))
                section = None  # what follows is outside any section
                return
            section = line[1:-1]
            return
        if section is None:
            problems.append((number, f"Assignment outside of a section, ignored: {line}"))
            return
        key, eq, value = line.partition("=")
        if not eq:
            problems.append((number, f"Missing '=', line ignored: {line}"))
            return
        key = key.strip(WHITESPACE)
        if not key:
            problems.append((number, f"Missing key name before '=', line ignored: {line}"))
            return
        entries.append(Entry(section, key, value.strip(WHITESPACE), file, number))

    for number, line in enumerate(lines, 1):
        if continuation is not None and (line.lstrip(WHITESPACE)[:1] or "#") in COMMENTS:
            continue  # systemd: strchr(COMMENTS, c) also matches the NUL of an empty line
        escaped = False
        for c in line:
            escaped = not escaped and c == "\\"
        if continuation is not None:
            line = continuation + line
        else:
            first = number
        if escaped:
            continuation = line[:-1] + " "
            continue
        continuation = None
        parse_line(line, first)
    if continuation is not None:
        parse_line(continuation, first)
    return entries, problems


_TRUE = ("1", "yes", "y", "true", "t", "on")
_FALSE = ("0", "no", "n", "false", "f", "off")


def parse_boolean(value):
    """True or False as systemd's parse_boolean(); SyntaxProblem otherwise."""
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise SyntaxProblem(f"Not a boolean: {value}")


# --- words ------------------------------------------------------------------------

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
           "\\": "\\", '"': '"', "'": "'", "s": " "}
_HEX = "0123456789abcdefABCDEF"


def _byte(value):
    """A byte as text: ASCII as itself, anything else as the surrogate
    escape that core.encode() turns back into the byte."""
    return chr(value) if value < 0x80 else chr(0xDC00 + value)


def cunescape_one(s, i):
    """systemd's cunescape_one() at S[I] (the character after a backslash):
    (text, characters used), or None for an invalid escape."""
    c = s[i:i + 1]
    if c in _SIMPLE:
        return _SIMPLE[c], 1
    if c == "x":
        digits = s[i + 1:i + 3]
        if len(digits) == 2 and all(d in _HEX for d in digits) and int(digits, 16):
            return _byte(int(digits, 16)), 3
        return None
    if c in ("u", "U"):
        n = 4 if c == "u" else 8
        digits = s[i + 1:i + 1 + n]
        if len(digits) == n and all(d in _HEX for d in digits):
            value = int(digits, 16)
            if 0 < value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF:
                return chr(value), n + 1
        return None
    if c and c in "01234567":
        digits = s[i:i + 3]
        if len(digits) == 3 and all(d in "01234567" for d in digits):
            value = int(digits, 8)
            if 0 < value <= 255:
                return _byte(value), 3
        return None
    return None


def extract_word(s, i, *, cunescape=True, unquote=True, retain_escape=False, relax=False):
    """systemd's extract_first_word() on S from index I, separators
    WHITESPACE: (word or None when nothing is left, the index after it).

    RELAX is EXTRACT_CUNESCAPE_RELAX: an invalid escape is kept as written.
    Raises SyntaxProblem on unbalanced quotes, a trailing backslash or
    (without RELAX) an invalid escape."""
    n = len(s)
    while i < n and s[i] in WHITESPACE:
        i += 1
    if i >= n:
        return None, n
    out = []
    quote = None
    while i < n:
        c = s[i]
        if c == "\\" and not retain_escape:
            if i + 1 >= n:
                if relax and not quote:
                    out.append("\\")
                    return "".join(out), n
                raise SyntaxProblem("Trailing backslash")
            if cunescape:
                done = cunescape_one(s, i + 1)
                if done is None:
                    if not relax:
                        raise SyntaxProblem("Invalid escape")
                    out.append("\\" + s[i + 1])
                    i += 2
                else:
                    out.append(done[0])
                    i += 1 + done[1]
            else:
                out.append(s[i + 1])
                i += 2
            continue
        if quote:
            if c == quote:
                quote = None
            else:
                out.append(c)
            i += 1
            continue
        if unquote and c in "'\"":
            quote = c
            i += 1
            continue
        if c in WHITESPACE:
            while i < n and s[i] in WHITESPACE:
                i += 1
            return "".join(out), i
        out.append(c)
        i += 1
    if quote:
        raise SyntaxProblem("Unbalanced quoting")
    return "".join(out), n


def split_words(s, warn=None, **flags):
    """All the words of S, as extract_first_word_and_warn() gives them: an
    invalid escape is kept as written, with a call to WARN(message)."""
    words, i = [], 0
    while True:
        try:
            word, j = extract_word(s, i, **flags)
        except SyntaxProblem:
            word, j = extract_word(s, i, relax=True, **flags)
            if warn:
                warn(f"Ignoring unknown escape sequences: \"{word}\"")
        if word is None:
            return words
        words.append(word)
        i = j


# --- command lines ----------------------------------------------------------------

class Command:
    """One command of an Exec*= line: its prefixes, path and argv."""

    def __init__(self, prefixes, path, argv, entry):
        self.prefixes = prefixes  # set of "-", "@", ":", "+", "!", "!!"
        self.path, self.argv, self.entry = path, argv, entry

    def __repr__(self):
        return f"Command({''.join(sorted(self.prefixes))}{self.path} {self.argv!r})"


def _valid_filename(name):
    return bool(name) and "/" not in name and name not in (".", "..") and len(name) <= 255


def parse_exec(entry, resolve, warn=None):
    """The commands of Exec*= ENTRY as config_parse_exec() reads them.
    RESOLVE(word) expands specifiers (it may raise SyntaxProblem)."""
    value = entry.value
    commands = []
    i, n = 0, len(value)
    while True:
        word, i = _exec_word(value, i, warn)
        if word is None:
            return commands
        if word == ";":
            continue
        prefixes, f = set(), 0
        while f < len(word):
            c = word[f]
            if c == "-" and "-" not in prefixes:
                prefixes.add("-")
            elif c == "@" and "@" not in prefixes:
                prefixes.add("@")
            elif c == ":" and ":" not in prefixes:
                prefixes.add(":")
            elif c == "+" and not prefixes & {"+", "!", "!!"}:
                prefixes.add("+")
            elif c == "!" and not prefixes & {"+", "!", "!!"}:
                prefixes.add("!")
            elif c == "!" and "!" in prefixes and "!!" not in prefixes and "+" not in prefixes:
                prefixes.discard("!")
                prefixes.add("!!")
            else:
                break
            f += 1
        path = resolve(word[f:])
        if not path:
            raise SyntaxProblem("Empty path in command line")
        if path.endswith("/"):
            raise SyntaxProblem(f"Executable path specifies a directory: {path}")
        if not path.startswith("/") and not _valid_filename(path):
            raise SyntaxProblem(f"Neither a valid executable name nor an absolute path: {path}")
        argv = [] if "@" in prefixes else [path]
        separator = False
        while True:
            while i < n and value[i] in WHITESPACE:
                i += 1
            if i >= n:
                break
            if value[i] == ";" and (i + 1 == n or value[i + 1] in WHITESPACE):
                i += 1
                separator = True
                break
            if value[i:i + 2] == "\\;" and (i + 2 == n or value[i + 2] in WHITESPACE):
                i += 2
                argv.append(";")
                continue
            word, i = _exec_word(value, i, warn)
            if word is None:
                break
            argv.append(resolve(word))
        if not argv or not argv[0]:
            raise SyntaxProblem("Empty executable name or zeroeth argument")
        commands.append(Command(prefixes, _simplify(path), argv, entry))
        if not separator:
            return commands


def _exec_word(value, i, warn):
    try:
        return extract_word(value, i)
    except SyntaxProblem:
        word, j = extract_word(value, i, relax=True)  # unbalanced quotes still raise
        if warn:
            warn(f"Ignoring unknown escape sequences: \"{word}\"")
        return word, j


def _simplify(path):
    """path_simplify(): no doubled slashes, no "." components."""
    if "/" not in path:
        return path
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts)


# --- $VAR in command lines (for the choice of emitting substitute) ---------------------

def needs_substitution(argv):
    """Whether systemd's replace_env_argv() could change ARGV: some word is
    $NAME, or has ${...} or $$ in it."""
    return any("$" in word for word in argv)


# --- environment assignments ------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def env_name_valid(name):
    return bool(_NAME.match(name))


def env_assignment(word):
    """(NAME, VALUE) of a NAME=VALUE word that systemd accepts, else None."""
    name, eq, value = word.partition("=")
    if not eq or not env_name_valid(name):
        return None
    return name, value
