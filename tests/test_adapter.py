"""The docopt adapter in chainload.core against docopt itself.

The adapter uses docopt's parser and matcher but not docopt.docopt(): the
usage texts are parsed once, at build time (each module's PARSED), their
lint runs here, and a link gives docopt only its own words. These tests
hold it to docopt.docopt(usage, argv, options_first=True) on random command
lines, for the usage text of every command in chainload.chain.COMMANDS (so
a new command is covered when it is added to the table) and the umbrella's.
"""

import contextlib
import io

import docopt
import freeze_usages
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainload import chain, core
from chainload import usage as build

USAGES = {"chainload": chain._umbrella_usage(),
          **{name: chain.load(name).USAGE for name in chain.COMMANDS}}

PINNED = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", USAGES)
def test_usage_passes_docopts_lint(name):
    """docopt() lints its text at every call; ours are constant, so here."""
    docopt.lint_docstring(docopt.parse_docstring_sections(USAGES[name]))


@pytest.mark.parametrize("name", USAGES)
def test_usage_sections_split_as_docopt_splits_them(name):
    """chainload.usage.split is a fast stand-in for docopt's own section regex."""
    usage = USAGES[name]
    assert build.split(usage) == docopt.parse_docstring_sections(usage)


def test_parsed_usages_are_current():
    """Every module's generated PARSED is what tests/freeze_usages.py makes
    of the code."""
    stale = [str(path.relative_to(freeze_usages.ROOT)) for path, _ in freeze_usages.stale()]
    if stale:
        pytest.fail(f"out of date: {', '.join(stale)}: run "
                    "`.venv/bin/python tests/freeze_usages.py` and commit them")


def stored(name):
    return chain.UMBRELLA_PARSED if name == "chainload" else chain.load(name).PARSED


@pytest.mark.parametrize("name", USAGES)
def test_parsed_usage_is_docopts_parse(name):
    """What _compile takes from a module's PARSED equals docopt's parse of
    the text."""
    usage, frozen = USAGES[name], stored(name)
    assert frozen[0] == core.fingerprint(usage), "run `.venv/bin/python tests/freeze_usages.py`"
    pattern, options = build.parse(usage)
    compiled = core._compile(usage, frozen)
    assert repr(compiled[0]) == repr(pattern)
    assert repr(compiled[1]) == repr(options)
    assert compiled[2] == build.cut(pattern)
    assert compiled[3] == {a.name: a.value for a in pattern.flat()}
    assert repr(core._thaw(docopt, build.freeze(pattern, options), options)) == repr(pattern)
    # An [options] shortcut holds the very objects of the options list, as
    # in docopt().
    for shortcut in compiled[0].flat(docopt.OptionsShortcut):
        assert all(any(c is o for o in compiled[1]) for c in shortcut.children)


def test_a_stale_parse_is_not_used():
    """A usage text edited without running tests/freeze_usages.py is parsed
    at run time, not matched against the parse of the old text."""
    usage = USAGES["fdmove"]
    edited = usage.replace("-c, --copy ", "-k, --copy ")
    assert len(edited) == len(usage)  # the same length: the hash tells them apart
    assert core.fingerprint(edited) != core.fingerprint(usage)
    args = core.parse_args(edited, ["-k", "1", "2", "true"], frozen=stored("fdmove"))
    assert args["--copy"] is True
    with pytest.raises(core.Fail, match="-c: Unrecognized option"):
        core.parse_args(edited, ["-c", "1", "2", "true"], frozen=stored("fdmove"))


@pytest.mark.parametrize("name", chain.COMMANDS)
def test_every_command_link_is_cut(name):
    """Each command's usage has the one-line chain-loader form, so a link
    costs the same however long the chain after it."""
    cut = core._compile(USAGES[name], stored(name))[2]
    assert cut is not None, (
        f"{name}: write the usage as one line, "
        "'Usage: NAME [options] [--] <operand>... <next-prog>...'")
    assert cut[2] == "<next-prog>"


@pytest.mark.forked
@pytest.mark.parametrize("name", [*chain.COMMANDS, *chain.ALIASES])
def test_no_link_parses_its_usage_at_start_up(name, monkeypatch, capsys):
    """Under every name, aliases too (whose --help and synopsis name the
    alias), a link takes its docopt parse from its module's PARSED: docopt's
    own parser never runs. (An alias once sent its renamed text to the
    runtime parse, about 1 ms per start.)"""
    def refuse(*a):
        raise AssertionError(f"{name}: usage parsed at start-up")

    monkeypatch.setattr(build, "parse", refuse)
    with pytest.raises(core.Fail):
        chain.run_chain([name, "--no-such-option"], {}, chain.Chain())
    with pytest.raises(core.Done):
        chain.run_chain([name, "--help"], {}, chain.Chain())
    assert capsys.readouterr().out.startswith(f"Usage: {name} ")


def test_a_link_tokenizes_only_its_own_words(monkeypatch):
    """docopt's tokenizer never sees the rest of the chain."""
    seen = []
    real = docopt.parse_argv

    def spy(tokens, *rest):
        seen.append(len(tokens))
        return real(tokens, *rest)

    monkeypatch.setattr(docopt, "parse_argv", spy)
    usage = USAGES["fdmove"]
    tail = ["fdmove", "-c", "5", "2"] * 10_000 + ["true"]
    args = core.parse_args(usage, ["-c", "--", "5", "2", *tail])
    assert args["<next-prog>"] == tail and args["--copy"] and args["<to>"] == "5"
    assert seen and max(seen) <= 8
    # Options past the first window (8 words) parse as docopt parses them.
    seen.clear()
    options = ["-u", "1", "-g", "2", "-m", "0600", "-b", "5", "--pass-credentials",
               "--fd-name", "x", "--systemd-compatibility"]
    args = core.parse_args(USAGES["local-seqpacket-socket-listen"], [*options, "p", *tail])
    assert (args["--uid"], args["--fd-name"], args["<path>"]) == ("1", "x", "p")
    assert args["<next-prog>"] == tail and seen == [8, 32]
    with pytest.raises(core.Fail, match="Given more than once"):
        core.parse_args(usage, ["-c", "-c", "5", "2", *tail])


def _words(usage):
    """Words docopt treats differently: USAGE's own options (short, long,
    with "=", clustered, as long-option prefixes), "--", "-", numbers,
    unknown options and plain words."""
    words = ["--", "-", "-1", "0", "5", "x", "fdmove", "--bogus", "-z", "--=x", "-=",
             "-h", "--help", "--he", "--version", ""]
    shorts = []
    for o in core._compile(usage)[1]:
        if o.short:
            words.append(o.short)
            shorts.append(o.short[1])
        if o.longer:
            words += [o.longer, o.longer + "=7", o.longer[:4], o.longer[:-1]]
    if shorts:
        words += ["-" + "".join(shorts), "-" + shorts[0] + "7", "-" + shorts[-1] + shorts[0]]
    return words


def _docopts_outcome(usage, argv):
    """("args", dict), ("help", None) or ("error", None) from docopt()."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return "args", dict(docopt.docopt(usage, argv, options_first=True))
    except docopt.DocoptExit:
        return "error", None
    except SystemExit:  # --help: docopt printed the usage and exited
        return "help", None


def _our_outcome(usage, argv):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return "args", core.parse_args(usage, list(argv))
    except core.Fail as e:
        assert e.status == core.EXIT_USAGE and "\n" not in e.message
        return "error", None
    except core.Done:
        return "help", None


@st.composite
def _valid_options(draw, usage):
    """Some of USAGE's options, each once, in any order and spelling: the
    command lines docopt accepts, whose options cross the first window."""
    chosen = draw(st.permutations([o for o in core._compile(usage)[1]
                                   if o.name not in ("-h", "--help")]))
    words = []
    for o in chosen[:draw(st.integers(0, len(chosen)))]:
        names = [n for n in (o.short, o.longer) if n]
        name = draw(st.sampled_from(names))
        if not o.argcount:
            words.append(name)
        elif name.startswith("--") and draw(st.booleans()):
            words.append(name + "=7")
        else:
            words += [name, draw(st.sampled_from(["7", "-1", "--", "x"]))]
    return words


@pytest.mark.parametrize("name", USAGES)
def test_parse_args_agrees_with_docopt(name):
    usage = USAGES[name]
    words = _words(usage)
    options = [w for w in words if w.startswith("-") and w not in ("-", "--", "-1")]
    random = st.lists(st.sampled_from(options) | st.sampled_from(["5", "x", "--"]),
                      max_size=16)
    # Mostly command lines docopt accepts: options, then operands.
    valid = st.tuples(_valid_options(usage),
                      st.lists(st.sampled_from(["p", "5", "x", "--"]), min_size=1, max_size=4))
    head = random | valid.map(lambda t: t[0] + t[1]) | valid.map(lambda t: t[0] + t[1])
    rest = st.lists(st.sampled_from(words) | st.text(max_size=3), max_size=30)

    @PINNED
    @given(head=head, rest=rest)
    def agree(head, rest):
        argv = head + rest
        assert _our_outcome(usage, argv) == _docopts_outcome(usage, argv)

    agree()
