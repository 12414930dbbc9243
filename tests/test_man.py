"""The man pages: they document exactly the options the code accepts, they
are installed, they pass mandoc's lint, and --help gives a one-line
summary of every option. Also `make install PREFIX=...`.

The code's options come from the same docopt usage texts that the commands
parse and print for --help; the pages' options are the \\-\\-name words of
their SYNOPSIS and OPTIONS sections.
"""

import filecmp
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


def is_so_page(path):
    """An alias page: one ".so man1/PAGE.1" line that man(1) follows."""
    return Path(path).read_text().startswith(".so ")


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
LONG_IN_ROFF = re.compile(r"(?<![A-Za-z0-9])(?<!\\-)\\-\\-([a-z](?:[a-z0-9]|\\-)*)")
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
    sections = roff_sections(page_source(page))
    for wanted in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS",
                   "DIAGNOSTICS", "SEE ALSO"):
        assert wanted in sections, f"man/{page}.1 has no {wanted} section"
    status = sections["EXIT STATUS"]
    for code in ("100", "111", "126", "127"):
        assert re.search(rf"^\.B {code}$", status, flags=re.M), (page, code)
    assert "FATAL" in sections["DIAGNOSTICS"], f"man/{page}.1 DIAGNOSTICS"


# --- (2) pip install put the pages in the venv -----------------------------------

ALIAS_PAGES = sorted(p.stem for p in MAN.glob("*.1") if is_so_page(p))


@pytest.mark.parametrize("alias", ALIAS_PAGES)
def test_alias_page_is_installed_and_points_at_its_command(alias):
    """`man listen-stream` works after pip install: the .so page is there and
    names the page of the command the alias stands for."""
    assert alias in chain.ALIASES, f"man/{alias}.1 is a .so page but not an alias"
    text = f".so man1/{chain.ALIASES[alias]}.1\n"
    assert page_source(alias) == text
    assert (INSTALLED_MAN / f"{alias}.1").read_text() == text


@pytest.mark.parametrize("page", PAGES)
def test_page_installed_with_the_package(page):
    installed = INSTALLED_MAN / f"{page}.1"
    assert installed.is_file(), (
        f"{installed} is missing: pip install . should put the man pages there")
    assert installed.read_text() == page_source(page), (
        f"{installed} differs from man/{page}.1: reinstall (make venv)")


# --- (3) --help ---------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_NAMES)
def test_help_gives_a_one_line_summary_of_each_option(name):
    proc = subprocess.run([command(name), "--help"], capture_output=True, text=True,
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


# --- (4) lint -------------------------------------------------------------------

def test_mandoc_lint():
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed (make tools installs it as root)")
    pages = sorted(str(p) for p in MAN.glob("*.1") if not is_so_page(p))
    proc = subprocess.run(["mandoc", "-Tlint", "-W", "warning", *pages],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
    assert proc.returncode == 0


def test_groff_warnings():
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    for page in sorted(p for p in MAN.glob("*.1") if not is_so_page(p)):
        proc = subprocess.run(["groff", "-ww", "-z", "-man", str(page)],
                              capture_output=True, text=True, timeout=60)
        assert proc.stderr == "", f"{page.name}: {proc.stderr}"


# --- (5) make install -----------------------------------------------------------

def test_make_install(tmp_path):
    """A venv in PREFIX/lib/chainload, bin/chainload plus one symlink per
    command, and the pages in PREFIX/share/man/man1. Needs PyPI (pip)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    prefix = tmp_path / "prefix"
    argv = ["make", "-C", str(ROOT), "install", f"PREFIX={prefix}",
            f"PYTHON={sys.executable}"]
    if shutil.which("flock"):
        # pip builds in the checkout; others may be running `make venv`.
        argv = ["flock", "-w", "600", "/tmp/chainload-venv.lock", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    bin_dir = prefix / "bin"
    assert (bin_dir / "chainload").is_symlink()
    assert os.access(bin_dir / "chainload", os.X_OK)
    for name in [*chain.COMMANDS, *chain.ALIASES]:
        link = bin_dir / name
        assert link.is_symlink(), f"{link} is not a symlink"
        assert os.readlink(link) == "chainload", os.readlink(link)
    for page in sorted(MAN.glob("*.1")):
        installed = prefix / "share" / "man" / "man1" / page.name
        assert installed.is_file(), installed
        assert filecmp.cmp(installed, page, shallow=False), installed
        assert installed.stat().st_mode & 0o777 == 0o644
    for page in sorted(MAN.glob("*.3")):  # chainload.activation(3)
        installed = prefix / "share" / "man" / "man3" / page.name
        assert installed.is_file(), installed
        assert filecmp.cmp(installed, page, shallow=False), installed
    for alias, name in chain.ALIASES.items():  # `man listen-seqpacket`
        alias_page = prefix / "share" / "man" / "man1" / f"{alias}.1"
        if alias_page.is_symlink():
            assert os.readlink(alias_page) == f"{name}.1"
        else:
            assert alias_page.read_text() == f".so man1/{name}.1\n", alias_page

    clean_env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    proc = subprocess.run([str(bin_dir / "fdmove"), "--help"], capture_output=True,
                          text=True, timeout=60, env=clean_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: fdmove "), proc.stdout
    # A whole chain through a symlinked name: the socket, then fdmove, then exec.
    sock = tmp_path / "s.sock"
    proc = subprocess.run([str(bin_dir / "listen-seqpacket"), str(sock),
                           "fdmove", "-c", "7", "3", "/bin/sh", "-c",
                           'test -S "$1" && [ -e /proc/self/fd/7 ] && echo ok', "sh",
                           str(sock)],
                          capture_output=True, text=True, timeout=60, env=clean_env)
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr
