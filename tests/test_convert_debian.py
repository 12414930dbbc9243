"""Every .socket and .service unit of a broad set of real Debian packages
converts without an internal error: each gives a script that passes
`sh -n`, or a refusal that names the unit and says what to do.

The packages are fetched with `apt-get download` (no install) and unpacked
with `dpkg-deb -x`, once, into pytest's cache directory (.pytest_cache):
later runs use them as they are. Skipped, with the reason, where apt-get
cannot download (no package lists, no network)."""

import os
import shutil
import subprocess

import pytest

from chainload.convert import emit, units

PACKAGES = (
    "uuid-runtime dbus dbus-system-bus-common openssh-server sane-utils cups-daemon rpcbind avahi-daemon cron "
    "rsyslog nginx-common apache2 lighttpd dovecot-core mariadb-server postfix exim4-base "
    "bind9 chrony ntpsec haveged irqbalance acpid at anacron smartmontools lldpd "
    "nfs-kernel-server nfs-common tinysshd tang fcgiwrap mpd oidentd gpg-agent dirmngr "
    "gnome-keyring pipewire pulseaudio libvirt-daemon-system lvm2 dmeventd multipath-tools "
    "open-iscsi cockpit-ws approx proftpd-core sssd-common pcscd snmpd memcached "
    "redis-server openvpn mosquitto squid tor xinetd inetutils-inetd rsync systemd udev "
    "cloud-init hostapd wpasupplicant udisks2 polkitd accountsservice colord packagekit"
).split()
UNIT_DIRS = ("lib/systemd/system", "usr/lib/systemd/system", "lib/systemd/user",
             "usr/lib/systemd/user")


@pytest.fixture(scope="module")
def unpacked(request):
    """{package: its dpkg-deb -x directory}, downloading what is missing."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        pytest.skip("needs apt-get and dpkg-deb (Debian)")
    if getattr(request.config, "cache", None) is None:
        pytest.skip("pytest's cache is off (-p no:cacheprovider): nowhere to keep the .debs")
    try:
        cache = request.config.cache.mkdir("chainload-convert-debs")
    except OSError as e:
        pytest.skip(f"pytest's cache directory is not writable here ({e.strerror})")
    debs = {p: [f for f in os.listdir(cache) if f.startswith(p + "_") and f.endswith(".deb")]
            for p in PACKAGES}
    missing = [p for p, found in debs.items() if not found]
    if missing:
        proc = subprocess.run(["apt-get", "download", *missing], cwd=cache,
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            # One by one: a package missing from this mirror costs only itself.
            for p in missing:
                subprocess.run(["apt-get", "download", p], cwd=cache, capture_output=True,
                               timeout=300)
        debs = {p: [f for f in os.listdir(cache) if f.startswith(p + "_")
                    and f.endswith(".deb")] for p in PACKAGES}
    got = {p: sorted(found)[-1] for p, found in debs.items() if found}
    if len(got) < 40:
        pytest.skip(f"apt-get download gave only {len(got)} of {len(PACKAGES)} packages "
                    "(no package lists or no network?)")
    out = {}
    for package, deb in got.items():
        target = cache / "x" / deb[:-4]
        if not target.is_dir():
            partial = cache / "x" / (deb[:-4] + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(cache / deb), str(partial)], check=True)
            partial.rename(target)
        out[package] = target
    return out


def unit_files(root):
    for d in UNIT_DIRS:
        base = root / d
        if not base.is_dir():
            continue
        for name in sorted(os.listdir(base)):
            path = base / name
            if name.endswith((".socket", ".service")) and path.is_file() \
                    and not path.is_symlink():
                yield "/user" in d, base, path


def lookup(unpacked, base, user):
    """The unit's own directory first, then those of every package (a
    socket's service may come in another package: dbus.socket, dbus.service)."""
    dirs = [str(base)] + [str(root / d) for root in unpacked.values() for d in UNIT_DIRS
                          if ("/user" in d) == user and (root / d).is_dir()]
    return units.Lookup(dirs)


def test_every_unit_converts_or_is_refused_clearly(unpacked, tmp_path):
    scripts, refusals, count = [], [], 0
    for package, root in unpacked.items():
        for user, base, path in unit_files(root):
            count += 1
            converter = emit.Converter(lookup(unpacked, base, user), units.Host(user=user))
            try:
                script = converter.convert(path.name, str(path))
            except units.Refusal as e:
                message = str(e)
                assert message and "\n" not in message, (path, message)
                refusals.append((package, path.name, message))
                continue
            for w in converter.warnings:
                assert "\n" not in w.line()
            scripts.append((package, path, script))
    assert count > 200, count
    # Real units: most of them convert.
    assert len(scripts) > len(refusals), refusals
    for index, (package, path, script) in enumerate(scripts):
        file = tmp_path / f"{index}.sh"
        file.write_text(script)
        proc = subprocess.run(["sh", "-n", str(file)], capture_output=True, text=True)
        assert proc.returncode == 0, (package, path, proc.stderr, script)
    # Every refusal is one the converter means to make.
    known = ("Type=forking", "Type=oneshot", "DynamicUser=yes", "No ExecStart=",
             "has no listener", "More than one ExecStart=", "No such unit", "Accept=yes",
             "No Listen", "StandardInput=socket", "systemd does not load", "Not a",
             "is masked", "Only .socket and .service")
    for package, name, message in refusals:
        assert any(k in message for k in known), (package, name, message)


def test_known_pairs_convert(unpacked):
    """Socket-activated services of the census that must give a script."""
    wanted = {"uuid-runtime": "uuidd.socket", "dbus-system-bus-common": "dbus.socket",
              "openssh-server": "ssh.socket", "sane-utils": "saned.socket",
              "cups-daemon": "cups.socket", "rpcbind": "rpcbind.socket",
              "tang": "tangd.socket", "mariadb-server": "mariadb.socket",
              "pcscd": "pcscd.socket", "fcgiwrap": "fcgiwrap.socket"}
    for package, name in wanted.items():
        if package not in unpacked:
            continue
        for user, base, path in unit_files(unpacked[package]):
            if path.name == name:
                converter = emit.Converter(lookup(unpacked, base, user), units.Host(user=user))
                script = converter.convert(name, str(path))
                assert "-socket-listen" in script, (name, script)
                break
        else:
            pytest.fail(f"{package} has no {name}")
