"""The second half of `make install`: launcher, command names and pages.

Run by the python of the venv that `make install` made in PREFIX/lib/chainload,
in isolated mode, after the package was pip-installed there:

    PREFIX/lib/chainload/bin/python -I tools/install.py PREFIX MANDIR [SKIP...]

It writes PREFIX/lib/chainload/bin/chainload, a launcher whose shebang runs
that python with -I (isolated mode: no PYTHON* variable, no user site, no
current directory on sys.path, so nothing in the caller's environment runs
before or instead of chainload, and a chain started as root stays ours)
and -X utf8 (UTF-8 mode: Python starts in every locale glibc has, also
one whose charset it has no codec for), and removes pip's console scripts
there (pip cannot give them interpreter flags). PREFIX/bin/chainload is a symlink to the launcher, and every
installed command name a symlink to chainload: the program picks its
command from argv[0]. The pages MANDIR/*.1 and MANDIR/aliases/*.1 go to
PREFIX/share/man/man1, MANDIR/*.3 to PREFIX/share/man/man3. Names given
as SKIP are not installed, and neither are their pages.

Which names are installed comes from the command table (the rule is
written down in the Makefile, next to `install:`).
"""

import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

from chainload import chain

SHEBANG_MAX = 255  # Linux reads at most this much of a #! line (BINPRM_BUF_SIZE - 1)

FLAGS = "-IXutf8"  # -I -X utf8, as one word: a #! line passes one argument

LAUNCHER = """\
#!{python} {flags}
# chainload's launcher, written by `make install` (tools/install.py).
# -I (isolated mode): PYTHONPATH, PYTHONHOME, PYTHONINSPECT and the other
# PYTHON* variables, the user's site-packages and the current directory do
# not change what runs here. The variables are still passed on, unchanged,
# to the program at the end of the chain.
# -X utf8 (UTF-8 mode): Python starts in every locale, also one whose
# charset it has no codec for (hy_AM.ARMSCII-8), where it would otherwise
# stop before running anything. chainload passes argv and the environment
# on as bytes in every locale; nothing is added to the environment.
import sys

from chainload.chain import main

sys.exit(main())
"""
# Programs that are not chain commands, each with a launcher of its own
# (same -I shebang) and a symlink in PREFIX/bin: name -> module with main().
PROGRAMS = {"chainload-convert": "chainload.convert.main"}


def fail(message):
    sys.stderr.write(f"install.py: FATAL: {message}\n")
    sys.exit(111)


def installed_names(skip=()):
    """The names to put on PATH: every command and alias of the table but
    those that work only inside a chain (chain.IN_CHAIN_ONLY: they would
    shadow a system program) and those in SKIP."""
    return [name for name in [*chain.COMMANDS, *chain.ALIASES]
            if name not in chain.IN_CHAIN_ONLY and name not in skip]


def replace_symlink(target, link):
    """Make LINK a symlink to TARGET, replacing what is there atomically."""
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def write_launcher(libdir):
    python = libdir / "bin" / "python"
    shebang = f"#!{python} {FLAGS}"
    if len(shebang.encode()) > SHEBANG_MAX or any(c.isspace() for c in str(python)):
        fail(f"{python}: A #! line cannot name this path (too long, or a blank in it).")
    # pip's console scripts: `#!.../python` without -I.
    scripts = metadata.distribution("chainload").entry_points.select(group="console_scripts")
    for script in scripts:
        (libdir / "bin" / script.name).unlink(missing_ok=True)
    launchers = {"chainload": LAUNCHER.format(python=python, flags=FLAGS)}
    entry = "from chainload.chain import main"
    if entry not in launchers["chainload"]:
        fail(f"LAUNCHER no longer says {entry!r}: update PROGRAMS' launchers")
    for name, module in PROGRAMS.items():
        launchers[name] = launchers["chainload"].replace(entry, f"from {module} import main")
    for name, text in launchers.items():
        launcher = libdir / "bin" / name
        tmp = launcher.with_name(f".{name}.tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, launcher)


def main(prefix, mandir, *skip):
    prefix, mandir = Path(prefix), Path(mandir)
    libdir = prefix / "lib" / "chainload"
    if not os.path.samefile(sys.prefix, libdir):
        fail(f"run me with {libdir}/bin/python, not {sys.executable}")
    write_launcher(libdir)
    bindir = prefix / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    replace_symlink("../lib/chainload/bin/chainload", bindir / "chainload")
    for name in PROGRAMS:
        replace_symlink(f"../lib/chainload/bin/{name}", bindir / name)
    for name in installed_names(skip):
        replace_symlink("chainload", bindir / name)
    man = prefix / "share" / "man"
    copy_pages(installed_pages(mandir, skip), man / "man1")
    copy_pages(mandir.glob("*.3"), man / "man3")


def installed_pages(mandir, skip=()):
    """The section 1 pages to install: chainload(1), each command's page if
    it or one of its aliases is installed (an alias page is `.so` the
    command's), and the page of each installed alias. A name left out
    (SKIP, NO_CLASH=1) leaves out its page too: `man setuidgid` must not
    find ours in front of the other package's."""
    names = set(installed_names(skip))
    pages = [mandir / f"{chain.UMBRELLA}.1"]
    for command in chain.COMMANDS:
        aliases = [a for a, c in chain.ALIASES.items() if c == command]
        if names.intersection([command, *aliases]):
            pages.append(mandir / f"{command}.1")
    pages += [mandir / "aliases" / f"{alias}.1" for alias in chain.ALIASES if alias in names]
    pages += [mandir / f"{name}.1" for name in PROGRAMS]
    return pages


def copy_pages(pages, section):
    """Copy PAGES into the directory SECTION, mode 0644."""
    section.mkdir(parents=True, exist_ok=True)
    for page in sorted(pages):
        target = section / page.name
        if target.is_symlink():  # an alias page of an older install
            target.unlink()
        shutil.copyfile(page, target)
        target.chmod(0o644)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: python -I tools/install.py PREFIX MANDIR [SKIP...]\n")
        sys.exit(100)
    main(*sys.argv[1:])
