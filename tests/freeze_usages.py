"""Store docopt's parse of every usage text in the module that holds it.

    .venv/bin/python tests/freeze_usages.py

The usage texts are constants, so chainload parses them here, once, instead
of at every start (docopt's parse of three texts costs more than all of
chainload's own code). Each command module ends in a generated block that
sets PARSED, chainload.usage.frozen(USAGE); chain.py's sets UMBRELLA_PARSED
for the umbrella's text. Keeping it in the module the link imports anyway
costs no extra import at start-up.

Run this after adding a command or changing a usage text;
tests/test_adapter.py fails until the files match the code. A stale or
missing parse still works, only slower: core._compile sees that it was made
from another text (core.fingerprint) and parses the text at run time.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "chainload"

MARK = "# --- made by tests/freeze_usages.py from the usage text: do not edit ---"


def targets():
    """[(file, variable, usage text)] for every text the driver parses."""
    from chainload import chain

    found = [(PACKAGE / "chain.py", "UMBRELLA_PARSED", chain._umbrella_usage())]
    for name, (module, _) in chain.COMMANDS.items():
        found.append((PACKAGE / "commands" / f"{module}.py", "PARSED",
                      chain.load(name).USAGE))
    return found


def block(variable, usage):
    """Five lines, whatever the text: the marker, then the fingerprint,
    the pattern, the options, and the cut with the defaults, one per line
    (long lines: this is data for the machine)."""
    from chainload import usage as build

    fingerprint, pattern, options, cut, defaults = build.frozen(usage)
    indent = " " * (len(variable) + 4)
    return (f"{MARK}\n{variable} = ({fingerprint!r},\n{indent}{pattern!r},\n"
            f"{indent}{options!r},\n{indent}{cut!r}, {defaults!r})\n")


def render(path, variable, usage):
    """The text PATH should have: as now, its generated block replaced."""
    text = path.read_text()
    at = text.find(MARK)
    kept = text if at < 0 else text[:at]
    return kept.rstrip("\n") + "\n\n\n" + block(variable, usage)


def stale():
    """[(path, text it should have)] for every file that is not current."""
    out = []
    for path, variable, usage in targets():
        text = render(path, variable, usage)
        if path.read_text() != text:
            out.append((path, text))
    return out


def main():
    sys.path.insert(0, str(ROOT))  # the checkout's code, not an installed copy
    changed = stale()
    for path, text in changed:
        path.write_text(text)
        print(f"{path.relative_to(ROOT)}: written")
    if not changed:
        print("every usage text's parse is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
