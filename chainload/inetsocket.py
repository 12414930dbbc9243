"""IP listeners: name resolution, the port range and the socket options.

Shared by tcp-socket-listen and udp-socket-listen, which differ only in the
socket type (and a UDP socket is never listen()ed). The steps, in order:

1. Everything that can be checked without side effects: the host, the
   service (a number must be 1 to 65535: glibc would silently wrap 99999
   to 34463 and turn 65536 or 0 into a random port), the backlog and
   --fd-name.
2. getaddrinfo(HOST, SERVICE, AI_PASSIVE | the asked flags); the FIRST
   result is the one bound, as in nosh.
3. The socket, SO_REUSEADDR (on unless --no-reuse-address), SO_REUSEPORT,
   IP_FREEBIND and, for IPv6, IPV6_V6ONLY (on unless --combine4and6).
4. bind(), listen() (not for UDP), then chainload.listen.pass_listener().

Every message names HOST SERVICE as given. There is no file, so nothing
has to be undone on a later failure: the socket closes with the process.
"""

from chainload import core, listen

PORT_MAX = 65535
IP_FREEBIND = 15  # <linux/in.h>; Python's socket module does not name it

# Option lines of the usage texts.
IP_OPTIONS = """\
  --no-reuse-address         Do not set SO_REUSEADDR (it is set by default).
  --reuse-port               Set SO_REUSEPORT.
  --bind-to-any              Set IP_FREEBIND: bind an address not (yet) local.
  --combine4and6             Clear IPV6_V6ONLY: IPv6 also takes IPv4 traffic.
  -H, --numeric-host         HOST must be a numeric address (AI_NUMERICHOST).
  --numeric-service          SERVICE must be a port number (AI_NUMERICSERV).
  --check-interfaces         Resolve with AI_ADDRCONFIG."""


def preload():
    import _socket  # noqa: F401


def service_of(service, numeric_only):
    """SERVICE checked: a port number 1..65535 (plain decimal), or a name
    from the services database, which starts with a letter."""
    if service[:1].isascii() and service[:1].isalpha():
        if numeric_only:
            raise core.usage_error(f"service: {service}: Not a port number "
                                   "(--numeric-service).")
        return service
    if not (service.isascii() and service.isdigit()):
        raise core.usage_error(f"service: {service}: Not a port number or service name.")
    if len(service) > 1 and service.startswith("0"):
        # getaddrinfo reads 010 as 10; our numbers elsewhere read it as 8.
        raise core.usage_error(f"service: {service}: Ambiguous leading 0 "
                               "(write the port in plain decimal).")
    return str(core.parse_number(service, "service", PORT_MAX, minimum=1))


def run(args, env, kind):
    """The whole of an IP listener of socket type KIND ("SOCK_STREAM" or
    "SOCK_DGRAM"); returns the next program's argv."""
    import _socket as socket  # socket.py's enums, selectors, array: ~3-6 ms

    # 1. Everything that can be checked without side effects.
    listening = kind == "SOCK_STREAM"
    host = args["<host>"]
    if not host:
        raise core.usage_error("Empty host name.")
    service = service_of(args["<service>"], args["--numeric-service"])
    backlog = listen.backlog(args, socket.SOMAXCONN) if listening else None
    passing = listen.passing(args)
    where = f"{host} {args['<service>']}"

    # 2. The address: the first result.
    flags = socket.AI_PASSIVE
    for option, flag in (("--numeric-host", socket.AI_NUMERICHOST),
                         ("--numeric-service", socket.AI_NUMERICSERV),
                         ("--check-interfaces", socket.AI_ADDRCONFIG)):
        if args[option]:
            flags |= flag
    kind = getattr(socket, kind)
    try:
        found = socket.getaddrinfo(core.encode(host), core.encode(service),
                                   socket.AF_UNSPEC, kind, 0, flags)
    except socket.gaierror as e:
        raise core.Fail(core.EXIT_SYSTEM, f"{where}: {e.strerror}") from None
    except OSError as e:  # EAI_SYSTEM: the errno
        raise core.system_error(where, e) from None
    if not found:  # getaddrinfo promises at least one, but do not trust it
        raise core.Fail(core.EXIT_SYSTEM, f"{where}: No address found.")
    family, _, proto, _, sockaddr = found[0]

    # 3. The socket and its options; 4. bind and listen.
    options = [("--no-reuse-address", socket.SOL_SOCKET, socket.SO_REUSEADDR,
                0 if args["--no-reuse-address"] else 1)]
    if args["--reuse-port"]:
        options.append(("--reuse-port", socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
    if args["--bind-to-any"]:  # SOL_IP works on an IPv6 socket too
        options.append(("--bind-to-any", socket.SOL_IP, IP_FREEBIND, 1))
    if family == socket.AF_INET6:
        options.append(("--combine4and6", socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                        0 if args["--combine4and6"] else 1))
    try:
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise core.system_error(where, e) from None
    try:
        for option, level, name, value in options:
            try:
                sock.setsockopt(level, name, value)
            except OSError as e:
                raise core.system_error(f"{where}: {option}", e) from None
        sock.bind(sockaddr)
        if listening:
            sock.listen(backlog)
        listen.pass_listener(sock.detach(), env, where, **passing)
    except (OSError, core.Fail) as e:
        sock.close()
        if isinstance(e, core.Fail):
            raise
        raise core.system_error(where, e) from None
    return args["<next-prog>"]
