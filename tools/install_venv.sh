#!/bin/sh
# The first half of `make install`: the venv in LIBDIR, made with an
# interpreter that every user can run.
#
#     sh tools/install_venv.sh LIBDIR ROOT_ONLY PYTHON...
#
# Every chain started from the install runs LIBDIR/bin/python, a symlink to
# the interpreter the venv was made with. When root installs, that must be
# one that other users can run too: root's own python (a pyenv build under
# a 0700 /root, say) would make every chain started by another user fail
# with "Permission denied". So, as root, each PYTHON is tried in turn (as
# given on the make command line, or else the Makefile's python3 and
# /usr/bin/python3), and the first that can make a venv and that nobody
# can run (checked: it drops to nobody, from /, and starts the interpreter
# the venv would link to) is used. None: a one-line refusal that says to
# name one with PYTHON=, and nothing is changed. An existing venv in LIBDIR
# is kept when its pip runs and (as root) nobody can run its interpreter;
# otherwise it is made again. ROOT_ONLY=1 skips the check, for an install
# that only root will run. A user other than root installs for themself:
# no check.
set -u
libdir=$1 root_only=$2
shift 2

fail() {
	printf 'make install: %s\n' "$*" >&2
	exit 1
}

# What a venv made by interpreter $1 links its bin/python to.
base_of() {
	"$1" -I -c 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)' \
		2>/dev/null
}

# Empty if nobody can run interpreter $1 (or no check is due), else why not.
# $2 is an interpreter that runs as root, to drop to nobody with.
why_not() {
	[ "$check" = yes ] || return 0
	out=$("$2" -I -c '
import os, pwd, sys
try:
    entry = pwd.getpwnam("nobody")
    uid, gid = entry.pw_uid, entry.pw_gid
except KeyError:
    uid = gid = 65534
os.chdir("/")
os.setgroups([])
os.setresgid(gid, gid, gid)
os.setresuid(uid, uid, uid)
python = sys.argv[1]
try:
    os.execv(python, [python, "-I", "-c", "import encodings, json, socket, pwd, grp"])
except OSError as e:
    sys.stderr.write(f"{python}: {e.strerror}\n")
    sys.exit(1)
' "$1" 2>&1 >/dev/null)
	status=$?
	[ "$status" = 0 ] && return 0
	printf '%s\n' "${out:-exit status $status}" | head -n 1
}

check=no
if [ "$(id -u)" = 0 ] && [ "$root_only" != 1 ]; then
	check=yes
fi

# Keep a venv that works, for every user.
if "$libdir/bin/python" -m pip --version >/dev/null 2>&1; then
	base=$(base_of "$libdir/bin/python")
	if [ -n "$base" ] && [ -z "$(why_not "$base" "$libdir/bin/python")" ]; then
		exit 0
	fi
fi

tried=""
for python in "$@"; do
	if ! "$python" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' \
		>/dev/null 2>&1; then
		tried="$tried; $python: cannot make a Python 3.11+ venv"
		continue
	fi
	base=$(base_of "$python")
	why=$(why_not "$base" "$python")
	if [ -n "$why" ]; then
		tried="$tried; $python ($base): nobody cannot run it: $why"
		continue
	fi
	rm -rf "$libdir" && exec "$base" -m venv "$libdir"
done
if [ "$check" = yes ]; then
	fail "no interpreter that every user can run (a chain started by any user runs it)${tried};" \
		"name one with PYTHON=/path/to/python3.11 (or ROOT_ONLY=1 for an install only root runs)"
fi
fail "no interpreter that can make a venv${tried}; name one with PYTHON=/path/to/python3.11"
