"""What happens to each directive: the one table of chainload-convert.

Each section maps a directive to (KIND, TEXT):

    CHAIN        converted; TEXT names the links it becomes
    SUPERVISOR   not converted: the supervisor's job; TEXT says what it is
    NOT_IN_CHAIN not converted: not expressible in a chain; TEXT says why
    NO_EFFECT    nothing to convert (documentation); no warning

Warnings come from this table: a directive of kind SUPERVISOR or
NOT_IN_CHAIN, or one that is in no table, gives one warning line.
"""

CHAIN = "chain"
SUPERVISOR = "supervisor"
NOT_IN_CHAIN = "not-in-chain"
NO_EFFECT = "no-effect"

# Why-texts of the warnings, by kind.
WHY = {
    SUPERVISOR: "the supervisor's job",
    NOT_IN_CHAIN: "not expressible in a chain",
}

_DEPENDENCY = (SUPERVISOR, "dependencies and ordering")
_CONDITION = (SUPERVISOR, "start conditions")
_MANAGER = (SUPERVISOR, "the service manager's policy")

UNIT = {
    "Description": (NO_EFFECT, "documentation"),
    "Documentation": (NO_EFFECT, "documentation"),
    **{k: _DEPENDENCY for k in (
        "Requires", "Wants", "BindsTo", "PartOf", "Upholds", "Requisite", "Conflicts",
        "Before", "After", "OnFailure", "OnSuccess", "PropagatesReloadTo",
        "ReloadPropagatedFrom", "PropagatesStopTo", "StopPropagatedFrom",
        "RequiresMountsFor", "DefaultDependencies", "StopWhenUnneeded", "IgnoreOnIsolate")},
    **{k: _MANAGER for k in (
        "OnFailureJobMode", "RefuseManualStart", "RefuseManualStop", "AllowIsolate",
        "CollectMode", "FailureAction", "SuccessAction", "FailureActionExitStatus",
        "SuccessActionExitStatus", "JobTimeoutSec", "JobRunningTimeoutSec",
        "JobTimeoutAction", "JobTimeoutRebootArgument", "StartLimitIntervalSec",
        "StartLimitBurst", "StartLimitAction", "RebootArgument", "SourcePath")},
    "JoinsNamespaceOf": (NOT_IN_CHAIN, "sandboxing"),
}
# Condition*= and Assert*= are looked up by prefix (see kind_of).

# Directives of the execution environment: [Service], and the [Socket]'s
# own commands (whose ExecStartPre= etc. the converter does not run).
EXEC = {
    "Environment": (CHAIN, "setenv NAME VALUE"),
    "EnvironmentFile": (CHAIN, "envfile [--ignore-missing] FILE"),
    "UnsetEnvironment": (CHAIN, "unsetenv NAME"),
    "PassEnvironment": (NOT_IN_CHAIN, "the manager's environment is not the supervisor's"),
    "User": (CHAIN, "userenv USER ... setuidgid -s USER"),
    "Group": (CHAIN, "setuidgid -g GROUP"),
    "SupplementaryGroups": (CHAIN, "setuidgid --groups G1,G2"),
    "DynamicUser": (CHAIN, "refused: use a static account"),
    "WorkingDirectory": (CHAIN, "chdir DIR"),
    "UMask": (CHAIN, "umask MODE"),
    "RuntimeDirectory": (CHAIN, "install-dir -m MODE -o USER -g GROUP /run/DIR"),
    "StateDirectory": (CHAIN, "install-dir ... /var/lib/DIR"),
    "CacheDirectory": (CHAIN, "install-dir ... /var/cache/DIR"),
    "LogsDirectory": (CHAIN, "install-dir ... /var/log/DIR"),
    "ConfigurationDirectory": (CHAIN, "install-dir -m MODE /etc/DIR"),
    "RuntimeDirectoryMode": (CHAIN, "install-dir -m"),
    "StateDirectoryMode": (CHAIN, "install-dir -m"),
    "CacheDirectoryMode": (CHAIN, "install-dir -m"),
    "LogsDirectoryMode": (CHAIN, "install-dir -m"),
    "ConfigurationDirectoryMode": (CHAIN, "install-dir -m"),
    "RuntimeDirectoryPreserve": (SUPERVISOR, "removing the runtime directory at stop"),
    "StandardInput": (CHAIN, "fdredir --read 0 FILE, or the connection"),
    "StandardOutput": (CHAIN, "fdredir --write|--append|--update 1 FILE"),
    "StandardError": (CHAIN, "fdredir ... 2 FILE, or fdmove -c 2 1"),
    "Nice": (CHAIN, "nice -n N (coreutils)"),
    "IOSchedulingClass": (CHAIN, "ionice -c CLASS (util-linux)"),
    "IOSchedulingPriority": (CHAIN, "ionice -n N (util-linux)"),
    "CPUSchedulingPolicy": (CHAIN, "chrt --POLICY (util-linux)"),
    "CPUSchedulingPriority": (CHAIN, "chrt ... PRIORITY (util-linux)"),
    "CPUSchedulingResetOnFork": (CHAIN, "chrt --reset-on-fork (util-linux)"),
    "OOMScoreAdjust": (CHAIN, "choom -n N (util-linux)"),
    "AmbientCapabilities": (CHAIN, "setpriv --inh-caps --ambient-caps (util-linux)"),
    "IgnoreSIGPIPE": (CHAIN, "no: nothing to do (the disposition is passed on); yes: "
                      "a warning"),
    "SyslogIdentifier": (SUPERVISOR, "logging"),
    "SyslogFacility": (SUPERVISOR, "logging"),
    "SyslogLevel": (SUPERVISOR, "logging"),
    "SyslogLevelPrefix": (SUPERVISOR, "logging"),
    "LogLevelMax": (SUPERVISOR, "logging"),
    "LogExtraFields": (SUPERVISOR, "logging"),
    "LogRateLimitIntervalSec": (SUPERVISOR, "logging"),
    "LogRateLimitBurst": (SUPERVISOR, "logging"),
    "LogNamespace": (SUPERVISOR, "logging"),
    "TTYPath": (NOT_IN_CHAIN, "no chainload link opens a controlling terminal"),
    "TTYReset": (NOT_IN_CHAIN, "no chainload link resets a terminal"),
    "TTYVHangup": (NOT_IN_CHAIN, "no chainload link hangs up a terminal"),
    "TTYVTDisallocate": (NOT_IN_CHAIN, "no chainload link deallocates a terminal"),
    "UtmpIdentifier": (NOT_IN_CHAIN, "utmp records"),
    "UtmpMode": (NOT_IN_CHAIN, "utmp records"),
    "PAMName": (NOT_IN_CHAIN, "a PAM session"),
    "KeyringMode": (NOT_IN_CHAIN, "kernel keyrings"),
    "RootDirectory": (NOT_IN_CHAIN, "no chroot link"),
    "RootImage": (NOT_IN_CHAIN, "disk images"),
    "CPUAffinity": (NOT_IN_CHAIN, "no CPU affinity link (taskset(1) could do it)"),
    "NUMAPolicy": (NOT_IN_CHAIN, "NUMA policy"),
    "NUMAMask": (NOT_IN_CHAIN, "NUMA policy"),
    "TimerSlackNSec": (NOT_IN_CHAIN, "timer slack"),
    "Personality": (NOT_IN_CHAIN, "execution domain"),
    "CoredumpFilter": (NOT_IN_CHAIN, "core dump filter"),
    "SecureBits": (NOT_IN_CHAIN, "sandboxing"),
    "CapabilityBoundingSet": (NOT_IN_CHAIN, "sandboxing"),
    "NoNewPrivileges": (NOT_IN_CHAIN, "sandboxing"),
    "LockPersonality": (NOT_IN_CHAIN, "sandboxing"),
    "MemoryDenyWriteExecute": (NOT_IN_CHAIN, "sandboxing"),
    "RemoveIPC": (NOT_IN_CHAIN, "sandboxing"),
    "MountFlags": (NOT_IN_CHAIN, "sandboxing"),
    "MountAPIVFS": (NOT_IN_CHAIN, "sandboxing"),
    "TemporaryFileSystem": (NOT_IN_CHAIN, "sandboxing"),
}
for _k in ("CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NOFILE", "AS", "NPROC",
           "MEMLOCK", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME"):
    EXEC["Limit" + _k] = (CHAIN, "hardlimit ... softlimit ...")

# Prefixes of directive names that are all sandboxing or resource control.
SANDBOX_PREFIXES = (
    "Protect", "Private", "Restrict", "SystemCall", "ReadWritePaths", "ReadOnlyPaths",
    "InaccessiblePaths", "ExecPaths", "NoExecPaths", "BindPaths", "BindReadOnlyPaths",
    "SELinux", "AppArmor", "Smack", "LoadCredential", "SetCredential", "ImportCredential",
    "NetworkNamespace", "IPCNamespace", "ProcSubset", "RootHash", "RootVerity",
    "MountImages", "ExtensionImages", "ExtensionDirectories", "BPFProgram",
)
CGROUP_PREFIXES = (
    "CPUAccounting", "CPUWeight", "StartupCPU", "CPUQuota", "CPUShares", "AllowedCPUs",
    "StartupAllowedCPUs", "AllowedMemoryNodes", "StartupAllowedMemoryNodes", "Memory",
    "Startup", "IO", "BlockIO", "Tasks", "IP", "Device", "Slice", "Delegate",
    "ManagedOOM", "DisableControllers", "SocketBind", "NFTSet",
)

SERVICE = {
    **EXEC,
    "Type": (CHAIN, "simple, exec, idle, notify, dbus; forking and oneshot are refused"),
    "ExecStart": (CHAIN, "the program, after substitute when it has $"),
    "ExecStartPre": (CHAIN, "if PROG ARGS ; (foreground with the - prefix)"),
    "ExecCondition": (CHAIN, "if PROG ARGS ;"),
    "Sockets": (CHAIN, "the listeners of these socket units"),
    "PermissionsStartOnly": (CHAIN, "ExecStartPre= run with full privileges"),
    "NonBlocking": (NOT_IN_CHAIN, "no listener option sets O_NONBLOCK"),
    "ExecStartPost": (SUPERVISOR, "commands after the start"),
    "ExecReload": (SUPERVISOR, "reloading"),
    "ExecStop": (SUPERVISOR, "stopping"),
    "ExecStopPost": (SUPERVISOR, "commands after the stop"),
    "Restart": (SUPERVISOR, "restarting"),
    "RestartSec": (SUPERVISOR, "restarting"),
    "RestartSteps": (SUPERVISOR, "restarting"),
    "RestartMaxDelaySec": (SUPERVISOR, "restarting"),
    "RestartPreventExitStatus": (SUPERVISOR, "restarting"),
    "RestartForceExitStatus": (SUPERVISOR, "restarting"),
    "SuccessExitStatus": (SUPERVISOR, "exit status policy"),
    "RemainAfterExit": (SUPERVISOR, "service state"),
    "GuessMainPID": (SUPERVISOR, "service state"),
    "PIDFile": (SUPERVISOR, "service state (the run script's process is the daemon)"),
    "BusName": (SUPERVISOR, "readiness (Type=dbus)"),
    "NotifyAccess": (SUPERVISOR, "readiness (sd_notify)"),
    "WatchdogSec": (SUPERVISOR, "the watchdog"),
    "WatchdogSignal": (SUPERVISOR, "the watchdog"),
    "KillMode": (SUPERVISOR, "stopping"),
    "KillSignal": (SUPERVISOR, "stopping"),
    "RestartKillSignal": (SUPERVISOR, "stopping"),
    "FinalKillSignal": (SUPERVISOR, "stopping"),
    "SendSIGKILL": (SUPERVISOR, "stopping"),
    "SendSIGHUP": (SUPERVISOR, "stopping"),
    "TimeoutSec": (SUPERVISOR, "timeouts"),
    "TimeoutStartSec": (SUPERVISOR, "timeouts"),
    "TimeoutStopSec": (SUPERVISOR, "timeouts"),
    "TimeoutAbortSec": (SUPERVISOR, "timeouts"),
    "TimeoutStartFailureMode": (SUPERVISOR, "timeouts"),
    "TimeoutStopFailureMode": (SUPERVISOR, "timeouts"),
    "RuntimeMaxSec": (SUPERVISOR, "timeouts"),
    "RuntimeRandomizedExtraSec": (SUPERVISOR, "timeouts"),
    "OOMPolicy": (SUPERVISOR, "the service manager's policy"),
    "ExitType": (SUPERVISOR, "service state"),
    "RootDirectoryStartOnly": (NOT_IN_CHAIN, "no chroot link"),
    "FileDescriptorStoreMax": (NOT_IN_CHAIN, "the manager's file descriptor store"),
    "FileDescriptorStorePreserve": (NOT_IN_CHAIN, "the manager's file descriptor store"),
    "USBFunctionDescriptors": (NOT_IN_CHAIN, "USB gadget functions"),
    "USBFunctionStrings": (NOT_IN_CHAIN, "USB gadget functions"),
    "OpenFile": (NOT_IN_CHAIN, "no link opens files for the service"),
    "ReloadSignal": (SUPERVISOR, "reloading"),
}

SOCKET = {
    "ListenStream": (CHAIN, "local-stream-socket-listen or tcp-socket-listen"),
    "ListenDatagram": (CHAIN, "local-datagram-socket-listen or udp-socket-listen"),
    "ListenSequentialPacket": (CHAIN, "local-seqpacket-socket-listen"),
    "ListenFIFO": (CHAIN, "refused: no FIFO listener"),
    "ListenSpecial": (CHAIN, "refused: no listener for special files"),
    "ListenNetlink": (CHAIN, "refused: no netlink listener"),
    "ListenMessageQueue": (CHAIN, "refused: no message queue listener"),
    "ListenUSBFunction": (CHAIN, "refused: no USB function listener"),
    "Accept": (CHAIN, "yes: the accept command after the listener"),
    "MaxConnections": (CHAIN, "--connection-limit N"),
    "Service": (CHAIN, "the service to convert with the socket"),
    "SocketMode": (CHAIN, "--mode (default 0666)"),
    "DirectoryMode": (CHAIN, "install-dir --if-missing -m MODE (default 0755)"),
    "SocketUser": (CHAIN, "--user"),
    "SocketGroup": (CHAIN, "--group"),
    "Backlog": (CHAIN, "--backlog"),
    "PassCredentials": (CHAIN, "--pass-credentials"),
    "PassSecurity": (CHAIN, "--pass-security"),
    "ReusePort": (CHAIN, "--reuse-port"),
    "FreeBind": (CHAIN, "--bind-to-any"),
    "BindIPv6Only": (CHAIN, "--combine4and6 unless ipv6-only"),
    "FileDescriptorName": (CHAIN, "--fd-name (default: the socket unit's name)"),
    "RemoveOnStop": (SUPERVISOR, "removing the socket file at stop"),
    "ExecStartPre": (SUPERVISOR, "the socket unit's own commands"),
    "ExecStartPost": (SUPERVISOR, "the socket unit's own commands"),
    "ExecStopPre": (SUPERVISOR, "the socket unit's own commands"),
    "ExecStopPost": (SUPERVISOR, "the socket unit's own commands"),
    "TimeoutSec": (SUPERVISOR, "timeouts"),
    "TriggerLimitIntervalSec": (SUPERVISOR, "activation rate limits"),
    "TriggerLimitBurst": (SUPERVISOR, "activation rate limits"),
    "PollLimitIntervalSec": (SUPERVISOR, "activation rate limits"),
    "PollLimitBurst": (SUPERVISOR, "activation rate limits"),
    "FlushPending": (SUPERVISOR, "activation"),
    "Symlinks": (NOT_IN_CHAIN, "no listener option makes symlinks"),
    "MaxConnectionsPerSource": (NOT_IN_CHAIN, "no accept option limits per source"),
}
for _k in ("KeepAlive", "KeepAliveTimeSec", "KeepAliveIntervalSec", "KeepAliveProbes",
           "NoDelay", "Priority", "DeferAcceptSec", "ReceiveBuffer", "SendBuffer",
           "IPTOS", "IPTTL", "Mark", "Transparent", "Broadcast", "PassPacketInfo",
           "Timestamping", "PipeSize", "MessageQueueMaxMessages",
           "MessageQueueMessageSize", "BindToDevice", "SocketProtocol", "Writable",
           "SmackLabel", "SmackLabelIPIn", "SmackLabelIPOut", "SELinuxContextFromNet"):
    SOCKET[_k] = (NOT_IN_CHAIN, "no listener option for it")
# The [Socket]'s own execution environment (for its ExecStartPre= etc.).
for _k in EXEC:
    SOCKET.setdefault(_k, (SUPERVISOR, "the socket unit's own commands"))

SECTIONS = {"Unit": UNIT, "Service": SERVICE, "Socket": SOCKET}


def kind_of(section, key):
    """(KIND, TEXT) of KEY in SECTION, or None for a directive no table has."""
    if section == "Install":
        return NO_EFFECT, "installation"
    if section.startswith("X-") or key.startswith("X-"):
        return NO_EFFECT, "extension"
    table = SECTIONS.get(section)
    if table is None:
        return None
    found = table.get(key)
    if found:
        return found
    if section == "Unit" and key.startswith(("Condition", "Assert")):
        return _CONDITION
    if section in ("Service", "Socket"):
        if key.startswith(SANDBOX_PREFIXES):
            return NOT_IN_CHAIN, "sandboxing"
        if key.startswith(CGROUP_PREFIXES):
            return NOT_IN_CHAIN, "resource control (cgroups)"
    return None
