"""The man pages: they document exactly the options the code accepts, they
are installed, they pass mandoc's lint, and --help gives a one-line
summary of every option. (`make install`: tests/test_install.py.)

The code's options come from the same docopt usage texts that the commands
parse and print for --help; the pages' options are the \\-\\-name words of
their SYNOPSIS and OPTIONS sections.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import docopt
import pytest

from chainload import chain, core

from conftest import command

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
INSTALLED_MAN = Path(sys.prefix) / "share" / "man" / "man1"

# page -> the command names it documents (the alias shares its page).
PAGES = {"chainload": ["chainload"]}
for _name in chain.COMMANDS:
    PAGES[_name] = [_name, *[a for a, n in chain.ALIASES.items() if n == _name]]
ALL_NAMES = [n for names in PAGES.values() for n in names]
# The names that get a page: not setsid (util-linux has setsid(1)) nor cd.
PAGE_NAMES = [n for n in ALL_NAMES if n not in chain.IN_CHAIN_ONLY]


def usage_of(page):
    """The docopt text the code parses (and prints for --help)."""
    if page == "chainload":
        return chain._umbrella_usage()
    return chain.load(page).USAGE


# --- the code's options ---------------------------------------------------------

def accepted_options(usage):
    """Every option the command's parser builds from USAGE: chainload.core's
    own docopt adapter, so this is exactly what the command accepts."""
    options = core._compile(usage)[1]
    assert options and all(isinstance(o, docopt.Option) for o in options)
    names = set()
    for o in options:
        names.update(n for n in (o.short, o.longer) if n)
    return names


def options_section(usage):
    """The lines of the Options: section of a usage text."""
    lines = usage.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "options:")
    section = []
    for ln in lines[start + 1:]:
        if not ln.strip():
            break
        section.append(ln)
    return section


OPTION_LINE = re.compile(r"^  (-\S.*?)(?: {2,}(\S.*))?$")


def declared_options(usage):
    """The option names of the Options: section lines."""
    names = set()
    for ln in options_section(usage):
        m = OPTION_LINE.match(ln)
        if m:
            names.update(re.findall(r"--?[A-Za-z][\w-]*", m.group(1)))
    return names


# --- the page's options ---------------------------------------------------------

def page_source(page):
    return (MAN / f"{page}.1").read_text()


def roff_sections(text):
    """{".SH name": body} of a man(7) source."""
    parts = re.split(r"^\.SH +(.*)$", text, flags=re.M)
    return {name.strip().strip('"'): body for name, body in zip(parts[1::2], parts[2::2])}


# \-\-name, not inside a longer run of dashes such as s\-w\-\-\-\-r\-T.
LONG_IN_ROFF = re.compile(r"(?<![A-Za-z0-9])(?<!\\-)\\-\\-([a-z](?:[A-Za-z0-9]|\\-)*)")  # nosh: --no-kill-IP-options
FONT = re.compile(r"\\f(?:[BIRP1-4]|\(..|\[[^]]*\])")


def page_long_options(text):
    """The long options a roff text names, as --name (a bare \\-\\- is not one)."""
    text = FONT.sub("", text)
    return {"--" + m.replace("\\-", "-") for m in LONG_IN_ROFF.findall(text)}


def listed_options(page):
    """Long options named in the SYNOPSIS and OPTIONS sections of PAGE."""
    sections = roff_sections(page_source(page))
    assert "SYNOPSIS" in sections and "OPTIONS" in sections, f"{page}.1"
    return page_long_options(sections["SYNOPSIS"] + sections["OPTIONS"])


# --- (1) the pages and the code agree on the options ------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_usage_text_defines_no_stray_options(page):
    """docopt takes every line of the text that starts with "-" as an option
    description; a wrapped description line that starts with an option name
    would make a bogus option that the command then silently accepts."""
    usage = usage_of(page)
    stray = accepted_options(usage) - declared_options(usage)
    assert not stray, (
        f"{page}: the usage text defines options outside its Options: section: "
        f"{sorted(stray)}; reflow the text so no line but an option line starts with '-'"
    )


@pytest.mark.parametrize("page", PAGES)
def test_page_documents_every_option(page):
    usage = usage_of(page)
    source = page_source(page)
    wanted = declared_options(usage) | {n for n in accepted_options(usage)
                                        if re.fullmatch(r"--?[a-z][a-z0-9-]*", n)}
    long_missing = sorted(n for n in wanted if n.startswith("--")
                          and n.replace("-", "\\-") not in source)
    assert not long_missing, f"man/{page}.1 does not mention {long_missing}"
    options_text = roff_sections(source)["OPTIONS"]
    short_missing = sorted(n for n in wanted if not n.startswith("--")
                           and not re.search(re.escape("\\" + n) + r"\b", options_text))
    assert not short_missing, f"man/{page}.1 OPTIONS does not list {short_missing}"


@pytest.mark.parametrize("page", PAGES)
def test_page_lists_only_options_the_code_accepts(page):
    accepted = accepted_options(usage_of(page))
    listed = listed_options(page) - {"--"}
    unknown = sorted(listed - accepted)
    assert not unknown, f"man/{page}.1 lists options its command does not accept: {unknown}"


def test_the_option_parsers_of_the_test_find_something():
    """Guard against the regexes above silently matching nothing."""
    usage = usage_of("local-seqpacket-socket-listen")
    assert {"-u", "--uid", "--fd-name", "--help"} <= declared_options(usage)
    assert {"-u", "--uid", "--fd-name", "--help"} <= accepted_options(usage)
    assert {"--uid", "--systemd-compatibility", "--fd-name"} <= listed_options(
        "local-seqpacket-socket-listen")
    assert listed_options("chainload") >= {"--help", "--version"}


def test_every_command_and_alias_has_a_page():
    pages = {p.stem for p in MAN.glob("*.1")}
    assert set(PAGES) <= pages
    for page, names in PAGES.items():
        name_section = roff_sections(page_source(page))["NAME"].replace("\\-", "-")
        for name in names:
            assert name in name_section, f"{name} is not in the NAME of man/{page}.1"
    umbrella = page_source("chainload")
    for name in [*chain.COMMANDS, *chain.ALIASES]:
        assert f"\n.B {name.replace('-', chr(92) + '-')}\n" in umbrella, (
            f"man/chainload.1 does not list the command {name}")

@pytest.mark.parametrize("page", PAGES)
def test_page_has_the_standard_sections(page):
    headings = re.findall(r"^\.SH +(.*)$", page_source(page), flags=re.M)
    assert len(headings) == len(set(headings)), f"man/{page}.1: a section twice: {headings}"
    sections = roff_sections(page_source(page))
    for wanted in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS",
                   "DIAGNOSTICS", "SEE ALSO"):
        assert wanted in sections, f"man/{page}.1 has no {wanted} section"
    status = sections["EXIT STATUS"]
    for code in ("100", "111", "126", "127"):
        assert re.search(rf"^\.B {code}$", status, flags=re.M), (page, code)
    assert "FATAL" in sections["DIAGNOSTICS"], f"man/{page}.1 DIAGNOSTICS"


# --- (2) pip install put the pages in the venv -----------------------------------

def test_every_alias_page_is_an_alias():
    """man/aliases/ holds only .so pages of aliases, each naming its command."""
    for page in sorted((MAN / "aliases").glob("*.1")):
        assert page.stem in chain.ALIASES, f"{page} is not the page of an alias"
        assert page.read_text() == f".so man1/{chain.ALIASES[page.stem]}.1\n", page


@pytest.mark.parametrize("page", PAGES)
def test_page_installed_with_the_package(page):
    installed = INSTALLED_MAN / f"{page}.1"
    assert installed.is_file(), (
        f"{installed} is missing: pip install . should put the man pages there")
    assert installed.read_text() == page_source(page), (
        f"{installed} differs from man/{page}.1: reinstall (make venv)")


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_name_has_an_installed_page(name):
    """`man NAME` works for every command and alias after `pip install .`
    as after `make install`: an alias has a .so page, man/aliases/ALIAS.1
    (listed in setup.cfg's data_files), naming its command's page."""
    installed = INSTALLED_MAN / f"{name}.1"
    assert installed.is_file(), (
        f"{installed} is missing: add man/aliases/{name}.1 and list it in setup.cfg")
    if name in chain.ALIASES:
        wanted = f".so man1/{chain.ALIASES[name]}.1\n"
        assert (MAN / "aliases" / f"{name}.1").read_text() == wanted
        assert installed.read_text() == wanted
    if shutil.which("man") is not None:
        proc = subprocess.run(["man", "-M", str(INSTALLED_MAN.parent), "-w", name],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        page = next(p for p, names in PAGES.items() if name in names)
        assert proc.stdout.strip().endswith(f"/man1/{page}.1"), proc.stdout


# --- (3) --help ---------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_NAMES)
def test_help_gives_a_one_line_summary_of_each_option(name):
    argv = [command("chainload"), name] if name in chain.IN_CHAIN_ONLY else [command(name)]
    proc = subprocess.run([*argv, "--help"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("Usage:"), proc.stdout
    section = options_section(proc.stdout)
    assert section, f"{name} --help has no Options: section"
    for line in section:
        m = OPTION_LINE.match(line)
        assert m, f"{name} --help: not a one-line option summary: {line!r}"
        assert m.group(2), f"{name} --help: option without a summary: {line!r}"
        assert len(line) < 80, f"{name} --help: summary wider than 79 columns: {line!r}"
    page = next(p for p, names in PAGES.items() if name in names)
    assert declared_options(proc.stdout) == declared_options(usage_of(page))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_help_fits_80_columns(name):
    argv = [command("chainload"), name] if name in chain.IN_CHAIN_ONLY else [command(name)]
    proc = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    wide = [ln for ln in proc.stdout.splitlines() if len(ln.expandtabs()) >= 80]
    assert not wide, f"{name} --help: lines wider than 79 columns: {wide}"


# --- (4) lint -------------------------------------------------------------------

def test_mandoc_lint():
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed (make tools installs it as root)")
    pages = sorted(str(p) for p in MAN.glob("*.1"))
    proc = subprocess.run(["mandoc", "-Tlint", "-W", "warning", *pages],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
    assert proc.returncode == 0


def test_groff_warnings():
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    for page in sorted(p for p in MAN.glob("*.1")):
        proc = subprocess.run(["groff", "-ww", "-z", "-man", str(page)],
                              capture_output=True, text=True, timeout=60)
        assert proc.stderr == "", f"{page.name}: {proc.stderr}"


# --- (6) installed names never shadow a system program ----------------------------

def console_scripts():
    """The console scripts of setup.cfg (what pip installs)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {line.split("=")[0].strip()
            for line in cfg["options.entry_points"]["console_scripts"].splitlines()
            if line.strip()}


def test_console_scripts_are_every_command_but_the_in_chain_only_ones():
    wanted = (set(chain.COMMANDS) | set(chain.ALIASES)) - set(chain.IN_CHAIN_ONLY)
    assert console_scripts() == wanted | {"chainload", "chainload-convert"}


def test_no_installed_name_or_page_is_a_coreutils_or_util_linux_one():
    """setsid(1) is util-linux's: ours is chainload-setsid. (Names shared
    with daemontools, execline or nosh are allowed and documented.)"""
    names = (set(chain.COMMANDS) | set(chain.ALIASES)) - set(chain.IN_CHAIN_ONLY)
    pages = {p.stem for p in MAN.glob("*.1")}
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed: no list of coreutils' and util-linux's files")
    owned = subprocess.run(["dpkg", "-L", "coreutils", "util-linux"], capture_output=True,
                           text=True, timeout=60).stdout.split()
    theirs = {os.path.basename(p).split(".")[0] for p in owned
              if "/bin/" in p or "/man1/" in p or "/man8/" in p}
    assert "setsid" in theirs and "ls" in theirs  # the listing worked
    assert not (names | pages) & theirs, sorted((names | pages) & theirs)


def status_paragraphs(page):
    """{status: its paragraph} of PAGE's EXIT STATUS section (.TP items)."""
    status = roff_sections(page_source(page))["EXIT STATUS"]
    items = re.split(r"^\.TP\n\.B (\d+)\n", status, flags=re.M)
    return dict(zip(items[1::2], items[2::2]))


@pytest.mark.parametrize("option", ["-o", "-g"])
def test_install_dir_page_gives_the_status_of_an_id_out_of_range(option, tmp_path):
    """A numeric user or group above 4294967294 is documented under the
    status install-dir really exits with (core.numeric_id: 111)."""
    proc = subprocess.run([command("install-dir"), option, "4294967295", str(tmp_path / "d"),
                           "true"], capture_output=True, text=True, timeout=30)
    assert "id out of range" in proc.stderr, proc.stderr
    where = {s for s, text in status_paragraphs("install-dir").items() if "4294967294" in text}
    assert where == {str(proc.returncode)}


def test_readme_commands_table_has_a_row_for_every_command():
    """Each command (with its aliases) is a row of the README's table,
    linking its page: a merge once dropped the rows of three commands."""
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines()
            if line.startswith("| `")}
    for name in chain.COMMANDS:
        aliases = [a for a, target in chain.ALIASES.items() if target == name]
        first = ", ".join(f"`{n}`" for n in [name, *aliases])
        assert first in rows, f"README.md: no commands table row for {first}"
        assert f"[{name}(1)](man/{name}.1)" in rows[first], rows[first]
