"""substitute: expand $NAME and ${NAME} in the rest of the command line, as
systemd 252 expands ExecStart=, then chain."""

from chainload import core

USAGE = """Usage: substitute [options] [--] <next-prog>...

Expand variables in every following word, later links' words too, with the
environment as it is here, as systemd 252 expands ExecStart= (no shell): a
word that is exactly $NAME becomes the value of NAME split into words at
blanks, honouring quotes and backslashes in it (none if NAME is unset);
${NAME} in any word becomes the value as it is (empty if unset); $$ becomes
$. Anything else stays as written. Then chain to the result.

Options:
  -h, --help  Show this help and exit.
"""

BLANKS = " \t\n\r"  # systemd's WHITESPACE


def run(args, env):
    words = []
    for word in args["<next-prog>"]:
        if word[:1] == "$" and word[1:2] not in ("{", "$"):
            value = lookup(env, word[1:])
            if value is not None:
                words += split(value)
        else:
            words.append(expand(word, env))
    if not words:
        raise core.usage_error("No next program: the command line expanded to nothing.")
    return words


def lookup(env, name):
    """strv_env_get_n(): the value after "NAME=" in an entry "KEY=VALUE" of
    ENV, so NAME may hold a "=" (A=B finds A's value after "B=")."""
    if not name:
        return None
    key, eq, rest = name.partition("=")
    value = env.get(key)
    if value is None or not eq:
        return value
    return value[len(rest) + 1:] if value.startswith(rest + "=") else None


def expand(word, env):
    """replace_env() without flags: ${NAME} and $$ in WORD."""
    out, start, i = [], 0, 0
    while (j := word.find("$", i)) >= 0 and j + 1 < len(word):
        c = word[j + 1]
        if c == "$":
            out.append(word[start:j + 1])
            start = i = j + 2
        elif c != "{":
            i = j + 2
        else:
            end = min((k for k in (word.find("}", j + 2), word.find(":", j + 2)) if k >= 0),
                      default=-1)
            if end < 0:
                break  # "${NAME" stays as written
            if word[end] == ":":  # ${NAME:-x} and the like stay as written
                i = end + 1
                continue
            out.append(word[start:j])
            out.append(lookup(env, word[j + 2:end]) or "")
            start = i = end + 1
    out.append(word[start:])
    return "".join(out)


def split(text):
    """strv_split_full(WHITESPACE, EXTRACT_UNQUOTE|EXTRACT_RELAX): words at
    blanks; quotes removed; a backslash takes the next character as it is,
    inside quotes too; an unclosed quote or a final backslash is forgiven."""
    words, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in BLANKS:
            i += 1
        if i >= n:  # past the end after a final backslash
            return words
        word, quote = [], None
        while i < n:
            c = text[i]
            if c == "\\":
                word.append(text[i + 1:i + 2])
                i += 2
                continue
            if quote is not None:
                if c == quote:
                    quote = None
                else:
                    word.append(c)
            elif c in "'\"":
                quote = c
            elif c in BLANKS:
                break
            else:
                word.append(c)
            i += 1
        words.append("".join(word))


# --- made by tests/freeze_usages.py from the usage text: do not edit ---
PARSED = ((530, 685121270072431354),
          ('Required', (('Required', (('NotRequired', (('OptionsShortcut', (0,)),)), ('NotRequired', (('Command', '--', False),)), ('OneOrMore', (('Argument', '<next-prog>', []),)))),)),
          (('Option', '-h', '--help', 0, False),),
          (True, 0, '<next-prog>'), {'--help': False, '--': False, '<next-prog>': []})
