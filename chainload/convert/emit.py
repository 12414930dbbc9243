"""From loaded units to one chain: what systemd does before it execs the
service, as chainload links, in systemd's order (environment, limits,
umask, directories, sockets, working directory, redirections, scheduling,
ExecStartPre=, privilege drop, program)."""

import os
import re
import shlex

from chainload.convert import syntax, table, units
from chainload.convert.units import Refusal

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LISTEN_KEYS = ("ListenStream", "ListenDatagram", "ListenSequentialPacket", "ListenFIFO",
               "ListenSpecial", "ListenNetlink", "ListenMessageQueue", "ListenUSBFunction")
DEPENDENCY_KEYS = ("Requires", "Wants", "BindsTo", "Requisite", "PartOf", "Upholds",
                   "Before", "After")

# Daemons that Debian starts with Type=forking, and the option that keeps
# them in the foreground (for the refusal's advice).
FOREGROUND = {
    "sshd": "-D", "dbus-daemon": "--nofork", "cupsd": "-f", "rpcbind": "-f",
    "nginx": "-g 'daemon off;'", "apache2": "-DFOREGROUND", "named": "-f",
    "ntpd": "-n", "chronyd": "-d", "smbd": "--foreground --no-process-group",
    "nmbd": "--foreground --no-process-group", "winbindd": "--foreground",
    "dnsmasq": "-k", "haveged": "-F", "rsyslogd": "-n", "cron": "-f", "atd": "-f",
    "lighttpd": "-D", "squid": "-N", "xinetd": "-dontfork", "snmpd": "-f",
    "uuidd": "-F", "irqbalance": "--foreground", "acpid": "-f", "anacron": "-d",
    "postfix": "start-fg", "exim4": "-bdf", "openvpn": "(no --daemon)",
    "vsftpd": "(background=NO in vsftpd.conf)", "slapd": "-d 0", "nscd": "-F",
    "avahi-daemon": "(no -D)", "inetd": "-d", "proftpd": "--nodaemon",
    "mysqld": "(no --daemonize)", "pdns_server": "--daemon=no --guardian=no",
    "zebra": "(no -d)", "bgpd": "(no -d)", "smartd": "-n", "lldpd": "-d",
    "ypbind": "-foreground", "rpc.statd": "-F", "rpc.mountd": "-F", "rpc.idmapd": "-f",
    "gpm": "-D", "saslauthd": "-d", "nslcd": "-n", "sssd": "-i", "upsd": "-F",
    "collectd": "-f", "munin-node": "--foreground", "apcupsd": "-b",
    "privoxy": "--no-daemon", "tor": "--RunAsDaemon 0", "mosquitto": "(no -d)",
    "redis-server": "--daemonize no", "memcached": "(no -d)", "freeradius": "-f",
    "hostapd": "(no -B)", "wpa_supplicant": "(no -B)", "dhcpd": "-f",
    "radvd": "--nodaemon", "kea-dhcp4": "(foreground already)", "stunnel4": "foreground = yes",
    "unbound": "-d", "nsd": "-d", "knotd": "(no -d)", "postgres": "(no -D/pg_ctl)",
}


class Warning_:
    def __init__(self, where, directive, kind, why):
        self.where, self.directive, self.kind, self.why = where, directive, kind, why
        self.order = (0, 0)

    def place(self, files):
        """Sort by file (in the order read) and line."""
        file, _, line = self.where.rpartition(":")
        self.order = (files.index(file) if file in files else len(files),
                      int(line) if line.isdigit() else 0)

    def line(self):
        if self.where == "chainload-convert":
            return f"{self.where}: {self.directive}: {self.why}"
        group = table.WHY.get(self.kind)
        why = f"{group}: {self.why}" if group else self.why
        return f"{self.where}: {self.directive}: not converted ({why})"


KIND_ORDER = {table.SUPERVISOR: 0, table.NOT_IN_CHAIN: 1, None: 2}


def mode_text(value, what):
    """systemd's parse_mode(): octal, 0 to 07777, as "0NNN"."""
    if not value or not all(c in "01234567" for c in value) or int(value, 8) > 0o7777:
        raise syntax.SyntaxProblem(f"{what}: not an octal mode")
    return f"0{int(value, 8):03o}"


def escape_subchain(words):
    """WORDS as the program of a foreground/if link: a word made only of
    ";" gets one more (";;" stands for a literal ";")."""
    return [w + ";" if w and set(w) == {";"} else w for w in words]


class Converter:
    def __init__(self, lookup, host, *, keep_environment=False, force=False,
                 chainload="chainload"):
        self.lookup, self.host = lookup, host
        self.keep_environment, self.force = keep_environment, force
        self.chainload = chainload
        self.warnings = []
        self.units = []

    # --- warnings ---------------------------------------------------------------

    def warn(self, entry, kind, why, value=None):
        directive = f"{entry.key}={entry.value if value is None else value}"
        self.warnings.append(Warning_(entry.where, directive, kind, why))

    def refuse_or_warn(self, entry, message):
        """A refusal, or with --force a warning."""
        if not self.force:
            raise Refusal(message + " (--force converts it anyway, with a warning).")
        self.warn(entry, None, message)

    # --- values ---------------------------------------------------------------

    def spec(self, unit, entry, text=None):
        """TEXT (default the entry's value) with specifiers resolved, or
        None after a warning (systemd ignores the line)."""
        try:
            return units.expand_specifiers(entry.value if text is None else text,
                                           self.specifiers[unit.name])
        except syntax.SyntaxProblem as e:
            self.warn(entry, None, f"{e}; ignored, as systemd does")
            return None

    def words(self, unit, entry, quiet=False, **flags):
        """The words of ENTRY, each with specifiers resolved (QUIET: no
        warning, for a second look at an entry)."""
        try:
            raw = syntax.split_words(entry.value, None, **flags)
        except syntax.SyntaxProblem as e:
            if not quiet:
                self.warn(entry, None, f"{e}; ignored, as systemd does")
            return []
        out = []
        for word in raw:
            if quiet:
                try:
                    out.append(units.expand_specifiers(word, self.specifiers[unit.name]))
                except syntax.SyntaxProblem:
                    return []
                continue
            resolved = self.spec(unit, entry, word)
            if resolved is None:
                return []
            out.append(resolved)
        return out

    def boolean(self, unit, section, key, default):
        entry = unit.last(section, key)
        if entry is None:
            return default
        try:
            return syntax.parse_boolean(entry.value)
        except syntax.SyntaxProblem as e:
            self.warn(entry, None, f"{e}; the default is used, as systemd does")
            return default

    def single(self, unit, section, key, resolve=True):
        entry = unit.last(section, key)
        if entry is None:
            return None, None
        value = self.spec(unit, entry) if resolve else entry.value
        return value, entry

    # --- loading --------------------------------------------------------------

    def load(self, name, path=None):
        unit = units.load(self.lookup, name, path)
        self.specifiers[unit.name] = units.specifier_table(unit, self.host)
        self.units.append(unit)
        for file, line, text in unit.problems:
            self.warnings.append(Warning_(f"{file}:{line}", text.split(":")[0], None,
                                          f"{text}; ignored, as systemd does"))
        return unit

    def convert(self, name, path=None):
        """The run script for unit NAME (at PATH, or found in the unit path)."""
        self.specifiers = {}
        target = self.load(name, path)
        if target.kind == "socket":
            sockets = [target]
            self.accept = self.boolean(target, "Socket", "Accept", False)
            service_name = self.service_of(target)
            service = self.load(service_name)
        elif target.kind == "service":
            service, sockets, self.accept = target, [], False
        else:
            raise Refusal(f"{name}: Only .socket and .service units are converted.")
        for extra in self.sockets_of(service, sockets):
            sockets.append(self.load(extra))
        self.service, self.sockets = service, sockets
        self.check_directives()
        self.links = self.chain()
        self.check_commands()
        return self.script(self.links)

    def check_commands(self):
        """Every builtin the chain uses is in this chainload's command table."""
        from chainload.chain import ALIASES, COMMANDS

        used = []
        for link in self.links:
            heads = link if link[0] in ("if", "foreground") else link[:1]
            used += [w for w in heads if w in EMITTED_BUILTINS and w not in used]
        for name in used:
            if name not in COMMANDS and name not in ALIASES:
                self.warnings.append(Warning_(
                    "chainload-convert", name, None,
                    "this chainload has no such command: the script runs only with a "
                    "chainload that has it"))

    def service_of(self, socket):
        value, entry = self.single(socket, "Socket", "Service")
        prefix, instance, _ = units.split_name(socket.name)
        if value:
            if self.accept:
                raise Refusal(f"{entry.where}: Service= with Accept=yes: systemd refuses it too.")
            if not value.endswith(".service"):
                raise Refusal(f"{entry.where}: Service={value}: Not a .service unit.")
            return value
        if self.accept:
            return f"{prefix}@.service"
        return f"{prefix}@{instance}.service" if instance is not None else f"{prefix}.service"

    def sockets_of(self, service, have):
        """More socket units feeding SERVICE: its Sockets=, and its own
        NAME.socket when it depends on it (Requires=, Wants=, BindsTo=...)."""
        names = [s.name for s in have]
        more = []
        for entry in service.all("Service", "Sockets"):
            for word in self.words(service, entry, cunescape=False):
                if word.endswith(".socket") and word not in names + more:
                    more.append(word)
        if not have:
            own = service.name.rpartition(".")[0] + ".socket"
            wanted = {w for key in DEPENDENCY_KEYS if key not in ("Before", "After")
                      for e in service.all("Unit", key)
                      for w in self.words(service, e, cunescape=False)}
            if own in wanted and own not in more and self.lookup.find(own):
                more.insert(0, own)
        return more

    # --- the table's warnings -------------------------------------------------

    def check_directives(self):
        converted = {u.name for u in self.units}
        for unit in self.units:
            for entry in unit.entries:
                found = table.kind_of(entry.section, entry.key)
                if found is None:
                    if entry.section not in table.SECTIONS and entry.section != "Install":
                        self.warn(entry, None, f"unknown section [{entry.section}]")
                    else:
                        self.warn(entry, None, "unknown directive")
                    continue
                kind, text = found
                if unit.kind == "socket" and entry.section == "Service":
                    kind, text = None, "a [Service] section in a socket unit"
                if kind in (table.SUPERVISOR, table.NOT_IN_CHAIN):
                    if entry.key in DEPENDENCY_KEYS and entry.value and set(
                            self.words(unit, entry, cunescape=False, quiet=True)) <= converted:
                        continue  # the units converted together: satisfied
                    if entry.value == "" or self.trivial(entry):
                        continue
                    self.warn(entry, kind, text)

    @staticmethod
    def trivial(entry):
        """A supervisor or sandbox directive set to what changes nothing."""
        value = entry.value.lower()
        if entry.key.startswith(("Protect", "Private", "Restrict", "NoNewPrivileges",
                                 "LockPersonality", "MemoryDenyWriteExecute", "RemoveIPC",
                                 "Delegate", "RemainAfterExit", "GuessMainPID",
                                 "SendSIGKILL", "SendSIGHUP", "RemoveOnStop", "FlushPending",
                                 "DefaultDependencies")):
            try:
                return not syntax.parse_boolean(value) and entry.key != "DefaultDependencies"
            except syntax.SyntaxProblem:
                return False
        return entry.key == "Restart" and value == "no"

    # --- the chain ---------------------------------------------------------------

    def chain(self):
        s = self.service
        self.check_type()
        self.user = self.single(s, "Service", "User")[0]
        self.group = self.single(s, "Service", "Group")[0]
        links = []
        links += self.environment()
        links += self.limits()
        links += self.umask()
        links += self.directories()
        links += self.listeners()
        links += self.working_directory()
        links += self.redirections()
        links += self.scheduling()
        main = self.main_command()
        for command in self.pre_commands():
            words = escape_subchain(self.command_words(command))
            links.append(["foreground" if "-" in command.prefixes else "if", *words, ";"])
        links.append(self.command_words(main))
        return drop_reentry(links, self.chainload)

    def check_type(self):
        s = self.service
        value, entry = self.single(s, "Service", "Type", resolve=False)
        kind = value or "simple"
        if kind in ("notify", "notify-reload"):
            self.warn(entry, table.SUPERVISOR, "readiness notification (sd_notify): the "
                      "daemon runs without NOTIFY_SOCKET; s6 can use sdnotify-wrapper")
        elif kind == "dbus":
            self.warn(entry, table.SUPERVISOR, "readiness (the bus name)")
        elif kind == "forking":
            commands = s.all("Service", "ExecStart")
            program = commands[-1].value.split()[0].lstrip("-@:+!") if commands else ""
            flag = FOREGROUND.get(os.path.basename(program))
            hint = (f"{os.path.basename(program)}'s foreground option is {flag}" if flag
                    else "find the daemon's foreground option")
            self.refuse_or_warn(entry, f"{entry.where}: Type=forking: the daemon would leave "
                                "the supervisor by forking into the background; "
                                f"{hint}: put it in ExecStart= and Type=simple in a "
                                "drop-in (NAME.service.d/*.conf in a --unit-path directory)")
        elif kind == "oneshot":
            self.refuse_or_warn(entry, f"{entry.where}: Type=oneshot: not a long-running "
                                "service; run it as a one-time step (an s6-rc oneshot, a "
                                "line of a run script) instead")
        elif kind not in ("simple", "exec", "idle"):
            self.warn(entry, None, f"unknown Type={kind}; converted as simple")
        if kind == "idle":
            self.warn(entry, table.SUPERVISOR, "start delay (Type=idle)")
        pipe = s.last("Service", "IgnoreSIGPIPE")
        if pipe is not None and self.boolean(s, "Service", "IgnoreSIGPIPE", True):
            self.warn(pipe, table.NOT_IN_CHAIN, "no link ignores a signal: SIGPIPE keeps "
                      "the disposition the supervisor gives")
        if self.accept:
            for entry in s.entries:
                if entry.section == "Service" and ("%i" in entry.value or "%I" in entry.value):
                    self.warn(entry, table.NOT_IN_CHAIN, "the instance name of an "
                              "Accept=yes connection is not known before it comes; "
                              "%i is empty")
        if self.boolean(s, "Service", "DynamicUser", False):
            d = s.last("Service", "DynamicUser")
            self.refuse_or_warn(d, f"{d.where}: DynamicUser=yes: the account exists only "
                                "while systemd runs the service; use a static account "
                                "(User= in a drop-in)")

    # environment ------------------------------------------------------------------

    def environment(self):
        s = self.service
        links = []
        if not self.keep_environment:
            links += [["clearenv"], ["setenv", "PATH", DEFAULT_PATH]]
        if self.user:
            links.append(["userenv", self.user])
        for var, paths in self.directory_variables():
            links.append(["setenv", var, ":".join(paths)])
        assigned = {}
        for entry in s.all("Service", "Environment"):
            for word in self.words(s, entry):
                pair = syntax.env_assignment(word)
                if pair is None:
                    self.warn(entry, None, f"invalid assignment {word!r}; ignored, as "
                              "systemd does")
                    continue
                assigned[pair[0]] = pair[1]
        links += [["setenv", name, value] for name, value in assigned.items()]
        for entry in s.all("Service", "EnvironmentFile"):
            value = entry.value
            optional = value.startswith("-")
            path = self.spec(s, entry, value[1:] if optional else value)
            if path is None:
                continue
            if not path.startswith("/"):
                self.warn(entry, None, "not an absolute path; ignored, as systemd does")
                continue
            if any(c in path for c in "*?["):
                self.warn(entry, table.NOT_IN_CHAIN, "a wildcard: envfile reads one file")
                continue
            links.append(["envfile", *(["--ignore-missing"] if optional else []), path])
        for entry in s.all("Service", "UnsetEnvironment"):
            for word in self.words(s, entry):
                if syntax.env_name_valid(word):
                    links.append(["unsetenv", word])
                else:
                    self.warn(entry, table.NOT_IN_CHAIN,
                              f"unsetting only when the value matches ({word})")
        return links

    # limits ------------------------------------------------------------------------

    LIMITS = {  # systemd name -> (option, kind of value)
        "NOFILE": ("-o", "n"), "AS": ("-a", "bytes"), "DATA": ("-d", "bytes"),
        "STACK": ("-s", "bytes"), "MEMLOCK": ("-l", "bytes"), "FSIZE": ("-f", "bytes"),
        "CORE": ("-c", "bytes"), "RSS": ("-r", "bytes"), "NPROC": ("-p", "n"),
        "CPU": ("-t", "sec"), "RTPRIO": ("--rtprio", "n"), "RTTIME": ("--rttime", "usec"),
        "SIGPENDING": ("--sigpending", "n"), "MSGQUEUE": ("--msgqueue", "bytes"),
        "NICE": ("--nice", "nice"), "LOCKS": ("--locks", "n"),
    }

    def limits(self):
        s = self.service
        hard, soft = [], []
        for name, (option, kind) in self.LIMITS.items():
            entry = s.last("Service", "Limit" + name)
            if entry is None:
                continue
            try:
                low, high = parse_rlimit(entry.value, kind)
            except syntax.SyntaxProblem as e:
                self.warn(entry, None, f"{e}; ignored, as systemd does")
                continue
            hard += [option, high]
            soft += [option, "=" if low == high else low]
        if not hard:
            return []
        return [["hardlimit", *hard], ["softlimit", *soft]]

    def umask(self):
        value, entry = self.single(self.service, "Service", "UMask", resolve=False)
        if value is None:
            return [["umask", "0022"]]
        try:
            return [["umask", f"0{int(mode_text(value, 'UMask'), 8) & 0o777:03o}"]]
        except syntax.SyntaxProblem as e:
            self.warn(entry, None, f"{e}; the default 0022 is used, as systemd does")
            return [["umask", "0022"]]

    # directories ------------------------------------------------------------------

    KINDS = (("Runtime", "runtime", "RUNTIME_DIRECTORY"), ("State", "state", "STATE_DIRECTORY"),
             ("Cache", "cache", "CACHE_DIRECTORY"), ("Logs", "logs", "LOGS_DIRECTORY"),
             ("Configuration", "configuration", "CONFIGURATION_DIRECTORY"))

    def directory_list(self):
        """(kind, absolute path, mode, owner?) of each *Directory= entry."""
        s = self.service
        out = []
        for prefix, kind, _ in self.KINDS:
            mode_entry = s.last("Service", prefix + "DirectoryMode")
            mode = "0755"
            if mode_entry is not None:
                try:
                    mode = mode_text(mode_entry.value, prefix + "DirectoryMode")
                except syntax.SyntaxProblem as e:
                    self.warn(mode_entry, None, f"{e}; the default 0755 is used")
            for entry in s.all("Service", prefix + "Directory"):
                for word in self.words(s, entry, cunescape=False, retain_escape=True):
                    path, colon, link = word.partition(":")
                    if colon:
                        self.warn(entry, table.NOT_IN_CHAIN, f"the symlink {link}")
                    parts = path.split("/")
                    if path.startswith("/") or ".." in parts or not path:
                        self.warn(entry, None, f"{path}: not a relative path; ignored, "
                                  "as systemd does")
                        continue
                    base = self.host.dirs[kind]
                    out.append((kind, f"{base}/{path.strip('/')}", mode))
        return out

    def directory_variables(self):
        found = {}
        for kind, path, _ in self.directory_list():
            found.setdefault(kind, []).append(path)
        return [(var, found[kind]) for _, kind, var in self.KINDS if kind in found]

    def directories(self):
        links = []
        for kind, path, mode in self.directory_list():
            owner = []
            if kind != "configuration" and not self.host.user:
                if self.user:
                    owner += ["-o", self.user, "-g", self.group or self.primary_group(
                        self.user, self.service.last("Service", "User"))]
                elif self.group:
                    owner += ["-g", self.group]
            links.append(["install-dir", "-m", mode, *owner, path])
        return links

    def primary_group(self, user, entry):
        """The name of USER's primary group, looked up here, now."""
        import grp
        import pwd

        try:
            found = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
        except (KeyError, ValueError):
            self.warn(entry, None, f"no account {user} here to find its group; the group "
                      f"{user} is assumed", value=user)
            return user
        try:
            return grp.getgrgid(found.pw_gid).gr_name
        except KeyError:
            return str(found.pw_gid)

    # sockets -------------------------------------------------------------------------

    def listen_entries(self, unit):
        chosen = {id(e) for key in LISTEN_KEYS for e in unit.all("Socket", key)}
        return [e for e in unit.entries if id(e) in chosen]

    def listeners(self):
        links = []
        total = 0
        for unit in self.sockets:
            accept = unit is self.sockets[0] and self.accept
            entries = self.listen_entries(unit)
            if accept and len(entries) != 1:
                raise Refusal(f"{unit.path}: Accept=yes with {len(entries)} Listen lines: "
                              "convert a socket unit with exactly one.")
            for entry in entries:
                made = self.listener(unit, entry, accept)
                links += made
                total += 1
            if accept:
                links.append(self.accept_link(unit, entries[0]))
            self.not_for(unit, entries)
        if not total and self.sockets:
            raise Refusal(f"{self.sockets[0].path}: No Listen*= line to convert.")
        if not self.accept and self.sockets and self.stdin() == "socket":
            if total != 1:
                raise Refusal(f"{self.service.path}: StandardInput=socket needs exactly "
                              "one socket.")
            links.append(["fdmove", "0", "3"])
        return links

    def listener(self, unit, entry, accept):
        key = entry.key
        if key not in ("ListenStream", "ListenDatagram", "ListenSequentialPacket"):
            message = (f"{entry.where}: {key}={entry.value}: chainload has no listener for "
                       "this kind of file descriptor")
            self.refuse_or_warn(entry, message)
            return []
        value = self.spec(unit, entry)
        if value is None:
            return []
        try:
            address = parse_listen(value, key)
        except syntax.SyntaxProblem as e:
            raise Refusal(f"{entry.where}: {key}={value}: {e}.") from None
        links = []
        words = []
        passing = not accept and self.stdin() != "socket"
        if passing:
            words += ["--systemd-compatibility", "--fd-name", self.fd_name(unit)]
        if address[0] == "unix":
            path = address[1]
            command = {"ListenStream": "local-stream-socket-listen",
                       "ListenDatagram": "local-datagram-socket-listen",
                       "ListenSequentialPacket": "local-seqpacket-socket-listen"}[key]
            if not path.startswith("@"):
                parent = os.path.dirname(path)
                if parent != "/":
                    links.append(["install-dir", "--if-missing", "-m",
                                  self.socket_mode(unit, "DirectoryMode", "0755"), parent])
                words += ["--mode", self.socket_mode(unit, "SocketMode", "0666")]
                words += self.socket_owner(unit)
            if key != "ListenDatagram":
                words += self.backlog(unit)
            if self.boolean(unit, "Socket", "PassCredentials", False):
                words.append("--pass-credentials")
            if self.boolean(unit, "Socket", "PassSecurity", False):
                words.append("--pass-security")
            words.append(path)
        else:
            _, host, port, family = address
            if key == "ListenSequentialPacket":
                raise Refusal(f"{entry.where}: {key}={value}: Not a local socket path.")
            command = "tcp-socket-listen" if key == "ListenStream" else "udp-socket-listen"
            if key == "ListenStream":
                words += self.backlog(unit)
            if self.boolean(unit, "Socket", "ReusePort", False):
                words.append("--reuse-port")
            if self.boolean(unit, "Socket", "FreeBind", False):
                words.append("--bind-to-any")
            if family == 6 and self.ipv6_only(unit) is False:
                words.append("--combine4and6")
            words += ["-H", host, port]
        links.append([command, *words])
        return links

    def not_for(self, unit, entries):
        """Warn about the options that apply to none of UNIT's listeners."""
        kinds = set()
        for entry in entries:
            try:
                kinds.add(parse_listen(self.spec(unit, entry) or "", entry.key)[0])
            except syntax.SyntaxProblem:
                pass
        for kind, keys, what in (
                ("unix", ("PassCredentials", "PassSecurity", "SocketMode", "SocketUser",
                          "SocketGroup", "DirectoryMode"), "an IP socket"),
                ("inet", ("ReusePort", "FreeBind", "BindIPv6Only"), "an AF_UNIX socket")):
            if kinds and kind not in kinds:
                for key in keys:
                    entry = unit.last("Socket", key)
                    if entry is not None:
                        self.warn(entry, None, f"no effect on {what}")

    def ipv6_only(self, unit):
        value, entry = self.single(unit, "Socket", "BindIPv6Only", resolve=False)
        if value in (None, "default", "both"):
            return False
        if value == "ipv6-only":
            return True
        try:
            return syntax.parse_boolean(value)  # systemd: a boolean means ipv6-only or both
        except syntax.SyntaxProblem:
            self.warn(entry, None, "not default, both or ipv6-only; the default is used")
            return False

    def socket_mode(self, unit, key, default):
        entry = unit.last("Socket", key)
        if entry is None:
            return default
        try:
            return mode_text(entry.value, key)
        except syntax.SyntaxProblem as e:
            self.warn(entry, None, f"{e}; the default {default} is used, as systemd does")
            return default

    def socket_owner(self, unit):
        user, entry = self.single(unit, "Socket", "SocketUser")
        group = self.single(unit, "Socket", "SocketGroup")[0]
        words = []
        if user:
            words += ["--user", user]
            if not group:
                group = self.primary_group(user, entry)
        if group:
            words += ["--group", group]
        return words

    def backlog(self, unit):
        value, entry = self.single(unit, "Socket", "Backlog", resolve=False)
        if value is None:
            return []
        if not value.isdigit() or int(value) > 2**31 - 1:
            self.warn(entry, None, "not a number; the default is used, as systemd does")
            return []
        return ["--backlog", str(int(value))]

    def fd_name(self, unit):
        value, entry = self.single(unit, "Socket", "FileDescriptorName")
        if value is None:
            return unit.name
        if not value or len(value) > 255 or ":" in value or not all(
                32 <= ord(c) < 127 for c in value):
            self.warn(entry, None, "not a valid name; the unit's name is used, as systemd does")
            return unit.name
        return value

    def accept_link(self, unit, entry):
        key = entry.key
        value = self.spec(unit, entry) or ""
        address = parse_listen(value, key)
        if key == "ListenDatagram":
            raise Refusal(f"{entry.where}: Accept=yes with a datagram socket: systemd "
                          "refuses it too.")
        if address[0] == "unix":
            command = ("local-stream-socket-accept" if key == "ListenStream"
                       else "local-seqpacket-socket-accept")
        else:
            command = "tcp-socket-accept"
        limit, limit_entry = self.single(unit, "Socket", "MaxConnections", resolve=False)
        if limit is None or not limit.isdigit() or int(limit) < 1:
            if limit is not None:
                self.warn(limit_entry, None, "not a positive number; the default 64 is used")
            limit = "64"
        words = [command]
        if self.stdin() != "socket":
            words.append("--systemd-compatibility")
        return [*words, "--connection-limit", str(int(limit))]

    # working directory, redirections ----------------------------------------------

    def home_of(self, user, entry):
        import pwd

        try:
            return pwd.getpwnam(user).pw_dir
        except KeyError:
            self.warn(entry, None, f"~: no account {user} here to find its home")
            return None

    def working_directory(self):
        s = self.service
        value, entry = self.single(s, "Service", "WorkingDirectory")
        if value is None:
            if self.host.user:
                return [["chdir", self.host.home]]
            return [["chdir", "/"]]
        if value.startswith("-"):
            value = value[1:]
            self.warn(entry, table.NOT_IN_CHAIN, "the - prefix: chdir fails if the "
                      "directory is missing")
        if value == "~":
            home = self.home_of(self.user, entry) if self.user else self.host.home
            if home is None:
                return []
            value = home
        if not value.startswith("/"):
            self.warn(entry, None, "not an absolute path; ignored, as systemd does")
            return []
        return [["chdir", value]]

    def stdin(self):
        value = self.service.last("Service", "StandardInput")
        return value.value if value else "null"

    def redirections(self):
        s = self.service
        links = []
        stdin = self.stdin()
        entry = s.last("Service", "StandardInput")
        socket_io = stdin == "socket"
        if stdin == "socket":
            if not self.sockets:
                self.warn(entry, None, "no socket to take it from")
                socket_io = False
        elif stdin == "null":
            links.append(["fdredir", "--read", "0", "/dev/null"])
        elif stdin.startswith("file:"):
            path = self.spec(s, entry, stdin[5:])
            if path:
                links.append(["fdredir", "--read", "0", path])
        else:
            self.warn(entry, table.NOT_IN_CHAIN, "no chainload link gives this standard input")
        out_entry = s.last("Service", "StandardOutput")
        stdout = out_entry.value if out_entry else ("socket" if socket_io else "inherit")
        out_links = self.output(1, stdout, out_entry, socket_io)
        links += out_links
        err_entry = s.last("Service", "StandardError")
        stderr = err_entry.value if err_entry else "inherit"
        if stderr == "inherit" or stderr == stdout and not stderr.startswith("truncate:"):
            if out_links:  # standard error goes where standard output was sent
                links.append(["fdmove", "-c", "2", "1"])
        else:
            links += self.output(2, stderr, err_entry, socket_io)
        return links

    def output(self, fd, value, entry, socket_io):
        s = self.service
        if value in ("inherit",):
            return []
        if value == "socket":
            if socket_io:
                return [["fdmove", "-c", str(fd), "0"]] if fd == 1 else [["fdmove", "-c", "2", "1"]]
            if self.accept:
                return [["fdmove", "-c", str(fd), "3"]]
            self.warn(entry, None, "no socket connection to put there")
            return []
        if value == "null":
            return [["fdredir", "--write", str(fd), "/dev/null"]]
        for prefix, option in (("file:", "--update"), ("append:", "--append"),
                               ("truncate:", "--write")):
            if value.startswith(prefix):
                path = self.spec(s, entry, value[len(prefix):])
                return [["fdredir", option, str(fd), path]] if path else []
        if value.startswith(("journal", "syslog", "kmsg")):
            self.warn(entry, table.SUPERVISOR, "logging: the output goes to the supervisor's "
                      "logger")
            return []
        self.warn(entry, table.NOT_IN_CHAIN, "no chainload link gives this output")
        return []

    # scheduling ------------------------------------------------------------------------

    def scheduling(self):
        s = self.service
        links = []
        nice = self.number(s, "Nice", -20, 19)
        if nice is not None:
            links.append(["nice", "-n", str(nice)])
        io_class, io_entry = self.single(s, "Service", "IOSchedulingClass", resolve=False)
        io_prio = self.number(s, "IOSchedulingPriority", 0, 7)
        if io_class is not None or io_prio is not None:
            classes = {"none": "0", "0": "0", "realtime": "1", "1": "1", "best-effort": "2",
                       "2": "2", "idle": "3", "3": "3"}
            number = classes.get(io_class or "best-effort")
            if number is None:
                self.warn(io_entry, None, "unknown class; ignored, as systemd does")
            else:
                words = ["ionice", "-c", number]
                if number in ("1", "2") and io_prio is not None:
                    words += ["-n", str(io_prio)]
                links.append(words)
        policy, p_entry = self.single(s, "Service", "CPUSchedulingPolicy", resolve=False)
        priority = self.number(s, "CPUSchedulingPriority", 0, 99)
        if policy is not None or priority is not None:
            if policy not in (None, "other", "batch", "idle", "fifo", "rr"):
                self.warn(p_entry, None, "unknown policy; ignored, as systemd does")
            else:
                words = ["chrt", f"--{policy or 'other'}"]
                if self.boolean(s, "Service", "CPUSchedulingResetOnFork", False):
                    words.append("--reset-on-fork")
                realtime = policy in ("fifo", "rr")
                words.append(str(priority if realtime and priority else 1 if realtime else 0))
                links.append(words)
        oom = self.number(s, "OOMScoreAdjust", -1000, 1000)
        if oom is not None:
            links.append(["choom", "-n", str(oom), "--"])
        if links:
            links.append([self.chainload])
        return links

    def number(self, unit, key, low, high):
        value, entry = self.single(unit, "Service", key, resolve=False)
        if value is None:
            return None
        try:
            n = int(value)
            if low <= n <= high:
                return n
        except ValueError:
            pass
        self.warn(entry, None, f"not a number from {low} to {high}; ignored, as systemd does")
        return None

    # commands --------------------------------------------------------------------------

    def commands(self, key):
        s = self.service
        out = []
        for entry in s.all("Service", key):
            def resolve(word, entry=entry):
                value = units.expand_specifiers(word, self.specifiers[s.name])
                return value
            try:
                out += syntax.parse_exec(entry, resolve,
                                         lambda m, e=entry: self.warn(e, None, m))
            except syntax.SyntaxProblem as e:
                if entry.value.lstrip().startswith("-"):
                    self.warn(entry, None, f"{e}; ignored, as systemd does")
                    continue
                raise Refusal(f"{entry.where}: {key}={entry.value}: {e}: systemd does not "
                              "load this unit either.") from None
        return out

    def main_command(self):
        s = self.service
        commands = self.commands("ExecStart")
        if not commands:
            raise Refusal(f"{s.path}: No ExecStart=: there is no program to run "
                          "(add ExecStart= in a drop-in).")
        if len(commands) > 1:
            entry = commands[1].entry
            self.refuse_or_warn(entry, f"{entry.where}: More than one ExecStart= command: "
                                "systemd allows that only for Type=oneshot")
            self.extra_starts = commands[:-1]
        else:
            self.extra_starts = []
        main = commands[-1]
        if "-" in main.prefixes:
            self.warn(main.entry, table.SUPERVISOR, "the - prefix: an exit status to "
                      "treat as success")
        return main

    def pre_commands(self):
        commands = self.commands("ExecCondition") + self.commands("ExecStartPre")
        if self.boolean(self.service, "Service", "PermissionsStartOnly", False):
            for c in commands:
                c.prefixes.add("+")
        return commands + self.extra_starts

    def privileges(self, command):
        """The links that drop privileges for COMMAND."""
        if not self.user and not self.group:
            return []
        if command.prefixes & {"+", "!"}:
            return []
        s = self.service
        user_entry = s.last("Service", "User")
        if not self.user:
            self.warn(s.last("Service", "Group"), table.NOT_IN_CHAIN,
                      "Group= without User=: setuidgid needs an account")
            return []
        groups = []
        for entry in s.all("Service", "SupplementaryGroups"):
            groups += self.words(s, entry, cunescape=False)
        caps = []
        for entry in s.all("Service", "AmbientCapabilities"):
            caps += [w.lower() for w in self.words(s, entry, cunescape=False)]
        if caps:
            group = self.group or self.primary_group(self.user, user_entry)
            words = ["setpriv", f"--reuid={self.user}", f"--regid={group}"]
            words += [f"--groups={','.join(groups)}"] if groups else ["--init-groups"]
            spec = ",".join("+" + c.removeprefix("cap_") for c in caps)
            words += ["--securebits=+keep_caps", f"--inh-caps={spec}",
                      f"--ambient-caps={spec}", "--"]
            return [words, [self.chainload]]
        if self.user.isdigit():
            gid = self.group if self.group and self.group.isdigit() else self.user
            if self.group and not self.group.isdigit():
                self.warn(s.last("Service", "Group"), None,
                          "a group name with a numeric User=; the uid is used as the gid")
            return [["setuidgid", f"{self.user}:{gid}"]]
        words = ["setuidgid", "-s"]
        if self.group:
            words += ["-g", self.group]
        if groups:
            words += ["--groups", ",".join(groups)]
        return [[*words, self.user]]

    def command_words(self, command):
        """The words that run COMMAND: privilege drop, substitute, program."""
        links = self.privileges(command)
        words = [w for link in links[:1] for w in link]
        reentry = links[1:]  # the chainload that setpriv runs, if a builtin follows
        argv = [command.path, *command.argv[1:]]
        if "@" in command.prefixes:
            self.warn(command.entry, table.NOT_IN_CHAIN,
                      f"the @ prefix: argv[0] is {command.path}, not {command.argv[0]}")
        if ":" not in command.prefixes and syntax.needs_substitution(argv):
            words += [w for link in reentry for w in link]
            words.append("substitute")
        return [*words, *argv]

    # the script -------------------------------------------------------------------------

    def script(self, links):
        lines = ["#!/bin/sh", "# Converted by chainload-convert from:"]
        for unit in self.units:
            lines += [f"#   {f}" for f in unit.files]
        body = " \\\n    ".join(" ".join(quote(w) for w in link) for link in links)
        lines.append(f"exec {quote(self.chainload)} \\\n    {body}")
        return "\n".join(lines) + "\n"


def drop_reentry(links, chainload):
    """LINKS without a "chainload" re-entry (after nice, ionice, chrt or
    choom) when only the program follows it: chainload runs builtins."""
    out = []
    for index, link in enumerate(links):
        if link == [chainload] and index == len(links) - 2:
            if links[-1][0] not in EMITTED_BUILTINS:
                continue
        out.append(link)
    return out


# The builtins this converter emits (checked against the command table).
EMITTED_BUILTINS = (
    "clearenv", "setenv", "userenv", "envfile", "unsetenv", "substitute", "hardlimit",
    "softlimit", "umask", "install-dir", "local-stream-socket-listen",
    "local-datagram-socket-listen", "local-seqpacket-socket-listen", "tcp-socket-listen",
    "udp-socket-listen", "tcp-socket-accept", "local-stream-socket-accept",
    "local-seqpacket-socket-accept", "chdir", "fdredir", "fdmove", "if", "foreground",
    "setuidgid",
)


_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+\Z")


def quote(word):
    """WORD as one shell word (a bare word when nothing in it is special)."""
    if _SAFE.match(word):
        return word
    return shlex.quote(word)


def parse_listen(value, key):
    """("unix", path) or ("inet", host, port, family) of a Listen*= value."""
    if value.startswith("/"):
        if len(value.encode("utf-8", "surrogateescape")) >= 108:
            raise syntax.SyntaxProblem("The path is too long for a socket")
        return "unix", syntax._simplify(value)
    if value.startswith("@"):
        return "unix", value
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)(%[^\]]+)?\]:([0-9]+)", value)
    if m:
        return "inet", m.group(1) + (m.group(2) or ""), _port(m.group(3)), 6
    m = re.fullmatch(r"([0-9]{1,3}(?:\.[0-9]{1,3}){3}):([0-9]+)", value)
    if m:
        return "inet", m.group(1), _port(m.group(2)), 4
    if value.isdigit():
        return "inet", "::", _port(value), 6
    raise syntax.SyntaxProblem("Not a socket address chainload can listen on")


def _port(text):
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise syntax.SyntaxProblem(f"Port {text} is not 1 to 65535")
    return str(int(text))


_SIZE = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5,
         "E": 1024**6, "B": 1}
_TIME_US = {"": 1_000_000, "us": 1, "usec": 1, "ms": 1000, "msec": 1000, "s": 1_000_000,
            "sec": 1_000_000, "second": 1_000_000, "seconds": 1_000_000, "m": 60_000_000,
            "min": 60_000_000, "minute": 60_000_000, "minutes": 60_000_000,
            "h": 3_600_000_000, "hr": 3_600_000_000, "hour": 3_600_000_000,
            "hours": 3_600_000_000, "d": 86_400_000_000, "day": 86_400_000_000,
            "days": 86_400_000_000, "w": 604_800_000_000, "week": 604_800_000_000,
            "weeks": 604_800_000_000}


def _limit_value(text, kind):
    text = text.strip()
    if text == "infinity":
        return "unlimited"
    if kind == "n":
        if text.isdigit():
            return str(int(text))
    elif kind == "bytes":
        m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGTPEB]?)", text)
        if m:
            return str(int(float(m.group(1)) * _SIZE[m.group(2)]))
    elif kind in ("sec", "usec"):
        total = 0
        parts = re.findall(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)", text)
        if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
            for n, u in parts:
                if u not in _TIME_US:
                    break
                default = 1 if kind == "usec" and not u else _TIME_US[u]
                total += float(n) * default
            else:
                if kind == "sec":
                    return str(int(-(-total // 1_000_000)))  # rounded up, as systemd does
                return str(int(total))
    elif kind == "nice":
        m = re.fullmatch(r"([+-])?([0-9]+)", text)
        if m:
            n = int(m.group(2))
            if m.group(1):  # a nice value: RLIMIT_NICE is 20 - nice
                n = -n if m.group(1) == "-" else n
                if -20 <= n <= 19:
                    return str(20 - n)
            elif n <= 40:
                return str(n)
    raise syntax.SyntaxProblem("Not a resource limit")


def parse_rlimit(value, kind):
    """(soft, hard) of a Limit*= value ("N" or "SOFT:HARD"), as link words."""
    low, colon, high = value.partition(":")
    soft = _limit_value(low, kind)
    hard = _limit_value(high, kind) if colon else soft
    if hard != "unlimited" and (soft == "unlimited" or int(soft) > int(hard)):
        raise syntax.SyntaxProblem("The soft limit is above the hard limit")
    return soft, hard
