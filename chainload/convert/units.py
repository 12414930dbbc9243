"""Finding and loading units as systemd does: the search path, templates,
drop-ins, specifiers, and the service of a socket."""

import os

from chainload.convert import syntax

SYSTEM_PATH = (
    "/etc/systemd/system.control", "/run/systemd/system.control", "/run/systemd/transient",
    "/run/systemd/generator.early", "/etc/systemd/system", "/etc/systemd/system.attached",
    "/run/systemd/system", "/run/systemd/system.attached", "/run/systemd/generator",
    "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
)


def user_path(home, runtime):
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local/share")
    return (
        f"{config}/systemd/user.control", f"{runtime}/systemd/user.control",
        f"{runtime}/systemd/transient", f"{runtime}/systemd/generator.early",
        f"{config}/systemd/user", "/etc/systemd/user", f"{runtime}/systemd/user",
        "/run/systemd/user", f"{runtime}/systemd/generator", f"{data}/systemd/user",
        "/usr/local/share/systemd/user", "/usr/share/systemd/user",
        "/usr/local/lib/systemd/user", "/usr/lib/systemd/user",
        f"{runtime}/systemd/generator.late",
    )


class Refusal(Exception):
    """The unit cannot be converted (exit 111); the message says what to do."""


# --- unit names -------------------------------------------------------------------

def split_name(name):
    """(prefix, instance or None, suffix) of a unit name such as
    getty@tty1.service -> ("getty", "tty1", "service")."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        raise Refusal(f"{name}: Not a unit name (no .service or .socket suffix).")
    prefix, at, instance = stem.partition("@")
    return prefix, (instance if at else None), suffix


def template_of(name):
    prefix, instance, suffix = split_name(name)
    return f"{prefix}@.{suffix}" if instance is not None else None


def unescape(text):
    """unit_name_unescape(): "-" is "/", \\xNN a byte."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "-":
            out.append("/")
        elif c == "\\" and text[i + 1:i + 2] == "x" and len(text) >= i + 4:
            try:
                out.append(syntax._byte(int(text[i + 2:i + 4], 16)))
                i += 4
                continue
            except ValueError:
                out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def path_unescape(text):
    """unit_name_path_unescape(): "-" alone is "/", else "/" + unescaped."""
    if text == "-":
        return "/"
    return "/" + unescape(text).strip("/")


# --- specifiers -------------------------------------------------------------------

class Host:
    """What specifiers and directories resolve to: the system manager's
    view, or with USER the user manager of the calling user."""

    def __init__(self, user=False):
        import pwd

        self.user = user
        entry = pwd.getpwuid(os.getuid()) if user else None
        if user:
            self.name, self.uid = entry.pw_name, str(entry.pw_uid)
            self.home = entry.pw_dir
            self.shell = entry.pw_shell or "/bin/sh"
            self.runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{entry.pw_uid}"
            config = os.environ.get("XDG_CONFIG_HOME") or f"{self.home}/.config"
            self.state = os.environ.get("XDG_STATE_HOME") or f"{self.home}/.local/state"
            self.dirs = {"runtime": self.runtime, "state": config,
                         "cache": os.environ.get("XDG_CACHE_HOME") or f"{self.home}/.cache",
                         "logs": f"{config}/log", "configuration": config}
            import grp

            try:
                self.group = grp.getgrgid(entry.pw_gid).gr_name
            except KeyError:
                self.group = str(entry.pw_gid)
            self.gid = str(entry.pw_gid)
        else:
            self.name, self.uid, self.home, self.shell = "root", "0", "/root", "/bin/sh"
            self.group, self.gid = "root", "0"
            self.runtime = "/run"
            self.dirs = {"runtime": "/run", "state": "/var/lib", "cache": "/var/cache",
                         "logs": "/var/log", "configuration": "/etc"}
        self.path = user_path(self.home, self.runtime) if user else SYSTEM_PATH


def _read_first_line(path):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.readline().strip()
    except OSError:
        return ""


def _os_release(key):
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                for line in f:
                    name, eq, value = line.strip().partition("=")
                    if name == key and eq:
                        words = syntax.split_words(value)
                        return words[0] if words else ""
            return ""
        except OSError:
            continue
    return ""


def specifier_table(unit, host):
    """Specifier letter -> function giving its value for UNIT."""
    prefix, instance, _ = split_name(unit.name)
    instance = instance or ""
    j = prefix.rpartition("-")[2]
    uname = os.uname()
    return {
        "n": lambda: unit.name,
        "N": lambda: unit.name.rpartition(".")[0],
        "p": lambda: prefix,
        "P": lambda: unescape(prefix),
        "i": lambda: instance,
        "I": lambda: unescape(instance),
        "j": lambda: j,
        "J": lambda: unescape(j),
        "f": lambda: path_unescape(instance if instance else prefix),
        "t": lambda: host.runtime,
        "S": lambda: host.dirs["state"],
        "C": lambda: host.dirs["cache"],
        "L": lambda: host.dirs["logs"],
        "E": lambda: host.dirs["configuration"],
        "T": lambda: os.environ.get("TMPDIR") or "/tmp",
        "V": lambda: os.environ.get("TMPDIR") or "/var/tmp",
        "h": lambda: host.home,
        "u": lambda: host.name,
        "U": lambda: host.uid,
        "g": lambda: host.group,
        "G": lambda: host.gid,
        "s": lambda: host.shell,
        "H": lambda: uname.nodename,
        "l": lambda: uname.nodename.partition(".")[0],
        "v": lambda: uname.release,
        "a": lambda: _architecture(uname.machine),
        "m": lambda: _read_first_line("/etc/machine-id"),
        "b": lambda: _read_first_line("/proc/sys/kernel/random/boot_id").replace("-", ""),
        "o": lambda: _os_release("ID"),
        "w": lambda: _os_release("VERSION_ID"),
        "B": lambda: _os_release("BUILD_ID"),
        "W": lambda: _os_release("VARIANT_ID"),
        "A": lambda: _os_release("IMAGE_VERSION"),
        "M": lambda: _os_release("IMAGE_ID"),
        "y": lambda: unit.path,
        "Y": lambda: os.path.dirname(unit.path),
        "q": lambda: _read_first_line("/etc/hostname"),
        "d": lambda: f"{host.runtime}/credentials/{unit.name}",
        "%": lambda: "%",
    }


_ARCH = {"x86_64": "x86-64", "i686": "x86", "i386": "x86", "aarch64": "arm64",
         "armv7l": "arm", "ppc64le": "ppc64-le", "s390x": "s390x", "riscv64": "riscv64"}


def _architecture(machine):
    return _ARCH.get(machine, machine)


def expand_specifiers(text, table):
    """TEXT with %X replaced (specifier_printf()); an unknown specifier, or
    a "%" at the end, is a SyntaxProblem (systemd ignores the line)."""
    if "%" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        letter = text[i + 1:i + 2]
        if letter not in table:
            raise syntax.SyntaxProblem(f"Unknown specifier %{letter}" if letter else
                                       "A \"%\" at the end of the value")
        out.append(table[letter]())
        i += 2
    return "".join(out)


# --- loading ----------------------------------------------------------------------

class Unit:
    """A loaded unit: its name, fragment and drop-ins, and its entries."""

    def __init__(self, name, path, files, entries, problems, instance_of=None):
        self.name, self.path, self.files = name, path, files
        self.entries, self.problems = entries, problems
        self.instance_of = instance_of  # the template file's name, for an instance
        self.kind = name.rpartition(".")[2]

    def all(self, section, key):
        """The entries of KEY in SECTION, after the last empty assignment
        (which resets a list)."""
        found = [e for e in self.entries if e.section == section and e.key == key]
        for index in range(len(found) - 1, -1, -1):
            if found[index].value == "":
                return found[index + 1:]
        return found

    def last(self, section, key):
        """The entry that decides a single-valued KEY, or None (absent, or
        reset to the default by an empty assignment)."""
        found = [e for e in self.entries if e.section == section and e.key == key]
        if not found or found[-1].value == "":
            return None
        return found[-1]


def read_unit_file(path):
    """(entries, problems) of the file at PATH."""
    with open(path, "rb") as f:
        data = f.read()
    return syntax.parse_text(data.decode("utf-8", "surrogateescape"), path)


class Lookup:
    """The unit search path: directories in priority order (first wins)."""

    def __init__(self, dirs):
        seen, self.dirs = set(), []
        for d in dirs:
            key = os.path.realpath(d)
            if key not in seen:
                seen.add(key)
                self.dirs.append(d)

    def find(self, name):
        """The path of unit file NAME (the first in the search path), or None."""
        for d in self.dirs:
            p = os.path.join(d, name)
            if os.path.lexists(p):
                return p
        return None

    def dropin_dirs(self, name):
        """The drop-in directories of unit NAME, in systemd's order
        (unit_file_find_dropin_paths())."""
        dirs = []
        for d in self.dirs:
            for candidate in _dropin_names(name):
                dirs.append(os.path.join(d, candidate + ".d"))
        kind = name.rpartition(".")[2]
        dirs += [os.path.join(d, kind + ".d") for d in self.dirs]
        return dirs

    def dropins(self, name, aliases=()):
        """The .conf files of the drop-in directories of NAME (then of its
        ALIASES): one per file name (the first directory wins), sorted by
        file name."""
        chosen = {}
        dirs = [d for n in (name, *aliases) for d in self.dropin_dirs(n)]
        for d in dict.fromkeys(dirs):
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for f in names:
                if f.endswith(".conf") and f not in chosen:
                    chosen[f] = os.path.join(d, f)
        return [chosen[f] for f in sorted(chosen)]


def _dropin_names(name):
    """NAME, its template, and its "-" prefixes (foo-bar-.service, foo-.service)."""
    out = [name]
    template = template_of(name)
    if template:
        out.append(template)
    prefix, _, suffix = split_name(name)
    stem = prefix
    while True:
        if stem.endswith("-"):
            stem = stem[:-1]
        cut = stem.rfind("-")
        if cut <= 0:
            break
        stem = stem[:cut + 1]
        out.append(f"{stem}.{suffix}")
    return out


def _masked(path):
    try:
        return os.path.realpath(path) == "/dev/null" or os.path.getsize(path) == 0 and \
            os.path.islink(path)
    except OSError:
        return False


def load(lookup, name, path=None):
    """Unit NAME, from PATH or found in LOOKUP (an instance from its
    template); drop-ins applied. Refusal if there is no such unit."""
    instance_of = None
    if path is None:
        path = lookup.find(name)
        template = template_of(name)
        if path is None and template:
            path = lookup.find(template)
            instance_of = template if path else None
        if path is None:
            where = ", ".join(lookup.dirs) or "no directories"
            raise Refusal(f"{name}: No such unit in the unit path ({where}); "
                          "give its file, or the directory with --unit-path.")
    elif template_of(name) and os.path.basename(path) != name:
        instance_of = os.path.basename(path)
    if _masked(path):
        raise Refusal(f"{name}: The unit is masked ({path} is /dev/null).")
    aliases = []
    real = os.path.basename(os.path.realpath(path))
    if os.path.islink(path) and real != name and real.rpartition(".")[2] == \
            name.rpartition(".")[2] and instance_of is None:
        # An alias (sshd.service -> ssh.service): systemd names the unit
        # after the file it points to, and reads the drop-ins of both.
        aliases, name = [name], real
    try:
        entries, problems = read_unit_file(path)
    except OSError as e:
        raise Refusal(f"{path}: Cannot read the unit: {os.strerror(e.errno)}.") from None
    files = [path]
    problems = [(path, line, text) for line, text in problems]
    for dropin in lookup.dropins(name, aliases):
        if _masked(dropin):
            continue
        try:
            more, bad = read_unit_file(dropin)
        except OSError as e:
            raise Refusal(f"{dropin}: Cannot read the drop-in: {os.strerror(e.errno)}.") from None
        files.append(dropin)
        entries += more
        problems += [(dropin, line, text) for line, text in bad]
    return Unit(name, path, files, entries, problems, instance_of)
