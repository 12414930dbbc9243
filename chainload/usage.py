"""docopt's parse of a usage text, made once: at build time for every
command (tests/freeze_usages.py stores frozen(USAGE) in the command's module
as PARSED), at run time only for a text that has no such parse.

A chain never imports this module when every link has its PARSED; the
runtime half of the adapter (thawing a parse, matching a link's words) is
in chainload.core.
"""

import docopt as d

from chainload import core


def frozen(usage):
    """USAGE's parse as constants: (fingerprint, pattern, options, cut,
    defaults), what core._compile takes."""
    pattern, options = parse(usage)
    defaults = {a.name: a.value for a in pattern.flat()}
    return (core.fingerprint(usage), freeze(pattern, options),
            tuple(freeze(o, options) for o in options), cut(pattern), defaults)


def parse(usage):
    """docopt's (pattern, options) of USAGE, as docopt() builds them."""
    sections = split(usage)
    options = [
        *d.parse_options(sections.before_usage),
        *d.parse_options(sections.after_usage),
    ]
    pattern = d.parse_pattern(d.formal_usage(sections.usage_body), options)
    # fix() compares leaves by repr, O(n^2) in their number: run it before
    # the [options] shortcuts get their options. It would leave them
    # unchanged anyway (they are named nowhere else and, outside a "...",
    # never repeated), so the result is the same, with fewer comparisons.
    early = not any(r.flat(d.OptionsShortcut) for r in pattern.flat(d.OneOrMore))
    if early:
        pattern.fix()
    named = set(pattern.flat(d.Option))
    for shortcut in pattern.flat(d.OptionsShortcut):
        shortcut.children = [o for o in options if o not in named]
    return pattern if early else pattern.fix(), options


def freeze(node, options):
    """A docopt pattern NODE as nested tuples of constants (core._thaw
    turns them back). An [options] shortcut holds OPTIONS themselves, as in
    docopt(); it is frozen as their indexes."""
    if type(node) is d.OptionsShortcut:
        return ("OptionsShortcut", tuple(_index(options, o) for o in node.children))
    if isinstance(node, d.BranchPattern):
        return (type(node).__name__, tuple(freeze(c, options) for c in node.children))
    if type(node) is d.Option:
        return ("Option", node.short, node.longer, node.argcount, node.value)
    return (type(node).__name__, node.name, node.value)


def _index(options, option):
    return next(i for i, o in enumerate(options) if o is option)


def cut(pattern):
    """(dashdash, singles, name) for a one-line usage of the chain-loader
    form "prog [options] [--] <a> ... <z> <next-prog>...", else None.

    DASHDASH: an optional "--" comes before the operands; SINGLES: how many
    operands (or command words) are matched one word each before the last,
    repeated one; NAME: that one's name. Options may stand anywhere.
    """
    if len(pattern.children) != 1 or type(pattern.children[0]) is not d.Required:
        return None  # more than one usage line
    *items, last = pattern.children[0].children or [None]
    if type(last) is not d.OneOrMore or [type(c) for c in last.children] != [d.Argument]:
        return None
    dashdash, singles = False, 0
    for item in items:
        if all(type(leaf) is d.Option for leaf in item.flat()):
            continue
        if (type(item) is d.NotRequired and len(item.children) == 1
                and type(item.children[0]) is d.Command and item.children[0].name == "--"
                and not dashdash and not singles):
            dashdash = True
        elif type(item) in (d.Argument, d.Command):
            singles += 1
        else:
            return None
    return dashdash, singles, last.children[0].name


def split(usage):
    """d.parse_docstring_sections(USAGE) for a text that starts "Usage:".

    docopt's section regex ends in (?:.|\\n)*, which costs ~1 ms per KB of
    text plus ~1 ms to compile; our usage texts all start with "Usage:", and
    for those this split gives the same four strings. Anything else goes
    to docopt.
    """
    if not usage.startswith("Usage:") or usage.lower().count("usage:") != 1:
        return d.parse_docstring_sections(usage)
    lines = usage[len("Usage:"):].split("\n")
    n = 1  # the body: the rest of the first line, then indented lines
    while n < len(lines) and lines[n][:1] in (" ", "\t"):
        n += 1
    body = "\n".join(lines[:n]) + ("\n" if n < len(lines) else "")
    return d.DocSections("", "Usage:", body, "\n".join(lines[n:]))
