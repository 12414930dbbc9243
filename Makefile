# chainload: every target builds its own virtualenv from scratch when needed,
# so a fresh machine needs only Python 3.11+ with its venv module (Debian:
# python3-venv), make, and access to the Python package index.

# The first python3 that can make a venv: root's may be a pyenv build that
# another user cannot run; /usr/bin/python3 is the fallback. Override with
# `make PYTHON=/path/to/python3.11`.
ifndef PYTHON
PYTHON := $(firstword $(foreach p,python3 /usr/bin/python3,$(shell \
	$(p) -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' \
	>/dev/null 2>&1 && echo $(p))) python3)
endif
# `make install` tries PYTHON if given, else both: as root it takes the first
# that every user can run (tools/install_venv.sh; ROOT_ONLY=1 takes any).
INSTALL_PYTHON := $(if $(filter-out file default undefined,$(origin PYTHON)),$(PYTHON),\
	python3 /usr/bin/python3)
VENV    ?= .venv
BIN     := $(VENV)/bin
PREFIX  ?= /usr/local
LIBDIR  := $(PREFIX)/lib/chainload
# Names that daemontools, execline, runit, s6 or nosh install too: with NO_CLASH=1,
# `make install` leaves them out of PREFIX/bin (they still work in a chain and
# as `chainload NAME`); SKIP lists any names to leave out. (fdredir and
# hardlimit: nosh's; foreground and if: execline's and nosh's.)
CLASH    := fdmove setuidgid envdir softlimit umask fdredir hardlimit foreground if
SKIP     ?= $(if $(NO_CLASH),$(CLASH))
MANPAGES := $(wildcard man/*.1)
MAN3     := $(wildcard man/*.3)
SOURCES  := setup.cfg pyproject.toml $(wildcard chainload/*.py chainload/commands/*.py chainload/convert/*.py) \
            $(MANPAGES) $(MAN3) $(wildcard man/aliases/*.1) tools/utf8_scripts.py
STAMP    := $(VENV)/.installed
ARGS    ?=

# $(call ensure_venv,DIR): a venv in DIR whose pip runs. A half-made one
# (python there but no pip, as after `python3 -m venv` without Debian's
# python3-venv) is removed and made again, so running make again recovers.
ensure_venv = $(1)/bin/python -m pip --version >/dev/null 2>&1 || \
	{ rm -rf '$(1)' && $(PYTHON) -m venv '$(1)'; }

.PHONY: all venv venv-base test demo bench lint fuzz install clean tools

all: venv

venv: $(STAMP)

# A real (non-editable) install: tests run the installed console scripts,
# and only a real install puts the man pages in $(VENV)/share/man/man1.
$(STAMP): $(SOURCES) | venv-base
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --upgrade '.[test]'
	@# The venv's bundled setuptools adds a start-up hook (_distutils_hack)
	@# to every interpreter start; pip builds in isolation and needs none.
	$(BIN)/python -m pip uninstall --quiet --yes setuptools
	@# pip's scripts start Python without flags; give them -X utf8, without
	@# which Python cannot start in a locale it has no codec for.
	$(BIN)/python -I tools/utf8_scripts.py $(BIN)
	touch $@

# Order-only for the stamp: a working venv is checked every time, but only
# a change of the sources reinstalls.
venv-base:
	@$(call ensure_venv,$(VENV))

# Debian tools and daemons some tests use; installed when we can (root with
# apt-get), otherwise the tests that need them skip and say why. Daemons
# (dbus, sshd, uuidd, saned) are installed with a policy-rc.d that exits
# 101, so that none of their services starts: the tests start them
# themselves, through chainload. An existing policy-rc.d is left alone.
# command-or-path:package pairs; a path is tested with -e.
TOOLS := mandoc:mandoc strace:strace ss:iproute2 \
	/usr/share/i18n/charmaps/BIG5-HKSCS.gz:locales \
	s6-svscan:s6 execlineb:execline tcpserver:ucspi-tcp rsync:rsync git:git \
	socat:socat /usr/sbin/uuidd:uuid-runtime dbus-daemon:dbus dbus-send:dbus \
	/usr/sbin/sshd:openssh-server ssh-keyscan:openssh-client /usr/sbin/saned:sane-utils \
	/usr/bin/time:time valgrind:valgrind

tools:
	@missing=""; \
	for pair in $(TOOLS); do \
		what=$${pair%:*}; package=$${pair##*:}; \
		case $$what in /*) [ -e "$$what" ] ;; *) command -v "$$what" >/dev/null 2>&1 ;; esac \
			|| case " $$missing " in *" $$package "*) ;; *) missing="$$missing $$package" ;; esac; \
	done; \
	ls /usr/lib/*/libnss_wrapper.so >/dev/null 2>&1 || missing="$$missing libnss-wrapper"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing:$$missing"; \
		policy=""; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then \
			policy=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $$policy; chmod 755 $$policy; \
		fi; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null) \
			|| echo "could not install$$missing; tests that need them will skip"; \
		[ -z "$$policy" ] || rm -f $$policy; \
	fi

test: venv tools lint
	$(BIN)/python -m pytest tests

lint: tools
	@if command -v mandoc >/dev/null 2>&1; then \
		out=$$(mandoc -Tlint -W warning $(MANPAGES) $(MAN3) 2>&1); \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; \
		echo "mandoc -Tlint: man pages clean"; \
	else echo "lint: mandoc not installed; skipping man page lint"; fi

demo: venv
	$(BIN)/python examples/demo.py

bench: venv
	$(BIN)/python tests/bench.py $(ARGS)
	$(BIN)/python tests/bench_accept.py $(ARGS)

fuzz: venv
	CHAINLOAD_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest tests/test_fuzz.py

# `make install`: a venv in $(PREFIX)/lib/chainload holding the package,
# made by tools/install_venv.sh (as root, with an interpreter that every
# user can run: it tries each as nobody; ROOT_ONLY=1 takes any), and
# tools/install.py, run by that venv's python, for the rest:
#   * $(LIBDIR)/bin/chainload is our own launcher, `#!$(LIBDIR)/bin/python -IXutf8`
#     (isolated mode: PYTHONPATH, PYTHONHOME, PYTHONINSPECT, ... and the
#     current directory cannot change what a root chain runs; the variables
#     still reach the final program; -X utf8: Python starts in every
#     locale, see tools/utf8_scripts.py). pip's console scripts there are
#     removed: pip cannot give them interpreter flags.
#   * $(PREFIX)/bin/chainload is a symlink to it, and every installed
#     command name is a symlink to chainload.
#   * man/*.1 and the alias pages man/aliases/*.1 (`.so` pages) go to
#     $(PREFIX)/share/man/man1, man/*.3 to $(PREFIX)/share/man/man3.
# The command names come from chainload.chain.COMMANDS and ALIASES, never
# from a list here. Adding a command (in chain.py and setup.cfg):
#   * it is installed under its own name, and so are its aliases;
#   * a name that would shadow another program (coreutils, util-linux,
#     ...) is not installed: the command's table name is `chainload-NAME`
#     (its page man/chainload-NAME.1, its console script in setup.cfg), and
#     NAME is an alias listed in chainload.chain.IN_CHAIN_ONLY, which works
#     only inside a chain (`chainload NAME`, or as a later link);
#   * names given in SKIP (or the CLASH list, with NO_CLASH=1) are left out,
#     and so are their pages.
# DESTDIR (staged installs) is refused: a venv is not relocatable (its
# pyvenv.cfg, pip's scripts and our launcher all name the directory it was
# made in), so a staged tree would name the staging path.
install:
	@if [ -n "$(DESTDIR)" ]; then \
		echo "make install: DESTDIR is not supported: a venv cannot be moved after it is made;" \
			"install straight to PREFIX (PREFIX=$(PREFIX))" >&2; exit 1; fi
	@sh tools/install_venv.sh '$(LIBDIR)' '$(ROOT_ONLY)' $(INSTALL_PYTHON)
	$(LIBDIR)/bin/python -m pip install --quiet --upgrade pip .
	$(LIBDIR)/bin/python -m pip uninstall --quiet --yes setuptools
	$(LIBDIR)/bin/python -I tools/install.py '$(PREFIX)' man $(SKIP)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
