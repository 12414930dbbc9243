"""chainload-convert: the command line."""

import os
import sys

USAGE = """Usage: chainload-convert [options] [--unit-path DIR]... <unit>
       chainload-convert (-h | --help)

Convert a systemd .socket or .service unit (a file, or a name looked up in
the unit path) into a #!/bin/sh run script that execs one chainload chain,
and print it (or write it to DIR/run with --output-dir). A .socket unit
brings its service (Service=, the same name, or NAME@.service for
Accept=yes); a template instance (getty@tty1.service) is read from its
template. Directives that are the supervisor's job or that a chain cannot
express are reported on stderr, one line each.

Options:
  --unit-path DIR        Look for units and drop-ins in DIR, before the
                         directory of the unit (repeat for more; without
                         it, systemd's own unit path is searched).
  --user                 A user unit: the user manager's unit path and
                         specifiers (%t is $XDG_RUNTIME_DIR, %h your home).
  -o, --output-dir DIR   Write the script to DIR/run, mode 0755, atomically.
  --keep-environment     Do not start from an empty environment (clearenv).
  --chainload PROG       The chainload program the script runs (default:
                         the one installed beside chainload-convert).
  -q, --quiet            Do not print the warnings.
  --strict               Any warning is an error (exit 111, nothing written).
  --force                Convert refused units too (Type=forking, oneshot,
                         DynamicUser=, unsupported Listen*=), with warnings.
  -h, --help             Show this help and exit.

Exit status: 0 converted, 100 usage error, 111 refused or failed.
"""

PROG = "chainload-convert"


def _fatal(status, message, usage=False):
    text = f"{PROG}: FATAL: {message}\n"
    if usage:
        from chainload import core

        text += core.synopsis(USAGE) + "\n"
    try:
        sys.stderr.buffer.write(text.encode("utf-8", "backslashreplace"))
        sys.stderr.flush()
    except (OSError, AttributeError, ValueError):
        pass
    return status


def default_chainload():
    """The chainload beside this program, if it is there."""
    here = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else ""
    candidate = os.path.join(here, "chainload")
    if here and os.access(candidate, os.X_OK):
        return candidate
    return "chainload"


def write_run(directory, text):
    """DIR/run holding TEXT, mode 0755, or nothing at all: written to a
    temporary file in DIR, then renamed over DIR/run."""
    import tempfile

    os.makedirs(directory, 0o755, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".run.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape"))
            f.flush()
            os.fchmod(f.fileno(), 0o755)
            os.fsync(f.fileno())
        os.rename(temporary, os.path.join(directory, "run"))
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def main(argv=None):
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        return _fatal(111, "Interrupted.")
    except Exception as e:  # never a traceback
        return _fatal(111, f"Internal error: {type(e).__name__}: {e}")


def _main(argv):
    import docopt

    try:
        args = docopt.docopt(USAGE, argv, default_help=False)
    except docopt.DocoptExit as e:
        first = str(e).splitlines()[0] if str(e).strip() else ""
        message = first if first and not first.startswith("Usage:") else "Bad usage."
        return _fatal(100, message.rstrip(".") + ".", usage=True)
    if args["--help"]:
        sys.stdout.write(USAGE)
        return 0

    from chainload.convert import emit, units

    host = units.Host(user=args["--user"])
    spec = args["<unit>"]
    path = None
    if "/" in spec:
        path = spec
        name = os.path.basename(spec)
        if not os.path.lexists(path):
            return _fatal(111, f"{path}: No such unit file.")
    else:
        name = spec
    dirs = list(args["--unit-path"]) or list(host.path)
    if path:
        dirs.append(os.path.dirname(os.path.abspath(path)) or "/")
    lookup = units.Lookup(dirs)
    converter = emit.Converter(
        lookup, host, keep_environment=args["--keep-environment"], force=args["--force"],
        chainload=args["--chainload"] or default_chainload())
    try:
        script = converter.convert(name, path)
    except units.Refusal as e:
        _print_warnings(converter, args)
        return _fatal(111, str(e))
    _print_warnings(converter, args)
    if converter.warnings and args["--strict"]:
        count = len(converter.warnings)
        return _fatal(111, f"{count} warning{'s' if count > 1 else ''} (--strict): "
                      "nothing written.")
    if args["--output-dir"]:
        try:
            write_run(args["--output-dir"], script)
        except OSError as e:
            where = e.filename or args["--output-dir"]
            return _fatal(111, f"{where}: {os.strerror(e.errno) if e.errno else e}.")
    else:
        try:
            sys.stdout.buffer.write(script.encode("utf-8", "surrogateescape"))
            sys.stdout.flush()
        except (OSError, AttributeError, ValueError) as e:
            reason = os.strerror(e.errno) if getattr(e, "errno", None) else "Closed"
            return _fatal(111, f"Standard output: {reason}.")
    return 0


def _print_warnings(converter, args):
    if args["--quiet"] and not args["--strict"]:
        return
    from chainload.convert.emit import KIND_ORDER

    files = [f for unit in converter.units for f in unit.files]
    for w in converter.warnings:
        w.place(files)
    ordered = sorted(converter.warnings, key=lambda w: (KIND_ORDER.get(w.kind, 2), w.order))
    text = "".join(f"{w.line()}\n" for w in ordered)
    if text:
        try:
            sys.stderr.buffer.write(text.encode("utf-8", "backslashreplace"))
            sys.stderr.flush()
        except (OSError, AttributeError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())
