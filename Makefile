# chainload: every target builds its own virtualenv from scratch when needed,
# so a fresh machine needs only Python 3.11+ and make.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PREFIX  ?= /usr/local
DESTDIR ?=
COMMANDS := local-seqpacket-socket-listen listen-seqpacket fdmove setuidgid
MANPAGES := $(wildcard man/*.1)
SOURCES  := setup.cfg pyproject.toml $(wildcard chainload/*.py chainload/commands/*.py) $(MANPAGES)
STAMP    := $(VENV)/.installed

.PHONY: all venv test demo bench lint fuzz install clean tools

all: venv

venv: $(STAMP)

# A real (non-editable) install: tests run the installed console scripts,
# and only a real install puts the man pages in $(VENV)/share/man/man1.
$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --upgrade '.[test]'
	@# The venv's bundled setuptools adds a start-up hook (_distutils_hack)
	@# to every interpreter start; pip builds in isolation and needs none.
	$(BIN)/python -m pip uninstall --quiet --yes setuptools
	touch $@

# Debian tools some tests use; installed when we can (root with apt-get),
# otherwise the tests that need them skip and say why.
tools:
	@missing=""; \
	command -v mandoc >/dev/null 2>&1 || missing="$$missing mandoc"; \
	command -v strace >/dev/null 2>&1 || missing="$$missing strace"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing:$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
			|| echo "could not install$$missing; tests that need them will skip"; \
	fi

test: venv tools lint
	$(BIN)/python -m pytest tests

lint: tools
	@if command -v mandoc >/dev/null 2>&1; then \
		out=$$(mandoc -Tlint -W warning $(MANPAGES) 2>&1); \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; \
		echo "mandoc -Tlint: man pages clean"; \
	else echo "lint: mandoc not installed; skipping man page lint"; fi

demo: venv
	$(BIN)/python examples/demo.py

bench: venv
	$(BIN)/python tests/bench.py $(ARGS)

fuzz: venv
	CHAINLOAD_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest tests/test_fuzz.py

# A self-contained venv under $(PREFIX)/lib/chainload, one `chainload` on
# $(PREFIX)/bin and an argv[0] symlink to it for every command.
install:
	$(PYTHON) -m venv $(DESTDIR)$(PREFIX)/lib/chainload
	$(DESTDIR)$(PREFIX)/lib/chainload/bin/python -m pip install --quiet --upgrade pip .
	$(DESTDIR)$(PREFIX)/lib/chainload/bin/python -m pip uninstall --quiet --yes setuptools
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	ln -sf ../lib/chainload/bin/chainload $(DESTDIR)$(PREFIX)/bin/chainload
	for c in $(COMMANDS); do ln -sf chainload $(DESTDIR)$(PREFIX)/bin/$$c; done
	install -m 0644 $(MANPAGES) $(DESTDIR)$(PREFIX)/share/man/man1/
	ln -sf local-seqpacket-socket-listen.1 $(DESTDIR)$(PREFIX)/share/man/man1/listen-seqpacket.1

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
