"""A container's /etc/hosts, /etc/hostname and /etc/resolv.conf.

Generated per container (bind-mounted over the image's files by the engine),
as docker does:

- hosts: localhost lines, the container's own address(es) with its hostname,
  then --add-host entries (``host-gateway`` is the address of the network's
  gateway, i.e. the host as the container sees it);
- resolv.conf: on the default bridge the host's resolvers; on a user-defined
  network the network's embedded DNS server (dns.py), which answers container
  names and forwards the rest to the host's resolvers.  --dns, --dns-search and
  --dns-option override the corresponding lines.

When /etc/resolv.conf names only a loopback resolver (systemd-resolved's stub
127.0.0.53 among them), a container cannot reach it: its 127.0.0.53 is its own
loopback.  Then /run/systemd/resolve/resolv.conf, which lists the upstream
servers, is used instead, as docker does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TypedDict

from pybox.errors import BadRequest

HOST_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
DEFAULT_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]  # docker's fallback when nothing is usable

LOCALHOST_LINES = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
]


class ResolvConf(TypedDict):
    """What pybox reads of a resolv.conf."""

    nameservers: list[str]
    search: list[str]
    options: list[str]


def parse_resolv_conf(text: str) -> ResolvConf:
    """-> {"nameservers": [...], "search": [...], "options": [...]}"""
    out: ResolvConf = {"nameservers": [], "search": [], "options": []}
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        key, _, rest = line.partition(" ")
        words = rest.split()
        if key == "nameserver" and words:
            out["nameservers"].append(words[0])
        elif key in ("search", "domain"):
            out["search"] = words
        elif key == "options":
            out["options"] += words
    return out


def _is_loopback(ns: str) -> bool:
    try:
        return ipaddress.ip_address(ns.split("%")[0]).is_loopback
    except ValueError:
        return False


def host_resolvers(path: str = HOST_RESOLV_CONF,
                   systemd_path: str = SYSTEMD_RESOLV_CONF) -> ResolvConf:
    """The host's resolver configuration as seen from a container: loopback
    nameservers dropped, systemd-resolved's upstream list used when the stub
    is all there is.  IPv6 nameservers are kept out (pybox networks are IPv4)."""
    conf = _read(path)
    servers = [s for s in conf["nameservers"] if not _is_loopback(s)]
    if not servers and any(_is_loopback(s) for s in conf["nameservers"]):
        upstream = _read(systemd_path)
        servers = [s for s in upstream["nameservers"] if not _is_loopback(s)]
        if not conf["search"]:
            conf["search"] = upstream["search"]
    servers = [s for s in servers if ":" not in s]
    conf["nameservers"] = servers
    for key in ("nameservers", "search", "options"):  # pyboxd's dns, dns-search, dns-opts
        if DAEMON_DNS[key]:
            conf[key] = list(DAEMON_DNS[key])
    return conf


# daemon.json's dns, dns-search and dns-opts (set_daemon_dns): in place of the
# host's, for containers that set none of their own (dockerd's defaults)
DAEMON_DNS: ResolvConf = {"nameservers": [], "search": [], "options": []}


def set_daemon_dns(nameservers: Iterable[str] = (), search: Iterable[str] = (),
                   options: Iterable[str] = ()) -> None:
    """pyboxd's DNS defaults: each one given replaces the host's."""
    DAEMON_DNS["nameservers"] = list(nameservers)
    DAEMON_DNS["search"] = list(search)
    DAEMON_DNS["options"] = list(options)


def _read(path: str) -> ResolvConf:
    try:
        with open(path) as f:
            return parse_resolv_conf(f.read())
    except OSError:
        return {"nameservers": [], "search": [], "options": []}


def resolv_conf(host: ResolvConf, *, dns: Iterable[str] = (), dns_search: Iterable[str] = (),
                dns_options: Iterable[str] = (), embedded: str | None = None) -> str:
    """The container's resolv.conf text.  ``host`` is ``host_resolvers()``;
    ``embedded`` the embedded DNS server's address on user-defined networks
    (then --dns servers become that server's upstreams, not the container's)."""
    if embedded:
        nameservers = [embedded]
    else:
        nameservers = list(dns) or host["nameservers"] or list(DEFAULT_NAMESERVERS)
    search = list(dns_search) if dns_search else host["search"]
    options = list(dns_options) if dns_options else host["options"]
    if embedded and not any(o.startswith("ndots:") for o in options):
        options = options + ["ndots:0"]  # docker's: names are tried as given first
    lines = ["# Generated by pybox"]
    lines += [f"nameserver {ns}" for ns in nameservers]
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hosts(hostname: str, *, domainname: str = "", addresses: Iterable[str] = (),
          extra_hosts: Iterable[str] | None = (), gateway: str | None = None,
          links: Iterable[tuple[str, str]] = ()) -> str:
    """The container's /etc/hosts text, in dockerd's order: localhost lines,
    --add-host entries, legacy links' entries (``links``: (address, "alias
    hostname name") pairs), then its own addresses (one line each, with the
    hostname, as docker writes it)."""
    lines = list(LOCALHOST_LINES)
    names = hostname
    if domainname:
        names = f"{hostname}.{domainname} {hostname}"
    for entry in extra_hosts or ():
        host, ip = split_extra_host(entry)
        if ip == "host-gateway":
            if not gateway:
                continue
            ip = gateway
        lines.append(f"{ip}\t{host}")
    for ip, link_names in links:
        lines.append(f"{ip}\t{link_names}")
    for ip in addresses:
        lines.append(f"{ip}\t{names}")
    return "\n".join(lines) + "\n"


def split_extra_host(entry: object) -> tuple[str, str]:
    """"name:ip" (docker's API form; IPv6 addresses contain colons) -> (name, ip)."""
    host, sep, ip = str(entry).partition(":")
    if not sep:
        host, sep, ip = str(entry).partition("=")
    return host, ip.strip("[]")


def validate_extra_hosts(entries: Iterable[object] | None) -> None:
    for entry in entries or ():
        host, ip = split_extra_host(entry)
        if not host or not ip:
            raise BadRequest(f"invalid IP address in add-host: {entry!r}")
        if ip == "host-gateway":
            continue
        try:
            # docker's net.ParseIP takes no IPv6 zone ("%eth0"), whose text
            # would go into /etc/hosts as it is
            if "%" in ip:
                raise ValueError(ip)
            ipaddress.ip_address(ip)
        except ValueError:
            raise BadRequest(f'invalid IP address in add-host: "{ip}"') from None
