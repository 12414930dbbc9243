"""Make the console scripts pip wrote for chainload start Python in UTF-8 mode.

Run by `make venv` after pip installed the package into the venv:

    VENV/bin/python -I tools/utf8_scripts.py VENV/bin

Python cannot start at all in a locale whose charset it has no codec for
(glibc has several: hy_AM.ARMSCII-8, zh_TW.EUC-TW, ...): it looks the
codec up for the file system encoding before any code runs, and stops with
"Fatal Python error". In UTF-8 mode (-X utf8) it uses UTF-8 whatever the
locale, and chainload reads and passes on argv and the environment as
bytes in every locale anyway. pip writes its scripts without interpreter
flags (and pip's wheel installer drops any a script's #! line gives), so
the flag is added here to the #! line (or, where pip wrote the /bin/sh
form for a long or blank-holding path, to its exec line). Nothing is added
to the environment: the program at the end of the chain gets it unchanged.

`make install` needs none of this: its own launcher's #! line has the flag.
"""

import os
import sys
from importlib import metadata
from pathlib import Path

FLAG = "-Xutf8"
SH_EXEC = "'''exec' "  # distlib's /bin/sh launcher line: '''exec' "PYTHON" "$0" "$@"


def add_flag(text):
    """TEXT of a console script with FLAG given to its interpreter, or None
    if it has it already or is not a form pip writes."""
    lines = text.split("\n")
    first = lines[0]
    if first.startswith("#!") and "python" in first and first != "#!/bin/sh":
        if first.endswith(" " + FLAG):
            return None
        if " " in first[2:]:  # flags already: leave it alone
            return None
        lines[0] = f"{first} {FLAG}"
        return "\n".join(lines)
    for i, line in enumerate(lines[:3]):
        if line.startswith(SH_EXEC) and ' "$0" "$@"' in line:
            if f'" {FLAG} "$0"' in line:
                return None
            lines[i] = line.replace(' "$0" "$@"', f' {FLAG} "$0" "$@"', 1)
            return "\n".join(lines)
    return None


def main(bindir):
    bindir = Path(bindir)
    scripts = metadata.distribution("chainload").entry_points.select(group="console_scripts")
    for script in scripts:
        path = bindir / script.name
        if not path.is_file():
            continue
        text = add_flag(path.read_text())
        if text is None:
            continue
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(path.stat().st_mode & 0o7777)
        os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -I tools/utf8_scripts.py VENV/bin\n")
        sys.exit(100)
    main(sys.argv[1])
